"""Brute-force reference implementations: every quantity straight from its SUBSET definition.

Nothing here sorts, forms a rank weight or uses a recursion: each function enumerates all size-k
subsets I of the n samples with :func:`itertools.combinations` and averages, in float64, exactly
as the paper defines the estimator (paper.md §1.3-1.5). The fast implementation in ``pkpo`` must
agree with these for every n <= 10 and every valid k; they are slow (O(C(n, k) k) per group and
worse for the leave-one-out variants) and only meant for tests.

Definitions, for one group g_1..g_n and the k-subsets I of [n] = {1..n}:

- maxg@k (eq. 15):   rho_k(g) = mean_{|I|=k} max_{j in I} g_j.
- pass@k (eq. 3 via Thm 1): the same mean of 1 - prod_{j in I} (1 - f_j) for 0/1 f.
- pass^k: the same mean of prod_{j in I} f_j (all k correct).
- s (eq. 27):        s_i = S(i, k, [n]) = (1/C(n,k)) sum_{|I|=k, i in I} max_{j in I} g_j.
- s^(loo) (eq. 29):  s_i - (1/(n-1)) sum_{j != i} S(j, k, [n] minus {i}), where S on a pool of
                     size m is normalised by C(m, k).
- s^(loo-1) (eq. 33): (1/C(n,k)) sum_{|I|=k, i in I} (max_I g - max_{I minus {i}} g), for k >= 2;
                     for k = 1 the package defines it (DESIGN.md) as (g_i - mean_{j != i} g_j) / n.
- centered (paper.md §1.5 item 4): rho_k(g) - rho_k(g without sample i).
- eq. 8 (binary closed form): r_i = k/n if f_i = 1, else (k/n) rho(n-1, c, k-1).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np


def subset_mean_max(g, k: int) -> float:
    """rho_k(g): the mean over all size-k subsets of the subset maximum (eq. 15)."""
    subsets = list(itertools.combinations(range(len(g)), k))
    return math.fsum(max(g[j] for j in subset) for subset in subsets) / len(subsets)


def subset_pass_at_k(f, k: int) -> float:
    """pass@k of 0/1 outcomes: mean over size-k subsets of 1 - prod(1 - f_j) (Thm 1)."""
    subsets = list(itertools.combinations(range(len(f)), k))
    return math.fsum(1.0 - math.prod(1.0 - f[j] for j in subset) for subset in subsets) / len(
        subsets
    )


def subset_pass_all_k(f, k: int) -> float:
    """pass^k of 0/1 outcomes: mean over size-k subsets of prod(f_j), "all k are correct"."""
    subsets = list(itertools.combinations(range(len(f)), k))
    return math.fsum(math.prod(f[j] for j in subset) for subset in subsets) / len(subsets)


def subset_credit(g, k: int, pool) -> dict:
    """S(j, k, pool) for every j in ``pool``: (1/C(m,k)) sum over k-subsets of the pool holding j of
    their max."""
    total = {j: [] for j in pool}
    subsets = list(itertools.combinations(pool, k))
    for subset in subsets:
        top = max(g[j] for j in subset)
        for j in subset:
            total[j].append(top)
    return {j: math.fsum(values) / len(subsets) for j, values in total.items()}


def s_none(g, k: int) -> np.ndarray:
    """s_i = S(i, k, [n])   (eq. 27)."""
    credit = subset_credit(g, k, range(len(g)))
    return np.array([credit[i] for i in range(len(g))])


def s_loo(g, k: int) -> np.ndarray:
    """s_i^(loo) = S(i, k, [n]) - (1/(n-1)) sum_{j != i} S(j, k, [n] minus {i})   (eq. 29)."""
    n = len(g)
    s = s_none(g, k)
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        credit = subset_credit(g, k, others)
        out.append(s[i] - math.fsum(credit.values()) / (n - 1))
    return np.array(out)


def s_loo_minus_one(g, k: int) -> np.ndarray:
    """s_i^(loo-1) = (1/C(n,k)) sum_{|I|=k, i in I} (max_I g - max_{I minus i} g)   (eq. 33).

    k = 1 (the max over the empty set is undefined) follows DESIGN.md: (g_i - mean_{j != i} g_j) /
    n.
    """
    n = len(g)
    if k == 1:
        return np.array(
            [(g[i] - math.fsum(g[j] for j in range(n) if j != i) / (n - 1)) / n for i in range(n)]
        )
    gains = {i: [] for i in range(n)}
    subsets = list(itertools.combinations(range(n), k))
    for subset in subsets:
        top = max(g[j] for j in subset)
        for i in subset:
            gains[i].append(top - max(g[j] for j in subset if j != i))
    return np.array([math.fsum(gains[i]) / len(subsets) for i in range(n)])


def s_centered(g, k: int) -> np.ndarray:
    """rho_k(g) - rho_k(g without i)   (paper.md §1.5 item 4)."""
    n = len(g)
    full = subset_mean_max(g, k)
    return np.array(
        [full - subset_mean_max([g[j] for j in range(n) if j != i], k) for i in range(n)]
    )


TRANSFORMS = {
    "none": s_none,
    "loo": s_loo,
    "loo_minus_one": s_loo_minus_one,
    "centered": s_centered,
}


def transform(rewards, k: int, baseline: str) -> np.ndarray:
    """Brute-force transform of every group (last axis) of ``rewards``."""
    rewards = np.asarray(rewards, dtype=np.float64)
    rows = rewards.reshape(-1, rewards.shape[-1])
    out = np.array([TRANSFORMS[baseline](list(row), k) for row in rows])
    return out.reshape(rewards.shape)


def maxg_at_k(rewards, k: int) -> np.ndarray:
    rewards = np.asarray(rewards, dtype=np.float64)
    rows = rewards.reshape(-1, rewards.shape[-1])
    return np.array([subset_mean_max(list(row), k) for row in rows]).reshape(rewards.shape[:-1])


def pass_at_k(correct, k: int) -> np.ndarray:
    correct = np.asarray(correct, dtype=np.float64)
    rows = correct.reshape(-1, correct.shape[-1])
    return np.array([subset_pass_at_k(list(row), k) for row in rows]).reshape(correct.shape[:-1])


def pass_all_k(correct, k: int) -> np.ndarray:
    correct = np.asarray(correct, dtype=np.float64)
    rows = correct.reshape(-1, correct.shape[-1])
    return np.array([subset_pass_all_k(list(row), k) for row in rows]).reshape(correct.shape[:-1])


def exact_pass_all_k(n: int, c: int, k: int) -> Fraction:
    """C(c, k) / C(n, k) as an exact rational."""
    return Fraction(math.comb(c, k), math.comb(n, k))


def pass_at_k_from_counts(n: int, c: int, k: int) -> float:
    """pass@k of a group with c correct out of n, by enumerating the subsets of [1]*c +
    [0]*(n-c)."""
    return subset_pass_at_k([1.0] * c + [0.0] * (n - c), k)


# --- closed forms (not subset enumeration), used as a second, exact reference ---------------


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """rho(n, c, k) = 1 - C(n-c, k)/C(n, k) as an exact rational (eq. 3)."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def binary_closed_form(f, k: int) -> np.ndarray:
    """eq. 8: r_i = k/n if f_i = 1 else (k/n) rho(n-1, c, k-1), with rho(., ., 0) = 0."""
    n, c = len(f), int(sum(f))
    if c == n:
        return np.full(n, k / n)
    wrong = 0.0 if k == 1 else (k / n) * float(exact_pass_at_k(n - 1, c, k - 1))
    return np.array([k / n if fi else wrong for fi in f])


def ulp_distance(a: float, b: float) -> int:
    """How many float64 steps separate a and b (0 for equal values)."""
    ia = np.array(a, dtype=np.float64).view(np.int64).item()
    ib = np.array(b, dtype=np.float64).view(np.int64).item()
    # map the sign-magnitude bit patterns onto a monotone integer line
    ia = ia if ia >= 0 else -(ia & 0x7FFFFFFFFFFFFFFF)
    ib = ib if ib >= 0 else -(ib & 0x7FFFFFFFFFFFFFFF)
    return abs(ia - ib)


# --- the group-advantage family (pkpo.advantages): each author's formula, one group at a time ----
#
# Written from the papers and the authors' code (read for facts, not copied): plain Python loops
# over one group's rewards, float64, no vectorisation and no shared helper with pkpo.


def grpo_group(r, eps=1e-6):
    """(r_i - mean) / (std + eps), std with Bessel's correction (verl/TRL); 0 for n = 1."""
    n = len(r)
    if n == 1:
        return [0.0]
    mean = math.fsum(r) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in r) / (n - 1))
    return [(x - mean) / (std + eps) for x in r]


def dr_grpo_group(r):
    mean = math.fsum(r) / len(r)
    return [x - mean for x in r]


def rloo_group(r):
    """r_i - mean of the other rewards (Kool et al.; TailRL's rloo: (N r_i - sum) / (N - 1))."""
    n = len(r)
    return [x - math.fsum(r[j] for j in range(n) if j != i) / (n - 1) for i, x in enumerate(r)]


def maxrl_group(r):
    """(r_i - mean) / mean, 0 when the mean is 0 (MaxRL's p-normalisation without its epsilon)."""
    mean = math.fsum(r) / len(r)
    return [0.0 if mean == 0 else (x - mean) / mean for x in r]


def tailrl_group(r):
    """TailRL's published steps: sort, gaps (r_(0) = 0) / survivors, cumsum, times N, centre."""
    n = len(r)
    order = sorted(range(n), key=lambda i: r[i])  # stable, like torch.sort(stable=True)
    weights, running, previous = [], 0.0, 0.0
    for j, i in enumerate(order):  # j = 0..n-1, survivors n - j
        running += (r[i] - previous) / (n - j)
        previous = r[i]
        weights.append(running * n)
    mean = math.fsum(weights) / n
    out = [0.0] * n
    for j, i in enumerate(order):
        out[i] = weights[j] - mean
    return out


def rs_grpo_group(r, beta=2.0):
    """RS-GRPO in the authors' logsumexp form: (exp(beta (r_i - soft)) - 1) / beta with
    soft = (logsumexp(beta r) - log n) / beta."""
    n = len(r)
    top = max(beta * x for x in r)
    logsumexp = top + math.log(math.fsum(math.exp(beta * x - top) for x in r))
    soft = (logsumexp - math.log(n)) / beta
    return [(math.exp(beta * (x - soft)) - 1.0) / beta for x in r]


def w_reinforce_group(r, lam=0.1):
    return [lam if x == 1 else -1.0 for x in r]


def tzsm_group(r):
    """verl's grpo_passk without std: the (first) argmax gets r_max - r_second, the rest 0."""
    ranked = sorted(range(len(r)), key=lambda i: -r[i])
    out = [0.0] * len(r)
    out[ranked[0]] = r[ranked[0]] - r[ranked[1]]
    return out


def passk_training_group(r, k):
    """RUCAIBox/Passk_Training calc_adv: rho, sigma = sqrt(rho (1 - rho)), eps 1e-6."""
    n, c = len(r), int(sum(r))

    def comb(a, b):
        return math.comb(a, b) if 0 <= b <= a else 0

    rho = 1 - comb(n - c, k) / comb(n, k)
    sigma = math.sqrt(rho * (1 - rho))
    positive = (1 - rho) / (sigma + 1e-6)
    negative = (1 - rho - comb(n - c - 1, k - 1) / comb(n - 1, k - 1)) / (sigma + 1e-6)
    return [positive if x == 1 else negative for x in r]


def two_baselines_group_raw(r, k):
    """tajwarfahim/maxrl compute_pkpo_outcome_advantage: v_i = r_i C(n-c, k-1)/C(n-1, k-1), then
    (n v_i - sum v) / (n - 1) when n > 1 (the repository's own scale)."""
    n, c = len(r), int(sum(r))
    credit = math.comb(n - c, k - 1) / math.comb(n - 1, k - 1) if n - c >= k - 1 else 0.0
    v = [credit * x for x in r]
    if n == 1:
        return v
    return [(vi * n - math.fsum(v)) / (n - 1) for vi in v]


def two_baselines_group(r, k):
    """The same on the paper's scale (times k/n), as pkpo returns it."""
    return [k / len(r) * a for a in two_baselines_group_raw(r, k)]


def per_group(group_fn, rewards, mask=None, **params) -> np.ndarray:
    """Apply a one-group function to every row of ``rewards`` (its valid entries); 0 on padding."""
    rewards = np.asarray(rewards, dtype=np.float64)
    rows = rewards.reshape(-1, rewards.shape[-1])
    valid = np.ones(rows.shape, bool) if mask is None else np.asarray(mask, bool)
    valid = valid.reshape(rows.shape)
    out = np.zeros_like(rows)
    for row, keep, target in zip(rows, valid, out):
        target[keep] = group_fn([float(x) for x in row[keep]], **params)
    return out.reshape(rewards.shape)


# --- exact expected updates on bandits (every outcome of n samples, with its probability) -------


def bernoulli_expected_update(advantage_fn, p: float, n: int) -> float:
    """E[sum_i A_i d/dtheta log P(y_i)], y_i ~ Bernoulli(p = sigmoid(theta)), over all 2^n tuples.

    d/dtheta log P(y) = y - p. ``advantage_fn`` maps a (2^n, n) array of 0/1 rewards to advantages.
    """
    outcomes = np.array(list(itertools.product((0.0, 1.0), repeat=n)))
    c = outcomes.sum(-1)
    prob = p**c * (1 - p) ** (n - c)
    advantages = np.asarray(advantage_fn(outcomes), dtype=np.float64)
    return float(prob @ (advantages * (outcomes - p)).sum(-1))


def categorical_expected_update(advantage_fn, probs, rewards, n: int) -> np.ndarray:
    """E[sum_i A_i grad_theta log p(y_i)] for a softmax policy with probabilities ``probs`` over the
    outcomes (reward ``rewards[a]``), over all len(probs)^n tuples; grad log p(a) = e_a - probs."""
    probs, rewards = np.asarray(probs, dtype=np.float64), np.asarray(rewards, dtype=np.float64)
    m = len(probs)
    outcomes = np.array(list(itertools.product(range(m), repeat=n)))
    prob = probs[outcomes].prod(-1)
    advantages = np.asarray(advantage_fn(rewards[outcomes]), dtype=np.float64)
    onehot = np.eye(m)[outcomes]
    estimate = np.einsum("mi,mij->mj", advantages, onehot)
    estimate -= advantages.sum(-1, keepdims=True) * probs
    return prob @ estimate
