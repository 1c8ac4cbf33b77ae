"""Exact unbiasedness: E[sum_i A_i grad log p(x_i)] = grad maxg@k for a tiny softmax policy.

paper.md §2.1 B: a softmax policy over 4 outcomes with fixed rewards. For n samples every one of
the 4^n outcome tuples is enumerated with its probability, so the expectation and the trace of
the covariance of the gradient estimate are exact (no Monte Carlo). The true gradient comes from
the closed form of the CDF of the maximum of k draws, maxg@k = sum_v v (F(v)^k - F(v-)^k).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import pkpo

# Logits that give paper.md's printed p = [0.353128 0.214183 0.289117 0.143571]: the printed
# probabilities have ratios e^0.5, e^0.2, e^0.9, i.e. softmax([0.3, -0.2, 0.1, -0.6]).
THETA = np.array([0.3, -0.2, 0.1, -0.6])
REWARDS = {
    "continuous": np.array([0.0, 0.35, 0.6, 1.0]),
    "ties": np.array([0.0, 0.5, 0.5, 1.0]),
    "binary": np.array([0.0, 0.0, 0.0, 1.0]),
}

# Test vectors: paper.md §2.3, section B ("Full output (python3 paper_check.py)"), printed to 6
# decimals. Per case: maxg@k, the exact gradient, and per baseline (tr Cov, E[sum_i A_i]).
# pkpo's baselines map to the printed rows as none = "s (eq.19)", loo = "s_loo (eq.29)",
# loo_minus_one = "s_loo-1 (eq.33)", centered = "jack: rho-rho_-i (not in paper)".
PAPER = {
    ("continuous", 4, 2): (
        0.582506,
        [-0.134542, -0.02866, 0.043323, 0.11988],
        {
            "none": (0.260298, 1.165013),
            "loo": (0.123968, -0.388338),
            "loo_minus_one": (0.059602, 0.381002),
            "centered": (0.056452, 0.0),
        },
    ),
    ("continuous", 5, 2): (
        0.582506,
        [-0.134542, -0.02866, 0.043323, 0.11988],
        {
            "none": (0.205225, 1.165013),
            "loo": (0.068280, -0.291253),
            "loo_minus_one": (0.044840, 0.381002),
            "centered": (0.038041, 0.0),
        },
    ),
    ("continuous", 5, 3): (
        0.687676,
        [-0.111415, -0.039532, 0.016425, 0.134522],
        {
            "none": (0.598759, 2.063027),
            "loo": (0.138458, -0.515757),
            "loo_minus_one": (0.045109, 0.315507),
            "centered": (0.053709, 0.0),
        },
    ),
    ("continuous", 6, 3): (
        0.687676,
        [-0.111415, -0.039532, 0.016425, 0.134522],
        {
            "none": (0.491367, 2.063027),
            "loo": (0.083431, -0.412605),
            "loo_minus_one": (0.033727, 0.315507),
            "centered": (0.037295, 0.0),
        },
    ),
    ("continuous", 4, 4): (
        0.753470,
        [-0.092936, -0.043164, -0.005478, 0.141578],
        {"none": (1.673785, 3.013882), "loo_minus_one": (0.091695, 0.263180)},
    ),
    ("ties", 5, 2): (
        0.570915,
        [-0.124085, 0.000373, 0.000503, 0.123209],
        {
            "none": (0.202465, 1.141830),
            "loo": (0.064490, -0.285458),
            "loo_minus_one": (0.043808, 0.351387),
            "centered": (0.037096, 0.0),
        },
    ),
    ("ties", 4, 4): (
        0.723236,
        [-0.083813, -0.031972, -0.043157, 0.158942],
        {"none": (1.596509, 2.892943), "loo_minus_one": (0.089482, 0.237343)},
    ),
    ("binary", 4, 2): (
        0.266530,
        [-0.08684, -0.052671, -0.071099, 0.210611],
        {
            "none": (0.128902, 0.533060),
            "loo": (0.160864, -0.177687),
            "loo_minus_one": (0.071665, 0.245917),
            "centered": (0.098221, 0.0),
        },
    ),
    ("binary", 6, 3): (
        0.371835,
        [-0.111559, -0.067664, -0.091337, 0.270559],
        {
            "none": (0.239379, 1.115505),
            "loo": (0.137681, -0.223101),
            "loo_minus_one": (0.066190, 0.315916),
            "centered": (0.089499, 0.0),
        },
    ),
    ("binary", 6, 2): (
        0.266530,
        [-0.08684, -0.052671, -0.071099, 0.210611],
        {
            "none": (0.079743, 0.533060),
            "loo": (0.064003, -0.106612),
            "loo_minus_one": (0.045122, 0.245917),
            "centered": (0.050975, 0.0),
        },
    ),
    ("binary", 4, 4): (
        0.462022,
        [-0.12739, -0.077266, -0.104298, 0.308953],
        {"none": (1.127230, 1.848086), "loo_minus_one": (0.227756, 0.360746)},
    ),
}


def softmax(theta):
    e = np.exp(theta - theta.max())
    return e / e.sum()


def maxg_closed_form(theta, r, k):
    """maxg@k = sum_v v (F(v)^k - F(v-)^k) over the distinct reward values v."""
    p = softmax(theta)
    values = np.unique(r)
    cdf = np.array([p[r <= v].sum() for v in values])
    below = np.concatenate([[0.0], cdf[:-1]])
    return float(np.sum(values * (cdf**k - below**k)))


def maxg_gradient(theta, r, k):
    """d maxg@k / d theta, analytically: dF(v)/dtheta_a = p_a (1[r_a <= v] - F(v))."""
    p = softmax(theta)
    values = np.unique(r)
    cdf = np.array([p[r <= v].sum() for v in values])
    dcdf = np.array([p * ((r <= v) - F) for v, F in zip(values, cdf)])  # (values, 4)
    below, dbelow = np.concatenate([[0.0], cdf[:-1]]), np.vstack([np.zeros(4), dcdf[:-1]])
    terms = k * (cdf[:, None] ** (k - 1) * dcdf - below[:, None] ** (k - 1) * dbelow)
    return (values[:, None] * terms).sum(0)


def exact_moments(theta, r, n, k, baseline):
    """E[estimate], tr Cov[estimate] and E[sum_i A_i] over all 4^n outcome tuples."""
    p = softmax(theta)
    outcomes = np.array(list(itertools.product(range(4), repeat=n)))  # (4^n, n)
    prob = p[outcomes].prod(-1)
    advantages = pkpo.transform(r[outcomes], k, baseline)  # all tuples in one batched call
    onehot = np.eye(4)[outcomes]  # (4^n, n, 4)
    # grad_theta log p(x) = e_x - p for a softmax
    estimate = np.einsum("mi,mij->mj", advantages, onehot) - advantages.sum(-1, keepdims=True) * p
    mean = prob @ estimate
    trace_cov = prob @ (estimate**2).sum(-1) - mean @ mean
    return mean, trace_cov, prob @ advantages.sum(-1)


@pytest.mark.parametrize("kind", sorted(REWARDS))
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_closed_form_gradient_matches_finite_differences(kind, k):
    r, h = REWARDS[kind], 1e-5
    numeric = [
        (maxg_closed_form(THETA + h * e, r, k) - maxg_closed_form(THETA - h * e, r, k)) / (2 * h)
        for e in np.eye(4)
    ]
    np.testing.assert_allclose(maxg_gradient(THETA, r, k), numeric, atol=1e-9)


def all_cases():
    for kind in sorted(REWARDS):
        for n in (4, 5, 6):
            for k in range(1, n + 1):
                for baseline in ("none", "loo", "loo_minus_one", "centered"):
                    if baseline in ("loo", "centered") and n < k + 1:
                        continue
                    yield kind, n, k, baseline


@pytest.mark.parametrize("kind, n, k, baseline", list(all_cases()))
def test_exactly_unbiased(kind, n, k, baseline):
    r = REWARDS[kind]
    mean, _, _ = exact_moments(THETA, r, n, k, baseline)
    if baseline == "loo_minus_one" and k == 1:
        # k = 1 is plain leave-one-out centring: unbiased for grad pass@1 = grad E[g]
        target = maxg_gradient(THETA, r, 1)
    else:
        target = maxg_gradient(THETA, r, k)
    np.testing.assert_allclose(mean, target, rtol=0, atol=2e-15 * n)


def test_pass_at_1_leave_one_out_is_biased_for_k_above_1():
    """The test has power: plain RLOO (k = 1) is not an unbiased estimate of grad maxg@2."""
    mean, _, _ = exact_moments(THETA, REWARDS["continuous"], 5, 1, "loo_minus_one")
    assert (
        np.abs(mean - maxg_gradient(THETA, REWARDS["continuous"], 2)).max() > 0.01
    )  # vs atol 1e-14 above


@pytest.mark.parametrize("case", sorted(PAPER), ids=lambda c: f"{c[0]}-n{c[1]}-k{c[2]}")
def test_paper_test_vectors(case):
    kind, n, k = case
    maxg, grad, rows = PAPER[case]
    r = REWARDS[kind]
    assert maxg_closed_form(THETA, r, k) == pytest.approx(maxg, abs=5e-7)
    np.testing.assert_allclose(maxg_gradient(THETA, r, k), grad, atol=5e-7)
    np.testing.assert_allclose(softmax(THETA), [0.353128, 0.214183, 0.289117, 0.143571], atol=5e-7)
    for baseline, (trace_cov, sum_a) in rows.items():
        _, got_trace, got_sum = exact_moments(THETA, r, n, k, baseline)
        assert got_trace == pytest.approx(trace_cov, abs=5e-7), baseline
        assert got_sum == pytest.approx(sum_a, abs=5e-7), baseline
