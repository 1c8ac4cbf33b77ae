"""The ``mixed`` task's trap-strength knob ``majority_share``: the default is the task as it was
(same problems, answers, warm-start batches), another share changes the ambiguous prior as
specified, and bad values are refused."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pkpo.rl.build import task_options
from pkpo.rl.config import NEUTRAL_ADDITIONS, PRESETS, TrainConfig, same_config
from pkpo.rl.tasks import make_task
from pkpo.rl.tasks.hidden_rule import (
    AMBIGUOUS_PRIOR,
    MAJORITY_RULE,
    MAJORITY_SHARE,
    MIXED_TABLE,
    RULES,
    HiddenRuleTask,
    _unit_hash,
    ambiguous_prior,
    apply_rule,
    hidden_rule,
    rule_law,
    rule_prior,
    stratified_quota,
)

SMALL = {"feature": "mixed", "n_train": 3000, "n_heldout": 200, "n_validation": 100}


def reference_rule(digits: str) -> str:
    """The ambiguous problems' rule as drawn before the knob existed: the cumulative
    AMBIGUOUS_PRIOR against the string's hash."""
    u, acc = _unit_hash(digits, "rule"), 0.0
    for rule, p in AMBIGUOUS_PRIOR.items():
        acc += p
        if u < acc:
            return rule
    return rule


def test_the_default_prior_is_the_table_itself():
    assert MAJORITY_SHARE == AMBIGUOUS_PRIOR[MAJORITY_RULE] == TrainConfig().majority_share
    # the same floats in the same order (the cumulative draw depends on both)
    assert list(ambiguous_prior().items()) == list(AMBIGUOUS_PRIOR.items())
    assert list(ambiguous_prior(0.6).items()) == list(AMBIGUOUS_PRIOR.items())


def test_a_run_recorded_before_the_knob_is_the_same_run():
    current = TrainConfig().replace(**PRESETS["demo"]).to_dict()
    recorded = {k: v for k, v in current.items() if k != "majority_share"}
    assert NEUTRAL_ADDITIONS["majority_share"] == MAJORITY_SHARE
    assert same_config(recorded, current)
    assert not same_config(recorded, {**current, "majority_share": 0.4})


def test_the_default_draws_every_rule_as_before():
    rng = np.random.default_rng(0)
    for row in rng.integers(0, 10, size=(3000, 6)):
        digits = "".join(map(str, row))
        expected = reference_rule(digits) if MIXED_TABLE[row[0]] == "*" else MIXED_TABLE[row[0]]
        assert hidden_rule(digits, "mixed") == expected == hidden_rule(digits, "mixed", 0.6)


def test_the_default_task_is_the_task_without_the_knob():
    """The demo preset's task built through the config (majority_share passed on) equals the task
    built without it: the same problems and answers in every split, the same demonstrator and
    warm-start batches (so the same warm-start cache key)."""
    cfg = TrainConfig().replace(**PRESETS["demo"])
    opts = task_options(cfg)
    assert opts["majority_share"] == 0.6
    with_knob = make_task(cfg.task, **opts)
    opts.pop("majority_share")
    without = make_task(cfg.task, **opts)
    for split in ("train", "validation", "heldout"):
        assert with_knob.problems(split) == without.problems(split)
    # the problems follow the rules drawn the old way
    for p in with_knob.problems("heldout"):
        d = with_knob.digits(p)
        rule = reference_rule(d) if MIXED_TABLE[int(d[0])] == "*" else MIXED_TABLE[int(d[0])]
        assert with_knob.rule_of(p) == rule
    assert with_knob.warmstart_spec() == without.warmstart_spec()
    assert np.array_equal(with_knob.demonstrator(), without.demonstrator())
    batch = [t.warmstart_batch(np.random.default_rng(3), 128) for t in (with_knob, without)]
    assert batch[0] == batch[1]


@pytest.mark.parametrize("share", [0.4, 0.75, 0.8])
def test_another_share_scales_the_other_rules(share):
    prior = ambiguous_prior(share)
    assert list(prior) == list(AMBIGUOUS_PRIOR)
    assert prior[MAJORITY_RULE] == share and sum(prior.values()) == pytest.approx(1.0)
    rest = 1 - AMBIGUOUS_PRIOR[MAJORITY_RULE]
    for rule, p in AMBIGUOUS_PRIOR.items():
        if rule != MAJORITY_RULE:  # each keeps its part of the non-majority mass
            assert prior[rule] / (1 - share) == pytest.approx(p / rest)
    marginal = rule_prior("mixed", share)
    amb = MIXED_TABLE.count("*") / len(MIXED_TABLE)
    assert marginal["r"] == pytest.approx(MIXED_TABLE.count("r") / 10 + amb * share)
    assert marginal["d"] == pytest.approx(amb * prior["d"])


@pytest.mark.parametrize("share", [0.4, 0.75, 0.8])
def test_another_share_changes_the_task_and_keeps_the_splits_stratified(share):
    task = HiddenRuleTask(**SMALL, majority_share=share)
    law = rule_law("mixed", share)
    for split, size in (("heldout", 200), ("validation", 100)):
        cells = Counter((int(task.digits(p)[0]), task.rule_of(p)) for p in task.problems(split))
        assert dict(cells) == {c: q for c, q in stratified_quota(law, size).items() if q}
    train = task.problems("train")
    amb = Counter(task.rule_of(p) for p in train if task.category(p) == "ambiguous")
    total = sum(amb.values())
    for rule, p in ambiguous_prior(share).items():
        assert abs(amb[rule] / total - p) < 0.04, (rule, amb)
    # the answers follow the new rules, which differ from the default's on some ambiguous strings
    default = HiddenRuleTask(**SMALL)
    assert all(p.answer == apply_rule(task.rule_of(p), task.digits(p)) for p in train)
    assert any(task.rule_of(p) != hidden_rule(task.digits(p), "mixed") for p in train)
    # the warm start's demonstrator follows the new marginal prior
    demo = dict(zip(RULES, task.demonstrator()))
    assert (demo["r"] > dict(zip(RULES, default.demonstrator()))["r"]) == (share > 0.6)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, float("nan"), "0.5", True])
def test_bad_shares_are_refused(bad):
    with pytest.raises(ValueError, match="majority_share"):
        ambiguous_prior(bad)
    with pytest.raises(ValueError, match="majority_share"):
        HiddenRuleTask(**SMALL, majority_share=bad)
    with pytest.raises(ValueError, match="majority_share"):
        TrainConfig(majority_share=bad)
    with pytest.raises(ValueError, match="majority_share"):
        TrainConfig.from_dict({"majority_share": bad})


def test_the_share_is_a_knob_of_the_mixed_feature_only():
    with pytest.raises(ValueError, match="feature 'mixed' only"):
        HiddenRuleTask(feature="first", majority_share=0.4)
    with pytest.raises(ValueError, match="feature 'mixed' only"):
        TrainConfig(feature="sum", majority_share=0.8)
    assert TrainConfig(feature="first").majority_share == MAJORITY_SHARE


def test_splits_that_cannot_be_stratified_are_refused_not_looped_on():
    """Three-digit strings: 1/64 of the 1000 strings can be held out, far fewer than 40."""
    with pytest.raises(ValueError, match="cannot fill the stratified splits.*heldout cell"):
        HiddenRuleTask(feature="mixed", length=3, n_train=10, n_heldout=40, n_validation=10)
