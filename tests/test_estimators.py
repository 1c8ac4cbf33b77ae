"""pass_at_k, maxg_at_k and pass_at_k_from_counts against brute force and exact rationals."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pkpo

import oracle


@pytest.mark.parametrize("n", range(1, 11))
def test_maxg_at_k_matches_subset_mean(n):
    rng = np.random.default_rng(n)
    g = np.concatenate(
        [rng.normal(size=(4, n)), rng.integers(0, 3, size=(4, n)) * 0.5, np.full((1, n), -2.0)]
    )
    for k in range(1, n + 1):
        np.testing.assert_allclose(pkpo.maxg_at_k(g, k), oracle.maxg_at_k(g, k), rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", range(1, 11))
def test_pass_at_k_matches_subset_mean(n):
    rng = np.random.default_rng(100 + n)
    f = rng.integers(0, 2, size=(8, n))
    f[0] = 0
    f[1] = 1
    for k in range(1, n + 1):
        expected = oracle.pass_at_k(f, k)
        np.testing.assert_allclose(pkpo.pass_at_k(f, k), expected, rtol=0, atol=1e-15)
        np.testing.assert_allclose(pkpo.pass_at_k(f.astype(bool), k), expected, rtol=0, atol=1e-15)
        # binary rewards through maxg@k are the same number (pass@k is the 0/1 case, eq. 11)
        np.testing.assert_allclose(pkpo.maxg_at_k(f.astype(float), k), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", range(1, 11))
def test_pass_at_k_from_counts_matches_subset_mean(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            got = float(pkpo.pass_at_k_from_counts(n, c, k))
            assert got == pytest.approx(oracle.pass_at_k_from_counts(n, c, k), abs=1e-15)


def test_pass_at_k_from_counts_broadcasts():
    got = pkpo.pass_at_k_from_counts(np.array([[10], [20]]), np.array([0, 3, 10]), 5)
    assert got.shape == (2, 3)
    expected = [[float(oracle.exact_pass_at_k(n, c, 5)) for c in (0, 3, 10)] for n in (10, 20)]
    np.testing.assert_allclose(got, expected, rtol=1e-15)


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=9), st.data())
def test_hypothesis_maxg_at_k(values, data):
    k = data.draw(st.integers(1, len(values)))
    g = np.array(values)
    assert float(pkpo.maxg_at_k(g, k)) == pytest.approx(
        float(oracle.maxg_at_k(g, k)), abs=1e-12 * (1 + np.abs(g).max())
    )


@given(st.lists(st.booleans(), min_size=1, max_size=10), st.data())
def test_hypothesis_pass_at_k(values, data):
    k = data.draw(st.integers(1, len(values)))
    f = np.array(values)
    expected = oracle.exact_pass_at_k(len(values), int(f.sum()), k)
    assert float(pkpo.pass_at_k(f, k)) == pytest.approx(float(expected), abs=1e-15)


def test_maxg_at_k_extremes(rng):
    g = rng.normal(size=(5, 12))
    np.testing.assert_allclose(pkpo.maxg_at_k(g, 1), g.mean(-1), atol=1e-15)  # k = 1: the mean
    np.testing.assert_allclose(
        pkpo.maxg_at_k(g, 12), g.max(-1), rtol=1e-15, atol=1e-15
    )  # k = n: the max


def test_estimators_with_mask(rng):
    g = rng.normal(size=(6, 8))
    mask = np.ones_like(g, dtype=bool)
    mask[:, 5:] = [[True, False, True]] * 6
    for k in (1, 3, 6):
        expected = [float(pkpo.maxg_at_k(g[row, mask[row]], k)) for row in range(6)]
        np.testing.assert_allclose(pkpo.maxg_at_k(g, k, mask=mask), expected, rtol=0, atol=1e-15)
        f = g > 0
        expected = [float(pkpo.pass_at_k(f[row, mask[row]], k)) for row in range(6)]
        np.testing.assert_allclose(pkpo.pass_at_k(f, k, mask=mask), expected, rtol=0, atol=1e-15)


# --- 9. "correct to the last digit" -----------------------------------------------------------


def test_pass_at_k_from_counts_is_exact_half():
    assert float(pkpo.pass_at_k_from_counts(4, 1, 2)) == 0.5


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 16, 40, 64, 100, 256])
def test_pass_at_k_from_counts_within_one_ulp(n):
    ks = sorted({k for k in (1, 2, n // 4, n // 2, n) if 1 <= k <= n})
    cs = range(n + 1) if n <= 64 else range(0, n + 1, 7)
    got = pkpo.pass_at_k_from_counts(n, np.array(list(cs))[:, None], 1)  # array path too
    assert got.shape == (len(cs), 1)
    for k in ks:
        values = pkpo.pass_at_k_from_counts(n, np.array(list(cs)), k)
        for c, value in zip(cs, values):
            exact = float(oracle.exact_pass_at_k(n, c, k))  # Fraction -> correctly rounded float
            assert oracle.ulp_distance(float(value), exact) <= 1, (n, c, k, value, exact)


@pytest.mark.parametrize("n", [2, 5, 8, 13, 64])
def test_pass_at_k_from_binary_array_within_one_ulp(n, rng):
    f = rng.integers(0, 2, size=(20, n))
    for k in range(1, n + 1, max(1, n // 8)):
        values = pkpo.pass_at_k(f, k)
        for row, value in zip(f, values):
            exact = float(oracle.exact_pass_at_k(n, int(row.sum()), k))
            assert oracle.ulp_distance(float(value), exact) <= 1


def step_transform_exact(n: int, k: int, t: int, baseline: str) -> tuple[Fraction, Fraction]:
    """The transform of g = 1[rank >= t] (n - t + 1 ones) as exact rationals: (value of a 1, of a
    0).

    A step has one gap, at rank t, so each baseline's output there is a single rank weight:
    s^(loo-1) gives C(t-1,k-1)/C(n,k) to the ones (eq. 12's weight of rank t); s gives k/n to the
    ones and k/n - C(t-2,k-1)/C(n,k) to the zeros (eq. 19); centered gives rho_k - rho_k without
    one sample, with rho_k of a step = 1 - C(t-1,k)/C(n,k) (eq. 3).
    """

    def C(a, b):
        return math.comb(a, b) if 0 <= b <= a else 0

    if baseline == "loo_minus_one":
        return Fraction(C(t - 1, k - 1), C(n, k)), Fraction(0)
    if baseline == "none":
        return Fraction(k, n), Fraction(k, n) - Fraction(C(t - 2, k - 1), C(n, k))
    rho = 1 - Fraction(C(t - 1, k), C(n, k))
    without_one = 1 - Fraction(
        C(t - 1, k), C(n - 1, k)
    )  # a 1 removed: t - 1 zeros left among n - 1
    without_zero = 1 - Fraction(C(t - 2, k), C(n - 1, k))  # a 0 removed: t - 2 zeros left
    return rho - without_one, rho - without_zero


@pytest.mark.parametrize(
    "n, k", [(2, 1), (4, 2), (7, 3), (16, 4), (16, 16), (64, 16), (100, 37), (300, 150)]
)
def test_transforms_of_a_step_are_exactly_rounded(n, k):
    """Binary rewards go through one rank weight each, and those are exactly rounded (n <= 2048)."""
    baselines = ["none"] + (["loo_minus_one"] if k >= 2 else []) + (["centered"] if n > k else [])
    for t in range(2, n + 1):
        g = (np.arange(n) >= t - 1).astype(float)
        for baseline in baselines:
            out = pkpo.transform(g, k, baseline)
            for value, exact in zip((out[-1], out[0]), step_transform_exact(n, k, t, baseline)):
                assert oracle.ulp_distance(float(value), float(exact)) <= 1, (
                    baseline,
                    t,
                    value,
                    exact,
                )


@pytest.mark.parametrize("n,k", [(8, 1), (8, 2), (8, 4), (8, 8), (6, 3)])
def test_maxg_at_k_weights_count_subsets_whose_maximum_has_rank_i(n, k):
    counts = np.zeros(n)
    for subset in itertools.combinations(range(n), k):
        counts[max(subset)] += 1
    np.testing.assert_allclose(pkpo.maxg_at_k_weights(n, k), counts / math.comb(n, k), atol=1e-15)
    g = np.random.default_rng(n).normal(size=n)
    assert pkpo.maxg_at_k_weights(n, k) @ np.sort(g) == pytest.approx(float(pkpo.maxg_at_k(g, k)))


def test_maxg_at_k_weights_reject_bad_sizes():
    with pytest.raises(ValueError, match="n must be an integer >= k; got n=4 with k=5"):
        pkpo.maxg_at_k_weights(4, 5)


def test_transform_binary_small_is_exact():
    """Binary rewards go through one weight each: the documented example values are exact."""
    g = np.array([0.0, 1.0, 0.0, 1.0])
    a = pkpo.transform(g, 2, "none")
    assert a.tolist() == [1 / 3, 0.5, 1 / 3, 0.5]  # eq. 8: k/n and (k/n) rho(3, 2, 1) = 1/3
    assert pkpo.transform(g, 2).tolist() == [0.0, 1 / 3, 0.0, 1 / 3]


# --- 6. float64 at n = 65,536 against exact arithmetic -----------------------------------------


@pytest.mark.slow
def test_maxg_at_k_float64_large_n_against_exact_rationals(rng):
    """maxg@k at n = 65,536 with rewards on a 1/1024 grid, checked against an exact rational sum.

    rho = (1/C(n,k)) sum_i C(i-1,k-1) g_(i) (eq. 12) is summed exactly with Python integers over the
    ranks whose weight can matter (all ranks with C(i-1,k-1) >= 2^-100 of the largest; the ranks
    left out are bounded by that factor and checked to be negligible).
    """
    n = 65_536
    g_int = rng.integers(0, 1024, size=n)
    g = g_int / 1024.0  # exactly representable
    ordered = np.sort(g_int).tolist()
    for k in (1, 7, 1000, n // 2, n - 3, n):
        got = float(pkpo.maxg_at_k(g, k))
        # weights C(i-1,k-1) for i = n, n-1, ... down, by the exact recurrence C(i-2,k-1) =
        # C(i-1,k-1)(i-k)/(i-1)
        total = 0
        weight = math.comb(n - 1, k - 1)
        threshold = weight >> 100
        i = n
        while i >= k and weight > threshold:
            total += weight * ordered[i - 1]
            weight = weight * (i - k) // (i - 1) if i > 1 else 0
            i -= 1
        denominator = math.comb(n, k) * 1024
        if i >= k:  # ranks left out: each weight <= threshold, at most n of them, rewards < 1024
            assert float(Fraction(threshold * n * 1024, denominator)) < 1e-20
        exact = Fraction(total, denominator)
        assert abs(got - float(exact)) <= 1e-12 * max(1.0, float(exact)), (k, got, float(exact))


# --- pass^k: all k samples correct --------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 11))
def test_pass_all_k_matches_subset_mean(n):
    rng = np.random.default_rng(100 + n)
    f = rng.integers(0, 2, size=(6, n))
    f[0] = 1  # c = n: pass^k = 1
    for k in range(1, n + 1):
        np.testing.assert_allclose(
            pkpo.pass_all_k(f, k), oracle.pass_all_k(f, k), rtol=0, atol=1e-15
        )


@pytest.mark.parametrize("n", [1, 2, 5, 13, 40, 64, 300, 2048])
def test_pass_all_k_from_counts_is_exactly_rounded(n):
    """C(c, k) / C(n, k) is the correctly rounded rational for n <= 2048, from counts and arrays."""
    cs = np.array(range(n + 1) if n <= 64 else range(0, n + 1, 37))
    for k in sorted({k for k in (1, 2, n // 4, n // 2, n - 1, n) if 1 <= k <= n}):
        values = pkpo.pass_all_k_from_counts(n, cs, k)
        assert values.tolist() == [float(oracle.exact_pass_all_k(n, int(c), k)) for c in cs], (n, k)
    if n <= 64:
        f = (np.arange(n)[None, :] < cs[:, None]).astype(np.int8)  # row c has c ones
        k = max(1, n // 2)
        assert pkpo.pass_all_k(f, k).tolist() == [
            float(oracle.exact_pass_all_k(n, int(c), k)) for c in cs
        ]


@pytest.mark.parametrize(
    "n, c, k",
    [
        (10**5, 10**5 - 3, 7),
        (10**5, 5 * 10**4, 5000),
        (65_536, 65_000, 30_000),
        (10**6, 999_990, 10),
        (5 * 10**6, 4 * 10**6, 4097),
    ],
)
def test_pass_all_k_from_counts_large_n_against_exact_rationals(n, c, k):
    exact = oracle.exact_pass_all_k(n, c, k)
    got = pkpo.pass_all_k_from_counts(n, c, k)
    assert got == pytest.approx(float(exact), rel=1e-11, abs=1e-300)
    # pass@k of the wrong answers' complement: P(all correct) = 1 - pass@k counting failures
    complement = 1 - oracle.exact_pass_at_k(n, n - c, k)
    assert exact == complement


def test_pass_all_k_with_mask_and_dtypes(rng):
    f = rng.integers(0, 2, size=(7, 9))
    mask = rng.random((7, 9)) < 0.7
    mask[:, :4] = True
    for k in (1, 2, 4):
        expected = [float(pkpo.pass_all_k(f[row, mask[row]], k)) for row in range(7)]
        assert pkpo.pass_all_k(f, k, mask=mask).tolist() == expected
    assert pkpo.pass_all_k(f.astype(bool), 2).dtype == np.float64
    assert pkpo.pass_all_k(f.astype(np.float32), 2).dtype == np.float32
    # validate=False: a ragged group smaller than k gets 0, as the transforms do
    small = np.zeros_like(mask)
    small[:, :1] = True
    assert pkpo.pass_all_k(np.ones((7, 9)), 2, mask=small, validate=False).tolist() == [0.0] * 7


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: pkpo.pass_all_k(np.array([[1, 0]]), 3), r"n=2 samples but k=3"),
        (lambda: pkpo.pass_all_k(np.array([[1, 0.5]]), 1), r"correct must hold only 0/1"),
        (lambda: pkpo.pass_all_k(np.array([[1, 0]]), 0), r"k must be >= 1"),
        (lambda: pkpo.pass_all_k_from_counts(5, 6, 2), r"0 <= c <= n; got n=5, c=6"),
        (lambda: pkpo.pass_all_k_from_counts(3, 1, 4), r"group 0 has n=3 samples but k=4"),
        (lambda: pkpo.pass_all_k_from_counts([], [], 1), r"n and c must hold at least one count"),
        (lambda: pkpo.pass_at_k_from_counts([], [], 1), r"n and c must hold at least one count"),
        (lambda: pkpo.pass_at_k_from_counts(np.zeros((0, 3), int), 0, 1), r"at least one count"),
    ],
)
def test_pass_all_k_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
