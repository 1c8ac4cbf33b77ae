"""lm-evaluation-harness per-sample logs (``samples_<task>_<date>.jsonl`` of ``--log_samples``):
one line per document and filter. A per-response score (``exact_match``, ``pass_at_1``,
``pass@1``: the mean over the document's c of n graded responses) gives c = score * n; a pass@k
task logs only its per-document pass@k estimates."""

from __future__ import annotations

import re

import numpy as np

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

# lm-evaluation-harness metrics that are the mean over a document's graded responses
_LM_EVAL_PER_RESPONSE = ("pass@1", "pass_at_1", "exact_match")
_PASS_AT_K = re.compile(r"pass@(\d+)")


def _check_sample(record: dict, where) -> None:
    if "doc_id" not in record or not isinstance(record.get("resps"), list):
        raise EvalInputError(
            f"{where}: not an lm-evaluation-harness sample (needs 'doc_id' and 'resps')."
        )


class _FilterChoice:
    """Which filter's lines count: the one asked for, else the only one in the file."""

    def __init__(self, wanted: str | None):
        self.wanted = wanted
        self.seen: dict = {}  # str(filter) -> where first seen
        self.first = None  # (filter, where) of the first line, when none was asked for

    def keeps(self, record: dict, where) -> bool:
        """Whether this line's filter counts; a second filter (none asked for) is an error."""
        name = record.get("filter")
        self.seen.setdefault(str(name), where.ref)
        if self.wanted is not None:
            return str(name) == self.wanted
        if self.first is None:
            self.first = (name, where.ref)
        elif name != self.first[0]:
            raise EvalInputError(
                f"{where} has filter {name!r} but {self.first[1]} has "
                f"{self.first[0]!r}: the file holds the results of several filters; choose "
                "one with --filter NAME."
            )
        return True

    @property
    def chosen(self):
        return self.wanted if self.wanted is not None else self.first[0]


def _doc_id(record: dict, where):
    doc_id = record["doc_id"]
    if not is_task_id(doc_id):
        raise EvalInputError(
            f"{where}: 'doc_id' must be an integer (or a string); got {short(doc_id)}."
        )
    return doc_id


def _graded_responses(record: dict, where) -> int:
    """How many responses lm-evaluation-harness scored for this document.

    Its metrics see ``filtered_resps[0]``: a list of n responses when the task's filter keeps
    them all (humaneval's create_test, mbpp_instruct's extract_code), one string when it takes
    the first (the default ``take_first``, gsm8k's filters).
    """
    filtered = record.get("filtered_resps")
    if not isinstance(filtered, list) or not filtered:
        raise EvalInputError(
            f"{where}: an lm-evaluation-harness sample needs 'filtered_resps' (a non-empty list)."
        )
    first = filtered[0]
    if isinstance(first, list):
        if not first:
            raise EvalInputError(f"{where}: 'filtered_resps' holds no response.")
        return len(first)
    return 1


def _scoring(record: dict, where) -> tuple[str, str | None, dict]:
    """(mode, per-response score name, {k: pass@k key}): mode "counts" for a per-response score,
    "estimates" for pass@k keys only."""
    per_k = {int(m.group(1)): key for key in record if (m := _PASS_AT_K.fullmatch(key))}
    score_name = next((key for key in _LM_EVAL_PER_RESPONSE if key in record), None)
    if score_name:
        return "counts", score_name, per_k
    if per_k:
        return "estimates", None, per_k
    logged = {"doc", "arguments", "resps", "filtered_resps"}
    names = record.get("metrics") or sorted(set(record) - logged)
    raise EvalInputError(
        f"{where}: this lm-evaluation-harness sample has no score pkpo eval reads "
        f"(metrics: {names}); it reads a per-response score "
        f"({', '.join(_LM_EVAL_PER_RESPONSE)}) or pass@k estimates."
    )


def _score_in_unit(value, name: str, where) -> float:
    if not is_number(value) or not 0 <= value <= 1:
        raise EvalInputError(f"{where}: '{name}' must be a number in [0, 1]; got {short(value)}.")
    return float(value)


def _passed_of_score(record: dict, score_name: str, graded: int, where) -> int:
    """c = score * n, which must be a whole number (to 1e-6 per response)."""
    score = _score_in_unit(record[score_name], score_name, where)
    correct = score * graded
    if abs(correct - round(correct)) > 1e-6 * graded:
        raise EvalInputError(
            f"{where}: '{score_name}' = {score!r} is not a fraction of its {graded} "
            "graded responses."
        )
    return int(round(correct))


def _partly_graded(resps: list, graded: int) -> bool:
    """Whether the filter graded fewer responses than were generated (it took the first)."""
    return isinstance(resps[0] if resps else None, list) and len(resps[0]) > graded


def read_lm_eval(records, source: str, options: ReadOptions) -> GradedTasks:
    """lm-evaluation-harness ``--log_samples`` lines: one document (task) per line and filter."""
    filters = _FilterChoice(options.lm_eval_filter)
    tally = Tally(keep_rewards=False)
    estimates: list[dict] = []
    mode = mode_where = metric_name = None
    ungraded = 0
    for where, record in records:
        _check_sample(record, where)
        if not filters.keeps(record, where):
            continue
        doc_id = _doc_id(record, where)
        if doc_id in tally.index:
            raise EvalInputError(
                f"{where}: doc_id {doc_id!r} appears twice; pass one task's log at a time."
            )
        graded = _graded_responses(record, where)
        line_mode, score_name, per_k = _scoring(record, where)
        if mode is None:
            mode, mode_where, metric_name = line_mode, where.ref, score_name
        elif line_mode != mode or score_name != metric_name:
            raise EvalInputError(
                f"{where} is scored differently from {mode_where}; pass one task's log at a time."
            )
        if mode == "counts":
            passed = _passed_of_score(record, score_name, graded, where)
            tally.set_counts(doc_id, where, graded, passed)
            ungraded += _partly_graded(record["resps"], graded)
        else:
            values = {k: _score_in_unit(record[key], key, where) for k, key in per_k.items()}
            tally.set_counts(doc_id, where, graded)
            estimates.append(values)
    if not tally.index:
        if filters.wanted is not None:
            raise EvalInputError(
                f"{source} has no line with filter {filters.wanted!r} "
                f"(filters: {sorted(filters.seen)})."
            )
        raise no_samples(source)
    return _result(tally, mode, metric_name, estimates, filters.chosen, ungraded)


def _result(tally: Tally, mode: str, metric_name, estimates: list, chosen, ungraded: int):
    """The GradedTasks of a log: counts, or per-task pass@k estimates (NaN where not logged)."""
    label = f"lm-evaluation-harness, filter {chosen!r}"
    notes = []
    if ungraded:
        notes.append(
            f"lm-evaluation-harness graded only some of the responses of {ungraded} documents "
            "(its filter takes the first); only the graded ones count."
        )
    n_docs = len(tally.index)
    if mode == "counts":
        return tally.result(n_docs, True, False, f"{label}, passed from '{metric_name}'", notes)
    ks = sorted({k for values in estimates for k in values})
    result = tally.result(n_docs, False, False, f"{label}, per-task pass@k estimates", notes)
    result.estimates = {
        k: np.array([v.get(k, np.nan) for v in estimates], dtype=np.float64) for k in ks
    }
    return result
