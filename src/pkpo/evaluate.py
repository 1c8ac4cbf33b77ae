"""``pkpo eval``: unbiased pass@k / maxg@k with confidence intervals from a JSONL file of samples.

    pkpo eval samples.jsonl --k 1,2,4,8,16
    pkpo eval samples.jsonl --k 1,10 --json results.json --plot passk.png --bootstrap 2000 --seed 1
    cat samples.jsonl | pkpo eval - --k 1,4

The input is human-eval style JSONL (``.jsonl`` or ``.jsonl.gz``): one sample per line, with a
``task_id`` (string or integer) and either ``passed`` (true/false or 0/1), which gives pass@k
(eq. 3 of Walder & Karkhanis, arXiv:2505.15201 v4), or ``reward`` (a finite number), which gives
maxg@k (eq. 12). Every line must use the same one of the two. Other fields are ignored; blank
lines are skipped; lines of one task may come in any order and tasks may have different numbers
of samples. The numbers come from :mod:`pkpo.metrics`, which explains what the SE and the
interval mean. Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics

__all__ = ["EvalInputError", "Samples", "main", "read_samples"]

PROG = "pkpo eval"


class EvalInputError(ValueError):
    """The samples file is malformed; the message names the line (or the task)."""


@dataclass
class Samples:
    """The samples of a JSONL file, grouped by task in order of first appearance."""

    field: str  # "passed" (pass@k) or "reward" (maxg@k)
    task_ids: list
    values: list[np.ndarray]  # one 1-D array per task: bool for "passed", float64 for "reward"
    n_lines: int  # number of samples read

    @property
    def metric(self) -> str:
        return "pass@k" if self.field == "passed" else "maxg@k"


def read_samples(lines, source: str = "<input>") -> Samples:
    """Parse human-eval style JSONL lines into per-task arrays, checking every line.

    Args:
        lines: an iterable of text lines (a file object works).
        source: name of the input, for messages.

    Raises:
        EvalInputError: naming the 1-based line number of the first bad line.

    Examples:
        >>> s = read_samples(['{"task_id": "a", "passed": true}', '{"task_id": "b", "passed": 0}',
        ...                   '{"task_id": "a", "passed": false}'])
        >>> s.task_ids, [v.tolist() for v in s.values]
        (['a', 'b'], [[True, False], [False]])
    """
    field = None
    field_line = 0
    groups: dict = {}
    n_lines = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvalInputError(
                f"line {number}: invalid JSON ({error.msg} at column {error.colno})."
            ) from None
        if not isinstance(record, dict):
            raise EvalInputError(
                f"line {number}: expected a JSON object, got {type(record).__name__}."
            )
        task_id = _task_id(record, number)
        present = [name for name in ("passed", "reward") if name in record]
        if not present:
            raise EvalInputError(
                f"line {number}: missing 'passed' (for pass@k) or 'reward' (for maxg@k)."
            )
        if len(present) == 2:
            raise EvalInputError(
                f"line {number}: has both 'passed' and 'reward'; each file must use one of them."
            )
        if field is None:
            field, field_line = present[0], number
        elif present[0] != field:
            raise EvalInputError(
                f"line {number}: has '{present[0]}' but line {field_line} has '{field}'; "
                "a file must not mix pass@k and maxg@k samples."
            )
        value = (
            _passed(record["passed"], number)
            if field == "passed"
            else _reward(record["reward"], number)
        )
        groups.setdefault(task_id, []).append(value)
        n_lines += 1
    if field is None:
        raise EvalInputError(f"{source} contains no samples.")
    dtype = bool if field == "passed" else np.float64
    return Samples(
        field, list(groups), [np.asarray(v, dtype=dtype) for v in groups.values()], n_lines
    )


def _task_id(record: dict, number: int):
    if "task_id" not in record:
        raise EvalInputError(f"line {number}: missing 'task_id'.")
    task_id = record["task_id"]
    if isinstance(task_id, bool) or not isinstance(task_id, (str, int)):
        raise EvalInputError(
            f"line {number}: task_id must be a string or an integer; got {task_id!r}."
        )
    return task_id


def _passed(value, number: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise EvalInputError(
        f"line {number}: 'passed' must be true/false or 0/1; got {json.dumps(value)}."
    )


def _reward(value, number: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalInputError(f"line {number}: 'reward' must be a number; got {json.dumps(value)}.")
    value = float(value)
    if math.isnan(value):
        raise EvalInputError(f"line {number}: 'reward' is NaN.")
    if math.isinf(value):
        raise EvalInputError(f"line {number}: 'reward' is infinite.")
    return value


# --- command line ------------------------------------------------------------------------------


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clean line instead of usage + message + SystemExit
        raise _ArgumentError(message)


def _parse_ks(text: str) -> list[int]:
    ks = []
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or int(part) < 1:
            raise argparse.ArgumentTypeError(
                f"--k needs positive integers separated by commas; got {text!r}"
            )
        ks.append(int(part))
    return sorted(set(ks))


def _non_negative_int(text: str) -> int:
    if not (text.isascii() and text.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}")
    return int(text)


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
    parser = _Parser(
        prog=PROG,
        description="Unbiased pass@k (field 'passed') or maxg@k (field 'reward') with standard "
        "errors and "
        "percentile bootstrap confidence intervals over tasks, from human-eval style JSONL.",
    )
    parser.add_argument(
        "samples", help="JSONL file (.jsonl or .jsonl.gz), one sample per line; '-' reads stdin"
    )
    parser.add_argument(
        "--k", type=_parse_ks, default=[1], metavar="K1,K2,...", help="values of k (default: 1)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write the numbers as JSON")
    parser.add_argument(
        "--plot", type=Path, metavar="OUT.png", help="write a PNG of the estimate vs k with CI bars"
    )
    parser.add_argument(
        "--bootstrap",
        type=_non_negative_int,
        default=1000,
        metavar="N",
        help="bootstrap resamples of the tasks (default: 1000; 0: no interval)",
    )
    parser.add_argument(
        "--confidence", type=_confidence, default=0.95, help="interval coverage (default: 0.95)"
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=0, help="bootstrap seed (default: 0)"
    )
    parser.add_argument(
        "--skip-insufficient",
        action="store_true",
        help="leave out, at each k, tasks with fewer than k samples (default: error)",
    )
    return parser


def main(argv: list[str]) -> int:
    """Entry point of ``pkpo eval``; returns the exit code (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except _ArgumentError as error:
        return _fail(str(error))
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    try:
        samples = _load(args.samples)
        report = _evaluate(samples, args)
    except (EvalInputError, ValueError, OSError) as error:
        return _fail(str(error))
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
        return _fail(f"could not write output: {error}")
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _load(path: str) -> Samples:
    if path == "-":
        return read_samples(sys.stdin, "<stdin>")
    if not Path(path).exists():
        raise EvalInputError(f"no such file: {path}")
    if not Path(path).is_file():
        raise EvalInputError(f"not a file: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return read_samples(handle, path)
    except UnicodeDecodeError as error:
        raise EvalInputError(f"{path} is not UTF-8 text ({error.reason}).") from None
    except (gzip.BadGzipFile, EOFError) as error:
        raise EvalInputError(f"{path} is not a readable gzip file ({error}).") from None


def _evaluate(samples: Samples, args) -> metrics.MetricReport:
    report_fn = metrics.pass_at_k_report if samples.field == "passed" else metrics.maxg_at_k_report
    try:
        return report_fn(
            samples.values,
            args.k,
            n_bootstrap=args.bootstrap,
            confidence=args.confidence,
            seed=args.seed,
            skip_insufficient=args.skip_insufficient,
            problem_ids=samples.task_ids,
        )
    except metrics.InsufficientSamplesError as error:
        if error.problem is None:
            raise EvalInputError(
                f"no task has at least k={error.k} samples (the largest has {error.n})."
            ) from None
        raise EvalInputError(
            f"task {error.problem!r} has {error.n} samples, fewer than k={error.k}; "
            "use --skip-insufficient to leave such tasks out at that k."
        ) from None


def _sizes(samples: Samples) -> str:
    sizes = [v.size for v in samples.values]
    low, high = min(sizes), max(sizes)
    return f"{low} samples each" if low == high else f"{low} to {high} samples per task"


def _summary(samples: Samples, args, report) -> str:
    source = "<stdin>" if args.samples == "-" else args.samples
    interval = (
        f"{100 * report.confidence:g}% CI: percentile bootstrap over tasks "
        f"({report.n_bootstrap} resamples, "
        f"seed {report.seed})"
        if report.n_bootstrap
        else "no interval (--bootstrap 0)"
    )
    return (
        f"{report.metric} from {source}: {len(samples.task_ids)} tasks, {_sizes(samples)} "
        f"({samples.n_lines} samples)\n{interval}\n"
    )


def _write_json(path: Path, samples: Samples, args, report) -> None:
    payload = report.to_dict()
    payload["input"] = {
        "file": "<stdin>" if args.samples == "-" else args.samples,
        "field": samples.field,
        "n_tasks": len(samples.task_ids),
        "n_samples": samples.n_lines,
        "min_samples_per_task": int(min(v.size for v in samples.values)),
        "max_samples_per_task": int(max(v.size for v in samples.values)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _write_plot(path: Path, samples: Samples, args, report) -> None:
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
    ax.set_title(f"{report.metric} vs k ({len(samples.task_ids)} tasks; bars: {bars})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
