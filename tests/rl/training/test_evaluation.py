"""Held-out evaluation: unbiased pass@k per problem, mean and SE over problems (the one SE of
pkpo.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pkpo  # noqa: E402
from pkpo.metrics import standard_error  # noqa: E402
from pkpo.rl.training.evaluation import evaluate  # noqa: E402

from test_trainer import DigitTask, tiny_gpt  # noqa: E402  (tests/rl is on sys.path)


def test_pass_at_k_is_the_mean_over_problems_with_its_standard_error():
    task = DigitTask()
    problems = task.problems("train")
    result = evaluate(
        tiny_gpt(), problems, task, samples=8, ks=(4, 1), max_new_tokens=1, seed=3, detail=True
    )
    successes = np.asarray(result["detail"]["successes"])
    correct = (
        np.arange(8)[None, :] < successes[:, None]
    )  # (P, 8): the order of samples does not matter
    for k in (1, 4):
        per_problem = np.asarray(pkpo.pass_at_k(correct, k), dtype=float)
        assert result[f"pass@{k}"] == pytest.approx(per_problem.mean(), abs=1e-12)
        assert result[f"pass@{k}_se"] == pytest.approx(standard_error(per_problem), abs=1e-12)
    assert result["num_problems"] == len(problems) and result["samples"] == 8


def test_one_problem_has_no_standard_error():
    task = DigitTask()
    result = evaluate(
        tiny_gpt(), task.problems("train")[:1], task, samples=4, ks=(1, 2), max_new_tokens=1
    )
    assert math.isnan(result["pass@1_se"]) and 0.0 <= result["pass@1"] <= 1.0


def test_bad_k_is_refused():
    task = DigitTask()
    with pytest.raises(ValueError, match="must be in \\[1, samples=4\\]"):
        evaluate(tiny_gpt(), task.problems("train"), task, samples=4, ks=(8,))


class HalfDigitTask(DigitTask):
    """Continuous reward: 1 for a digit, 0.5 for a letter, else 0."""

    binary = False

    def score(self, problem, completion):
        c = completion[:1]
        return 1.0 if c.isdigit() else 0.5 if c.isalpha() else 0.0


def test_continuous_rewards_are_recorded_per_sample():
    """maxg@k and near-greedy maxg@1 follow from the recorded rewards of every sample."""
    task = HalfDigitTask()
    result = evaluate(
        tiny_gpt(),
        task.problems("train"),
        task,
        samples=8,
        ks=(1, 4),
        max_new_tokens=1,
        seed=3,
        detail=True,
        greedy_temperature=0.05,
        greedy_samples=2,
    )
    rewards = np.asarray(result["detail"]["rewards"])
    assert rewards.shape == (8, 8) and set(np.unique(rewards)) <= {0.0, 0.5, 1.0}
    assert 0.5 in rewards  # partial credit is kept, not rounded to success / failure
    for k in (1, 4):
        per_problem = np.asarray(pkpo.maxg_at_k(rewards, k), dtype=float)
        assert result[f"maxg@{k}"] == pytest.approx(per_problem.mean(), abs=1e-12)
    greedy = np.asarray(result["detail"]["greedy_rewards"])
    assert greedy.shape == (8, 2)
    assert result["greedy_maxg@1"] == pytest.approx(greedy.mean(), abs=1e-12)
    assert result["detail"]["successes"] == [int(c) for c in (rewards >= 1).sum(1)]
