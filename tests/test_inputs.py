"""Inputs at the edges: rewards near the float limit, ids of mixed types, masks and k as users pass
them, ragged lists, scalar counts, jax.jit and autograd, and the precision the docs state."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import pkpo

import oracle  # noqa: E402  (tests/ is on sys.path)

# --- rewards near the float limit: the right answer or a ValueError, never inf ------------------


def test_maxg_at_k_near_the_float64_limit_is_exact():
    g = np.array([-1.7e308, 1.7e308, 0.0])
    # mean of the pair maxima: (1.7e308 + 0 + 1.7e308) / 3, formed without overflow
    assert pkpo.maxg_at_k(g, 2) == pytest.approx(1.7e308 / 3 * 2, rel=1e-15)
    assert pkpo.transform(np.array([-1e308, 1e308]), 1).tolist() == [-1e308, 1e308]


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_transform_near_the_limit_equals_the_scaled_oracle(baseline):
    g = np.array([-1.7e308, 1.7e308, 0.0, 4e307])
    expected = np.asarray(oracle.transform(g / 8, 2, baseline)) * 8  # exact: powers of two
    assert np.allclose(pkpo.transform(g, 2, baseline=baseline), expected, rtol=1e-12, atol=0)


def test_a_result_beyond_the_output_dtype_is_a_value_error():
    torch = pytest.importorskip("torch")
    g = torch.tensor([3e38, -3e38, -3e38], dtype=torch.float32)
    # k = n: loo_minus_one is max(g) - max(g without i) = 6e38 for the best sample, > float32's
    # 3.4e38
    with pytest.raises(ValueError, match="does not fit in float32.*rescale the rewards"):
        pkpo.transform(g, 3)
    exact = pkpo.transform(g.double(), 3)
    assert exact.tolist() == pytest.approx([2 * float(g[0]), 0.0, 0.0])


G = np.array([[0.1, 0.5, 0.2, 0.9], [0.3, 0.0, 1.0, 0.4]])


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
def test_mean_abs_near_the_limit_equals_mean_abs_of_small_rewards(baseline):
    """mean_abs does not depend on the rewards' scale; it used to come out 8x too large."""
    k = 2
    expected = pkpo.transform(G, k, baseline, scale="mean_abs")
    for factor in (1e308, 1e-300, 2.0**-1070 / G[G > 0].min()):
        got = pkpo.transform(G * factor, k, baseline, scale="mean_abs")
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_subnormal_rewards_give_exact_results_not_inf():
    got = pkpo.transform(np.array([[1e-320, 2e-320, 0.0]]), 1, "none", scale="mean_abs")
    assert got.tolist() == [[1.0, 2.0, 0.0]]  # was [[inf, inf, nan]]
    # unscaled: the exact s = g / n, correctly rounded (the scan ran on values of order 1)
    tiny = np.array([[3e-320, 6e-320, 0.0]])
    assert pkpo.transform(tiny, 1, "none").tolist() == [[1e-320, 2e-320, 0.0]]
    assert pkpo.maxg_at_k(tiny, 2) == pytest.approx(5e-320, rel=1e-3)  # (6 + 6 + 3) / 3 e-320


@pytest.mark.parametrize("readable", [True, False])
def test_validate_false_still_rescales_near_the_limit(readable, monkeypatch):
    """validate=False skips the checks, not the scaling: on the host, or computed on the device
    (the path of GPUs, torch.compile and jax.jit, forced here on numpy)."""
    if not readable:
        from pkpo._backend import Backend

        monkeypatch.setattr(Backend, "reads_cheaply", lambda self, x: False)
    g = np.array([1e308, -1e308])
    assert pkpo.maxg_at_k(g, 1, validate=False) == 0.0  # was inf
    assert pkpo.maxg_at_k(g, 2, validate=False) == 1e308
    wide = np.array([[-1.7e308, 1.7e308, 0.0, 4e307]])
    np.testing.assert_allclose(
        pkpo.transform(wide, 2, "centered", validate=False),
        pkpo.transform(wide, 2, "centered"),
        rtol=1e-14,
    )
    got = pkpo.transform(
        np.array([[1e-320, 2e-320, 0.0]]), 1, "none", scale="mean_abs", validate=False
    )
    assert got.tolist() == [[1.0, 2.0, 0.0]]
    np.testing.assert_array_equal(pkpo.transform(G, 3, validate=False), pkpo.transform(G, 3))


def test_standard_errors_of_huge_rewards_are_finite():
    from pkpo import metrics

    assert metrics.standard_error([1e300, 3e300, 2e300]) == pytest.approx(
        1e300 / math.sqrt(3), rel=1e-14
    )
    report = metrics.maxg_at_k_report(
        [[1e308, 1.5e308], [1.7e308, 1e308], [1.2e308, 1.6e308]], [1, 2], n_bootstrap=50
    )
    assert report[1].estimate == pytest.approx(4 / 3 * 1e308, rel=1e-14)  # mean of 1.25, 1.35, 1.4
    assert report[1].se == pytest.approx(
        statistics_stdev([1.25, 1.35, 1.4]) * 1e308 / math.sqrt(3), rel=1e-12
    )
    assert all(math.isfinite(value) for row in report for value in row[1:5])


def statistics_stdev(values):
    import statistics

    return statistics.stdev(values)


def test_counts_beyond_int64_are_refused_not_wrapped():
    with pytest.raises(ValueError, match=r"n must be below 2\*\*63; got 9223372036854775808"):
        pkpo.pass_at_k_from_counts(2**63, 1, 2)
    with pytest.raises(ValueError, match=r"below 2\*\*63"):
        pkpo.pass_all_k_from_counts([5, 2**64], [1, 1], 2)
    assert pkpo.pass_at_k_from_counts(2**62, 1, 2) == 2.0**-61  # 1 - C(n-1,2)/C(n,2) = 2/n


def test_schedules_keep_huge_k_exact():
    from pkpo import schedules

    down = schedules.linear(k_start=2**60, k_end=1, steps=10)
    assert [down(0), down(5), down(10)] == [2**60, (2**60 + 1) // 2, 1]  # ended at 0 before
    up = schedules.cosine(k_start=1, k_end=2**60 + 1, steps=4)
    assert up(4) == 2**60 + 1 and abs(up(2) - 2**59) < 2**10  # cos(pi/2) is 6e-17 in floats


@pytest.mark.parametrize(
    "ids",
    [
        [1, True, 1, True],
        [1, 1.0, 2, 2],
        [np.int64(1), True, 1, 2],
        np.array([1, "a", 1, "a"], dtype=object),
    ],
)
def test_ids_of_mixed_kinds_are_refused_not_merged(ids):
    with pytest.raises(ValueError, match="group_ids must be mutually comparable and of one type"):
        pkpo.transform_grouped(np.array([1.0, 0.0, 0.0, 1.0]), ids, 1)


def test_ids_of_one_kind_in_different_types_are_one_kind():
    r = np.array([1.0, 0.0, 0.0, 1.0])
    expected = pkpo.transform_grouped(r, [1, 2, 1, 2], 1)
    assert (
        pkpo.transform_grouped(r, [1, np.int64(2), np.int32(1), 2], 1).tolist() == expected.tolist()
    )
    assert pkpo.transform_grouped(r, ["a", np.str_("b"), "a", "b"], 1).tolist() == expected.tolist()
    assert (
        pkpo.transform_grouped(r, [True, False, True, False], 1).tolist()
        == expected[::-1].tolist()[::-1]
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda m: pkpo.transform(m, 1),
        lambda m: pkpo.maxg_at_k(m, 1),
        lambda m: pkpo.pass_at_k(m > 0, 1),
        lambda m: pkpo.pass_all_k(m > 0, 1),
        lambda m: pkpo.transform(m.data, 1, mask=np.ma.masked_array(~m.mask)),
        lambda m: pkpo.transform_grouped(m.reshape(-1), np.zeros(6, int), 1),
        lambda m: pkpo.transform_grouped(
            m.data.reshape(-1), np.ma.masked_array(np.zeros(6, int)), 1
        ),
        lambda m: pkpo.pass_at_k_from_counts(np.ma.masked_array([3, 3], mask=[0, 1]), 1, 1),
        lambda m: pkpo.metrics.maxg_at_k_report(m, 1),
        lambda m: pkpo.metrics.pass_at_k_report(list(m > 0), 1),
        lambda m: pkpo.metrics.cover(m > 0, 0.5),
    ],
)
def test_numpy_masked_arrays_are_refused_with_advice(call):
    """A masked array's mask used to be dropped silently; pkpo refuses it and says what to pass."""
    masked = np.ma.masked_array([[0.2, 0.9, 7.0], [0.1, 0.4, 0.3]], mask=[[0, 0, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match="is a numpy masked array, whose mask pkpo does not read"):
        call(masked)


# --- group ids, masks, k, ragged lists, scalar counts -------------------------------------------


def test_mixed_type_ids_in_a_list_are_refused_not_merged():
    r = np.array([1.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="group_ids must be mutually comparable"):
        pkpo.transform_grouped(r, [1, "1", 1, "1"], 1)
    as_strings = pkpo.transform_grouped(r, ["1", "2", "1", "2"], 1)
    assert (
        pkpo.transform_grouped(r, [1, 2, 1, 2], 1).tolist()
        == as_strings.tolist()
        == [0.5, -0.5, -0.5, 0.5]
    )


def test_an_integer_attention_mask_works_like_a_bool_mask():
    g = np.array([[0.2, 0.9, 0.4, 7.0], [1.0, 0.0, 1.0, 1.0]])
    attention = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=np.int64)
    assert np.array_equal(
        pkpo.transform(g, 2, mask=attention), pkpo.transform(g, 2, mask=attention == 1)
    )
    with pytest.raises(ValueError, match="an integer mask must hold only 0 and 1; got \\[2\\]"):
        pkpo.transform(g, 2, mask=attention * 2)
    with pytest.raises(ValueError, match="mask must be boolean or integer 0/1 .*got dtype float64"):
        pkpo.transform(g, 2, mask=attention.astype(float))


def test_torch_attention_mask_and_0d_tensor_k():
    torch = pytest.importorskip("torch")
    g = torch.tensor([[0.2, 0.9, 0.4, 7.0]])
    attention = torch.tensor([[1, 1, 1, 0]])
    expected = pkpo.transform(g, 2, mask=attention.bool())
    assert torch.equal(pkpo.transform(g, torch.tensor(2), mask=attention), expected)
    assert pkpo.maxg_at_k(g, np.int64(2)).item() == pytest.approx(pkpo.maxg_at_k(g, 2).item())
    for bad in (torch.tensor(2.0), torch.tensor(True), torch.tensor([2, 3]), np.array([2])):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            pkpo.transform(g, bad)


def test_a_ragged_list_is_explained():
    with pytest.raises(
        ValueError, match="rewards is a ragged nested list .* mask= .* transform_grouped"
    ):
        pkpo.transform([[1.0, 2.0], [3.0]], 1)


def test_pass_at_k_from_counts_returns_a_float_for_scalars():
    value = pkpo.pass_at_k_from_counts(4, 1, 2)
    assert type(value) is float and value == 0.5
    assert type(pkpo.pass_at_k_from_counts(5000, 3, 2)) is float
    assert pkpo.pass_at_k_from_counts([4, 4], [1, 0], 2).tolist() == [0.5, 0.0]


@pytest.mark.parametrize("n", [2049, 65536, 10**6])
def test_pass_at_k_from_counts_precision_beyond_exact_sizes(n):
    """The docstring's bound: relative error below 1e-12 against exact rationals, also where pass@k
    is tiny (c = k = 1) and where the product form hands over to the log-factorial table."""
    worst = 0.0
    cases = [
        (1, 1),
        (1, 2),
        (3, 2),
        (min(4096, n - 2), 2),
        (4097, min(4097, n - 4097)),
        (n // 3, 7),
        (5, n - 5),
    ]
    for c, k in cases:
        if k < 1:
            continue
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        got = pkpo.pass_at_k_from_counts(n, c, k)
        worst = max(worst, float(abs(Fraction(got) - exact) / exact))
    got = pkpo.pass_at_k_from_counts(n, 1, n // 2)  # c = 1: exactly k / n
    worst = max(worst, float(abs(Fraction(got) - Fraction(n // 2, n)) / Fraction(n // 2, n)))
    assert worst < 1e-12


def test_centered_sums_to_zero_up_to_rounding(rng):
    g = rng.random((2000, 16))
    sums = np.abs(pkpo.transform(g, 4, baseline="centered").sum(-1))
    assert (
        sums.max() < 16 * np.finfo(np.float64).eps
    )  # not exactly 0 in floating point; docs say so


def test_loo_minus_one_sums_to_zero_at_k_1(rng):
    # the documented sum k (rho_k - rho_{k-1}) is for k >= 2; at k = 1 it is leave-one-out centring
    g = rng.random((50, 8))
    assert np.abs(pkpo.transform(g, 1).sum(-1)).max() < 1e-15
    s = pkpo.transform(g, 3).sum(-1)
    assert np.allclose(s, 3 * (pkpo.maxg_at_k(g, 3) - pkpo.maxg_at_k(g, 2)), atol=1e-14)


# --- JAX jit and torch autograd, as the docs describe them --------------------------------------


@pytest.mark.slow
def test_jax_jit_needs_validate_false_and_says_so():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    g = jnp.asarray(np.random.default_rng(0).random((3, 5)), dtype=jnp.float32)
    with pytest.raises(
        ValueError, match="validate=True reads rewards .* inside jax.jit; pass validate=False"
    ):
        jax.jit(lambda x: pkpo.transform(x, 2))(g)
    jitted = jax.jit(lambda x: pkpo.transform(x, 2, validate=False))(g)
    assert np.allclose(np.asarray(jitted), np.asarray(pkpo.transform(g, 2)), atol=1e-6)
    with pytest.raises(
        ValueError, match="k must be a concrete integer, not a traced value: .* static"
    ):
        jax.jit(lambda x, k: pkpo.transform(x, k, validate=False))(g, 2)


def test_torch_outputs_are_differentiable_with_correct_gradients():
    torch = pytest.importorskip("torch")
    g = torch.tensor([[0.3, 0.9, 0.1, 0.5, 0.7]], dtype=torch.float64, requires_grad=True)
    for baseline in pkpo.BASELINES:
        out = pkpo.transform(g, 2, baseline=baseline)
        assert out.requires_grad  # attached to the graph, as documented
        assert torch.autograd.gradcheck(lambda x: pkpo.transform(x, 2, baseline=baseline), (g,))
    assert not pkpo.transform(g.detach(), 2).requires_grad


def test_n_over_k_beyond_the_largest_float_is_a_value_error_not_inf():
    g = np.array([[1.7e308, -1.7e308, 0.0, 1.0]])  # RLOO: 1.7e308 + 1.7e308 / 3 does not fit
    with pytest.raises(ValueError, match="does not fit in float64"):
        pkpo.transform(g, 1, scale="n_over_k")
    assert np.isfinite(pkpo.transform(g / 2, 1, scale="n_over_k")).all()
