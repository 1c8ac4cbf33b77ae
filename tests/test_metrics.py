"""pkpo.metrics: per-k reports over problems, against independent formulas and by simulation."""

from __future__ import annotations

import doctest
import itertools
import json
import math
import statistics
from fractions import Fraction

import numpy as np
import pytest

import pkpo.metrics
from pkpo.metrics import (
    EstimateAtK,
    EstimateAtTau,
    InsufficientSamplesError,
    MetricReport,
    cover,
    cover_report,
    maxg_at_k_report,
    pass_all_k_report,
    pass_at_k_report,
    solve_rate,
)

# --- independent oracles ------------------------------------------------------------------------


def pass_at_k_comb(n: int, c: int, k: int) -> float:
    """Eq. 3 with exact integers (Chen et al. 2021)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maxg_at_k_brute(rewards, k: int) -> float:
    """Mean of the maximum over every size-k subset."""
    subsets = list(itertools.combinations(rewards, k))
    return sum(max(s) for s in subsets) / len(subsets)


def random_ragged_binary(rng, problems=12, low=3, high=9):
    return [rng.random(int(rng.integers(low, high + 1))) < rng.random() for _ in range(problems)]


# --- values -------------------------------------------------------------------------------------


def test_pass_at_k_report_matches_math_comb_on_ragged_problems():
    rng = np.random.default_rng(1)
    correct = random_ragged_binary(rng)
    report = pass_at_k_report(correct, [1, 2, 3], n_bootstrap=200)
    for k in (1, 2, 3):
        per_problem = [pass_at_k_comb(len(row), int(row.sum()), k) for row in correct]
        row = report[k]
        assert row.estimate == pytest.approx(statistics.fmean(per_problem), abs=1e-12)
        assert row.se == pytest.approx(
            statistics.stdev(per_problem) / math.sqrt(len(per_problem)), abs=1e-12
        )
        assert row.n_problems == len(correct) and row.n_skipped == 0


def test_maxg_at_k_report_matches_subset_enumeration():
    rng = np.random.default_rng(2)
    rewards = [rng.normal(size=int(n)) for n in (4, 7, 5, 6)]
    report = maxg_at_k_report(rewards, [1, 2, 4], n_bootstrap=100)
    for k in (1, 2, 4):
        per_problem = [maxg_at_k_brute(row.tolist(), k) for row in rewards]
        assert report[k].estimate == pytest.approx(statistics.fmean(per_problem), abs=1e-12)
        assert report[k].se == pytest.approx(statistics.stdev(per_problem) / 2.0, abs=1e-12)
    assert report.metric == "maxg@k"


def test_maxg_on_binary_rewards_equals_pass_at_k():
    rng = np.random.default_rng(3)
    correct = random_ragged_binary(rng)
    as_float = [row.astype(float) for row in correct]
    a = pass_at_k_report(correct, [1, 3], seed=5)
    b = maxg_at_k_report(as_float, [1, 3], seed=5)
    for ra, rb in zip(a, b):
        assert ra.estimate == pytest.approx(rb.estimate, abs=1e-12)
        assert ra.ci_low == pytest.approx(rb.ci_low, abs=1e-12)
        assert ra.ci_high == pytest.approx(rb.ci_high, abs=1e-12)


def test_2d_array_equals_list_of_rows():
    rng = np.random.default_rng(4)
    matrix = rng.random((9, 6)) < 0.3
    a = pass_at_k_report(matrix, [1, 2, 6], seed=3)
    b = pass_at_k_report([row.astype(int) for row in matrix], [1, 2, 6], seed=3)
    assert a.rows == b.rows


def test_ks_are_sorted_and_deduplicated_and_int_accepted():
    report = pass_at_k_report([[1, 0, 0], [0, 1, 1]], [3, 1, 3])
    assert report.ks == [1, 3]
    assert pass_at_k_report([[1, 0], [0, 0]], 2).ks == [2]
    with pytest.raises(KeyError, match="no row for k=2"):
        report[2]


def test_solve_rate():
    assert solve_rate([[0, 0, 1], [0, 0], [True], [False, False]]) == 0.5
    assert solve_rate(np.zeros((3, 4))) == 0.0


# --- the interval -------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_interval_contains_estimate():
    rng = np.random.default_rng(5)
    correct = random_ragged_binary(rng, problems=30)
    a = pass_at_k_report(correct, [1, 2], seed=7)
    b = pass_at_k_report(correct, [1, 2], seed=7)
    c = pass_at_k_report(correct, [1, 2], seed=8)
    assert a.rows == b.rows
    assert a[1].ci_low != c[1].ci_low or a[1].ci_high != c[1].ci_high
    for row in a:
        assert row.ci_low <= row.estimate <= row.ci_high
        assert row.ci_low < row.ci_high


def test_interval_bounds_nondecreasing_in_k():
    # The same resampled problem sets at every k, and per-problem pass@k is nondecreasing in k.
    rng = np.random.default_rng(6)
    correct = rng.random((25, 12)) < rng.random((25, 1))
    report = pass_at_k_report(correct, [1, 2, 3, 4, 6, 8, 12], seed=0)
    lows = [row.ci_low for row in report]
    highs = [row.ci_high for row in report]
    assert lows == sorted(lows) and highs == sorted(highs)


def test_interval_close_to_normal_approximation_for_many_problems():
    rng = np.random.default_rng(7)
    correct = rng.random((600, 8)) < rng.random((600, 1))
    row = pass_at_k_report(correct, [2], n_bootstrap=4000, seed=1)[2]
    width = row.ci_high - row.ci_low
    assert width == pytest.approx(2 * 1.959964 * row.se, rel=0.1)
    assert (row.ci_low + row.ci_high) / 2 == pytest.approx(row.estimate, abs=0.1 * width)


def test_interval_covers_population_pass_at_k_about_95_percent():
    # Problems with success probability p ~ Beta(1, 2): population pass@k = E[1 - (1 - p)^k]
    # = 1 - 2 / (k + 2). Coverage over 300 simulated evaluations of 60 problems x 8 samples.
    rng = np.random.default_rng(8)
    k, hits, trials = 4, 0, 300
    truth = 1 - 2 / (k + 2)
    for trial in range(trials):
        p = rng.beta(1, 2, size=(60, 1))
        correct = rng.random((60, 8)) < p
        row = pass_at_k_report(correct, [k], n_bootstrap=400, seed=trial)[k]
        hits += row.ci_low <= truth <= row.ci_high
    # The percentile bootstrap undercovers a little at this size (about 93% over 1000 such
    # evaluations, docs/evaluation.md); [264, 294] of 300 is more than 3 binomial SDs either side.
    # A broken interval (e.g. the SE of one problem's samples, or no resampling) lands far outside.
    assert 264 <= hits <= 294


def test_confidence_widens_the_interval():
    rng = np.random.default_rng(9)
    correct = rng.random((40, 6)) < rng.random((40, 1))
    narrow = pass_at_k_report(correct, [1], confidence=0.5, seed=0)[1]
    wide = pass_at_k_report(correct, [1], confidence=0.99, seed=0)[1]
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


def test_one_problem_has_no_se_or_interval_and_zero_bootstrap_has_no_interval():
    row = pass_at_k_report([[1, 0, 1]], [1])[1]
    assert row.estimate == pytest.approx(2 / 3)
    assert math.isnan(row.se) and math.isnan(row.ci_low) and math.isnan(row.ci_high)
    row = pass_at_k_report([[1, 0, 1], [0, 0, 0]], [1], n_bootstrap=0)[1]
    assert row.se == pytest.approx(statistics.stdev([2 / 3, 0]) / math.sqrt(2))
    assert math.isnan(row.ci_low) and math.isnan(row.ci_high)


def test_bootstrap_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(10)
    correct = rng.random((50, 5)) < 0.4
    whole = pass_at_k_report(correct, [2], n_bootstrap=300, seed=4)
    # Blocks of 7 draws; numpy's integer stream is the same whether drawn at once or in pieces.
    monkeypatch.setattr(pkpo.metrics, "_BOOTSTRAP_BLOCK", 7 * 50)
    blocked = pass_at_k_report(correct, [2], n_bootstrap=300, seed=4)
    assert whole.rows == blocked.rows


# --- too few samples ----------------------------------------------------------------------------


def test_too_few_samples_raises_naming_the_problem():
    correct = [[1, 0, 0, 1], [1, 0], [0, 0, 0, 1]]
    with pytest.raises(
        InsufficientSamplesError, match=r"problem 1 has 2 samples, fewer than k=3"
    ) as info:
        pass_at_k_report(correct, [1, 3])
    assert (info.value.problem, info.value.n, info.value.k) == (1, 2, 3)
    with pytest.raises(ValueError, match=r"problem 'HumanEval/7' has 2 samples"):
        pass_at_k_report(correct, [3], problem_ids=["a", "HumanEval/7", "c"])
    with pytest.raises(ValueError, match=r"problem 0 has 2 samples, fewer than k=3"):
        maxg_at_k_report([[0.1, 0.2], [0.3, 0.4, 0.5]], [3])


def test_skip_insufficient_uses_only_problems_with_k_samples():
    correct = [[1, 0, 0, 1], [1, 0], [0, 0, 0, 1], [0]]
    report = pass_at_k_report(correct, [1, 2, 3], skip_insufficient=True)
    assert [(r.n_problems, r.n_skipped) for r in report] == [(4, 0), (3, 1), (2, 2)]
    expected = statistics.fmean([pass_at_k_comb(4, 2, 3), pass_at_k_comb(4, 1, 3)])
    assert report[3].estimate == pytest.approx(expected, abs=1e-12)
    rewards = [[0.5, 0.1, 0.9], [0.2], [0.4, 0.3]]
    report = maxg_at_k_report(rewards, [2], skip_insufficient=True)
    assert report[2].estimate == pytest.approx(
        (maxg_at_k_brute([0.5, 0.1, 0.9], 2) + 0.4) / 2, abs=1e-12
    )
    with pytest.raises(
        InsufficientSamplesError, match=r"no problem has at least k=5 samples \(the largest has 4\)"
    ):
        pass_at_k_report(correct, [5], skip_insufficient=True)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pass_at_k_report([], [1]), "empty; need at least one problem"),
        (lambda: pass_at_k_report(np.zeros(4), [1]), "must be a 2-D array"),
        (lambda: pass_at_k_report([[1, 0], []], [1]), r"correct_per_problem\[1\] has no samples"),
        (lambda: pass_at_k_report([[1, 0], [[1]]], [1]), r"correct_per_problem\[1\] must be 1-D"),
        (lambda: pass_at_k_report([[1, 0], ["a"]], [1]), "must hold numbers or booleans"),
        (lambda: pass_at_k_report([[1, 0], [0, 2]], [1]), "only 0/1 or booleans; problem 1 has 2"),
        (lambda: pass_at_k_report([[1, 0], [0, np.nan]], [1]), "only 0/1 or booleans; problem 1"),
        (lambda: pass_at_k_report([[1, 0]], [0]), "k must be >= 1"),
        (lambda: pass_at_k_report([[1, 0]], [1.5]), "k must be a positive integer"),
        (lambda: pass_at_k_report([[1, 0]], []), "ks is empty"),
        (lambda: pass_at_k_report([[1, 0]], None), "ks must be an int or a sequence"),
        (
            lambda: pass_at_k_report([[1, 0]], [1], n_bootstrap=-1),
            "n_bootstrap must be a non-negative",
        ),
        (
            lambda: pass_at_k_report([[1, 0]], [1], confidence=1.0),
            "confidence must be a number strictly",
        ),
        (
            lambda: pass_at_k_report([[1, 0]], [1], confidence=0),
            "confidence must be a number strictly",
        ),
        (lambda: pass_at_k_report([[1, 0]], [1], seed=-3), "seed must be a non-negative integer"),
        (
            lambda: pass_at_k_report([[1, 0]], [1], problem_ids=["a", "b"]),
            "problem_ids has 2 names for 1",
        ),
        (lambda: maxg_at_k_report([[0.1], [np.inf, 0.2]], [1]), "NaN or inf in problem 1"),
        (
            lambda: maxg_at_k_report([[0.1], [0.3, np.nan]], [1], problem_ids=["x", "y"]),
            "NaN or inf in problem 'y'",
        ),
        (lambda: maxg_at_k_report([[True, False]], [1]), "must hold real numbers"),
        (lambda: solve_rate([[0, 3]]), "only 0/1 or booleans"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- output helpers -----------------------------------------------------------------------------


def test_to_dict_is_json_and_round_trips_the_rows():
    report = pass_at_k_report([[1, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]], [1, 4], seed=2)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["metric"] == "pass@k" and data["confidence"] == 0.95 and data["seed"] == 2
    assert [EstimateAtK(**row) for row in data["rows"]] == list(report.rows)
    single = pass_at_k_report([[1, 0]], [1]).to_dict()
    assert single["rows"][0]["se"] is None and single["rows"][0]["ci_low"] is None
    json.dumps(single, allow_nan=False)


def test_to_markdown_lists_every_row_with_its_numbers():
    report = pass_at_k_report(
        [[1, 0, 1, 1], [0, 0, 1, 0], [0]], [1, 2], skip_insufficient=True, confidence=0.9
    )
    lines = report.to_markdown(digits=3).splitlines()
    assert lines[0].split("|")[1:-1] == [
        " k ",
        " pass@k ",
        "    SE ",
        " 90% CI         ",
        " problems ",
        " skipped ",
    ]
    assert set(lines[1]) <= set("|-:")
    assert len(lines) == 2 + len(report)
    cells = [c.strip() for c in lines[3].split("|")[1:-1]]
    row = report[2]
    assert cells == [
        "2",
        f"{row.estimate:.3f}",
        f"{row.se:.3f}",
        f"[{row.ci_low:.3f}, {row.ci_high:.3f}]",
        "2",
        "1",
    ]
    assert isinstance(report, MetricReport)


def test_doctests():
    result = doctest.testmod(pkpo.metrics)
    assert result.attempted > 0 and result.failed == 0


# --- pass^k and Cover@tau -----------------------------------------------------------------------


def test_pass_all_k_report_is_the_mean_of_exact_fractions():
    rng = np.random.default_rng(5)
    rows = random_ragged_binary(rng, problems=15, low=4, high=11)
    report = pass_all_k_report(rows, [1, 2, 4], seed=1)
    for k in (1, 2, 4):
        exact = [Fraction(math.comb(int(r.sum()), k), math.comb(r.size, k)) for r in rows]
        assert report[k].estimate == pytest.approx(float(sum(exact) / len(exact)), rel=1e-15)
        assert report[k].se == pytest.approx(
            statistics.stdev(map(float, exact)) / math.sqrt(len(rows)), rel=1e-12
        )
        assert report[k].ci_low <= report[k].estimate <= report[k].ci_high
    assert report.metric == "pass^k"
    assert report[1].estimate == pytest.approx(pass_at_k_report(rows, 1)[1].estimate, rel=1e-15)
    with pytest.raises(InsufficientSamplesError, match="fewer than k=5"):
        pass_all_k_report([[1, 1, 1, 1], [1, 0, 1, 1, 1]], 5)


def test_cover_counts_problems_at_or_above_the_threshold_exactly():
    rows = [[1, 1, 1, 0, 0], [1, 0, 0], [0, 0, 0, 0], [1, 1], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    rates = [Fraction(3, 5), Fraction(1, 3), Fraction(0), Fraction(1), Fraction(1, 10)]
    for tau in (0.0, 0.1, 1 / 3, 0.5, 0.6, 0.7, 1.0):
        expected = Fraction(
            sum(rate >= Fraction(tau) or float(rate) == tau for rate in rates), len(rates)
        )
        assert cover(rows, tau) == float(expected), tau
    taus = np.array([[0.0, 0.1], [0.6, 1.0]])
    assert cover(rows, taus).tolist() == [[1.0, 0.8], [0.4, 0.2]]
    assert cover(rows, 0.1) == 0.8  # 1/10 in floats equals the threshold 0.1: it counts


def test_cover_with_a_mask_uses_each_problems_valid_samples():
    correct = np.array([[1, 1, 0, 7], [0, 1, 5, 5], [1, 1, 1, 1]])
    mask = np.array(
        [[True, True, True, False], [True, True, False, False], [True, True, True, True]]
    )
    assert cover(correct, 0.5, mask=mask) == cover([[1, 1, 0], [0, 1], [1, 1, 1, 1]], 0.5) == 1.0
    assert cover(correct, 2 / 3, mask=mask) == pytest.approx(2 / 3)
    report = cover_report(correct, [0.5, 0.75], mask=mask, n_bootstrap=0)
    assert [row.estimate for row in report] == [1.0, pytest.approx(1 / 3)]


@pytest.mark.parametrize("k", [1, 2, 5, 16])
def test_pass_at_k_is_a_beta_1_k_weighted_average_of_the_cover_curve(k):
    """int_0^1 Cover@t k (1-t)^(k-1) dt = mean_p (1 - (1 - c_p/n_p)^k), the plug-in pass@k."""
    rng = np.random.default_rng(k)
    rows = random_ragged_binary(rng, problems=30, low=2, high=12)
    plug_in = np.mean([1 - (1 - r.mean()) ** k for r in rows])
    # Cover is a step function: integrate the weight exactly between its steps
    steps = np.unique(np.concatenate([[0.0, 1.0], [r.mean() for r in rows]]))
    midpoints = (steps[:-1] + steps[1:]) / 2
    mass = (1 - steps[:-1]) ** k - (1 - steps[1:]) ** k  # Beta(1, k) mass of each interval
    assert float(np.sum(cover(rows, midpoints) * mass)) == pytest.approx(plug_in, rel=1e-12)


def test_cover_report_se_interval_and_table():
    rng = np.random.default_rng(2)
    rows = random_ragged_binary(rng, problems=40, low=3, high=9)
    report = cover_report(rows, [0.5, 0.25, 0.5], seed=3)
    assert report.ks == [0.25, 0.5] and report.parameter == "tau" and report.metric == "cover@tau"
    for tau in (0.25, 0.5):
        hits = np.array([r.mean() >= tau for r in rows], dtype=float)
        row = report[tau]
        assert isinstance(row, EstimateAtTau)
        assert row.estimate == pytest.approx(hits.mean(), rel=1e-15)
        assert row.se == pytest.approx(hits.std(ddof=1) / math.sqrt(40), rel=1e-12)
        assert row.ci_low <= row.estimate <= row.ci_high
        assert (row.n_problems, row.n_skipped) == (40, 0)
    header = [cell.strip() for cell in report.to_markdown().splitlines()[0].split("|")[1:3]]
    assert header == ["tau", "cover@tau"]
    assert json.loads(json.dumps(report.to_dict()))["rows"][0]["tau"] == 0.25
    assert cover_report(rows, 0.5, seed=3)[0.5] == report[0.5]  # same seed, same interval


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: cover([[1, 0]], 1.5), r"tau must be a number in \[0, 1\]"),
        (lambda: cover([[1, 0]], float("nan")), r"tau must be a number in \[0, 1\]"),
        (lambda: cover([[1, 0]], "half"), r"tau must be a number in \[0, 1\]"),
        (lambda: cover([[1, 0]], True), r"tau must be a number in \[0, 1\]"),
        (lambda: cover([[1, 2]], 0.5), r"must hold only 0/1"),
        (lambda: cover([[1, 0], []], 0.5), r"has no samples"),
        (
            lambda: cover(np.ones((2, 2)), 0.5, mask=np.array([[1, 1], [0, 0]], bool)),
            r"has no samples",
        ),
        (
            lambda: cover(np.ones((2, 2)), 0.5, mask=np.ones((2, 3), bool)),
            r"mask must be a bool array",
        ),
        (lambda: cover([[1, 0]], 0.5, mask=[[1, 0]]), r"mask must be a bool array"),
        (lambda: cover_report([[1, 0]], []), r"taus is empty"),
    ],
)
def test_cover_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
