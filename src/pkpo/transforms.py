"""PKPO reward transforms: turn a group's n rewards into per-sample weights for the policy gradient.

The ordinary REINFORCE estimate  sum_i A_i grad log p(x_i)  with A = transform(g, k) is an
unbiased estimate of grad maxg@k (pass@k for 0/1 rewards), for any k <= n. Four choices of
baseline are offered; all four are unbiased, and they differ in variance and in whether the
advantages of a group sum to zero:

=================  ===============================================  ========  ===============
baseline           A_i                                              needs     sum_i A_i
=================  ===============================================  ========  ===============
"none"             s_i (eqs. 8, 19)                                 k <= n    k rho_k
"loo"              s_i - (k/(n-1)) rho_k(g without i)  (eq. 29)     n >= k+1  -k rho_k/(n-1)
"loo_minus_one"    s_i - (k/n) rho_{k-1}(g without i)  (eq. 33)     k <= n    k(rho_k - rho_{k-1}) *
"centered"         rho_k(g) - rho_k(g without i)                     n >= k+1  0 (up to rounding)
=================  ===============================================  ========  ===============

* for k >= 2; at k = 1 "loo_minus_one" is leave-one-out centring (below) and sums to 0.

The names are :data:`BASELINES`; the "needs" column is :func:`min_group_size` (which adds n >= 2
for "loo_minus_one" at k = 1).

rho_k is the unbiased maxg@k estimate of :func:`pkpo.maxg_at_k`. "loo_minus_one" is the
paper's PKPO, used in all its LLM experiments, and the default. At k = 1 it is defined as plain
leave-one-out centring, (g_i - mean_{j != i} g_j) / n (the paper's k_opt = 1 baseline, eq. 26, on
the same k/n scale as s), which coincides with "centered" at k = 1. "centered" is not in the
paper: it is a jackknife form of the subset estimator (eqs. 27-28), unbiased because the subtracted
term does not depend on sample i.

Values are exactly the paper's by default (``scale="none"``), so sum_i s_i = k rho_k holds.
``scale`` (one of :data:`SCALES`) rescales them for drop-in use in trainers tuned for GRPO-sized
advantages:

==============  ===========================================================  ==================
scale           A_i becomes                                                  unbiased?
==============  ===========================================================  ==================
"none"          A_i (the paper's values; default of the math layer)          yes
"n_over_k"      (n/k) A_i, with each group's own n                           yes, up to the
                                                                             constant n/k
"mean_abs"      A_i / mean_j |A_j| over the whole call (left as is when 0)   no: see below
==============  ===========================================================  ==================

"n_over_k" undoes the k/n factor of s (s_i = (k/n) E[max of a k-subset holding i]), a constant
per (n, k): the estimate stays unbiased for (n/k) grad maxg@k, and at k = 1 "loo_minus_one" gives
exactly the RLOO advantage g_i - mean_{j != i} g_j. The size of the advantages still falls as
pass@k saturates (that is the true gradient of pass@k), so the step size still changes with k.

"mean_abs" divides by a statistic of the same batch, m = mean |A| over every valid entry of the
call (all groups together). Each batch's gradient keeps its direction, and its size no longer
depends on k or on how saturated pass@k is, so one learning rate serves a whole k schedule (the
engine adapters' default, and the built-in trainer's). The price is a bias: E[A / m] is not
E[A] / E[m] because m depends on the same samples; the bias shrinks as the batch grows and m
concentrates. A batch whose advantages are all 0 is returned unchanged.

Implementation: one sort per group, then prefix/suffix sums of the gaps between consecutive
order statistics times closed-form rank weights (see :mod:`pkpo._kernel`); O(n log n) per
group, no Python loop over groups or samples, float64 arithmetic after the sort.

References:
    Walder & Karkhanis, arXiv:2505.15201 (v4): eq. 8 / Thm 2 (binary s), eqs. 18-21 / Thm 4
    (continuous s), eqs. 29-32 (s^(loo)), eqs. 33-34 (s^(loo-1)), Thm 5-7 (O(n log n)).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from . import _validation
from ._backend import as_array, backend_of, reject_masked_array
from ._combinatorics import RankWeights, dense_rank_weights
from ._kernel import GapForm, SortedGroups, sort_groups
from ._typing import Array, Baseline, IntLike, Scale
from ._validation import BASELINES, DEFAULT_BASELINE, SCALES, GroupSizeError, min_group_size

__all__ = [
    "transform",
    "transform_grouped",
    "scale_advantages",
    "TransformInfo",
    "BASELINES",
    "SCALES",
    "DEFAULT_BASELINE",
    "GroupSizeError",
    "min_group_size",
]


class TransformInfo(NamedTuple):
    """Per-group diagnostics returned with ``return_info=True`` (arrays of shape (...) or (G,))."""

    estimate: Any  # rho_k: the unbiased pass@k / maxg@k estimate of the group
    zero_signal: Any  # True where every advantage of the group is exactly 0
    advantage_sum: Any  # sum_i A_i over the group


# --- the four transforms on sorted groups (ranks t = 1..N, results in sorted order) ---------


# Each transform is a GapForm (pkpo._kernel): A_(i) = value * g_(i) + floor * g_(1)
# + sum_{t <= i} d_t prefix_t + sum_{t > i} d_t suffix_t, with the gaps d_t of the sorted group.


def _leave_one_out_estimate(w: RankWeights) -> GapForm:
    """rho_k(g without the sample of rank i), for every i (eq. 12 on the group without sample i).

    Removing rank i leaves the ranks below it in place and shifts those above it down by one, so
    in tail form rho_k(g_{-i}) = g_(1) + sum_{t<=i} d_t tail_{n-1}(t) + sum_{t>i} d_t
    tail_{n-1}(t-1).
    """
    return GapForm(0.0, 1.0, w.tail_drop_below, w.tail_drop_above)


def _centered(w: RankWeights) -> GapForm:
    """A_i = rho_k(g) - rho_k(g_{-i}): the jackknife (centred) transform, as gap sums."""
    return GapForm(0.0, 0.0, w.jack_below, w.jack_above)


def _s(w: RankWeights, k: int, n) -> GapForm:
    """s_(i) = [C(i-1,k-1) g_(i) + sum_{j>i} C(j-2,k-2) g_(j)] / C(n,k)   (eqs. 19-21).

    Computed in gap form: s_i = (k/n) E[max of a random k-subset holding i], and that maximum
    is g_(i) plus every gap d_t above rank i that one of the k-1 companions reaches, so

        s_(i) = (k/n) g_(i) + sum_{t>i} d_t (k/n - C(t-2,k-1)/C(n,k)).

    The sum has non-negative terms only, tied rewards get bit-identical values (the gap between
    them is 0), and k = 1 gives g_i / n exactly.
    """
    return GapForm(k / n, 0.0, None, w.lift)


def _loo_minus_one(w: RankWeights) -> GapForm:
    """s^(loo-1)_(i) = sum_{t=k}^{i} C(t-1,k-1)/C(n,k) (g_(t) - g_(t-1))   (eq. 33, k >= 2).

    The "marginal contribution" form of eq. 33 (first line: each subset credits its winner with
    the gap to the runner-up): a cumulative sum of non-negative
    terms, so the result is exactly non-negative and non-decreasing in rank. The weight
    C(t-1,k-1)/C(n,k) is zero for t < k, so the k-1 lowest ranks get exactly 0.
    """
    return GapForm(0.0, 0.0, w.top, None)


def _loo(w: RankWeights, k: int, n) -> GapForm:
    """s^(loo)_i = s_i - (k/(n-1)) rho_k(g_{-i}) = centred_i - k/(n(n-1)) rho_k(g_{-i})   (eq.
    29)."""
    c = k / (n * (n - 1))
    centered, rest = _centered(w), _leave_one_out_estimate(w)
    return GapForm(
        0.0, -c * rest.floor, centered.prefix - c * rest.prefix, centered.suffix - c * rest.suffix
    )


def _gap_form(w: RankWeights, k: int, n, baseline: str) -> GapForm:
    """The transform ``baseline`` at this k as a GapForm; ``n`` is the group size (an int, or a
    per-group float array for ragged groups)."""
    if baseline == "none":
        return _s(w, k, n)
    if baseline == "loo":
        return _loo(w, k, n)
    if baseline == "centered" or k == 1:
        return _centered(w)  # at k = 1, loo_minus_one is leave-one-out = centred
    return _loo_minus_one(w)


@functools.lru_cache(maxsize=64)
def _dense_gap_form(size: int, k: int, baseline: str) -> GapForm:
    """The GapForm of a dense numpy batch of groups of ``size``, its weights as one matrix M where
    that is cheaper (:meth:`GapForm.for_dense_numpy`): cached per (n, k, baseline), read-only."""
    form = _gap_form(dense_rank_weights(size, size, k), k, size, baseline)
    return form.for_dense_numpy()


def _transform_sorted(groups: SortedGroups, k: int, baseline: str):
    if groups.uses_matrix():
        return groups.apply(_dense_gap_form(groups.size, k, baseline))
    return groups.apply(_gap_form(groups.weights(k), k, groups.n_float, baseline))


# --- public API ------------------------------------------------------------------------------


def transform(
    rewards: Array,
    k: IntLike,
    baseline: Baseline = DEFAULT_BASELINE,
    mask: Array | None = None,
    *,
    scale: Scale = "none",
    return_info: bool = False,
    validate: bool = True,
) -> Array | tuple[Array, TransformInfo]:
    """PKPO transformed rewards of each group: A_i for sum_i A_i grad log p(x_i) ~ grad maxg@k.

    Binary rewards (0/1 or bool: pass@k, eq. 8) and continuous rewards (maxg@k, eq. 19) are the
    same call. See the module docstring for the four baselines and their formulas.

    Args:
        rewards: array of shape (..., n): n samples of one prompt on the last axis, any number
            of leading (prompt) axes. numpy, torch (any device) or JAX.
        k: the pass@k / maxg@k size being optimised, 1 <= k <= n (n >= k+1 for "loo" and
            "centered"; n >= 2 for "loo_minus_one" at k = 1).
        baseline: "loo_minus_one" (default, the paper's PKPO), "none", "loo" or "centered".
        mask: optional bool array of the same shape; False marks padding. Each group then uses
            its own n = mask.sum(-1), and masked entries come back as 0.
        scale: "none" (default: the paper's values), "n_over_k" (times n/k: unbiased up to that
            constant; k = 1 gives RLOO) or "mean_abs" (divided by the call's mean |A|: one
            learning rate for every k, at the price of a small bias). See the module docstring.
        return_info: also return a :class:`TransformInfo` of per-group diagnostics.
        validate: check values (NaN/inf, ragged group sizes). Static checks always run. On GPU
            the value checks cost one host sync; with ``validate=False`` the call is sync-free,
            and a too-small ragged group silently gets all-zero advantages.

    Returns:
        Array of the shape, kind and device of ``rewards``; float dtype of ``rewards`` (bool/int
        input gives the library's default float). With ``return_info``, ``(advantages, info)``.
        float16 and bfloat16 are computed in float64 and rounded once to their dtype; float16
        flushes many of the small unscaled values to 0 (measured in :mod:`pkpo._backend`).

    Raises:
        ValueError: k not a positive int, k > n, a group too small for the baseline, NaN/inf
            rewards, a mask of the wrong shape or dtype, an unknown baseline or scale.

    Examples:
        >>> g = np.array([0.0, 1.0, 0.0, 1.0])
        >>> transform(g, k=2, baseline="none").round(6).tolist()  # eq. 8: k/n; (k/n) rho(3, 2, 1)
        [0.333333, 0.5, 0.333333, 0.5]
        >>> transform(g, k=2).round(6).tolist()    # s^(loo-1): failures get exactly 0
        [0.0, 0.333333, 0.0, 0.333333]
        >>> transform(g, k=1, scale="n_over_k").round(6).tolist()  # RLOO: g_i - mean of the others
        [-0.666667, 0.666667, -0.666667, 0.666667]
    """
    k = _validation.check_k(k)
    baseline = _validation.check_baseline(baseline)
    scale = _validation.check_scale(scale)
    groups = sort_groups(rewards, mask, validate=validate, k=k, baseline=baseline)
    return _finish(groups, _transform_sorted(groups, k, baseline), k, return_info, scale)


def _finish(
    groups: SortedGroups, sorted_advantages, k: int, return_info: bool, scale: str = "none"
):
    if scale != "none":  # padding is not part of a group: zero it before the batch statistics
        sorted_advantages = _scale(groups.without_padding(sorted_advantages), k, scale, groups.n)
    # mean_abs results do not depend on the rewards' scale: the power of two of sort_groups cancels
    rescale = scale != "mean_abs"
    advantages = groups.finish(sorted_advantages, rescale)
    if not return_info:
        return advantages
    backend = groups.backend
    estimate = groups.maxg_estimate(k)
    sorted_advantages = groups.without_padding(sorted_advantages)  # padding is not part of a group
    total = backend.xp.sum(sorted_advantages, axis=-1, keepdims=True)
    nonzero = backend.xp.sum(
        backend.astype(sorted_advantages != 0, sorted_advantages.dtype), axis=-1, keepdims=True
    )
    zero_signal = groups.to_caller((nonzero == 0)[..., 0])
    info = TransformInfo(groups.per_group(estimate), zero_signal, groups.per_group(total, rescale))
    return advantages, info


def transform_grouped(
    rewards: Array,
    group_ids: Array,
    k: IntLike,
    baseline: Baseline = DEFAULT_BASELINE,
    *,
    scale: Scale = "none",
    return_info: bool = False,
    validate: bool = True,
) -> Array | tuple[Array, np.ndarray, TransformInfo]:
    """:func:`transform` for the flat layout of verl/TRL batches: rewards [N] with a group id each.

    Groups may be unsorted, interleaved and of different sizes (DAPO filtering, failed rollouts).
    The rewards are packed into a padded (G, n_max) array with a mask, transformed, and scattered
    back, so the result equals ``transform`` applied to each group separately.

    Args:
        rewards: 1-D array [N] (numpy, torch or JAX).
        group_ids: [N] ids: ints, strings (e.g. verl's uid object array) or a tensor of ints.
        k, baseline, scale, validate: as in :func:`transform`; errors name the offending group
            id. ``scale="mean_abs"`` divides by the mean |A| over all N rows.
        return_info: also return ``(unique_ids, TransformInfo)`` with one entry per group, in the
            order of ``unique_ids`` (sorted ids, as ``np.unique`` orders them).

    Returns:
        Advantages [N], same kind/device/dtype as ``rewards``; with ``return_info``,
        ``(advantages, unique_ids, info)``.

    Examples:
        >>> r = np.array([1.0, 0.0, 0.0, 1.0, 0.0])
        >>> transform_grouped(r, ["a", "b", "a", "b", "b"], k=2).round(4).tolist()
        [1.0, 0.0, 0.0, 0.6667, 0.0]
    """
    k = _validation.check_k(k)
    baseline = _validation.check_baseline(baseline)
    scale = _validation.check_scale(scale)
    backend, x = as_array(rewards)
    if len(backend.shape(x)) != 1:
        raise ValueError(
            f"rewards must be 1-D [N] for transform_grouped; got shape {backend.shape(x)}."
        )
    unique_ids, inverse, counts = factorize_group_ids(group_ids, backend.shape(x)[0])
    layout = _padded_layout(inverse, counts)
    index = backend.from_numpy(layout["flat_index"], x)
    size = len(unique_ids) * layout["width"]

    padded = backend.xp.zeros((size,), dtype=x.dtype, device=backend.device(x))
    padded = _scatter_flat(backend, padded, index, x).reshape(len(unique_ids), layout["width"])
    # equal group sizes (the usual case) fill the padding: the dense path with cached weights
    mask = None if layout["mask"].all() else backend.from_numpy(layout["mask"], x)
    result = _transform_padded(
        padded,
        k,
        baseline,
        mask,
        scale=scale,
        validate=validate,
        labels=unique_ids,
        return_info=return_info,
    )
    padded_out, info = result if return_info else (result, None)
    out = backend.xp.reshape(padded_out, (size,))[index]
    if return_info:
        return out, unique_ids, info
    return out


def scale_advantages(advantages, k, scale, n=None):
    """Apply ``scale`` (module docstring) to advantages computed with ``scale="none"``.

    The one definition of the scales: :func:`transform` and :func:`transform_grouped` call it, and
    so does the built-in trainer for its non-PKPO baselines.

    Args:
        advantages: array of shape (..., N), the groups on the last axis; padding must be 0.
        k: the k the advantages were computed for.
        scale: "none", "n_over_k" or "mean_abs".
        n: group size: an int (default: N) or per-group sizes of shape (..., 1) for ragged groups;
            "mean_abs" averages |A| over the valid entries only, sum(n) of them.

    Returns:
        The scaled advantages, same kind, shape and dtype; no host sync (fine under ``jax.jit``).
        A "mean_abs" batch whose advantages are all 0 comes back unchanged.
    """
    return _scale(advantages, _validation.check_k(k), _validation.check_scale(scale), n)


def _scale(advantages, k: int, scale: str, n=None):
    """:func:`scale_advantages` for a checked k and scale; half-precision input is scaled in
    float32."""
    if scale == "none":
        return advantages
    backend = backend_of(advantages)
    dtype = advantages.dtype
    advantages = backend.widen(advantages)
    xp = backend.xp
    shape = backend.shape(advantages)
    if n is None:
        n = shape[-1]
    if scale == "n_over_k":
        n_float = (
            float(n) if isinstance(n, numbers.Integral) else backend.astype(n, advantages.dtype)
        )
        return backend.astype(advantages * (n_float / k), dtype)  # each group's own n
    if math.prod(shape) == 0:
        return backend.astype(advantages, dtype)
    # Divide by max |A| first: |unit| <= 1, so the sum cannot overflow even for advantages near the
    # largest float, and subnormal ones come to order 1 before count / total is formed.
    largest = xp.max(xp.abs(advantages))
    unit = advantages / xp.where(largest > 0, largest, 1.0)
    total = xp.sum(xp.abs(unit))
    count = float(math.prod(shape[:-1]) * n) if isinstance(n, numbers.Integral) else xp.sum(n)
    return backend.astype(
        unit * xp.where(total > 0, count / xp.where(total > 0, total, 1.0), 1.0), dtype
    )


def _transform_padded(
    padded, k, baseline, mask, *, scale="none", validate=True, labels=None, return_info=False
):
    """:func:`transform` on an already padded (G, n_max) batch, naming groups by ``labels``
    (k, baseline and scale already checked)."""
    groups = sort_groups(padded, mask, validate=validate, k=k, baseline=baseline, labels=labels)
    return _finish(groups, _transform_sorted(groups, k, baseline), k, return_info, scale)


def factorize_group_ids(group_ids, n_items: int):
    """(unique ids, group number of every item, size of every group), as numpy arrays.

    Unique ids come sorted, as ``np.unique`` orders them; ids may be ints, strings or a tensor.
    """
    ids_backend = backend_of(group_ids)
    reject_masked_array(group_ids, "group_ids")
    if isinstance(group_ids, (list, tuple)):
        # keep each id's own type: np.asarray([1, "1"]) would turn both into the string "1"
        ids = np.empty(len(group_ids), dtype=object)
        ids[:] = group_ids
    elif ids_backend.name != "numpy":
        ids = ids_backend.to_numpy(group_ids)
    else:
        ids = np.asarray(group_ids)
    if ids.ndim != 1 or ids.shape[0] != n_items:
        raise ValueError(
            f"group_ids must be 1-D with one id per reward ({n_items}); got shape {ids.shape}."
        )
    try:
        if ids.dtype == object:
            _check_one_kind(ids)
            return _factorize_objects(ids)
        unique_ids, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    except TypeError as error:
        raise ValueError(
            f"group_ids must be mutually comparable (all ints or all strings): {error}"
        ) from None
    return unique_ids, inverse.reshape(-1), counts


def _check_one_kind(ids: np.ndarray) -> None:
    """Group ids must all be of one kind (ints, strings, bools, floats, bytes, ...): equal values of
    different kinds, such as 1 and True or 1 and 1.0, would otherwise silently share a group."""
    kinds = {_id_kind(kind) for kind in set(map(type, ids.tolist()))}  # the distinct types only
    if len(kinds) > 1:
        raise ValueError(
            "group_ids must be mutually comparable and of one type; they mix "
            f"{' and '.join(sorted(kinds))} (ids such as 1 and True, or 1 and 1.0, would merge "
            "into one group)."
        )


def _id_kind(kind: type) -> str:
    for name, base in (
        ("bool", (bool, np.bool_)),
        ("int", numbers.Integral),
        ("float", numbers.Real),
        ("str", str),
        ("bytes", bytes),
    ):
        if issubclass(kind, base):
            return name
    return kind.__name__


def _factorize_objects(ids: np.ndarray):
    """np.unique's result for an object array (verl's uid strings), by hashing.

    np.unique sorts all N Python objects (8 ms for verl's 8,192 uid strings); a dict finds the
    G distinct ids in one pass at C speed, and only those G are sorted.
    """
    values = ids.tolist()
    distinct = sorted(dict.fromkeys(values))  # TypeError for ids that do not compare
    number = dict(zip(distinct, range(len(distinct))))
    inverse = np.fromiter(map(number.__getitem__, values), np.intp, len(values))
    unique_ids = np.empty(len(distinct), dtype=object)
    unique_ids[:] = distinct
    return unique_ids, inverse, np.bincount(inverse, minlength=len(distinct))


def _padded_layout(inverse: np.ndarray, counts: np.ndarray) -> dict:
    """Where each item goes in a (G, n_max) padding, and the mask of filled slots."""
    width = int(counts.max()) if counts.size else 0
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty_like(inverse)
    position[order] = np.arange(inverse.size) - starts[inverse[order]]
    flat_index = inverse * width + position
    mask = np.zeros(counts.size * width, dtype=bool)
    mask[flat_index] = True
    return {"width": width, "flat_index": flat_index, "mask": mask.reshape(counts.size, width)}


def _scatter_flat(backend, target, index, values):
    if backend.name == "numpy":
        target[index] = values
        return target
    if backend.name == "torch":
        return target.index_copy(0, index, values)
    return target.at[index].set(values)
