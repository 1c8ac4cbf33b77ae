"""Random inputs against the brute-force oracle: dtypes, shapes, masks, baselines, scales, sizes.

Every example draws an array kind (numpy, or a CPU torch tensor), a dtype (float16 ... float64,
int, bool), a shape (up to two leading axes, n <= 7), an optional mask (sometimes leaving a group
too small), a k, a baseline, a scale and a magnitude (a power of ten from the subnormals of the
dtype to near its largest value). The result must be the oracle's (tests/oracle.py, all subsets
enumerated, evaluated on the rewards divided by a power of two and scaled back, which is exact),
rounded to the output dtype, or the documented ValueError: a GroupSizeError for a group below
min_group_size, and "does not fit" exactly when the true result overflows the output dtype.

The whole module runs in well under a minute (max_examples below; no deadline, as in conftest).
"""

from __future__ import annotations

import importlib.util
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pkpo
from pkpo import metrics

import oracle

KINDS = ["numpy"] + (["torch"] if importlib.util.find_spec("torch") else [])
FLOATS = ["float16", "float32", "float64"]
EXAMPLES = settings(max_examples=200)


# --- drawing inputs ------------------------------------------------------------------------------


@st.composite
def batches(draw, binary=False):
    """(values as float64 numpy, the array pkpo gets, mask or None (numpy bool), kind, dtype)."""
    kind = draw(st.sampled_from(KINDS))
    dtype = draw(
        st.sampled_from(FLOATS + ["float64", "int64", "bool"])
    )  # float64 has the widest range
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    n = draw(st.integers(1, 7))
    shape = lead + (n,)
    if binary or dtype == "bool":
        base = draw(
            st.lists(
                st.sampled_from([0.0, 1.0]), min_size=math.prod(shape), max_size=math.prod(shape)
            )
        )
    elif dtype == "int64":
        base = draw(
            st.lists(st.integers(-5, 5), min_size=math.prod(shape), max_size=math.prod(shape))
        )
    else:
        base = draw(
            st.lists(
                st.floats(-1, 1, allow_nan=False),
                min_size=math.prod(shape),
                max_size=math.prod(shape),
            )
        )
    values = np.array(base, dtype=np.float64).reshape(shape)
    if dtype in FLOATS and not binary:
        values = values * 10.0 ** draw(st.sampled_from(_exponents(dtype)))
    with np.errstate(over="ignore"):
        data = values.astype(dtype if dtype != "bool" else np.float64)
    if dtype == "bool":
        data = data.astype(bool)
    values = data.astype(np.float64)  # what pkpo sees, exactly
    mask = None
    if draw(st.booleans()):
        mask = np.array(
            draw(st.lists(st.booleans(), min_size=values.size, max_size=values.size))
        ).reshape(shape)
    return values, _as_kind(data, kind), mask, kind, dtype


def _exponents(dtype) -> list[int]:
    """Powers of ten to scale rewards by: the subnormals, sqrt(tiny), order 1, near the largest."""
    info = np.finfo(dtype)
    low, high = math.floor(math.log10(info.smallest_subnormal)), math.floor(math.log10(info.max))
    return [low, low + 2, low // 2, -3, 0, 3, high // 2, high - 1, high]


def _as_kind(array, kind):
    if kind == "numpy":
        return array
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _mask_of_kind(mask, kind):
    return None if mask is None else _as_kind(mask, kind)


def _to_numpy(result) -> np.ndarray:
    return (
        pkpo._backend.to_numpy(result).astype(np.float64)
        if hasattr(result, "shape")
        else np.asarray(result)
    )


def _result_dtype(kind, dtype):
    if dtype in FLOATS:
        return np.dtype(dtype)
    return np.dtype(np.float32 if kind == "torch" else np.float64)  # torch's default float


# --- the oracle, on values of order 1 ---------------------------------------------------------


def _unit(row):
    """A power of two near max |row| (exact to divide by): the oracle works on values of order 1."""
    largest = float(np.max(np.abs(row))) if row.size else 0.0
    return 1.0 if largest == 0 else math.ldexp(1.0, math.frexp(largest)[1] - 1)


def _groups(values, mask):
    """[(valid values, their positions)] of every group (the last axis), in row-major order."""
    rows = values.reshape(-1, values.shape[-1])
    masks = _flat_mask(mask, rows.shape)
    return [(row[valid], valid) for row, valid in zip(rows, masks)]


def expected_transform(values, mask, k, baseline, scale):
    """The oracle's transform of every group, scaled; computed on values / unit (one power of two
    for the whole batch, exact) and multiplied back only at the end, rounding once."""
    shape = _flat_shape(values.shape)
    unit = _unit(values[_flat_mask(mask, values.shape)])
    out = np.zeros(shape)
    for index, (row, valid) in enumerate(_groups(values, mask)):
        a = oracle.transform(row / unit, k, baseline)
        out[index, valid] = a * (row.size / k) if scale == "n_over_k" else a
    if scale == "mean_abs":  # scale-free: stays at the unit scale
        total = math.fsum(np.abs(out[_flat_mask(mask, shape)]).tolist())
        count = int(_flat_mask(mask, shape).sum())
        return (out * (count / total) if total > 0 else out).reshape(values.shape)
    with np.errstate(over="ignore"):
        return (out * unit).reshape(values.shape)


def _flat_mask(mask, shape):
    return np.ones(shape, dtype=bool) if mask is None else mask.reshape(shape)


def _close(got, expected, result_dtype, reference):
    """Rounded once to the output dtype, plus float64 arithmetic error relative to ``reference``."""
    info = np.finfo(result_dtype)
    atol = (
        2.0 * float(info.eps) * np.abs(expected)
        + 1e-12 * reference
        + float(info.smallest_subnormal)
    )
    assert np.all(np.abs(got - expected) <= atol), (got, expected)


def _group_too_small(mask, shape, need):
    return bool((_flat_mask(mask, _flat_shape(shape)).sum(axis=-1) < need).any())


def _flat_shape(shape):
    return (math.prod(shape[:-1]), shape[-1])


# --- the properties ---------------------------------------------------------------------------


@EXAMPLES
@given(batches(), st.data())
def test_transform_is_the_oracle(batch, data):
    values, rewards, mask, kind, dtype = batch
    n = values.shape[-1]
    k = data.draw(st.integers(1, n))
    baseline = data.draw(st.sampled_from(pkpo.BASELINES))
    scale = data.draw(st.sampled_from(pkpo.SCALES))
    if _group_too_small(mask, values.shape, pkpo.min_group_size(k, baseline)):
        with pytest.raises(pkpo.GroupSizeError):
            pkpo.transform(rewards, k, baseline, mask=_mask_of_kind(mask, kind), scale=scale)
        return
    result_dtype = _result_dtype(kind, dtype)
    expected = expected_transform(values, mask, k, baseline, scale)
    with np.errstate(over="ignore"):
        fits = np.isfinite(expected.astype(result_dtype)).all()
    if not fits:
        with pytest.raises(ValueError, match="does not fit"):
            pkpo.transform(rewards, k, baseline, mask=_mask_of_kind(mask, kind), scale=scale)
        return
    got = pkpo.transform(rewards, k, baseline, mask=_mask_of_kind(mask, kind), scale=scale)
    assert type(got) is type(rewards) and tuple(got.shape) == values.shape
    assert np.dtype(str(got.dtype).replace("torch.", "")) == result_dtype
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    reference = largest * (n if scale == "n_over_k" else 1)
    if (
        scale == "mean_abs"
    ):  # the error relative to the rewards, divided by mean |s| like the values
        reference = max(
            np.max(np.abs(expected)), largest / _mean_abs_unscaled(values, mask, k, baseline)
        )
    _close(_to_numpy(got), expected, result_dtype, reference)


def _mean_abs_unscaled(values, mask, k, baseline) -> float:
    """mean |s| over the real samples of the oracle's unscaled transform (inf when it is 0, so that
    the term it divides vanishes)."""
    raw = expected_transform(values, mask, k, baseline, "none")
    valid = _flat_mask(mask, values.shape).reshape(values.shape)
    mean = float(np.mean(np.abs(raw[valid]))) if valid.any() else 0.0
    return mean if mean > 0 else math.inf


@EXAMPLES
@given(batches(), st.data())
def test_estimates_are_the_oracle(batch, data):
    values, rewards, mask, kind, dtype = batch
    n = values.shape[-1]
    k = data.draw(st.integers(1, n))
    if _group_too_small(mask, values.shape, k):
        with pytest.raises(pkpo.GroupSizeError):
            pkpo.maxg_at_k(rewards, k, mask=_mask_of_kind(mask, kind))
        return
    expected = np.array(
        [oracle.maxg_at_k(row / _unit(row), k) * _unit(row) for row, _ in _groups(values, mask)]
    )
    got = _to_numpy(pkpo.maxg_at_k(rewards, k, mask=_mask_of_kind(mask, kind))).reshape(-1)
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    _close(got, expected, _result_dtype(kind, dtype), largest)


@EXAMPLES
@given(batches(binary=True), st.data())
def test_pass_at_k_and_pass_all_k_are_the_oracle(batch, data):
    values, correct, mask, kind, dtype = batch
    n = values.shape[-1]
    k = data.draw(st.integers(1, n))
    if _group_too_small(mask, values.shape, k):
        for function in (pkpo.pass_at_k, pkpo.pass_all_k):
            with pytest.raises(pkpo.GroupSizeError):
                function(correct, k, mask=_mask_of_kind(mask, kind))
        return
    groups = _groups(values, mask)
    result_dtype = _result_dtype(kind, dtype)
    for function, exact in (
        (pkpo.pass_at_k, oracle.exact_pass_at_k),
        (pkpo.pass_all_k, oracle.exact_pass_all_k),
    ):
        expected = np.array([float(exact(row.size, int(row.sum()), k)) for row, _ in groups])
        got = _to_numpy(function(correct, k, mask=_mask_of_kind(mask, kind))).reshape(-1)
        _close(got, expected, result_dtype, 1.0)


@EXAMPLES
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.floats(-1e6, 1e6, allow_nan=False)),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 3),
    st.sampled_from(pkpo.BASELINES),
)
def test_transform_grouped_is_transform_per_group(items, k, baseline):
    ids = [item[0] for item in items]
    rewards = np.array([item[1] for item in items])
    sizes = {label: ids.count(label) for label in ids}
    if min(sizes.values()) < pkpo.min_group_size(k, baseline):
        with pytest.raises(pkpo.GroupSizeError):
            pkpo.transform_grouped(rewards, ids, k, baseline)
        return
    got = pkpo.transform_grouped(rewards, ids, k, baseline)
    for label in sizes:
        where = np.array(ids) == label
        np.testing.assert_allclose(
            got[where],
            pkpo.transform(rewards[where], k, baseline),
            rtol=0,
            atol=1e-9 * (1 + np.abs(rewards).max()),
        )


@EXAMPLES
@given(st.integers(1, 3000), st.data())
def test_counts_are_exact_rationals(n, data):
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    for function, exact in (
        (pkpo.pass_at_k_from_counts, oracle.exact_pass_at_k),
        (pkpo.pass_all_k_from_counts, oracle.exact_pass_all_k),
    ):
        value, truth = function(n, c, k), exact(n, c, k)
        if n <= 2048:
            assert value == float(truth)  # correctly rounded
        else:
            assert value == pytest.approx(float(truth), rel=1e-11, abs=1e-300)


@EXAMPLES
@given(
    st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=1, max_size=8),
    st.floats(0, 1, allow_nan=False),
    st.integers(1, 3),
)
def test_reports_are_means_of_exact_fractions(rows, tau, k):
    rates = [Fraction(sum(row), len(row)) for row in rows]
    assert metrics.cover(rows, tau) == float(
        Fraction(sum(float(rate) >= tau for rate in rates), len(rows))
    )
    if min(map(len, rows)) < k:
        with pytest.raises(metrics.InsufficientSamplesError):
            metrics.pass_all_k_report(rows, k, n_bootstrap=0)
        return
    for report, exact in (
        (metrics.pass_at_k_report, oracle.exact_pass_at_k),
        (metrics.pass_all_k_report, oracle.exact_pass_all_k),
    ):
        mean = sum(exact(len(row), sum(row), k) for row in rows) / len(rows)
        assert report(rows, k, n_bootstrap=0)[k].estimate == pytest.approx(
            float(mean), rel=1e-14, abs=1e-15
        )
