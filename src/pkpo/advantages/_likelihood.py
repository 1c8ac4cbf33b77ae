"""Maximum-likelihood RL: MaxRL (binary rewards) and its continuous successor TailRL.

With c correct samples out of n, MaxRL credits each correct sample with n/c and subtracts 1:
it estimates the gradient of log pass@1 = log p through its Maclaurin series
log p = -sum_k (1 - p)^k / k = sum_k (1/k) pass@k + const, truncated after n - 1 terms. TailRL
applies the same estimator to every threshold tau of a continuous reward (the binary reward
1[r > tau]) and integrates over tau; on 0/1 rewards the two coincide bit for bit.
"""

from __future__ import annotations

import functools

import numpy as np

from .._kernel import GapForm, SortedGroups, sort_groups
from .._typing import Array
from ._groups import check_min_samples, prepare


def maxrl(rewards: Array, *, mask: Array | None = None, validate: bool = True) -> Array:
    """MaxRL: A_i = (r_i - mean(r)) / mean(r), and 0 for a group whose mean is 0.

    - Objective: log pass@1 through its Maclaurin series sum_{k>=1} (1/k) pass@k.
      arXiv:2602.02710 (Tajwar et al., Maximum Likelihood RL).
    - Formula: with c = sum_i r_i correct out of n: (n - c)/c for a correct sample, -1 for a wrong
      one, 0 when c = 0 (computed in that form, so that ``tailrl`` equals it bit for bit).
    - Rewards: binary only (0/1 or bool); the group mean of other rewards can sit near 0 or below
      and the advantage flips sign or blows up (the TRL maintainers' objection, PR #5026).
    - Expected update: n grad sum_{k=1}^{n-1} (1/k) pass@k, exactly: the sum over correct samples
      of (n/c) grad log pi is unbiased for n grad sum_{k=1}^{n} (1/k) pass@k, and the -1 (applied
      only when c > 0) removes n grad (1/n) pass@n = grad pass@n. Truncation T = n - 1.
    - n = 1: 0 (no signal: prime-rl PR #2985). All-equal rewards (c = 0 or c = n): 0.
      Negative rewards: refused (binary only).
    """
    g = prepare(rewards, mask, validate=validate, method="maxrl", binary=True)
    xp = g.xp
    c = g.total(g.x)
    some = c > 0
    per_correct = (g.n - c) / xp.where(some, c, 1.0)
    per_wrong = xp.where(some, -1.0, 0.0)  # a group without a correct sample gets 0
    return g.from_counts(per_correct, per_wrong, "maxrl")


def tailrl(rewards: Array, *, mask: Array | None = None, validate: bool = True) -> Array:
    """TailRL: MaxRL of every threshold of a continuous reward, integrated over the threshold.

    - Objective: the integral over tau of log P(r > tau) (for rewards in [0, 1], from 0 to 1).
      arXiv:2609.02987 (TailRL); code Zanette-Labs/TailRL, ``tailrl_advantage``.
    - Formula (authors'): sort the rewards, gap_j = r_(j) - r_(j-1) with r_(0) = 0,
      A_(i) = n sum_{j<=i} gap_j / (n - j + 1), then subtract the group mean. Equivalently (the
      mean is r_(n), and r_(0) cancels), with d_j = r_(j) - r_(j-1) for j >= 2:

          A_(i) = sum_{j=2}^{i} d_j (j - 1)/(n - j + 1)  -  sum_{j>i} d_j,

      two sums of non-negative terms (the second is r_(n) - r_(i)) and one difference, on
      pkpo's sorted-gap kernel. Ties get identical values. The authors' code also zeroes the
      increments where (n - j + 1)/n < 1e-4, which changes nothing for n <= 10,000; pkpo leaves
      that truncation out.
    - Rewards: any real; on 0/1 rewards it equals ``maxrl`` exactly.
    - Expected update: n grad sum_{k=1}^{n-1} (1/k) maxg@k, exactly (MaxRL's identity at every
      threshold, and the integral of P(max of k > tau) over tau is maxg@k minus a constant).
    - n = 1: 0. All-equal rewards: 0. Negative rewards: fine (shift-invariant).
    """
    groups = sort_groups(rewards, mask, validate=validate)
    if validate and mask is not None:
        check_min_samples(groups.backend, groups.n, 1, "tailrl")
    return groups.finish(groups.apply(_tailrl_form(groups)))


def _tailrl_form(groups: SortedGroups) -> GapForm:
    """TailRL's GapForm: prefix weights (t - 1)/(n - t + 1) for the ranks t <= n (0 on ragged
    padding, whose gaps are 0), suffix weights -1."""
    if groups.uses_matrix():
        return _dense_tailrl_form(groups.size)
    backend = groups.backend
    xp = backend.xp
    n = groups.n_float
    ranks = xp.arange(groups.size, device=backend.device(groups.like))
    t = backend.astype(ranks, groups.gaps.dtype) + 1.0
    inside = t <= n
    weight = xp.where(inside, (t - 1.0) / xp.where(inside, n - t + 1.0, 1.0), 0.0)
    return GapForm(0.0, 0.0, weight, -xp.ones_like(t))


@functools.lru_cache(maxsize=16)
def _dense_tailrl_form(size: int) -> GapForm:
    """:func:`_tailrl_form` of dense numpy groups of ``size``, cached, as one matrix where that is
    cheaper (:meth:`GapForm.for_dense_numpy`)."""
    t = np.arange(1.0, size + 1.0)
    return GapForm(0.0, 0.0, (t - 1.0) / (size - t + 1.0), -np.ones(size)).for_dense_numpy()
