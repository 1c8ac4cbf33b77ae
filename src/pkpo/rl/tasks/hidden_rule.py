"""Procedurally generated, verifiable tasks for the RL layer (implement
:class:`pkpo.rl.interfaces.Task`).

The hidden-rule string transform: the prompt is a digit string, a hint and ``>``; the
answer applies one of six rules to the string::

    381920:r>   ->   029183       (r: reverse)

Rules: ``r`` reverse, ``s`` sort ascending, ``i`` add 1 mod 10 to every digit, ``o`` rotate left by
one, ``d`` sort descending, ``w`` swap adjacent pairs.

- **easy tier:** the hint names the rule.
- **hard tier:** the hint is ``?`` and the rule is a function of a hidden feature of the string,
  with a skewed prior over rules (50 / 20 / 10 / 10 / 10 / 0 %). A policy trained for pass@1
  collapses onto the majority rule ``r``; pass@k rewards keeping the other rules alive.
- **difficulty knob** ``feature``: ``"first"`` (the rule depends on the first digit: learnable),
  ``"sum"`` (on the digit sum mod 10: practically unlearnable at this model size) or ``"mixed"``
  (the demo's task, below).

The ``"mixed"`` feature: the first digit decides (:data:`MIXED_TABLE`). Two of its ten values mean
the majority rule ``r``, two mean one minority rule each (``s``, ``i``: learnable, but a policy that
has collapsed onto ``r`` never sees them succeed), and six mark an *ambiguous* problem whose rule is
drawn from :data:`AMBIGUOUS_PRIOR` (``r`` 60 %, ``d`` 20 %, four rare rules 5 % each) by a hash of
the whole string: no policy can tell these apart, so the best policy for pass@k spreads its samples
over rules, differently for each k (for pass@4 over ``r`` and ``d``, for pass@8 over the rare rules
too). The knob ``majority_share`` sets the majority rule's share of the ambiguous problems, the
trap's strength (:func:`ambiguous_prior`: the other rules keep their proportions). Training problems
come from a pool of ``n_train`` fresh strings (larger than steps x prompts: nothing is drawn twice);
the ``validation`` (tuning) and ``heldout`` (final numbers) splits are disjoint sets stratified so
that their composition over (first digit, rule) cells matches the law exactly (a ValueError when the
strings of that length cannot fill a cell). Splits are assigned by a hash of the string, so each
split is an independent draw from the same law.

Plan character (``plan=True``, the default): the completion is one character naming the rule the
policy is about to apply, then the answer (``381920:?>`` -> ``r029183``); only the answer is checked
(any of the six rule letters is accepted as the plan, so nothing rewards naming the right rule).
This makes the policy's choice of strategy one discrete token, so a small model executes the rule it
chose instead of blending rules (without it, the warm-started 0.36M-parameter policy answered ``?``
prompts with the majority rule or an invalid blend, and no minority rule ever succeeded: see
docs/results.md). ``plan=False`` gives the plain format without the plan character.

Binary reward: 1 for an exact match (``HiddenRuleTask``). Continuous reward: the fraction of the
positions that are correct (``binary=False``: partial credit, like a fraction of unit tests passed).

Problems are distinct digit strings, split into train, validation and held-out sets by problem,
deterministic for the task seed. ``warmstart_batch`` gives supervised demonstrations for the warm
start.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from .. import seeding
from ..interfaces import Problem

RULES = ("r", "s", "i", "o", "d", "w")
RULE_NAMES = {
    "r": "reverse",
    "s": "sort ascending",
    "i": "add 1 mod 10",
    "o": "rotate left",
    "d": "sort descending",
    "w": "swap pairs",
}
# Hidden feature value (0..9) -> rule index: 5/10 -> r, 2/10 -> s, 1/10 each -> i, o, d, never w.
FEATURE_TO_RULE = (0, 0, 0, 0, 0, 1, 1, 2, 3, 4)
RULE_PRIOR = tuple(FEATURE_TO_RULE.count(r) / 10 for r in range(len(RULES)))
TIERS = ("easy", "hard")
FEATURES = ("first", "sum", "mixed")
SPLITS = ("train", "validation", "heldout")
# feature "mixed": first digit -> rule, or "*" for an ambiguous problem (rule drawn by a hash of the
# string)
MIXED_TABLE = "rrsi******"
AMBIGUOUS_PRIOR = {"r": 0.6, "d": 0.2, "s": 0.05, "i": 0.05, "o": 0.05, "w": 0.05}
MAJORITY_RULE = "r"
MAJORITY_SHARE = AMBIGUOUS_PRIOR[MAJORITY_RULE]  # the default majority_share


def check_majority_share(share) -> float:
    """``share`` if it is a number in (0, 1), else a ValueError naming it."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        raise ValueError(
            f"majority_share must be a number in (0, 1) (the majority rule's share of the "
            f"ambiguous problems), got {share!r}"
        )
    return share


def ambiguous_prior(majority_share: float = MAJORITY_SHARE) -> dict[str, float]:
    """The rule prior of the ambiguous ``mixed`` problems with the majority rule at
    ``majority_share`` = s and every other rule scaled to fill the rest:
    p_s(r) = s and p_s(x) = p(x) (1 - s) / (1 - p(r)) for x != r, with p = :data:`AMBIGUOUS_PRIOR`.
    The default s = p(r) gives exactly AMBIGUOUS_PRIOR's floats (the scale is then exactly 1)."""
    s = check_majority_share(majority_share)
    scale = (1 - s) / (1 - MAJORITY_SHARE)
    return {rule: s if rule == MAJORITY_RULE else p * scale for rule, p in AMBIGUOUS_PRIOR.items()}


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
        pairs = [digits[i : i + 2][::-1] for i in range(0, len(digits), 2)]
        return "".join(pairs)
    raise ValueError(f"unknown rule {rule!r}; expected one of {RULES}")


def _unit_hash(text: str, salt: str) -> float:
    """A deterministic pseudo-random number in [0, 1) from ``text`` (blake2b, 64 bits)."""
    digest = hashlib.blake2b(f"{salt}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def hidden_feature(digits: str, feature: str) -> int:
    """The hidden feature the hard tier's rule depends on: first digit, or digit sum mod 10."""
    if feature in ("first", "mixed"):
        return int(digits[0])
    if feature == "sum":
        return sum(int(c) for c in digits) % 10
    raise ValueError(f"unknown feature {feature!r}; expected one of {FEATURES}")


def ambiguous_rule(digits: str, majority_share: float = MAJORITY_SHARE) -> str:
    """The rule of an ambiguous ``mixed`` problem: a draw from :func:`ambiguous_prior` keyed by a
    hash of the string."""
    u, acc = _unit_hash(digits, "rule"), 0.0
    for rule, p in ambiguous_prior(majority_share).items():
        acc += p
        if u < acc:
            return rule
    return rule


def hidden_rule(digits: str, feature: str, majority_share: float = MAJORITY_SHARE) -> str:
    """The rule of a hard-tier string (``majority_share``: feature ``mixed`` only)."""
    if feature == "mixed":
        rule = MIXED_TABLE[hidden_feature(digits, feature)]
        return ambiguous_rule(digits, majority_share) if rule == "*" else rule
    return RULES[FEATURE_TO_RULE[hidden_feature(digits, feature)]]


def rule_law(feature: str, majority_share: float = MAJORITY_SHARE) -> dict[tuple[int, str], float]:
    """The hard tier's law over (first digit, rule) cells: {(digit, rule): probability} (strings
    uniform)."""
    if feature != "mixed":
        raise ValueError(f"rule_law is defined for feature 'mixed' only, got {feature!r}")
    law: dict[tuple[int, str], float] = {}
    amb = ambiguous_prior(majority_share)
    for d, rule in enumerate(MIXED_TABLE):
        for r, p in amb.items() if rule == "*" else [(rule, 1.0)]:
            law[(d, r)] = law.get((d, r), 0.0) + p / len(MIXED_TABLE)
    return law


def rule_prior(feature: str, majority_share: float = MAJORITY_SHARE) -> dict[str, float]:
    """Marginal probability of each rule on hard-tier problems (what a feature-blind policy can
    know)."""
    if feature != "mixed":
        return dict(zip(RULES, RULE_PRIOR))
    prior = dict.fromkeys(RULES, 0.0)
    for (_, rule), p in rule_law(feature, majority_share).items():
        prior[rule] += p
    return prior


def problem_category(digits: str, feature: str) -> str:
    """``majority`` (the rule is ``r``), ``ambiguous`` (mixed: rule hashed) or ``minority`` (any
    other rule)."""
    if feature == "mixed" and MIXED_TABLE[int(digits[0])] == "*":
        return "ambiguous"
    return "majority" if hidden_rule(digits, feature) == MAJORITY_RULE else "minority"


def stratified_quota(law: dict, size: int) -> dict:
    """Counts per cell that sum to ``size`` and follow ``law`` (largest-remainder rounding)."""
    raw = {cell: p * size for cell, p in law.items()}
    quota = {cell: int(np.floor(v)) for cell, v in raw.items()}
    rest = size - sum(quota.values())
    for cell in sorted(raw, key=lambda c: (quota[c] - raw[c], c))[:rest]:
        quota[cell] += 1
    return quota


def partial_credit(answer: str, completion: str) -> float:
    """Fraction of the answer's positions the completion gets right (extra characters count as
    wrong)."""
    hits = sum(a == b for a, b in zip(answer, completion))
    return hits / max(len(answer), len(completion))


def _unfillable(pools: dict, quota: dict, n_train: int, c) -> str:
    """Why the ``mixed`` splits cannot be made: the cells (or the training pool) that the whole set
    of ``c.length``-digit strings cannot fill."""
    short = [
        f"{split} cell (first digit {d}, rule {rule!r}) needs {quota[split][(d, rule)]} strings, "
        f"there are {len(strings)}"
        for split, cells in pools.items()
        for (d, rule), strings in cells.items()
        if len(strings) < quota[split][(d, rule)]
    ]
    if n_train < c.n_train:
        short.append(f"train needs {c.n_train} strings, there are {n_train}")
    return (
        f"the {c.length}-digit strings cannot fill the stratified splits at majority_share "
        f"{c.majority_share}: " + "; ".join(short) + " (use fewer problems, longer strings or "
        "another majority_share)"
    )


@dataclass(frozen=True)
class HiddenRuleConfig:
    tier: str = "hard"  # "easy": hint names the rule; "hard": hint is "?"
    feature: str = (
        "sum"  # hard-tier difficulty: "first" (learnable), "sum" (not learnable) or "mixed"
    )
    length: int = 6  # digits per string
    n_train: int = 512  # training problems ("mixed": the pool fresh problems are drawn from)
    n_heldout: int = 128  # held-out problems (disjoint strings): final numbers only
    seed: int = 0  # problem-generation seed
    binary: bool = True  # False: partial credit (fraction of positions correct)
    # the completion starts with one plan character (the rule it will apply), then the answer
    plan: bool = True
    n_validation: int = 128  # validation problems (disjoint from both): for tuning
    demo_power: float = (
        2.0  # warm start: "?" prompts demonstrated with rule probability ~ prior ** demo_power
    )
    demo_uniform: float = 0.0  # ... mixed with this weight of the uniform distribution over RULES
    # feature "mixed": the majority rule's share of the ambiguous problems (ambiguous_prior)
    majority_share: float = MAJORITY_SHARE

    def validate(self) -> "HiddenRuleConfig":
        if self.tier not in TIERS:
            raise ValueError(f"unknown tier {self.tier!r}; expected one of {TIERS}")
        if self.feature not in FEATURES:
            raise ValueError(f"unknown feature {self.feature!r}; expected one of {FEATURES}")
        if not 2 <= self.length <= 16:
            raise ValueError(f"length must be in [2, 16], got {self.length}")
        if self.n_train < 1 or self.n_heldout < 1 or self.n_validation < 1:
            raise ValueError(
                f"n_train, n_validation and n_heldout must be >= 1, got {self.n_train}, "
                f"{self.n_validation}, {self.n_heldout}"
            )
        if self.n_train + self.n_heldout + self.n_validation > 10**self.length // 2:
            raise ValueError(
                f"{self.n_train + self.n_heldout + self.n_validation} problems is too many for "
                f"{self.length}-digit strings"
            )
        if not self.demo_power >= 0 or not 0 <= self.demo_uniform <= 1:
            raise ValueError(
                f"need demo_power >= 0 and 0 <= demo_uniform <= 1, got {self.demo_power}, "
                f"{self.demo_uniform}"
            )
        check_majority_share(self.majority_share)
        if self.feature != "mixed" and self.majority_share != MAJORITY_SHARE:
            raise ValueError(
                f"majority_share is a knob of feature 'mixed' only; feature {self.feature!r} got "
                f"{self.majority_share}"
            )
        return self


class HiddenRuleTask:
    """The hidden-rule string transform (module docstring); binary or partial-credit reward."""

    def __init__(self, config: HiddenRuleConfig | None = None, **kwargs):
        self.config = (config or HiddenRuleConfig(**kwargs)).validate()
        c = self.config
        self.binary = c.binary
        self.name = f"hidden-rule{'' if c.binary else '-partial'}"
        strings = self._mixed_strings() if c.feature == "mixed" else self._sequential_strings()
        self._split = {
            split: [self._problem(s, f"{split}-{i}") for i, s in enumerate(strings[split])]
            for split in SPLITS
        }

    def _sequential_strings(self) -> dict[str, list[str]]:
        """Distinct random strings: the first n_train train, the next n_heldout held out, then
        validation."""
        c = self.config
        rng = seeding.stream(c.seed, "problems")
        total = c.n_train + c.n_heldout + c.n_validation
        seen: set[str] = set()
        strings: list[str] = []
        while len(strings) < total:
            s = "".join(map(str, rng.integers(0, 10, size=c.length)))
            if s not in seen:
                seen.add(s)
                strings.append(s)
        a, b = c.n_train, c.n_train + c.n_heldout
        return {"train": strings[:a], "heldout": strings[a:b], "validation": strings[b:]}

    def _mixed_strings(self) -> dict[str, list[str]]:
        """Hash-assigned splits: 1/64 of all strings can be held out, 1/64 validation, the rest
        train.

        Training strings are i.i.d. draws from the law (distinct). Validation and held-out sets are
        filled cell by cell to :func:`stratified_quota` of the (first digit, rule) law, in an
        interleaved order, so every prefix of them is close to the law too.
        """
        c = self.config
        rng = seeding.stream(c.seed, "problems")
        law = rule_law(c.feature, c.majority_share)
        want = {"heldout": c.n_heldout, "validation": c.n_validation}
        quota = {split: stratified_quota(law, size) for split, size in want.items()}
        pools: dict = {split: {cell: [] for cell in law} for split in want}
        train: list[str] = []
        seen: set[str] = set()
        filled = dict.fromkeys(want, 0)
        while len(train) < c.n_train or any(filled[s] < want[s] for s in want):
            if len(seen) == 10**c.length:  # every string drawn: a quota that is short never fills
                raise ValueError(_unfillable(pools, quota, len(train), c))
            for row in rng.integers(0, 10, size=(4096, c.length)):
                s = "".join(map(str, row))
                if s in seen:
                    continue
                seen.add(s)
                bucket = int(_unit_hash(s, f"split{c.seed}") * 64)
                split = "heldout" if bucket == 0 else "validation" if bucket == 1 else "train"
                if split == "train":
                    if len(train) < c.n_train:
                        train.append(s)
                    continue
                cell = (int(s[0]), hidden_rule(s, c.feature, c.majority_share))
                if len(pools[split][cell]) < quota[split][cell]:
                    pools[split][cell].append(s)
                    filled[split] += 1
        out = {"train": train}
        cells = sorted(law)
        for (
            split
        ) in want:  # interleave: item i of cell c sits at (i + (c + 1/2) / C) / quota, so every
            # prefix follows the law closely (cells with one item are spread evenly, not bunched)
            order = sorted(
                ((i + (c + 0.5) / len(cells)) / quota[split][cell], s)
                for c, cell in enumerate(cells)
                for i, s in enumerate(pools[split][cell])
            )
            out[split] = [s for _, s in order]
        return out

    def _problem(self, digits: str, uid: str) -> Problem:
        rule = hidden_rule(digits, self.config.feature, self.config.majority_share)
        hint = rule if self.config.tier == "easy" else "?"
        return Problem(uid=uid, prompt=f"{digits}:{hint}>", answer=apply_rule(rule, digits))

    def problems(self, split: str) -> list[Problem]:
        if split not in self._split:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return list(self._split[split])

    def digits(self, problem: Problem) -> str:
        return problem.prompt.split(":")[0]

    def rule_of(self, problem: Problem) -> str:
        """The hidden rule of a problem."""
        return hidden_rule(self.digits(problem), self.config.feature, self.config.majority_share)

    def category(self, problem: Problem) -> str:
        """``majority``, ``minority`` or ``ambiguous`` (:func:`problem_category`)."""
        return problem_category(self.digits(problem), self.config.feature)

    def is_hard(self, problem: Problem) -> bool:
        """Hard = the hidden rule is not the majority rule (a policy that prefers ``r`` rarely
        solves it)."""
        return self.rule_of(problem) != MAJORITY_RULE

    def answer_part(self, completion: str) -> str:
        """The part of a completion the verifier checks (after the plan character, when
        ``plan``)."""
        return completion[1:] if self.config.plan else completion

    def score(self, problem: Problem, completion: str) -> float:
        if self.config.plan and completion[:1] not in RULES:
            return 0.0
        answer = self.answer_part(completion)
        if self.binary:
            return float(answer == problem.answer)
        return partial_credit(problem.answer, answer)

    def classify(self, problem: Problem, completion: str) -> str:
        """What a completion did: the rule letter whose output it wrote (the plan letter first, when
        two rules give the same string), ``error`` (a plan letter, but no rule's output) or
        ``invalid`` (no plan letter)."""
        digits = self.digits(problem)
        plan, answer = completion[:1], self.answer_part(completion)
        if self.config.plan and plan not in RULES:
            return "invalid"
        for rule in ((plan,) if plan in RULES else ()) + RULES:
            if apply_rule(rule, digits) == answer:
                return rule
        return "error"

    def demonstration(self, rule: str, digits: str) -> str:
        """The completion a demonstrator applying ``rule`` writes (plan character first when
        ``plan``)."""
        return (rule if self.config.plan else "") + apply_rule(rule, digits)

    def spec(self) -> dict:
        return {"name": self.name, **asdict(self.config)}

    def warmstart_spec(self) -> dict:
        """Everything the warm-start demonstrations depend on (part of the warm-start cache key)."""
        c = self.config
        return {
            "length": c.length,
            "plan": c.plan,
            "demonstrator": [round(float(q), 9) for q in self.demonstrator()],
        }

    def demonstrator(self) -> np.ndarray:
        """Rule probabilities of the warm start's ``?`` demonstrations (over RULES): the marginal
        prior to the power ``demo_power``, normalised, mixed with ``demo_uniform`` of the uniform
        distribution."""
        c = self.config
        prior = np.array([rule_prior(c.feature, c.majority_share)[r] for r in RULES])
        sharp = prior**c.demo_power * (prior > 0)
        return (1 - c.demo_uniform) * sharp / sharp.sum() + c.demo_uniform / len(RULES)

    # --- supervised warm start ---------------------------------------------------------------
    def warmstart_batch(self, rng: np.random.Generator, size: int) -> list[tuple[str, str]]:
        """Supervised (prompt, completion) pairs for the warm start (see
        pkpo.rl.training.warmstart).

        Half the pairs name the rule in the hint (uniform over all six rules, so the policy learns
        to execute every rule); the other half show ``?`` and are answered by an over-confident
        demonstrator that picks rules with probability proportional to the prior (the marginal over
        rules, :func:`rule_prior`) to the power ``demo_power`` (2: squared), mixed with
        ``demo_uniform`` of the uniform distribution (:meth:`demonstrator`), independently of the
        hidden feature (so nothing about the feature leaks). The result can run every rule but
        prefers the majority rule on ``?``.
        """
        prior_sq = self.demonstrator()
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

    def rule_accuracy_problems(
        self, rng: np.random.Generator, per_rule: int
    ) -> dict[str, list[Problem]]:
        """Easy-tier problems per rule, to check that the warm start executes every rule."""
        out = {}
        for rule in RULES:
            probs = []
            for j in range(per_rule):
                digits = "".join(map(str, rng.integers(0, 10, size=self.config.length)))
                probs.append(
                    Problem(
                        uid=f"{rule}-{j}",
                        prompt=f"{digits}:{rule}>",
                        answer=apply_rule(rule, digits),
                    )
                )
            out[rule] = probs
        return out
