"""The graded-sample files that ``pkpo eval`` reads, recognised from their content.

- **human-eval style JSONL**: one sample per line, with a ``task_id`` (string or integer) and
  either ``passed`` (true/false or 0/1), which gives pass@k (eq. 3 of Walder & Karkhanis,
  arXiv:2505.15201 v4), or ``reward`` (a finite number), which gives maxg@k (eq. 12). Every line
  must use the same one of the two. Lines with EvalPlus's ``base_status`` / ``plus_status``
  instead of ``passed`` count as passed per ``evalplus_tests``. Other fields are ignored; blank
  lines are skipped; lines of one task may come in any order and tasks may have different
  numbers of samples.
- **EvalPlus results** (``*_eval_results.json`` / ``eval_results.json`` of ``evalplus.evaluate``,
  the format of v0.2.1 and later, and the older ``{"base": [[status, ...]], "plus": ...}`` form):
  a sample passes on ``evalplus_tests="plus"`` (the default, EvalPlus's "+" score) when its base
  and plus tests both pass, on ``"base"`` when its base tests pass.
- **lm-evaluation-harness per-sample logs** (``samples_<task>_<date>.jsonl`` of ``--log_samples``)
  of pass@k tasks such as ``humaneval_64``: they hold each task's pass@k estimate for the k of the
  task's metric list (computed from that task's n samples with the same estimator), not the
  samples' own results, so only those k can be reported.

gzip is recognised by its magic bytes; text is UTF-8 with or without a byte-order mark. Every
error is an :class:`EvalInputError` naming the line or the task.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["EVALPLUS_TESTS", "EvalInputError", "Samples", "TaskEstimates", "read_input", "read_samples"]

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
