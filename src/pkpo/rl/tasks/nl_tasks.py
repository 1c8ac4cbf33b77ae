"""Natural-language verifiable tasks for pretrained language models (implement
``pkpo.rl.interfaces.Task``).

Two procedurally generated task families, both deterministic for a seed and split by problem (a
held-out problem's text never occurs in the train split):

- :class:`ArithmeticWordTask` (binary reward): multi-step arithmetic word problems::

      Mia has 7 marbles. She buys 5 more. Then she gives away 3. How many marbles does Mia have now?

  Difficulty knob ``difficulty`` = the number of operations (1..4); higher difficulties also use
  larger numbers and multiplication. Reward 1 when the parsed answer equals the reference integer.
  The parser (:func:`extract_answer`) tolerates formatting ("The answer is 42.", "**42**",
  "= 42", "\\boxed{42}", "42.0", "1,234") and rejects hedges ("42 or 43").

- :class:`SortNumbersTask` (continuous reward in [0, 1]): "Sort these numbers from smallest to
  largest: 17, 4, 29". Partial credit: the fraction of positions of the reference order that the
  completion's list gets right, divided by the longer of the two lists (so padding or truncating
  the list costs credit). Difficulty = list length.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from .. import seeding
from ..interfaces import Problem, build_task

NAMES = (
    "Mia",
    "Tom",
    "Ava",
    "Leo",
    "Zoe",
    "Sam",
    "Ivy",
    "Max",
    "Eva",
    "Ben",
    "Lily",
    "Noah",
    "Emma",
    "Jack",
)
ITEMS = (
    "apples",
    "marbles",
    "stickers",
    "books",
    "coins",
    "cookies",
    "pencils",
    "shells",
    "cards",
    "stamps",
)
DIFFICULTIES = (1, 2, 3, 4)
# (largest starting amount, largest added/removed amount, largest multiplier) per difficulty
NUMBER_RANGES = {1: (10, 9, 2), 2: (20, 12, 3), 3: (30, 15, 3), 4: (50, 20, 4)}
ANSWER_INSTRUCTION = "Reply with only the final number."

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
# An explicit answer marker followed by a number; the number is group "num".
_MARKED = re.compile(
    r"(?:answer\s*(?:is|:|=)?\s*[:=]?\s*(?:\$|\*\*)?\s*"  # "answer is 42", "Answer: **42**"
    r"|\\boxed\{\s*"  # \boxed{42}
    r"|\*\*\s*"  # **42**
    r"|=\s*(?:\*\*)?\s*"  # "= 42"
    r")(?P<num>" + _NUMBER + r")",
    re.IGNORECASE,
)
_HEDGE = re.compile(r"^\s*(?:\*\*)?\s*(?:or|and|to|-|/)\s*" + _NUMBER)
_HEDGE_BEFORE = re.compile(_NUMBER + r"\s*(?:\*\*)?\s*(?:or|to)\s*$")
_ANY_NUMBER = re.compile(r"(?<![\w.])" + _NUMBER + r"(?![\w])")


def parse_number(text: str) -> int | None:
    """An integer from a number literal: "42", "-7", "1,234", "42.0"; None for 42.5 or malformed
    text."""
    text = text.strip().rstrip(".")
    if "," in text:
        head, *groups = text.split(",")
        if (
            not head.lstrip("-")
            or len(head.lstrip("-")) > 3
            or any(len(g.split(".")[0]) != 3 for g in groups)
        ):
            return None
        text = text.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    if not np.isfinite(value) or value != int(value):
        return None
    return int(value)


def extract_answer(completion: str) -> int | None:
    """The integer a completion commits to, or None.

    1. The last explicit answer marker wins: "answer is N", "Answer: N", "\\boxed{N}", "**N**",
       "= N" (so "The answer is 41. No, the answer is 42." gives 42). A marked number joined to
       another number by "or"/"to"/"and" ("42 or 43", "**41** or **42**") is a hedge: None.
    2. Otherwise the last number in the text ("Mia has 15 marbles." gives 15).
    """
    if not isinstance(completion, str):
        return None
    marked = list(_MARKED.finditer(completion))
    if marked:
        last = marked[-1]
        if _HEDGE.match(completion[last.end() :]) or _HEDGE_BEFORE.search(
            completion[: last.start()]
        ):
            return None
        return parse_number(last.group("num"))
    numbers = _ANY_NUMBER.findall(completion)
    if not numbers:
        return None
    return parse_number(numbers[-1])


def _stable_fraction(text: str, seed: int) -> float:
    """A deterministic number in [0, 1) from a problem text: the train / held-out split key."""
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _split_problems(
    make_one, n_train: int, n_heldout: int, seed: int, heldout_fraction: float, max_tries: int
) -> dict[str, list[Problem]]:
    """Generate distinct problems until both splits are full; a problem's split is a hash of its
    text."""
    rng = seeding.stream(seed, "nl_problems")
    seen: set[str] = set()
    split = {"train": [], "heldout": []}
    want = {"train": n_train, "heldout": n_heldout}
    for _ in range(max_tries):
        if all(len(split[s]) >= want[s] for s in split):
            break
        prompt, answer = make_one(rng)
        if prompt in seen:
            continue
        seen.add(prompt)
        which = "heldout" if _stable_fraction(prompt, seed) < heldout_fraction else "train"
        if len(split[which]) < want[which]:
            split[which].append(
                Problem(uid=f"{which}-{len(split[which])}", prompt=prompt, answer=answer)
            )
    else:
        raise ValueError(
            f"could not generate {n_train} train and {n_heldout} held-out distinct problems; "
            f"ask for fewer"
        )
    return split


# ---- arithmetic word problems
# ----------------------------------------------------------------------


def word_problem(rng: np.random.Generator, difficulty: int) -> tuple[str, int]:
    """One multi-step word problem of ``difficulty`` operations and its integer answer."""
    start_max, step_max, mult_max = NUMBER_RANGES[difficulty]
    name = NAMES[int(rng.integers(len(NAMES)))]
    item = ITEMS[int(rng.integers(len(ITEMS)))]
    pronoun = "She" if name in ("Mia", "Ava", "Zoe", "Ivy", "Eva", "Lily", "Emma") else "He"
    total = int(rng.integers(2, start_max + 1))
    sentences = [f"{name} has {total} {item}."]
    ops = ["add", "sub"] + (["mul"] if difficulty >= 2 else [])
    for step in range(difficulty):
        op = ops[int(rng.integers(len(ops)))]
        if op == "sub" and total < 2:
            op = "add"
        then = "" if step == 0 else "Then "
        subject = pronoun if step == 0 else pronoun.lower()
        if op == "add":
            amount = int(rng.integers(1, step_max + 1))
            total += amount
            sentences.append(f"{then}{subject} gets {amount} more.")
        elif op == "sub":
            amount = int(rng.integers(1, min(step_max, total - 1) + 1))
            total -= amount
            sentences.append(f"{then}{subject} gives away {amount}.")
        else:
            factor = int(rng.integers(2, mult_max + 1))
            total *= factor
            if factor in (2, 3):
                word = "doubles" if factor == 2 else "triples"
                sentences.append(f"{then}{subject} {word} the number of {item}.")
            else:
                sentences.append(f"{then}{subject} ends up with {factor} times as many {item}.")
    sentences.append(f"How many {item} does {name} have now? {ANSWER_INSTRUCTION}")
    return " ".join(sentences), total


@dataclass(frozen=True)
class ArithmeticConfig:
    difficulty: int = 1  # number of operations, 1..4
    n_train: int = 512
    n_heldout: int = 64
    seed: int = 0
    heldout_fraction: float = 0.2  # share of generated problems that land in the held-out split

    def validate(self) -> "ArithmeticConfig":
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {self.difficulty!r}")
        _check_split(self)
        return self


def _check_split(config) -> None:
    """The split fields every task config shares: n_train, n_heldout >= 1, heldout_fraction in (0,
    1)."""
    if config.n_train < 1 or config.n_heldout < 1:
        raise ValueError(
            f"n_train and n_heldout must be >= 1, got {config.n_train}, {config.n_heldout}"
        )
    if not 0.0 < config.heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {config.heldout_fraction}")


class _GeneratedTask:
    """A task whose problems come from a seeded generator, split into train / held-out by
    problem."""

    def _generate(self, name: str, make_problem) -> None:
        c = self.config
        self.name = name
        self._split = _split_problems(
            make_problem,
            c.n_train,
            c.n_heldout,
            c.seed,
            c.heldout_fraction,
            max_tries=50 * (c.n_train + c.n_heldout),
        )

    def problems(self, split: str) -> list[Problem]:
        if split not in self._split:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'heldout'")
        return list(self._split[split])

    def spec(self) -> dict:
        return {"name": self.name, **asdict(self.config)}


class ArithmeticWordTask(_GeneratedTask):
    """Multi-step arithmetic word problems with a binary reward (module docstring)."""

    binary = True

    def __init__(self, config: ArithmeticConfig | None = None, **kwargs):
        self.config = (config or ArithmeticConfig(**kwargs)).validate()
        difficulty = self.config.difficulty
        self._generate(f"arithmetic-d{difficulty}", lambda rng: word_problem(rng, difficulty))

    def score(self, problem: Problem, completion: str) -> float:
        """1.0 when :func:`extract_answer` finds the reference integer, else 0.0."""
        return float(extract_answer(completion) == problem.answer)


def exemplar_prompt(problem_text: str, exemplar: Problem) -> str:
    """A problem's prompt with a one-shot answer-format exemplar: a worked problem and its bare
    answer, then the problem, so that the expected format is shown rather than learned::

        Question: <exemplar without the instruction>
        Answer: <its answer>

        Question: <problem without the instruction>
        Answer with only the final number, as in the example.
    """
    question, example = (
        text.replace(" " + ANSWER_INSTRUCTION, "") for text in (problem_text, exemplar.prompt)
    )
    return (
        f"Question: {example}\nAnswer: {exemplar.answer}\n\nQuestion: {question}\n"
        f"Answer with only the final number, as in the example."
    )


EXEMPLAR_SUFFIX = "-exemplar"  # task names: nl:arithmetic-d2-exemplar


class ExemplarTask:
    """Arithmetic word problems whose prompts carry a one-shot answer-format exemplar
    (:func:`exemplar_prompt`).

    The exemplar is the wrapped task's first training problem; it is removed from the training
    split, so no training prompt shows its own answer. Problems keep their uid and answer; the
    reward is the wrapped task's. Name: ``<wrapped name>-exemplar``.
    """

    def __init__(self, task: "ArithmeticWordTask"):
        if not isinstance(task, ArithmeticWordTask):
            raise ValueError(f"ExemplarTask wraps an ArithmeticWordTask, got {type(task).__name__}")
        train = task.problems("train")
        if len(train) < 2:
            raise ValueError("an exemplar task needs at least 2 training problems (one is shown)")
        self.task, self.exemplar = task, train[0]
        self.name = task.name + EXEMPLAR_SUFFIX
        self.binary = task.binary

    def problems(self, split: str) -> list[Problem]:
        problems = self.task.problems(split)
        if split == "train":
            problems = problems[1:]
        return [
            Problem(p.uid, exemplar_prompt(p.prompt, self.exemplar), p.answer) for p in problems
        ]

    def score(self, problem: Problem, completion: str) -> float:
        return self.task.score(problem, completion)

    def spec(self) -> dict:
        return {**self.task.spec(), "name": self.name, "exemplar": self.exemplar.uid}


# ---- sorting with partial credit
# -------------------------------------------------------------------


def extract_list(completion: str) -> list[int]:
    """The integers of a completion in order of appearance (a reply like "4, 17, 29")."""
    if not isinstance(completion, str):
        return []
    values = (parse_number(m) for m in re.findall(r"(?<![\w.])-?\d+(?![\w])", completion))
    return [v for v in values if v is not None]


def sort_credit(reference: list[int], predicted: list[int]) -> float:
    """Partial credit in [0, 1]: positions where ``predicted`` matches ``reference``, over the
    longer length."""
    if not predicted:
        return 0.0
    hits = sum(int(a == b) for a, b in zip(reference, predicted))
    return hits / max(len(reference), len(predicted))


def sort_problem(rng: np.random.Generator, length: int) -> tuple[str, tuple[int, ...]]:
    values = rng.choice(np.arange(1, 100), size=length, replace=False).tolist()
    prompt = (
        "Sort these numbers from smallest to largest: "
        + ", ".join(map(str, values))
        + ". Reply with the sorted list only."
    )
    return prompt, tuple(sorted(int(v) for v in values))


@dataclass(frozen=True)
class SortConfig:
    length: int = 5  # numbers per list (difficulty), 2..12
    n_train: int = 512
    n_heldout: int = 64
    seed: int = 0
    heldout_fraction: float = 0.2

    def validate(self) -> "SortConfig":
        if not 2 <= self.length <= 12:
            raise ValueError(f"length must be in [2, 12], got {self.length}")
        _check_split(self)
        distinct = math.perm(99, self.length)  # ordered lists of distinct numbers 1..99
        if self.n_train + self.n_heldout > distinct // 4:
            raise ValueError(
                f"{self.n_train + self.n_heldout} problems is too many distinct problems for "
                f"lists of length {self.length} (at most {distinct // 4})"
            )
        return self


class SortNumbersTask(_GeneratedTask):
    """Sort a list of numbers; continuous partial-credit reward (module docstring)."""

    binary = False

    def __init__(self, config: SortConfig | None = None, **kwargs):
        self.config = (config or SortConfig(**kwargs)).validate()
        length = self.config.length
        self._generate(f"sort-{length}", lambda rng: sort_problem(rng, length))

    def score(self, problem: Problem, completion: str) -> float:
        return sort_credit(list(problem.answer), extract_list(completion))


NL_TASKS = {"arithmetic": ArithmeticWordTask, "sort": SortNumbersTask}


def make_nl_task(name: str, **kwargs):
    """Build a natural-language task by name: ``arithmetic`` (difficulty=1..4) or ``sort``
    (length=2..12)."""
    return build_task(NL_TASKS, name, "natural-language task", **kwargs)


def nl_task_from_name(name: str, *, n_train: int = 512, n_heldout: int = 64, seed: int = 0):
    """The task a ``TrainConfig.task`` of the form ``nl:arithmetic-d2`` or ``nl:sort-5`` names.

    The part after ``nl:`` is the task's own ``name`` (``arithmetic-d<difficulty>``,
    ``sort-<length>``); ``arithmetic-d<difficulty>-exemplar`` is the arithmetic task with a one-shot
    answer-format exemplar in every prompt (:class:`ExemplarTask`).
    """
    spec = name[3:] if name.startswith("nl:") else name
    base, exemplar = spec.removesuffix(EXEMPLAR_SUFFIX), spec.endswith(EXEMPLAR_SUFFIX)
    family, _, level = base.partition("-")
    if family == "arithmetic" and level.startswith("d") and level[1:].isdigit():
        task = make_nl_task(
            "arithmetic", difficulty=int(level[1:]), n_train=n_train, n_heldout=n_heldout, seed=seed
        )
        return ExemplarTask(task) if exemplar else task
    if family == "sort" and level.isdigit() and not exemplar:
        return make_nl_task(
            "sort", length=int(level), n_train=n_train, n_heldout=n_heldout, seed=seed
        )
    raise ValueError(
        f"unknown natural-language task {name!r}; expected nl:arithmetic-d<1..4>, "
        "nl:arithmetic-d<1..4>-exemplar or nl:sort-<2..12>"
    )
