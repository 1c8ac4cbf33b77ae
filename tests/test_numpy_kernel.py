"""The numpy kernel's fast paths give the numbers of the plain ones: float32 rows sorted as packed
float64 keys (pkpo._backend._packed_float32_sort), the blocked BLAS running sums
(_blocked_running_sum, used from 256 rows on) and the choice between one matrix product and running
sums (GapForm.for_dense_numpy)."""

from __future__ import annotations

import numpy as np
import pytest

import pkpo
from pkpo._backend import BLOCKED_SCAN_MIN_ROWS, _numpy_running_sum, backend_of


def special_values(dtype) -> list[float]:
    """Signed zeros, the smallest subnormal and normal and the largest float of ``dtype``."""
    info = np.finfo(dtype)
    return [
        -info.max,
        -1.0,
        -info.smallest_subnormal,
        -0.0,
        0.0,
        info.smallest_subnormal,
        info.smallest_normal,
        0.5,
        1.0,
        info.max,
    ]


def check_sort(x, padded=False):
    """Backend.sort of numpy ``x``: the values of np.sort (NaN alike) and the flat position of
    each, every position of a row once."""
    values, positions = backend_of(x).sort(x, padded=padded)
    expected = np.sort(x, axis=-1)
    np.testing.assert_array_equal(values, expected)  # NaN compare equal here
    assert positions.dtype == np.int64
    np.testing.assert_array_equal(x.reshape(-1)[positions], expected.reshape(-1))
    n = x.shape[-1]
    first = np.arange(0, x.size, n)[:, None]
    np.testing.assert_array_equal(np.sort(positions.reshape(-1, n), axis=-1), first + np.arange(n))
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_numpy_sort_sorts_every_row(dtype, rng):
    rows = [
        rng.normal(size=(300, 37)),
        rng.integers(-2, 3, size=(40, 50)),  # many ties
        rng.choice(special_values(dtype), size=(64, 24)),
        rng.normal(size=(3, 4, 9)),  # leading axes
        rng.normal(size=11),  # one group
    ]
    for x in [row.astype(dtype) for row in rows] + [rng.normal(size=(20, 30)).astype(dtype).T]:
        values = check_sort(x)
        assert values.dtype == (np.float64 if dtype == np.float32 else dtype)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, -np.nan])
@pytest.mark.parametrize("column", [0, 5, 39])
def test_numpy_sort_of_float32_with_inf_or_nan_keeps_every_position(bad, column, rng):
    """inf and NaN do not fit the packed keys: those batches are sorted by argsort."""
    x = rng.random((300, 40), dtype=np.float32)
    x[[7, 123], column] = bad
    assert check_sort(x).dtype == np.float32  # argsort's values, in the input's dtype
    check_sort(np.where(rng.random(x.shape) < 0.2, np.float32(np.inf), x), padded=True)


@pytest.mark.parametrize("nan", [np.nan, -np.nan])
def test_nan_of_either_sign_is_a_value_error_naming_its_group(nan, rng):
    x = rng.random((300, 40), dtype=np.float32)
    x[123, 7] = nan
    with pytest.raises(ValueError, match="NaN or inf in group 123"):
        pkpo.transform(x, 4)


def cumsum_reference(v, weights, from_right, inclusive):
    terms = v if weights is None else v * weights
    if not from_right:
        return np.cumsum(terms, axis=-1)
    total = np.cumsum(terms[..., ::-1], axis=-1)[..., ::-1]
    if inclusive:
        return total
    return np.concatenate([total[..., 1:], np.zeros(terms.shape[:-1] + (1,))], axis=-1)


@pytest.mark.parametrize("rows", [BLOCKED_SCAN_MIN_ROWS, 2048])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 17, 49, 100])
def test_blocked_running_sums_equal_cumsum(rows, n, rng):
    v = rng.random((rows, n))
    v[:, ::3] = 0.0  # tied rewards: zero gaps
    kept = v.copy()
    weights = rng.random(n)
    for w in (None, weights):
        for from_right, inclusive in [(False, True), (True, True), (True, False)]:
            out = np.full_like(v, np.nan)
            _numpy_running_sum(v, w, from_right, inclusive, out)
            expected = cumsum_reference(kept, w, from_right, inclusive)
            if w is None and not from_right:
                np.testing.assert_array_equal(out, expected)  # cumsum's order, bit for bit
            else:  # sums of non-negative terms, in another order: n eps relative at most
                np.testing.assert_allclose(out, expected, rtol=n * 2.3e-16, atol=0)
            np.testing.assert_array_equal(v, kept)  # the carry columns are put back


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
@pytest.mark.parametrize("n", [16, 40, 64, 100])
def test_large_batches_give_the_numbers_of_small_ones(baseline, n, rng):
    """600 groups take the blocked running sums (and the matrix where it is cheaper); 100 at a
    time take cumsum. Both agree to float64 rounding."""
    rewards = np.concatenate([rng.normal(size=(300, n)), rng.integers(0, 4, size=(300, n)) * 0.25])
    assert 100 < BLOCKED_SCAN_MIN_ROWS <= 600
    for k in sorted({1, 2, n // 4, n // 2, n - 1, n}):
        if k > n - (baseline in ("loo", "centered")):
            continue
        batch = pkpo.transform(rewards, k, baseline)
        chunks = np.concatenate(
            [pkpo.transform(part, k, baseline) for part in rewards.reshape(6, 100, n)]
        )
        np.testing.assert_allclose(batch, chunks, rtol=0, atol=1e-14 * n)


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
@pytest.mark.parametrize("shape", [(300, 100), (2100, 40)])
def test_ties_stay_bit_identical_in_large_batches(baseline, shape, rng):
    """Tied rewards meet at the edges of the running sums' blocks too: any order of the ties gives
    bit-identical advantages."""
    rewards = rng.integers(0, 5, size=shape).astype(np.float32)
    n = shape[-1]
    for k in (2, n // 4, n - 1):
        a = pkpo.transform(rewards, k, baseline)
        perm = rng.permutation(n)
        np.testing.assert_array_equal(pkpo.transform(rewards[:, perm], k, baseline), a[:, perm])
        for value in range(5):
            row = a[0][rewards[0] == value]
            assert (row == row[0]).all()


def test_the_matrix_is_used_where_it_is_cheaper():
    from pkpo._kernel import MATRIX_ROWS_PER_SUM
    from pkpo.transforms import _dense_gap_form

    assert _dense_gap_form(16, 4, "loo_minus_one").matrix is not None  # 13 rows, one sum
    assert _dense_gap_form(64, 16, "loo_minus_one").matrix is None  # 49 rows, one sum
    assert _dense_gap_form(64, 16, "centered").matrix is not None  # 48 rows, two sums
    assert _dense_gap_form(64, 16, "loo").matrix is None  # 64 rows, two sums
    assert MATRIX_ROWS_PER_SUM == 24  # the numbers above are on either side of it


def test_numpy_sort_in_denormals_are_zero_mode(rng):
    """The packed keys of zero rewards are subnormal float64 numbers: in denormals-are-zero mode
    (torch.set_flush_denormal) the sort falls back to argsort and the numbers stay the same."""
    torch = pytest.importorskip("torch")
    x = (rng.random((300, 40)) < 0.3).astype(np.float32)
    expected = pkpo.transform(x, 4)
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no denormals-are-zero mode")
    try:
        assert check_sort(x).dtype == np.float32  # argsort's values
        np.testing.assert_array_equal(pkpo.transform(x, 4), expected)
    finally:
        torch.set_flush_denormal(False)
