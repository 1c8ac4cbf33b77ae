"""EvalPlus: a sample passes on ``evalplus_tests="plus"`` (EvalPlus's "+" score) when its base
and plus tests both pass, on ``"base"`` when its base tests pass. Its statuses come as lines with
``base_status`` / ``plus_status`` (read in :mod:`._samples`) or as the ``eval`` object of
``*_eval_results.json`` (v0.2.1 and later, and the older ``{"base": [[status, ...]], ...}``)."""

from __future__ import annotations

from ._base import EvalInputError, GradedTasks, Tally, Task, no_samples, short

_EVALPLUS_PASS = ("pass", "success")  # v0.2.1+ and v0.1-0.2.0 spellings of a passing status


def evalplus_passed(record, evalplus_tests: str, where) -> bool:
    """Whether one v0.2.1+ result (``{"base_status": ..., "plus_status": ...}``) passes."""
    if not isinstance(record, dict) or "base_status" not in record:
        raise EvalInputError(
            f"{where}: an EvalPlus result needs 'base_status' ('pass', 'fail' or 'timeout')."
        )
    base = record["base_status"] in _EVALPLUS_PASS
    if evalplus_tests == "base":
        return base
    # as evalplus.evaluate counts it: base_status == plus_status == "pass" (a null status fails)
    return base and record.get("plus_status") in _EVALPLUS_PASS


def has_plus_status(record) -> bool:
    """Whether a v0.2.1+ result carries a plus-test status (not so with --base-only)."""
    return isinstance(record, dict) and record.get("plus_status") is not None


def check_plus(where, evalplus_tests: str, has_plus: bool) -> None:
    """Counting the plus tests needs them to have run."""
    if evalplus_tests == "plus" and not has_plus:
        raise EvalInputError(_no_plus(where))


def _no_plus(where) -> str:
    return (
        f"{where} has no plus-test results (EvalPlus ran with --base-only); "
        "use --evalplus-tests base to count the base tests."
    )


def evalplus_description(evalplus_tests: str) -> str:
    """The summary line's account of ``passed``."""
    return (
        "EvalPlus, passed = base and plus tests pass"
        if evalplus_tests == "plus"
        else "EvalPlus, passed = base tests pass"
    )


def _status_of(result, where) -> str:
    if isinstance(result, list) and result and isinstance(result[0], str):
        return result[0]
    raise EvalInputError(
        f"{where}: an EvalPlus result must be [status, details]; got {short(result)}."
    )


def _old_layout_passed(entry: dict, evalplus_tests: str, where) -> list[bool]:
    """Passed per sample of ``{"base": [[status, details], ...], "plus": [...]}`` (v0.1-0.2.0)."""
    base = [_status_of(r, where) in _EVALPLUS_PASS for r in entry["base"]]
    if evalplus_tests != "plus":
        return base
    plus = entry.get("plus") or []
    if len(plus) != len(base):
        raise EvalInputError(_no_plus(where))
    return [b and _status_of(p, where) in _EVALPLUS_PASS for b, p in zip(base, plus)]


def _task_passed(entry, evalplus_tests: str, where) -> tuple[list[bool], bool]:
    """(passed per sample, whether plus tests ran) for one task of ``results["eval"]``."""
    if isinstance(entry, list):
        passed = [evalplus_passed(r, evalplus_tests, where) for r in entry]
        return passed, any(has_plus_status(r) for r in entry)
    if isinstance(entry, dict) and isinstance(entry.get("base"), list):
        return _old_layout_passed(entry, evalplus_tests, where), bool(entry.get("plus") or [])
    raise EvalInputError(
        f"{where} is not in a known EvalPlus format (a list of results with "
        "'base_status', or an object with 'base' and 'plus')."
    )


def read_evalplus(results: dict, source: str, evalplus_tests: str) -> GradedTasks:
    """EvalPlus's ``results["eval"]``: {task_id: [{base_status, plus_status, ...}, ...]} (v0.2.1+)
    or {task_id: {"base": [[status, details], ...], "plus": [...], "nfiles" | "files": ...}}."""
    tally, has_plus = Tally(keep_rewards=False), False
    for task_id, entry in results.items():
        where = Task(source, task_id)
        passed, task_has_plus = _task_passed(entry, evalplus_tests, where)
        has_plus = has_plus or task_has_plus
        if not passed:
            raise EvalInputError(
                f"{where} has no results (an empty list); evalplus.evaluate writes every task's "
                "samples, so the file is incomplete. Remove the task to leave it out of the "
                "denominator on purpose."
            )
        for value in passed:
            tally.add(task_id, where, value, None)
    if not tally.index:
        raise no_samples(source)
    check_plus(source, evalplus_tests, has_plus)
    return tally.result(int(sum(tally.n)), True, False, evalplus_description(evalplus_tests))
