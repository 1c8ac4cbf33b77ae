"""Natural-language tasks: generators, split, answer parser (incl. adversarial cases) and
rewards."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")

from pkpo.rl.interfaces import Task  # noqa: E402
from pkpo.rl.tasks.nl_tasks import (  # noqa: E402
    ANSWER_INSTRUCTION,
    ArithmeticWordTask,
    ExemplarTask,
    SortNumbersTask,
    extract_answer,
    extract_list,
    make_nl_task,
    nl_task_from_name,
    parse_number,
    sort_credit,
)


def solve_by_reading(prompt: str) -> int:
    """An independent solver: re-read the generated English and apply each sentence in order."""
    total = None
    for sentence in re.split(r"(?<=\.)\s+", prompt):
        if m := re.search(r"has (\d+) \w+\.$", sentence):
            total = int(m.group(1))
        elif m := re.search(r"gets (\d+) more\.$", sentence):
            total += int(m.group(1))
        elif m := re.search(r"gives away (\d+)\.$", sentence):
            total -= int(m.group(1))
        elif "doubles" in sentence:
            total *= 2
        elif "triples" in sentence:
            total *= 3
        elif m := re.search(r"ends up with (\d+) times as many", sentence):
            total *= int(m.group(1))
    return total


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4])
def test_answers_match_an_independent_reading_of_the_text(difficulty):
    task = ArithmeticWordTask(difficulty=difficulty, n_train=60, n_heldout=20)
    for p in task.problems("train") + task.problems("heldout"):
        assert solve_by_reading(p.prompt) == p.answer, p.prompt
        assert p.answer >= 0
        # number of operations = difficulty: one sentence per operation between the setup and the
        # question
        assert (
            len(re.findall(r"(gets \d+ more|gives away|doubles|triples|times as many)", p.prompt))
            == difficulty
        )


def test_generator_is_deterministic_and_seed_dependent():
    a = ArithmeticWordTask(difficulty=2, n_train=50, n_heldout=10, seed=3)
    b = ArithmeticWordTask(difficulty=2, n_train=50, n_heldout=10, seed=3)
    c = ArithmeticWordTask(difficulty=2, n_train=50, n_heldout=10, seed=4)
    assert a.problems("train") == b.problems("train") and a.problems("heldout") == b.problems(
        "heldout"
    )
    assert [p.prompt for p in a.problems("train")] != [p.prompt for p in c.problems("train")]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ArithmeticWordTask(difficulty=1, n_train=300, n_heldout=60),
        lambda: SortNumbersTask(length=4, n_train=300, n_heldout=60),
    ],
)
def test_split_is_by_problem_and_sizes_are_exact(make):
    task = make()
    train, held = task.problems("train"), task.problems("heldout")
    assert len(train) == 300 and len(held) == 60
    train_text = {p.prompt for p in train}
    assert len(train_text) == 300  # distinct problems
    assert not train_text & {p.prompt for p in held}
    assert len({p.uid for p in train + held}) == 360


def test_more_problems_keep_the_split_of_existing_ones():
    """A problem's split is a function of its text, so asking for more problems never moves one
    across."""
    small = ArithmeticWordTask(difficulty=3, n_train=40, n_heldout=10)
    big = ArithmeticWordTask(difficulty=3, n_train=200, n_heldout=50)
    assert {p.prompt for p in small.problems("heldout")} <= {
        p.prompt for p in big.problems("heldout")
    }
    assert not {p.prompt for p in small.problems("heldout")} & {
        p.prompt for p in big.problems("train")
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is 42.", 42),
        ("**42**", 42),
        ("= 42", 42),
        ("42", 42),
        (" 42.\n", 42),
        ("42.0", 42),
        ("Answer: 42", 42),
        ("answer = 42", 42),
        ("\\boxed{42}", 42),
        ("The answer is **42**.", 42),
        ("Answer: $42$", 42),
        ("1,234", 1234),
        ("-7", -7),
        ("She has 10 + 5 = 15 marbles now.", 15),
        ("Mia has 15 marbles.", 15),
        ("Eva started with 3, got 4 more, so 7", 7),
        # adversarial
        ("The answer is 41. Wait, no: the answer is 42.", 42),  # the last commitment counts
        ("The answer is 42 or 43.", None),  # hedging is not an answer
        ("The answer is 41 to 43.", None),
        ("**41** or **42**", None),
        ("The answer is 4200", 4200),  # no prefix match
        ("The answer is 42.5", None),  # not an integer
        ("x42", None),  # numbers glued to words are not answers
        ("1,23", None),  # malformed thousands separator
        ("", None),
        ("no idea", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_answer_rejects_non_strings():
    assert extract_answer(None) is None
    assert extract_answer(42) is None


def test_parse_number():
    assert parse_number("12,345") == 12345
    assert parse_number("3.") == 3
    assert parse_number("1e3") == 1000
    assert (
        parse_number("nan") is None and parse_number("inf") is None and parse_number("1.5") is None
    )


def test_arithmetic_score_is_binary_and_uses_the_parser():
    task = ArithmeticWordTask(difficulty=2, n_train=5, n_heldout=5)
    p = task.problems("heldout")[0]
    assert task.binary and isinstance(task, Task)
    assert task.score(p, f"The answer is {p.answer}.") == 1.0
    assert task.score(p, f"**{p.answer}**") == 1.0
    assert task.score(p, f"The answer is {p.answer + 1}.") == 0.0
    assert task.score(p, f"The answer is {p.answer} or {p.answer + 1}.") == 0.0
    assert task.score(p, "") == 0.0


def test_sort_task_partial_credit():
    task = SortNumbersTask(length=5, n_train=10, n_heldout=5)
    assert not task.binary and isinstance(task, Task)
    p = task.problems("heldout")[0]
    ref = list(p.answer)
    assert ref == sorted(ref) and len(set(ref)) == 5
    assert all(str(v) in p.prompt for v in ref)
    assert task.score(p, ", ".join(map(str, ref))) == 1.0
    assert task.score(p, "Sorted: " + " ".join(map(str, ref))) == 1.0
    swapped = ref[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert task.score(p, ", ".join(map(str, swapped))) == pytest.approx(3 / 5)
    assert task.score(p, ", ".join(map(str, ref[::-1]))) == pytest.approx(
        1 / 5
    )  # the middle stays put
    # padding a correct list with extra numbers costs credit; truncating too
    assert task.score(p, ", ".join(map(str, ref + [100, 101]))) == pytest.approx(5 / 7)
    assert task.score(p, ", ".join(map(str, ref[:2]))) == pytest.approx(2 / 5)
    assert task.score(p, "I cannot sort.") == 0.0
    for completion in ("1, 2, 3", ", ".join(map(str, ref)), "99 98 97 96 95 94 93 92 91 90 89 88"):
        assert 0.0 <= task.score(p, completion) <= 1.0


def test_sort_credit_and_extract_list():
    assert sort_credit([1, 2, 3], []) == 0.0
    assert sort_credit([1, 2, 3], [1, 2, 3]) == 1.0
    assert extract_list("1, 2 and 30.") == [1, 2, 30]
    assert extract_list(None) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(difficulty=0), "difficulty"),
        (dict(difficulty=5), "difficulty"),
        (dict(n_train=0), "n_train"),
        (dict(heldout_fraction=1.0), "heldout_fraction"),
    ],
)
def test_arithmetic_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArithmeticWordTask(**kwargs)


def test_bad_split_and_factory_errors():
    task = make_nl_task("arithmetic", difficulty=1, n_train=5, n_heldout=5)
    with pytest.raises(ValueError, match="split"):
        task.problems("test")
    with pytest.raises(ValueError, match="unknown natural-language task"):
        make_nl_task("chess")
    with pytest.raises(ValueError, match="bad options"):
        make_nl_task("sort", difficulty=3)
    with pytest.raises(ValueError, match="length"):
        SortNumbersTask(length=1)
    with pytest.raises(ValueError, match="distinct problems"):
        SortNumbersTask(length=2, n_train=5000, n_heldout=10)


def test_exemplar_task_shows_one_worked_problem_and_keeps_the_rest():
    plain = ArithmeticWordTask(difficulty=2, n_train=20, n_heldout=6)
    task = nl_task_from_name("nl:arithmetic-d2-exemplar", n_train=20, n_heldout=6)
    assert isinstance(task, ExemplarTask) and isinstance(task, Task) and task.binary
    assert task.name == "arithmetic-d2-exemplar" and task.spec()["exemplar"] == "train-0"
    example = plain.problems("train")[0]
    train, heldout = task.problems("train"), task.problems("heldout")
    # the exemplar leaves the training split; every other problem keeps its uid and answer
    assert [p.uid for p in train] == [p.uid for p in plain.problems("train")[1:]]
    assert [(p.uid, p.answer) for p in heldout] == [
        (p.uid, p.answer) for p in plain.problems("heldout")
    ]
    for mine, theirs in zip(heldout, plain.problems("heldout")):
        question = theirs.prompt.replace(" " + ANSWER_INSTRUCTION, "")
        assert mine.prompt == (
            f"Question: {example.prompt.replace(' ' + ANSWER_INSTRUCTION, '')}\n"
            f"Answer: {example.answer}\n\nQuestion: {question}\n"
            "Answer with only the final number, as in the example."
        )
        assert task.score(mine, f"{mine.answer}") == 1.0 and task.score(mine, "no") == 0.0


def test_exemplar_task_names_and_errors():
    assert nl_task_from_name("nl:arithmetic-d1").name == "arithmetic-d1"
    with pytest.raises(ValueError, match="nl:arithmetic-d<1..4>-exemplar"):
        nl_task_from_name("nl:sort-5-exemplar")
    with pytest.raises(ValueError, match="wraps an ArithmeticWordTask"):
        ExemplarTask(SortNumbersTask(length=3, n_train=5, n_heldout=2))
    with pytest.raises(ValueError, match="at least 2 training problems"):
        ExemplarTask(ArithmeticWordTask(difficulty=1, n_train=1, n_heldout=2))
