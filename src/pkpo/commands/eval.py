"""``pkpo eval``: unbiased pass@k, pass^k, maxg@k and Cover@tau with confidence intervals.

    pkpo eval samples.jsonl --k 1,2,4,8,16
    pkpo eval samples.jsonl --k 1,4 --metric pass@k,pass^k,cover@0.5
    pkpo eval samples.jsonl --k 1,10 --json results.json --plot passk.png --bootstrap 2000 --seed 1
    cat samples.jsonl | pkpo eval - --k 1,4
    pkpo eval samples_eval_results.json --k 1,10 --evalplus-tests base

Inputs, recognised from the content (:mod:`pkpo.commands.readers` describes each):
human-eval style JSONL (``passed`` or ``reward`` per line), EvalPlus's eval_results.json,
verifiers' results.jsonl, tinker-cookbook's trajectories.jsonl, lm-evaluation-harness per-sample
logs. gzip and stdin (``-``) work too; the input is streamed.

The metrics, per task with n samples of which c passed (Walder & Karkhanis, arXiv:2505.15201 v4):
pass@k = 1 - C(n - c, k) / C(n, k) (eq. 3); pass^k = C(c, k) / C(n, k), the chance that all k
samples pass; maxg@k, the expected best reward of k samples (eq. 12); Cover@tau, whether the
task's success rate c / n is at least tau (arXiv:2510.08325). Each is averaged over tasks with a
standard error and a percentile bootstrap interval from :mod:`pkpo.metrics`, which explains what
they mean. Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import metrics
from .._cli import Parser, UsageError, fail, k_list, missing_extra, non_negative_int
from .._output import (
    OutputPathError,
    atomic_write,
    check_output_path,
    markdown_table,
    write_json,
)
from ..estimators import pass_all_k_from_counts, pass_at_k_from_counts
from .readers import (
    EVALPLUS_TESTS,
    EvalInputError,
    GradedTasks,
    ReadOptions,
    open_samples,
    read_graded,
    read_path,
)

__all__ = ["METRICS", "Metric", "main", "metric_list", "plot_title"]

PROG = "pkpo eval"
PLOT_FORMATS = (".png", ".svg", ".pdf")
METRICS = ("pass@k", "pass^k", "maxg@k", "cover@TAU")


@dataclass(frozen=True)
class Metric:
    """One metric of ``--metric``: ``name`` is pass@k, pass^k, maxg@k or cover (with ``tau``)."""

    name: str
    tau: float | None = None

    @property
    def label(self) -> str:
        return f"cover@{self.tau:g}" if self.name == "cover" else self.name

    @property
    def needs_results(self) -> bool:
        """Whether it needs pass/fail results (everything but maxg@k)."""
        return self.name != "maxg@k"


def metric_list(text: str) -> list[Metric]:
    """Metrics as one comma-separated argument (``pass@k,pass^k,cover@0.5``); duplicates dropped."""
    chosen: list[Metric] = []
    for part in text.split(","):
        part = part.strip()
        if part in ("pass@k", "pass^k", "maxg@k"):
            metric = Metric(part)
        elif part.startswith("cover@"):
            try:
                tau = float(part.removeprefix("cover@"))
            except ValueError:
                tau = math.nan
            if not 0 < tau <= 1:
                raise argparse.ArgumentTypeError(f"cover@TAU needs 0 < TAU <= 1; got {part!r}")
            metric = Metric("cover", tau)
        else:
            raise argparse.ArgumentTypeError(
                f"expected metrics separated by commas among {', '.join(METRICS)}; got {part!r}"
            )
        if metric not in chosen:
            chosen.append(metric)
    return chosen


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number strictly between 0 and 1; got {text!r}"
        )
    return value


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Unbiased pass@k, pass^k, maxg@k and Cover@tau with standard errors and "
        "percentile bootstrap confidence intervals over tasks, from human-eval style JSONL, "
        "EvalPlus results, verifiers or tinker-cookbook results, or lm-evaluation-harness "
        "per-sample logs.",
    )
    parser.add_argument(
        "samples",
        help="JSONL file (gzip-compressed or not), EvalPlus eval_results.json, verifiers "
        "results.jsonl, tinker-cookbook trajectories.jsonl or an lm-evaluation-harness "
        "samples_*.jsonl; '-' reads stdin",
    )
    parser.add_argument(
        "--k", type=k_list, default=[1], metavar="K1,K2,...", help="values of k (default: 1)"
    )
    parser.add_argument(
        "--metric",
        type=metric_list,
        default=None,
        metavar="M1,M2,...",
        help="among pass@k, pass^k (all k samples pass), maxg@k (best reward of k) and "
        "cover@TAU (fraction of tasks with success rate >= TAU); default: pass@k for pass/fail "
        "results, maxg@k for rewards",
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write the numbers as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="write a figure (.png, .svg or .pdf) of each metric vs k with CI bars (needs "
        "matplotlib: pkpo[plot])",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --json / --plot files that exist"
    )
    parser.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=1000,
        metavar="N",
        help="bootstrap resamples of the tasks (default: 1000; 0: no interval)",
    )
    parser.add_argument(
        "--confidence", type=_confidence, default=0.95, help="interval coverage (default: 0.95)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="bootstrap seed (default: 0)"
    )
    parser.add_argument(
        "--skip-insufficient",
        action="store_true",
        help="leave out, at each k, tasks with fewer than k samples (default: error)",
    )
    parser.add_argument(
        "--pass-threshold",
        type=_threshold,
        default=None,
        metavar="T",
        help="a sample with a reward passes when reward >= T (default: the writer's rule: "
        "verifiers' pass_threshold, tinker-cookbook's reward > 0; plain reward files give maxg@k "
        "only)",
    )
    parser.add_argument(
        "--evalplus-tests",
        choices=EVALPLUS_TESTS,
        default="plus",
        help="for EvalPlus results: a sample passes when its base and plus tests pass (plus, "
        "EvalPlus's '+' score; default) or when its base tests pass (base)",
    )
    parser.add_argument(
        "--filter",
        metavar="NAME",
        default=None,
        help="for an lm-evaluation-harness log with several filters (gsm8k: strict-match, "
        "flexible-extract): the filter whose results to read",
    )
    return parser


def main(argv: list[str]) -> int:
    """Entry point of ``pkpo eval``; returns the exit code (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        return fail(PROG, error)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    try:
        _check_outputs(args)
        tasks = _load(args)
        chosen = args.metric or [Metric("pass@k" if _has_results(tasks) else "maxg@k")]
        reports = [_evaluate(group, tasks, args) for group in _grouped(chosen)]
    except (EvalInputError, OutputPathError, ValueError, OSError) as error:
        return fail(PROG, error)
    notes = list(tasks.notes) + _skip_notes(tasks, args, chosen)
    print(_summary(tasks, args, reports))
    print("\n\n".join(_table(report) for report in reports))
    for note in notes:
        print(f"note: {note}")
    try:
        if args.json is not None:
            payload = _payload(tasks, args, reports, notes)
            write_json(args.json, payload, indent=2)
            print(f"wrote {args.json}")
        if args.plot is not None:
            atomic_write(args.plot, _figure(tasks, reports, args.plot.suffix[1:].lower()))
            print(f"wrote {args.plot}")
    except OSError as error:
        return fail(PROG, f"could not write output: {error}")
    return 0


# --- input and outputs ------------------------------------------------------------------------


def _check_outputs(args) -> None:
    """Every output is checked before the input is read: no surprise after a long read."""
    inputs = [args.samples]
    if args.json is not None:
        check_output_path(args.json, overwrite=args.overwrite, inputs=inputs, what="--json")
    if args.plot is not None:
        if args.plot.suffix.lower() not in PLOT_FORMATS and not args.plot.is_dir():
            raise OutputPathError(
                f"--plot {str(args.plot)!r}: the file name must end in {', '.join(PLOT_FORMATS)} "
                "(the format of the figure)."
            )
        check_output_path(args.plot, overwrite=args.overwrite, inputs=inputs, what="--plot")
        if args.json is not None and args.json.resolve() == args.plot.resolve():
            raise OutputPathError("--json and --plot name the same file.")
        missing = missing_extra(["matplotlib"])
        if missing:
            raise OutputPathError("--plot " + missing.replace("this command", "", 1).strip())
    if args.metric and args.plot is not None and all(m.name == "cover" for m in args.metric):
        raise OutputPathError(
            "--plot draws metrics against k; cover@TAU has no k (add pass@k, pass^k or maxg@k)."
        )


def _load(args) -> GradedTasks:
    chosen = args.metric or []
    options = ReadOptions(
        evalplus_tests=args.evalplus_tests,
        pass_threshold=args.pass_threshold,
        keep_rewards=not chosen or any(m.name == "maxg@k" for m in chosen),
        lm_eval_filter=args.filter,
        metadata_dir=None if args.samples == "-" else Path(args.samples).parent,
    )
    if args.samples == "-":
        stdin = sys.stdin
        raw = stdin.buffer if hasattr(stdin, "buffer") else io.BytesIO(stdin.read().encode("utf-8"))
        return read_graded(open_samples(raw, "<stdin>"), "<stdin>", options)
    return read_path(args.samples, options)


# --- the numbers ------------------------------------------------------------------------------


def _has_results(tasks: GradedTasks) -> bool:
    return tasks.passed is not None or tasks.estimates is not None


def _grouped(chosen: list[Metric]) -> list[list[Metric]]:
    """One group per report, in the order asked: each metric of k alone, every cover@TAU together
    (one table with a row per TAU, where the first cover was asked)."""
    groups: list[list[Metric]] = []
    for metric in chosen:
        cover_group = next((g for g in groups if g[0].name == "cover"), None)
        if metric.name == "cover" and cover_group is not None:
            cover_group.append(metric)
        else:
            groups.append([metric])
    return groups


def _evaluate(group: list[Metric], tasks: GradedTasks, args) -> metrics.MetricReport:
    metric = group[0]
    _check_supported(metric, tasks)
    if metric.name == "cover":
        return metrics.cover_report(
            _outcome_rows(tasks.n, tasks.passed),
            [m.tau for m in group],
            n_bootstrap=args.bootstrap,
            confidence=args.confidence,
            seed=args.seed,
        )
    options = dict(
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
        skip_insufficient=args.skip_insufficient,
        problem_ids=tasks.task_ids,
    )
    try:
        if metric.name == "maxg@k":
            return metrics.maxg_at_k_report(tasks.rewards, args.k, **options)
        if tasks.estimates is not None:
            missing = [k for k in args.k if k not in tasks.estimates]
            if missing:
                raise EvalInputError(
                    f"the file has no pass@k for k={missing}: lm-evaluation-harness logs each "
                    "task's pass@k only for the k of its metric list (here "
                    f"{sorted(tasks.estimates)}), not the samples' own results; choose --k among "
                    "those."
                )
            return metrics.estimates_report(tasks.estimates, tasks.n, args.k, **options)
        per_task = {k: _per_task(metric, tasks.n, tasks.passed, k) for k in args.k}
        return metrics.estimates_report(per_task, tasks.n, args.k, metric=metric.label, **options)
    except metrics.InsufficientSamplesError as error:
        if error.problem is None:
            raise EvalInputError(
                f"no task has at least k={error.k} samples (the largest has {error.n})."
            ) from None
        raise EvalInputError(
            f"task {error.problem!r} has {_count(error.n, 'sample')}, fewer than k={error.k}; "
            "use --skip-insufficient to leave such tasks out at that k."
        ) from None


def _check_supported(metric: Metric, tasks: GradedTasks) -> None:
    if metric.name == "maxg@k" and tasks.rewards is None:
        raise EvalInputError(
            "maxg@k needs rewards; this file holds pass/fail results (use pass@k)."
        )
    if metric.needs_results and not _has_results(tasks):
        raise EvalInputError(
            f"{metric.label} needs pass/fail results, and this file holds rewards: give "
            "--pass-threshold T (a sample passes when reward >= T), or use maxg@k."
        )
    if metric.name != "pass@k" and tasks.estimates is not None:
        raise EvalInputError(
            f"{metric.label} needs the samples' results; this lm-evaluation-harness log holds "
            f"only per-task pass@k estimates for k in {sorted(tasks.estimates)}."
        )


_FROM_COUNTS = {"pass@k": pass_at_k_from_counts, "pass^k": pass_all_k_from_counts}


def _per_task(metric: Metric, n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Each task's unbiased pass@k or pass^k from its counts (eq. 3; C(c, k) / C(n, k)); NaN where
    it has fewer than k samples."""
    values = np.full(n.shape, np.nan)
    used = n >= k
    if used.any():
        values[used] = _FROM_COUNTS[metric.name](n[used], c[used], k)
    return values


def _outcome_rows(n: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
    """Per task, n outcomes of which the first c passed: what the counts say, as rows for
    :func:`pkpo.metrics.cover_report` (the order of outcomes does not matter to it)."""
    return [np.arange(size) < passed for size, passed in zip(n.tolist(), c.tolist())]


def _skip_notes(tasks: GradedTasks, args, chosen) -> list[str]:
    """With --skip-insufficient the rows of one metric may average over different tasks: say so."""
    if not args.skip_insufficient or all(m.name == "cover" for m in chosen):
        return []
    used = {k: int((tasks.n >= k).sum()) for k in args.k}
    total = len(tasks.task_ids)
    if all(count == total for count in used.values()):
        return []
    counts = ", ".join(f"k={k}: {count} of {total} tasks" for k, count in used.items())
    return [
        "--skip-insufficient left out tasks with fewer than k samples, so the rows average over "
        f"different tasks ({counts}); compare rows across k with care."
    ]


# --- what is printed and written --------------------------------------------------------------


def _fmt(value: float, digits: int = 4) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _table(report: metrics.MetricReport) -> str:
    """The markdown table of one metric (rows by k, or by tau for Cover@tau); no CI column with
    --bootstrap 0, no skipped column unless tasks were skipped."""
    with_ci = report.n_bootstrap > 0
    skipped = any(row.n_skipped for row in report)
    header = [report.parameter, report.metric, "SE"]
    header += [f"{100 * report.confidence:g}% CI"] if with_ci else []
    header += ["tasks"] + (["skipped"] if skipped else [])
    rows = []
    for row in report:
        cells = [f"{row[0]:g}", _fmt(row.estimate), _fmt(row.se)]
        cells += [f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"] if with_ci else []
        cells += [str(row.n_problems)] + ([str(row.n_skipped)] if skipped else [])
        rows.append(cells)
    align = "rrr" + ("l" if with_ci else "") + "r" + ("r" if skipped else "")
    return markdown_table(header, rows, align=align)


def _count(number: int, noun: str) -> str:
    """``3 tasks``, ``1 task``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _sizes(tasks: GradedTasks) -> str:
    low, high = int(tasks.n.min()), int(tasks.n.max())
    return f"{_count(low, 'sample')} each" if low == high else f"{low} to {high} samples per task"


def _summary(tasks: GradedTasks, args, reports) -> str:
    source = "<stdin>" if args.samples == "-" else args.samples
    origin = f" ({tasks.description})" if tasks.description else ""
    labels = ", ".join(report.metric for report in reports)
    first = reports[0]
    interval = (
        f"{100 * first.confidence:g}% CI: percentile bootstrap over tasks "
        f"({first.n_bootstrap} resamples, seed {first.seed})"
        if first.n_bootstrap
        else "no interval (--bootstrap 0)"
    )
    return (
        f"{labels} from {source}{origin}: {_count(len(tasks.task_ids), 'task')}, {_sizes(tasks)} "
        f"({_count(int(tasks.n.sum()), 'sample')})\n{interval}\n"
    )


def _payload(tasks: GradedTasks, args, reports, notes) -> dict:
    return {
        "reports": [report.to_dict() for report in reports],
        "input": {
            "file": "<stdin>" if args.samples == "-" else args.samples,
            "format": tasks.description or "jsonl",
            "n_tasks": len(tasks.task_ids),
            "n_samples": int(tasks.n.sum()),
            "min_samples_per_task": int(tasks.n.min()),
            "max_samples_per_task": int(tasks.n.max()),
        },
        "notes": notes,
    }


def plot_title(reports, n_tasks: int, bars: str) -> str:
    """The plot's title: the metrics and the tasks behind the points (per k when they differ)."""
    reports = list(reports)
    counts = [row.n_problems for row in reports[0]]
    if len(set(counts)) == 1:
        tasks = f"{counts[0]} tasks"
    else:
        per_k = ", ".join(f"k={row.k}: {row.n_problems}" for row in reports[0])
        tasks = f"tasks per point: {per_k}"
        tasks += f" of {n_tasks}"
    names = ", ".join(report.metric for report in reports)
    return f"{names} vs k ({tasks}; bars: {bars})"


def _figure(tasks: GradedTasks, reports, fmt: str) -> bytes:
    """The figure of every metric that has a k, as the bytes of a ``fmt`` file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [report for report in reports if report.parameter == "k"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    has_ci = False
    for report in curves:
        ks = np.array(report.ks, dtype=float)
        estimate = np.array([row.estimate for row in report])
        low = np.array([row.ci_low for row in report])
        high = np.array([row.ci_high for row in report])
        finite = np.isfinite(low) & np.isfinite(high)
        has_ci = has_ci or bool(finite.any())
        yerr = np.where(finite, [estimate - low, high - estimate], 0.0)
        ax.errorbar(ks, estimate, yerr=yerr, marker="o", capsize=4, lw=1.5, label=report.metric)
    ks = np.array(curves[0].ks, dtype=float)
    if len(ks) > 1 and ks.max() / ks.min() >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(int(k)) for k in ks])
    ax.set_xlabel("k")
    ax.set_ylabel(curves[0].metric if len(curves) == 1 else "estimate")
    if len(curves) > 1:
        ax.legend(fontsize=8)
    bars = f"{100 * curves[0].confidence:g}% bootstrap CI over tasks" if has_ci else "no interval"
    ax.set_title(plot_title(curves, len(tasks.task_ids), bars), fontsize=9, wrap=True)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120)
    plt.close(fig)
    return buffer.getvalue()
