"""What every reader shares: the error, the options, the result, and the per-task tally that
builds the result while a file is read, plus the places (line or task) that messages name."""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EVALPLUS_TESTS = ("plus", "base")


class EvalInputError(ValueError):
    """The samples file is malformed; the message names the file and the line (or the task)."""


def no_samples(source: str) -> EvalInputError:
    """The error for an input with nothing to count."""
    return EvalInputError(f"{source} contains no samples.")


class Line:
    """Where a record is: ``str()`` gives "<file> line <n>", ``ref`` "line <n>". Formatted only
    when a message needs it (one object per line is cheaper than two strings)."""

    __slots__ = ("source", "number")
    separator = " "

    def __init__(self, source: str, number: int):
        self.source, self.number = source, number

    def __str__(self) -> str:
        return f"{self.source}{self.separator}{self.ref}"

    @property
    def ref(self) -> str:
        return f"line {self.number}"


class Task(Line):
    """Where a task of a whole-document file is: "<file>: task <id>", ``ref`` "task <id>"."""

    __slots__ = ()
    separator = ": "

    @property
    def ref(self) -> str:
        return f"task {self.number!r}"


def is_number(value) -> bool:
    """True for a JSON number (an int or a float, not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float))


def is_task_id(value) -> bool:
    """True for a usable task id: a string or an integer (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (str, int))


def short(value, limit: int = 60) -> str:
    """JSON of ``value`` for a message, cut to ``limit`` characters."""
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _id_type_name(kind: type) -> str:
    return "a string" if kind is str else "an integer"


class Tally:
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

    def slot(self, task_id, where: Line) -> int:
        """The index of ``task_id`` (a new one for a new task) read at ``where``."""
        slot = self.index.get(task_id)
        if slot is not None:
            return slot
        kind = str if isinstance(task_id, str) else int
        if self.id_type is None:
            self.id_type, self.id_where = kind, where.ref
        elif kind is not self.id_type:
            raise EvalInputError(
                f"{where}: task id {task_id!r} is {_id_type_name(kind)}, but {self.id_where} has "
                f'{_id_type_name(self.id_type)} id; a file must use one type (1 and "1" would '
                "count as two tasks)."
            )
        slot = self.index[task_id] = len(self.n)
        self.n.append(0)
        self.passed.append(0)
        if self.rewards is not None:
            self.rewards.append(array("d"))
        return slot

    def add(self, task_id, where: Line, passed: bool | None, reward: float | None) -> None:
        """One more sample of ``task_id``."""
        slot = self.slot(task_id, where)
        self.n[slot] += 1
        self.passed[slot] += bool(passed)
        if self.rewards is not None and reward is not None:
            self.rewards[slot].append(reward)

    def set_counts(self, task_id, where: Line, n: int, passed: int = 0) -> None:
        """A task's counts at once (lm-evaluation-harness logs one document per line)."""
        slot = self.slot(task_id, where)
        self.n[slot], self.passed[slot] = n, passed

    def result(
        self, n_lines: int, has_passed: bool, has_rewards: bool, description: str, notes=()
    ) -> GradedTasks:
        rewards = None
        if self.rewards is not None and has_rewards:
            rewards = [np.frombuffer(r, dtype=np.float64) for r in self.rewards]
        return GradedTasks(
            list(self.index),
            np.frombuffer(self.n, dtype=np.int64).copy(),
            np.frombuffer(self.passed, dtype=np.int64).copy() if has_passed else None,
            rewards,
            None,
            n_lines,
            description,
            tuple(notes),
        )
