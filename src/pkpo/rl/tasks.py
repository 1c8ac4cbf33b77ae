"""Procedurally generated, verifiable tasks for the RL layer (implement :class:`pkpo.rl.interfaces.Task`).

The hidden-rule string transform: the prompt is a digit string, a hint and ``>``; the
answer applies one of six rules to the string::

    381920:r>   ->   029183       (r: reverse)

Rules: ``r`` reverse, ``s`` sort ascending, ``i`` add 1 mod 10 to every digit, ``o`` rotate left by
one, ``d`` sort descending, ``w`` swap adjacent pairs.

- **easy tier:** the hint names the rule.
- **hard tier:** the hint is ``?`` and the rule is a function of a hidden feature of the string,
  with a skewed prior over rules (50 / 20 / 10 / 10 / 10 / 0 %). A policy trained for pass@1
  collapses onto the majority rule ``r``; pass@k rewards keeping the other rules alive.
- **difficulty knob** ``feature``: ``"first"`` (the rule depends on the first digit: learnable) or
  ``"sum"`` (on the digit sum mod 10: practically unlearnable at this model size).

Plan character (``plan=True``, the default): the completion is one character naming the rule the
policy is about to apply, then the answer (``381920:?>`` -> ``r029183``); only the answer is checked
(any of the six rule letters is accepted as the plan, so nothing rewards naming the right rule).
This makes the policy's choice of strategy one discrete token, so a small model executes the rule it
chose instead of blending rules (without it, the warm-started 0.36M-parameter policy answered ``?``
prompts with the majority rule or an invalid blend, and no minority rule ever succeeded: see
docs/results.md). ``plan=False`` gives the plain format without the plan character.

Binary reward: 1 for an exact match (``HiddenRuleTask``). Continuous reward: the fraction of the
positions that are correct (``binary=False``: partial credit, like a fraction of unit tests passed).

Problems are distinct digit strings, split into train and held-out sets by problem, deterministic
for the task seed. ``warmstart_batch`` gives supervised demonstrations for the warm start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .interfaces import Problem, build_task

RULES = ("r", "s", "i", "o", "d", "w")
RULE_NAMES = {"r": "reverse", "s": "sort ascending", "i": "add 1 mod 10", "o": "rotate left",
              "d": "sort descending", "w": "swap pairs"}
# Hidden feature value (0..9) -> rule index: 5/10 -> r, 2/10 -> s, 1/10 each -> i, o, d, never w.
FEATURE_TO_RULE = (0, 0, 0, 0, 0, 1, 1, 2, 3, 4)
RULE_PRIOR = tuple(FEATURE_TO_RULE.count(r) / 10 for r in range(len(RULES)))
TIERS = ("easy", "hard")
FEATURES = ("first", "sum")


def apply_rule(rule: str, digits: str) -> str:
    """The answer of ``digits`` under ``rule`` (one of :data:`RULES`)."""
    if rule == "r":
        return digits[::-1]
    if rule == "s":
        return "".join(sorted(digits))
    if rule == "i":
        return "".join(str((int(c) + 1) % 10) for c in digits)
    if rule == "o":
        return digits[1:] + digits[:1]
    if rule == "d":
        return "".join(sorted(digits, reverse=True))
    if rule == "w":
        pairs = [digits[i:i + 2][::-1] for i in range(0, len(digits), 2)]
        return "".join(pairs)
    raise ValueError(f"unknown rule {rule!r}; expected one of {RULES}")


def hidden_feature(digits: str, feature: str) -> int:
    """The hidden feature the hard tier's rule depends on: first digit, or digit sum mod 10."""
    if feature == "first":
        return int(digits[0])
    if feature == "sum":
        return sum(int(c) for c in digits) % 10
    raise ValueError(f"unknown feature {feature!r}; expected one of {FEATURES}")


def hidden_rule(digits: str, feature: str) -> str:
    return RULES[FEATURE_TO_RULE[hidden_feature(digits, feature)]]


def partial_credit(answer: str, completion: str) -> float:
    """Fraction of the answer's positions the completion gets right (extra characters count as wrong)."""
    hits = sum(a == b for a, b in zip(answer, completion))
    return hits / max(len(answer), len(completion))


@dataclass(frozen=True)
class HiddenRuleConfig:
    tier: str = "hard"  # "easy": hint names the rule; "hard": hint is "?"
    feature: str = "sum"  # hard-tier difficulty: "first" (learnable) or "sum" (not learnable)
    length: int = 6  # digits per string
    n_train: int = 512  # training problems
    n_heldout: int = 128  # held-out problems (disjoint strings)
    seed: int = 0  # problem-generation seed
    binary: bool = True  # False: partial credit (fraction of positions correct)
    plan: bool = True  # the completion starts with one plan character (the rule it will apply), then the answer

    def validate(self) -> "HiddenRuleConfig":
        if self.tier not in TIERS:
            raise ValueError(f"unknown tier {self.tier!r}; expected one of {TIERS}")
        if self.feature not in FEATURES:
            raise ValueError(f"unknown feature {self.feature!r}; expected one of {FEATURES}")
        if not 2 <= self.length <= 16:
            raise ValueError(f"length must be in [2, 16], got {self.length}")
        if self.n_train < 1 or self.n_heldout < 1:
            raise ValueError(f"n_train and n_heldout must be >= 1, got {self.n_train}, {self.n_heldout}")
        if self.n_train + self.n_heldout > 10 ** self.length // 2:
            raise ValueError(f"{self.n_train + self.n_heldout} problems is too many for {self.length}-digit strings")
        return self


class HiddenRuleTask:
    """The hidden-rule string transform (module docstring); binary or partial-credit reward."""

    def __init__(self, config: HiddenRuleConfig | None = None, **kwargs):
        self.config = (config or HiddenRuleConfig(**kwargs)).validate()
        c = self.config
        self.binary = c.binary
        self.name = f"hidden-rule{'' if c.binary else '-partial'}"
        rng = np.random.default_rng([c.seed, 7919])
        total = c.n_train + c.n_heldout
        seen: set[str] = set()
        strings: list[str] = []
        while len(strings) < total:
            s = "".join(map(str, rng.integers(0, 10, size=c.length)))
            if s not in seen:
                seen.add(s)
                strings.append(s)
        self._split = {"train": [self._problem(s, f"train-{i}") for i, s in enumerate(strings[: c.n_train])],
                       "heldout": [self._problem(s, f"heldout-{i}") for i, s in enumerate(strings[c.n_train:])]}

    def _problem(self, digits: str, uid: str) -> Problem:
        rule = hidden_rule(digits, self.config.feature)
        hint = rule if self.config.tier == "easy" else "?"
        return Problem(uid=uid, prompt=f"{digits}:{hint}>", answer=apply_rule(rule, digits))

    def problems(self, split: str) -> list[Problem]:
        if split not in self._split:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'heldout'")
        return list(self._split[split])

    def answer_part(self, completion: str) -> str:
        """The part of a completion the verifier checks (after the plan character, when ``plan``)."""
        return completion[1:] if self.config.plan else completion

    def score(self, problem: Problem, completion: str) -> float:
        if self.config.plan and not completion[:1] in RULES:
            return 0.0
        answer = self.answer_part(completion)
        if self.binary:
            return float(answer == problem.answer)
        return partial_credit(problem.answer, answer)

    def demonstration(self, rule: str, digits: str) -> str:
        """The completion a demonstrator applying ``rule`` writes (plan character first when ``plan``)."""
        return (rule if self.config.plan else "") + apply_rule(rule, digits)

    def spec(self) -> dict:
        return {"name": self.name, **asdict(self.config)}

    # --- supervised warm start ---------------------------------------------------------------
    def warmstart_batch(self, rng: np.random.Generator, size: int) -> list[tuple[str, str]]:
        """Supervised (prompt, completion) pairs for the warm start (see pkpo.rl.warmstart).

        Half the pairs name the rule in the hint (uniform over all six rules, so the policy learns to
        execute every rule); the other half show ``?`` and are answered by an over-confident
        demonstrator that picks rules with probability proportional to the prior squared,
        independently of the hidden feature (so nothing about the feature leaks). The result can run
        every rule but prefers the majority rule on ``?``.
        """
        prior_sq = np.asarray(RULE_PRIOR) ** 2
        prior_sq = prior_sq / prior_sq.sum()
        out = []
        for j in range(size):
            digits = "".join(map(str, rng.integers(0, 10, size=self.config.length)))
            if j % 2 == 0:
                rule = RULES[int(rng.integers(0, len(RULES)))]
                out.append((f"{digits}:{rule}>", self.demonstration(rule, digits)))
            else:
                rule = RULES[int(rng.choice(len(RULES), p=prior_sq))]
                out.append((f"{digits}:?>", self.demonstration(rule, digits)))
        return out

    def rule_accuracy_problems(self, rng: np.random.Generator, per_rule: int) -> dict[str, list[Problem]]:
        """Easy-tier problems per rule, to check that the warm start executes every rule."""
        out = {}
        for rule in RULES:
            probs = []
            for j in range(per_rule):
                digits = "".join(map(str, rng.integers(0, 10, size=self.config.length)))
                probs.append(Problem(uid=f"{rule}-{j}", prompt=f"{digits}:{rule}>", answer=apply_rule(rule, digits)))
            out[rule] = probs
        return out


TASKS = {
    "hidden-rule": lambda **kw: HiddenRuleTask(HiddenRuleConfig(binary=True, **kw)),
    "hidden-rule-partial": lambda **kw: HiddenRuleTask(HiddenRuleConfig(binary=False, **kw)),
}


def make_task(name: str, **kwargs):
    """Build a registered task by name (``hidden-rule``, ``hidden-rule-partial``)."""
    return build_task(TASKS, name, **kwargs)
