"""pkpo.transform / transform_grouped against the brute-force subset definitions, plus the
identities of paper.md §1.5 and the ragged (mask, grouped) layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pkpo

import oracle

CASES = [
    (n, k, b)
    for n in range(1, 11)
    for k in range(1, n + 1)
    for b in pkpo.BASELINES
    if n >= pkpo.min_group_size(k, b)
]


def reward_rows(n: int, seed: int) -> np.ndarray:
    """Random continuous, tied (few distinct values), binary, constant and negative rewards for one
    n."""
    rng = np.random.default_rng(1000 * n + seed)
    return np.stack(
        [
            rng.normal(size=n),
            rng.integers(0, 3, size=n) * 0.5,  # many ties
            rng.integers(0, 2, size=n).astype(float),  # binary
            np.full(n, 0.7),  # all equal
            -rng.random(n) * 100.0,  # negative, wider range
        ]
    )


# --- 1. oracle -------------------------------------------------------------------------------


@pytest.mark.parametrize("n, k, baseline", CASES)
def test_matches_subset_definition(n, k, baseline):
    rewards = reward_rows(n, seed=k)
    expected = oracle.transform(rewards, k, baseline)
    got = pkpo.transform(rewards, k, baseline)
    scale = max(1.0, np.abs(rewards).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * scale)


@pytest.mark.parametrize("n", range(1, 11))
def test_binary_none_is_eq8_closed_form(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        f = rng.integers(0, 2, size=n)
        for k in range(1, n + 1):
            expected = oracle.binary_closed_form(list(f), k)
            np.testing.assert_allclose(pkpo.transform(f, k, "none"), expected, rtol=0, atol=1e-15)
            # bool input is the same call
            np.testing.assert_allclose(
                pkpo.transform(f.astype(bool), k, "none"), expected, rtol=0, atol=1e-15
            )


@st.composite
def group_and_k(draw, max_n=8):
    """A group of 1..8 rewards (wide floats mixed with a small pool of values, so ties are common),
    a baseline, and a k valid for both (a baseline that has no valid k at this n becomes 'none')."""
    n = draw(st.integers(1, max_n))
    values = st.one_of(
        st.floats(-50, 50, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, 1.0, -1.0, 0.5]),
    )
    rewards = draw(st.lists(values, min_size=n, max_size=n))
    baseline = draw(st.sampled_from(pkpo.BASELINES))
    k = draw(st.integers(1, n))
    if n < pkpo.min_group_size(k, baseline):
        baseline = "none"
    return np.array(rewards), k, baseline


@given(group_and_k())
def test_hypothesis_matches_subset_definition(case):
    rewards, k, baseline = case
    expected = oracle.transform(rewards, k, baseline)
    got = pkpo.transform(rewards, k, baseline)
    scale = max(1.0, np.abs(rewards).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * scale)


def test_paper_example_values():
    """paper.md §2.3 A, 'Example transformed rewards', g as printed, k = 4 (6 decimals)."""
    g = np.array([0.0, 0.5, 0.2, 1.0, 0.3, 0.0, 0.8, 0.6])
    printed = {
        "none": [0.405714, 0.408571, 0.405714, 0.5, 0.405714, 0.405714, 0.442857, 0.414286],
        "loo": [
            -0.098776,
            -0.092653,
            -0.098776,
            0.103265,
            -0.098776,
            -0.098776,
            -0.019184,
            -0.080408,
        ],
        "loo_minus_one": [0.0, 0.012857, 0.0, 0.184286, 0.001429, 0.0, 0.084286, 0.027143],
        "centered": [
            -0.035714,
            -0.03,
            -0.035714,
            0.152857,
            -0.035714,
            -0.035714,
            0.038571,
            -0.018571,
        ],
    }
    for baseline, values in printed.items():
        np.testing.assert_allclose(pkpo.transform(g, 4, baseline), values, rtol=0, atol=5e-7)
    assert math.isclose(float(pkpo.maxg_at_k(g, 4)), 0.847143, abs_tol=5e-7)


# --- 2. identities (paper.md §1.5) ------------------------------------------------------------


def random_groups(n, rng, rows=6):
    return np.concatenate([rng.normal(size=(rows, n)), rng.integers(0, 3, size=(rows, n)) * 0.25])


@pytest.mark.parametrize("n", [2, 3, 5, 8, 16, 33])
def test_sum_identities(n, rng):
    g = random_groups(n, rng)
    for k in range(1, n + 1):
        rho_k = pkpo.maxg_at_k(g, k)
        np.testing.assert_allclose(pkpo.transform(g, k, "none").sum(-1), k * rho_k, atol=1e-12)
        if k >= 2:
            rho_km1 = pkpo.maxg_at_k(g, k - 1)
            np.testing.assert_allclose(
                pkpo.transform(g, k, "loo_minus_one").sum(-1), k * (rho_k - rho_km1), atol=1e-12
            )
        if k < n:
            np.testing.assert_allclose(
                pkpo.transform(g, k, "loo").sum(-1), -k * rho_k / (n - 1), atol=1e-12
            )
            np.testing.assert_allclose(pkpo.transform(g, k, "centered").sum(-1), 0.0, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 5, 8, 16, 64])
def test_loo_minus_one_nonnegative_and_lowest_ranks_zero(n, rng):
    g = random_groups(n, rng)
    for k in range(2, n + 1):
        a = pkpo.transform(g, k, "loo_minus_one")
        assert (a >= 0).all()  # exactly, not up to rounding
        lowest = np.argsort(g, axis=-1, kind="stable")[:, : k - 1]
        assert (np.take_along_axis(a, lowest, axis=-1) == 0).all()


@pytest.mark.parametrize("n", [2, 4, 7, 16])
def test_binary_loo_minus_one_closed_form(n, rng):
    for _ in range(10):
        f = rng.integers(0, 2, size=n)
        c = int(f.sum())
        for k in range(2, n + 1):
            a = pkpo.transform(f, k, "loo_minus_one")
            assert (a[f == 0] == 0).all()
            right = (k / n) * math.comb(n - c, k - 1) / math.comb(n - 1, k - 1)
            np.testing.assert_allclose(a[f == 1], right, rtol=1e-14, atol=1e-16)


def test_k1_none_is_reward_over_n(rng):
    g = rng.normal(size=(4, 9))
    np.testing.assert_allclose(pkpo.transform(g, 1, "none"), g / 9, rtol=1e-14, atol=1e-15)


def test_k1_loo_minus_one_is_plain_leave_one_out(rng):
    g = rng.normal(size=(4, 9))
    loo = (g - (g.sum(-1, keepdims=True) - g) / 8) / 9
    np.testing.assert_allclose(pkpo.transform(g, 1), loo, atol=1e-14)
    np.testing.assert_allclose(pkpo.transform(g, 1, "centered"), loo, atol=1e-14)


@pytest.mark.parametrize("n", [2, 3, 6, 16])
def test_n_equals_k_is_tzsm25(n, rng):
    g = np.concatenate([rng.normal(size=(5, n)), rng.integers(0, 2, size=(5, n)).astype(float)])
    a = pkpo.transform(g, n, "loo_minus_one")
    without = np.stack([np.delete(g, i, axis=-1).max(-1) for i in range(n)], axis=-1)
    np.testing.assert_allclose(a, g.max(-1, keepdims=True) - without, atol=1e-15)


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_permutation_equivariance_exact(baseline, rng):
    n = 12
    g = np.concatenate([rng.normal(size=(3, n)), rng.integers(0, 3, size=(3, n)).astype(float)])
    for k in range(1, n):
        a = pkpo.transform(g, k, baseline)
        for _ in range(3):
            perm = rng.permutation(n)
            # ties in any order: same sorted values, so bit-for-bit the same advantages
            np.testing.assert_array_equal(pkpo.transform(g[:, perm], k, baseline), a[:, perm])


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_tied_rewards_get_equal_advantages(baseline):
    g = np.array([0.5, 0.0, 0.5, 1.0, 0.5, 1.0, 0.0])
    for k in range(1, 6):
        a = pkpo.transform(g, k, baseline)
        for value in np.unique(g):
            assert len(set(a[g == value].tolist())) == 1


@pytest.mark.parametrize("shift", [-1e3, -0.3, 2.0, 1e4])
def test_shift_behaviour(shift, rng):
    n = 10
    g = rng.normal(size=(4, n))
    for k in range(1, n):
        # loo-1 and centered are shift-invariant
        for baseline in ("loo_minus_one", "centered"):
            np.testing.assert_allclose(
                pkpo.transform(g + shift, k, baseline),
                pkpo.transform(g, k, baseline),
                atol=1e-15 * (1 + abs(shift)) * n,
            )
        # s moves by k/n per unit shift (sum s = k rho); s^(loo) by k/n - k/(n-1)
        np.testing.assert_allclose(
            pkpo.transform(g + shift, k, "none"),
            pkpo.transform(g, k, "none") + shift * k / n,
            atol=1e-14 * (1 + abs(shift)),
        )
        np.testing.assert_allclose(
            pkpo.transform(g + shift, k, "loo"),
            pkpo.transform(g, k, "loo") - shift * k / (n * (n - 1)),
            atol=1e-14 * (1 + abs(shift)),
        )


def test_positive_scale_equivariance(rng):
    g = rng.normal(size=(3, 9))
    for baseline in pkpo.BASELINES:
        for k in range(1, 9):
            np.testing.assert_allclose(
                pkpo.transform(3.5 * g, k, baseline),
                3.5 * pkpo.transform(g, k, baseline),
                rtol=1e-13,
                atol=1e-15,
            )


def test_all_equal_group_loo_minus_one_is_zero():
    a, info = pkpo.transform(np.full((2, 8), 0.3), 3, return_info=True)
    assert (a == 0).all()
    assert info.zero_signal.all()


def test_leading_axes_and_1d():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(2, 3, 6))
    a = pkpo.transform(g, 3)
    assert a.shape == g.shape
    np.testing.assert_array_equal(a[1, 2], pkpo.transform(g[1, 2], 3))


# --- 4. ragged layouts ------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_mask_equals_per_group_transform(baseline, rng):
    width, k = 9, 2
    g = np.round(rng.normal(size=(12, width)), 1)
    mask = rng.random((12, width)) < 0.7
    need = pkpo.min_group_size(k, baseline)
    for row in range(12):  # every group large enough for the baseline
        while mask[row].sum() < need:
            mask[row, rng.integers(width)] = True
    mask[0] = True  # one full row
    a, info = pkpo.transform(g, k, baseline, mask=mask, return_info=True)
    for row in range(12):
        expected = pkpo.transform(g[row, mask[row]], k, baseline)
        np.testing.assert_allclose(a[row, mask[row]], expected, atol=1e-14)
        assert (a[row, ~mask[row]] == 0).all()
        np.testing.assert_allclose(
            info.estimate[row], pkpo.maxg_at_k(g[row, mask[row]], k), atol=1e-14
        )
        np.testing.assert_allclose(info.advantage_sum[row], expected.sum(), atol=1e-13)
        assert info.zero_signal[row] == (not expected.any())


def test_mask_ignores_garbage_in_padding():
    g = np.array([[0.1, 0.9, np.nan, np.inf], [0.4, 0.2, 0.3, -np.inf]])
    mask = np.array([[True, True, False, False], [True, True, True, False]])
    a = pkpo.transform(g, 2, "loo_minus_one", mask=mask)
    np.testing.assert_allclose(a[0], list(pkpo.transform(g[0, :2], 2)) + [0, 0])
    np.testing.assert_allclose(a[1], list(pkpo.transform(g[1, :3], 2)) + [0])


def interleaved_batch(rng, ids):
    sizes = {gid: int(rng.integers(3, 9)) for gid in ids}
    labels = np.array([gid for gid, size in sizes.items() for _ in range(size)], dtype=object)
    rng.shuffle(labels)
    return rng.normal(size=len(labels)), labels


@pytest.mark.parametrize("kind", ["str", "int", "torch"])
@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_transform_grouped_equals_per_group(kind, baseline, rng):
    raw_ids = ["uid-b", "uid-a", "z", "q7"] if kind == "str" else [40, 3, 17, 8]
    rewards, labels = interleaved_batch(rng, raw_ids)
    if kind == "str":
        ids = labels
    elif kind == "int":
        ids = labels.astype(np.int64)
    else:
        torch = pytest.importorskip("torch")
        ids = torch.tensor(labels.astype(np.int64))
    k = 2
    out, unique_ids, info = pkpo.transform_grouped(rewards, ids, k, baseline, return_info=True)
    assert list(unique_ids) == sorted(raw_ids)
    for position, gid in enumerate(unique_ids):
        members = labels == gid
        expected = pkpo.transform(rewards[members], k, baseline)
        np.testing.assert_allclose(out[members], expected, atol=1e-14)
        np.testing.assert_allclose(
            info.estimate[position], pkpo.maxg_at_k(rewards[members], k), atol=1e-14
        )
        np.testing.assert_allclose(info.advantage_sum[position], expected.sum(), atol=1e-13)
        assert info.zero_signal[position] == (not expected.any())


def test_transform_grouped_torch_rewards(rng):
    torch = pytest.importorskip("torch")
    rewards, labels = interleaved_batch(rng, ["a", "b", "c"])
    out = pkpo.transform_grouped(torch.tensor(rewards, dtype=torch.float32), labels, 3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(
        out.numpy(), pkpo.transform_grouped(rewards, labels, 3), rtol=1e-6, atol=1e-7
    )


def test_transform_grouped_single_group_equals_transform(rng):
    g = rng.normal(size=16)
    np.testing.assert_allclose(
        pkpo.transform_grouped(g, np.zeros(16, int), 4), pkpo.transform(g, 4), atol=1e-15
    )


# --- scale -------------------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", ["none", "loo", "loo_minus_one", "centered"])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_scale_n_over_k_is_the_constant_n_over_k(baseline, k, rng):
    g = rng.random((7, 8))
    np.testing.assert_allclose(
        pkpo.transform(g, k, baseline, scale="n_over_k"),
        pkpo.transform(g, k, baseline) * 8 / k,
        rtol=1e-12,
    )


def test_scale_n_over_k_at_k1_is_rloo(rng):
    g = rng.random((5, 6))
    rloo = g - (g.sum(-1, keepdims=True) - g) / 5  # g_i - mean_{j != i} g_j
    np.testing.assert_allclose(pkpo.transform(g, 1, scale="n_over_k"), rloo, atol=1e-14)


def test_scale_mean_abs_has_unit_mean_abs_and_keeps_signs(rng):
    g = (rng.random((32, 16)) < 0.3).astype(float)
    raw = pkpo.transform(g, 4, "centered")
    scaled = pkpo.transform(g, 4, "centered", scale="mean_abs")
    assert np.abs(scaled).mean() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(scaled * np.abs(raw).mean(), raw, atol=1e-14)


def test_scale_mean_abs_of_an_all_zero_batch_is_zero():
    assert not pkpo.transform(np.ones((3, 4)), 2, scale="mean_abs").any()


def test_scale_with_mask_uses_each_groups_n_and_only_valid_entries(rng):
    g = rng.random((6, 9))
    mask = rng.random((6, 9)) < 0.7
    mask[:, :3] = True
    raw = pkpo.transform(g, 2, mask=mask)
    n = mask.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        pkpo.transform(g, 2, mask=mask, scale="n_over_k"), raw * n / 2, rtol=1e-12
    )
    scaled, info = pkpo.transform(g, 2, mask=mask, scale="mean_abs", return_info=True)
    np.testing.assert_allclose(scaled, raw / np.abs(raw[mask]).mean(), rtol=1e-12)
    assert not scaled[~mask].any()
    np.testing.assert_allclose(info.advantage_sum, scaled.sum(-1), atol=1e-12)


@pytest.mark.parametrize("scale", ["n_over_k", "mean_abs"])
def test_scale_transform_grouped_equals_scaled_per_group(scale, rng):
    ids = rng.integers(0, 9, size=120)
    g = rng.random(120)
    raw = pkpo.transform_grouped(g, ids, 2)
    expected = raw * np.bincount(ids)[ids] / 2 if scale == "n_over_k" else raw / np.abs(raw).mean()
    np.testing.assert_allclose(pkpo.transform_grouped(g, ids, 2, scale=scale), expected, rtol=1e-12)


def test_scale_torch_and_jax_match_numpy(rng):
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    g = rng.random((4, 8))
    mask = rng.random((4, 8)) < 0.8
    mask[:, :2] = True
    for scale in ("n_over_k", "mean_abs"):
        expected = pkpo.transform(g, 2, mask=mask, scale=scale)
        out_t = pkpo.transform(torch.tensor(g), 2, mask=torch.tensor(mask), scale=scale)
        np.testing.assert_allclose(out_t.numpy(), expected, rtol=1e-12)
        jitted = jax.jit(
            lambda x, m, s=scale: pkpo.transform(x, 2, mask=m, scale=s, validate=False)
        )
        np.testing.assert_allclose(np.asarray(jitted(g, mask)), expected, rtol=1e-5, atol=1e-6)


def test_unknown_scale_is_a_value_error():
    with pytest.raises(
        ValueError, match="unknown scale 'unit'; expected one of none, n_over_k, mean_abs"
    ):
        pkpo.transform(np.ones((2, 3)), 1, scale="unit")
