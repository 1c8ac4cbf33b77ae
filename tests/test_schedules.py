"""k schedules: values at every kind of step, parsing of specs, and bad specs."""

from __future__ import annotations

import pytest

from pkpo import schedules


def test_constant():
    s = schedules.constant(4)
    assert [s(t) for t in (0, 1, 10**9)] == [4, 4, 4]
    assert s.max_k == 4 and s.describe() == "k=4"


def test_step_is_the_papers_annealing():
    s = schedules.step(k_start=8, k_end=1, at=1500)  # paper Fig. 3: k = 8 until step 1500, then 1
    assert [s(t) for t in (0, 1499, 1500, 10_000)] == [8, 8, 1, 1]
    assert s.max_k == 8
    assert s.describe() == "k=8 until step 1500, then k=1"
    assert schedules.step(1, 4, at=0)(0) == 4  # at = 0: k_end from the start


def test_linear_values_and_rounding():
    s = schedules.linear(k_start=8, k_end=1, steps=70)
    assert [s(t) for t in (0, 10, 35, 69, 70, 1000)] == [8, 7, 4, 1, 1, 1]  # 8 - 7 t/70, rounded
    assert [s(t) for t in range(71)] == sorted((s(t) for t in range(71)), reverse=True)  # monotone
    up = schedules.linear(k_start=2, k_end=10, steps=8, start=100)
    assert [up(t) for t in (0, 100, 104, 108, 200)] == [2, 2, 6, 10, 10]
    assert up.describe() == "linear k=2->10 over steps 100..108"


def test_cosine_values():
    s = schedules.cosine(k_start=9, k_end=1, steps=100)
    assert [s(t) for t in (0, 25, 50, 75, 100, 150)] == [
        9,
        8,
        5,
        2,
        1,
        1,
    ]  # 9 - 8 (1 - cos(pi t/100))/2
    assert all(s(t) >= s(t + 1) for t in range(120))
    # flat at both ends: slower than linear early on
    assert s(10) >= schedules.linear(9, 1, 100)(10)


def test_zero_length_ramp_jumps_at_start():
    assert [schedules.linear(8, 2, steps=0, start=5)(t) for t in (0, 4, 5, 6)] == [2, 2, 2, 2]
    assert schedules.cosine(8, 2, steps=0)(0) == 2


def test_schedules_are_stateless_and_hashable():
    s = schedules.linear(8, 1, steps=10)
    assert s(5) == s(5) and s(9) == 2 and s(5) == 4
    assert s == schedules.linear(8, 1, steps=10)
    assert len({s, schedules.linear(8, 1, steps=10)}) == 1


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("4", schedules.constant(4)),
        (" 4 ", schedules.constant(4)),
        (4, schedules.constant(4)),
        ("8->1@1500", schedules.step(8, 1, 1500)),
        ("linear:8->1@0+1000", schedules.linear(8, 1, 1000, 0)),
        ("cosine:16->2@100+50", schedules.cosine(16, 2, 50, 100)),
        ({"kind": "step", "k_start": 8, "k_end": 1, "at": 1500}, schedules.step(8, 1, 1500)),
        ({"kind": "linear", "k_start": 4, "k_end": 1, "steps": 10}, schedules.linear(4, 1, 10)),
        (
            {"kind": "cosine", "k_start": 4, "k_end": 1, "steps": 10, "start": 3},
            schedules.cosine(4, 1, 10, 3),
        ),
        ({"k": 3}, schedules.constant(3)),
    ],
)
def test_from_spec(spec, expected):
    assert schedules.from_spec(spec) == expected


def test_from_spec_passes_schedules_through():
    s = schedules.step(8, 1, 10)
    assert schedules.from_spec(s) is s


BAD_SPECS = [
    ("8->", r"cannot read k schedule '8->': '' is not an integer"),
    ("eight", r"cannot read k schedule 'eight': 'eight' is not an integer"),
    ("8->1", r"say when k changes, e.g. '8->1@1500'"),
    ("linear:8->1@100", r"expected 'linear:K_START->K_END@START\+STEPS'"),
    ("linear:8", r"expected 'K_START->K_END@START\+STEPS'"),
    ("exp:8->1@0+10", r"unknown kind 'exp' \(linear or cosine\)"),
    ("0", r"k must be >= 1; got k=0"),
    ("8->0@10", r"k must be >= 1; got k=0"),
    ("8->1@-5", r"at must be a non-negative integer; got -5"),
    ("linear:8->1@0+-3", r"steps must be a non-negative integer; got -3"),
    (2.5, r"a k schedule must be an int, a string or a dict; got 2\.5"),
    (True, r"a k schedule must be an int, a string or a dict; got True"),
    (None, r"a k schedule must be an int, a string or a dict; got None"),
    (
        {"kind": "exp"},
        r"unknown schedule kind 'exp'; expected one of constant, step, linear, cosine",
    ),
    ({"kind": "step", "k_start": 8}, r"bad arguments for a step schedule"),
    (
        {"kind": "linear", "k_start": 8, "k_end": 1, "steps": 10, "speed": 2},
        r"bad arguments for a linear schedule",
    ),
    ({"kind": "constant", "k": 2.0}, r"k must be a positive integer; got k=2\.0"),
]


@pytest.mark.parametrize("spec, pattern", BAD_SPECS, ids=[repr(spec) for spec, _ in BAD_SPECS])
def test_bad_specs(spec, pattern):
    with pytest.raises(ValueError, match=pattern):
        schedules.from_spec(spec)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: schedules.constant(0), r"k must be >= 1"),
        (lambda: schedules.constant(True), r"k must be a positive integer"),
        (lambda: schedules.step(8, 1, at=1.5), r"at must be a non-negative integer; got 1\.5"),
        (lambda: schedules.linear(8, 1, steps=-1), r"steps must be a non-negative integer"),
        (
            lambda: schedules.cosine(8, 1, steps=10, start=-1),
            r"start must be a non-negative integer",
        ),
        (lambda: schedules.linear(8, 1.0, steps=10), r"k must be a positive integer"),
        (lambda: schedules.constant(4)(-1), r"the step must be a non-negative integer; got -1"),
        (
            lambda: schedules.step(8, 1, 10)(2.0),
            r"the step must be a non-negative integer; got 2\.0",
        ),
        (
            lambda: schedules.linear(8, 1, 10)(True),
            r"the step must be a non-negative integer; got True",
        ),
    ],
)
def test_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()
