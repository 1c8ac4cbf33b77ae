"""``pkpo eval``: unbiased pass@k / maxg@k with confidence intervals from a file of graded samples.

    pkpo eval samples.jsonl --k 1,2,4,8,16
    pkpo eval samples.jsonl --k 1,10 --json results.json --plot passk.png --bootstrap 2000 --seed 1
    cat samples.jsonl | pkpo eval - --k 1,4
    pkpo eval samples_eval_results.json --k 1,10 --evalplus-tests base

Inputs, recognised from the content (:mod:`pkpo.commands.graded_samples` describes each): human-eval
style JSONL, one sample per line with ``passed`` (pass@k, eq. 3 of Walder & Karkhanis,
arXiv:2505.15201 v4) or ``reward`` (maxg@k, eq. 12); EvalPlus's eval_results.json, where
``--evalplus-tests`` says which tests a sample must pass; lm-evaluation-harness per-sample logs of
pass@k tasks. gzip and stdin (``-``) work too.

The numbers come from :mod:`pkpo.metrics`, which explains what the SE and the interval mean.
Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from .. import metrics
from .._cli import Parser, UsageError, fail, k_list, missing_extra, non_negative_int
from .graded_samples import EVALPLUS_TESTS, EvalInputError, TaskEstimates, read_input

__all__ = ["main", "plot_title"]

PROG = "pkpo eval"


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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Unbiased pass@k (field 'passed') or maxg@k (field 'reward') with standard "
        "errors and percentile bootstrap confidence intervals over tasks, from human-eval style "
        "JSONL, EvalPlus results or lm-evaluation-harness per-sample logs.",
    )
    parser.add_argument(
        "samples",
        help="JSONL file (gzip-compressed or not), EvalPlus eval_results.json or an "
        "lm-evaluation-harness samples_*.jsonl; '-' reads stdin",
    )
    parser.add_argument(
        "--k", type=k_list, default=[1], metavar="K1,K2,...", help="values of k (default: 1)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write the numbers as JSON")
    parser.add_argument(
        "--plot", type=Path, metavar="OUT.png",
        help="write a PNG of the estimate vs k with CI bars (needs matplotlib: pkpo[plot])",
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
        "--evalplus-tests",
        choices=EVALPLUS_TESTS,
        default="plus",
        help="for EvalPlus results: a sample passes when its base and plus tests pass (plus, "
        "EvalPlus's '+' score; default) or when its base tests pass (base)",
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
    if args.plot is not None and missing_extra(["matplotlib"]):
        return fail(PROG, "--plot " + missing_extra(["matplotlib"]).replace("this command", "", 1).strip())
    try:
        samples = _load(args.samples, args.evalplus_tests)
        report = _evaluate(samples, args)
    except (EvalInputError, ValueError, OSError) as error:
        return fail(PROG, error)
    print(_summary(samples, args, report))
    print(report.to_markdown(problems_label="tasks"))
    try:
        if args.json is not None:
            _write_json(args.json, samples, args, report)
            print(f"wrote {args.json}")
        if args.plot is not None:
            _write_plot(args.plot, samples, args, report)
            print(f"wrote {args.plot}")
    except OSError as error:
        return fail(PROG, f"could not write output: {error}")
    return 0


def _load(path: str, evalplus_tests: str = "plus"):
    if path == "-":
        stdin = sys.stdin
        data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
        return read_input(data, "<stdin>", evalplus_tests)
    if not Path(path).exists():
        raise EvalInputError(f"no such file: {path}")
    if not Path(path).is_file():
        raise EvalInputError(f"not a file: {path}")
    return read_input(Path(path).read_bytes(), path, evalplus_tests)


def _evaluate(samples, args) -> metrics.MetricReport:
    options = dict(
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
        skip_insufficient=args.skip_insufficient,
        problem_ids=samples.task_ids,
    )
    try:
        if isinstance(samples, TaskEstimates):
            missing = [k for k in args.k if k not in samples.estimates]
            if missing:
                raise EvalInputError(
                    f"the file has no pass@k for k={missing}: lm-evaluation-harness logs each task's "
                    f"pass@k only for the k of its metric list (here {sorted(samples.estimates)}), not "
                    "the samples' own results; choose --k among those."
                )
            return metrics.estimates_report(samples.estimates, samples.n, args.k, **options)
        report_fn = metrics.pass_at_k_report if samples.field == "passed" else metrics.maxg_at_k_report
        return report_fn(samples.values, args.k, **options)
    except metrics.InsufficientSamplesError as error:
        if error.problem is None:
            raise EvalInputError(
                f"no task has at least k={error.k} samples (the largest has {error.n})."
            ) from None
        raise EvalInputError(
            f"task {error.problem!r} has {error.n} samples, fewer than k={error.k}; "
            "use --skip-insufficient to leave such tasks out at that k."
        ) from None


def _sizes(samples) -> str:
    sizes = samples.sizes
    low, high = min(sizes), max(sizes)
    return f"{low} samples each" if low == high else f"{low} to {high} samples per task"


def _summary(samples, args, report) -> str:
    source = "<stdin>" if args.samples == "-" else args.samples
    origin = f" ({samples.description})" if samples.description else ""
    counted = (f"({sum(samples.sizes)} samples)" if isinstance(samples, TaskEstimates)
               else f"({samples.n_lines} samples)")
    interval = (
        f"{100 * report.confidence:g}% CI: percentile bootstrap over tasks "
        f"({report.n_bootstrap} resamples, "
        f"seed {report.seed})"
        if report.n_bootstrap
        else "no interval (--bootstrap 0)"
    )
    return (
        f"{report.metric} from {source}{origin}: {len(samples.task_ids)} tasks, {_sizes(samples)} "
        f"{counted}\n{interval}\n"
    )


def _write_json(path: Path, samples, args, report) -> None:
    payload = report.to_dict()
    payload["input"] = {
        "file": "<stdin>" if args.samples == "-" else args.samples,
        "field": samples.field,
        "format": samples.description or "jsonl",
        "n_tasks": len(samples.task_ids),
        "n_samples": int(sum(samples.sizes)),
        "min_samples_per_task": int(min(samples.sizes)),
        "max_samples_per_task": int(max(samples.sizes)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def plot_title(report: metrics.MetricReport, n_tasks: int, bars: str) -> str:
    """The plot's title: how many tasks stand behind the points (per k when they differ)."""
    counts = [row.n_problems for row in report]
    if len(set(counts)) == 1:
        tasks = f"{counts[0]} tasks"
    else:
        tasks = "tasks per point: " + ", ".join(f"k={row.k}: {row.n_problems}" for row in report)
        tasks += f" of {n_tasks}"
    return f"{report.metric} vs k ({tasks}; bars: {bars})"


def _write_plot(path: Path, samples, args, report) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = np.array(report.ks, dtype=float)
    estimate = np.array([row.estimate for row in report])
    low = np.array([row.ci_low for row in report])
    high = np.array([row.ci_high for row in report])
    has_ci = np.isfinite(low) & np.isfinite(high)
    yerr = np.where(has_ci, [estimate - low, high - estimate], 0.0)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.errorbar(ks, estimate, yerr=yerr, marker="o", capsize=4, lw=1.5)
    if len(ks) > 1 and ks.max() / ks.min() >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(int(k)) for k in ks])
    ax.set_xlabel("k")
    ax.set_ylabel(report.metric)
    bars = (
        f"{100 * report.confidence:g}% bootstrap CI over tasks" if has_ci.any() else "no interval"
    )
    ax.set_title(plot_title(report, len(samples.task_ids), bars), fontsize=9, wrap=True)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
