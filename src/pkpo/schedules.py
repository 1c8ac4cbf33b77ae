"""k schedules: pure functions from the training step to the integer k to optimise.

The paper anneals k_opt = 8 until step 1500, then k_opt = 1 (Figure 3), to keep the pass@k gains
of a large k while recovering pass@1. Every schedule here is a callable ``step -> int`` with no
state, so trainers can call it with any step (also after resuming from a checkpoint).

Examples:
    >>> from pkpo import schedules
    >>> anneal = schedules.step(k_start=8, k_end=1, at=1500)
    >>> anneal(0), anneal(1499), anneal(1500)
    (8, 8, 1)
    >>> ramp = schedules.linear(k_start=8, k_end=1, steps=70)
    >>> [ramp(s) for s in (0, 35, 70, 100)]
    [8, 4, 1, 1]
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

from ._validation import check_k

__all__ = ["Schedule", "constant", "step", "linear", "cosine", "from_spec"]


def _check_step_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}.")
    return int(value)


def _check_query(step) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"the step must be a non-negative integer; got {step!r}.")
    return int(step)


@dataclass(frozen=True)
class Schedule:
    """A k schedule: ``schedule(step) -> k``. Build one with the functions of this module."""

    kind: str
    k_start: int
    k_end: int
    start: int = 0
    steps: int = 0

    def __call__(self, step) -> int:
        step = _check_query(step)
        if self.kind == "constant":
            return self.k_start
        if self.kind == "step":
            return self.k_start if step < self.start else self.k_end
        progress = (
            Fraction(min(max(step - self.start, 0), self.steps), self.steps)
            if self.steps
            else Fraction(1)
        )
        if self.kind == "linear":
            fraction = progress
        else:  # cosine: slow at both ends (the float's exact value from here on)
            fraction = Fraction(0.5 * (1.0 - math.cos(math.pi * float(progress))))
        # exact rational arithmetic: a float would lose k beyond 2**53 (k_start = 2**60 ended at 0)
        return self.k_start + round((self.k_end - self.k_start) * fraction)

    @property
    def max_k(self) -> int:
        """The largest k the schedule ever returns (trainers check it against n up front)."""
        return max(self.k_start, self.k_end)

    def describe(self) -> str:
        if self.kind == "constant":
            return f"k={self.k_start}"
        if self.kind == "step":
            return f"k={self.k_start} until step {self.start}, then k={self.k_end}"
        return (
            f"{self.kind} k={self.k_start}->{self.k_end} "
            f"over steps {self.start}..{self.start + self.steps}"
        )


def constant(k: int) -> Schedule:
    """k at every step."""
    k = check_k(k)
    return Schedule("constant", k, k)


def step(k_start: int, k_end: int, at: int) -> Schedule:
    """k_start for steps < ``at``, then k_end (the paper's 8 -> 1 annealing at step 1500)."""
    return Schedule("step", check_k(k_start), check_k(k_end), start=_check_step_count("at", at))


def linear(k_start: int, k_end: int, steps: int, start: int = 0) -> Schedule:
    """k moves linearly from k_start (at ``start``) to k_end (at ``start + steps``), rounded to
    int."""
    return Schedule(
        "linear",
        check_k(k_start),
        check_k(k_end),
        _check_step_count("start", start),
        _check_step_count("steps", steps),
    )


def cosine(k_start: int, k_end: int, steps: int, start: int = 0) -> Schedule:
    """Like :func:`linear` with a half-cosine profile (flat at both ends), rounded to int."""
    return Schedule(
        "cosine",
        check_k(k_start),
        check_k(k_end),
        _check_step_count("start", start),
        _check_step_count("steps", steps),
    )


def from_spec(spec: int | str | dict | Schedule) -> Schedule:
    """Parse a schedule from a short string or a dict (for CLIs and config files).

    Strings: ``"4"`` (constant), ``"8->1@1500"`` (step), ``"linear:8->1@0+1000"``,
    ``"cosine:8->1@0+1000"`` (start ``@`` and length ``+``). Dicts: ``{"kind": "step",
    "k_start": 8, "k_end": 1, "at": 1500}`` and the keyword arguments of the functions above.

    >>> from_spec("8->1@1500")(1500)
    1
    """
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        return constant(spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.pop("kind", "constant")
        makers = {"constant": constant, "step": step, "linear": linear, "cosine": cosine}
        if kind not in makers:
            raise ValueError(
                f"unknown schedule kind {kind!r}; expected one of {', '.join(makers)}."
            )
        try:
            return makers[kind](**spec)
        except TypeError as error:
            raise ValueError(f"bad arguments for a {kind} schedule: {error}") from None
    if not isinstance(spec, str):
        raise ValueError(f"a k schedule must be an int, a string or a dict; got {spec!r}.")
    return _parse_string(spec.strip())


def _parse_string(text: str) -> Schedule:
    def as_int(part: str) -> int:
        try:
            return int(part)
        except ValueError:
            raise ValueError(
                f"cannot read k schedule {text!r}: {part!r} is not an integer."
            ) from None

    kind = "step"
    body = text
    if ":" in text:
        kind, body = text.split(":", 1)
        if kind not in ("linear", "cosine"):
            raise ValueError(
                f"cannot read k schedule {text!r}: unknown kind {kind!r} (linear or cosine)."
            )
    if "->" not in body:
        if kind != "step":
            raise ValueError(
                f"cannot read k schedule {text!r}: expected 'K_START->K_END@START+STEPS'."
            )
        return constant(as_int(body))
    ends, _, timing = body.partition("@")
    k_start, k_end = (as_int(part) for part in ends.split("->", 1))
    if not timing:
        raise ValueError(f"cannot read k schedule {text!r}: say when k changes, e.g. '8->1@1500'.")
    if kind == "step":
        return step(k_start, k_end, as_int(timing))
    start, plus, steps = timing.partition("+")
    if not plus:
        raise ValueError(
            f"cannot read k schedule {text!r}: expected '{kind}:K_START->K_END@START+STEPS'."
        )
    maker = linear if kind == "linear" else cosine
    return maker(k_start, k_end, as_int(steps), as_int(start))
