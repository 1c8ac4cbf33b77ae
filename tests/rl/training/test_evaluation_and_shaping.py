"""Near-greedy pass@1 and the evaluation's own temperature; the difficulty filter and positive-only
advantages; a sweep with a KL penalty."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pkpo.rl.config import TrainConfig  # noqa: E402
from pkpo.rl.training.evaluation import evaluate  # noqa: E402
from pkpo.rl.training.trainer import difficulty_filter, shape_advantages, train  # noqa: E402

from test_trainer import DigitTask, tiny_config, tiny_gpt  # noqa: E402  (tests/rl is on sys.path)

torch.set_num_threads(1)


def test_near_greedy_pass_at_1_is_reported_and_leaves_the_sampled_numbers_alone():
    task, model = DigitTask(), tiny_gpt()
    problems = task.problems("heldout")
    plain = evaluate(model, problems, task, samples=4, ks=(1, 4), max_new_tokens=1, seed=3)
    both = evaluate(
        model,
        problems,
        task,
        samples=4,
        ks=(1, 4),
        max_new_tokens=1,
        seed=3,
        detail=True,
        greedy_temperature=0.05,
        greedy_samples=3,
    )
    assert "greedy_pass@1" not in plain
    assert {
        k: both[k] for k in plain
    } == plain  # a generator of its own: the T = 1 numbers do not move
    assert both["greedy_temperature"] == 0.05 and 0 <= both["greedy_pass@1"] <= 1
    greedy = np.array(both["detail"]["greedy_successes"]) / both["detail"]["greedy_samples"]
    assert both["greedy_pass@1"] == pytest.approx(greedy.mean())


def test_near_greedy_decoding_picks_the_mode():
    """At T = 0.01 the answer is the most likely first token, so near-greedy pass@1 is 0 or 1 per
    problem: it does not vary between samples."""
    task, model = DigitTask(), tiny_gpt()
    with (
        torch.no_grad()
    ):  # spread the logits (an untrained GPT's are all within 0.01 of each other)
        model.head.weight.mul_(300.0)
    problems = task.problems("heldout")
    out = evaluate(
        model,
        problems,
        task,
        samples=8,
        ks=(1,),
        max_new_tokens=1,
        detail=True,
        greedy_temperature=0.01,
        greedy_samples=4,
    )
    per_problem = np.array(out["detail"]["greedy_successes"])
    assert set(per_problem.tolist()) <= {0, 4}  # the same answer every time


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"greedy_temperature": 0.5}, "greedy_temperature"),
        ({"greedy_temperature": 0.05, "greedy_samples": 0}, "greedy_samples"),
    ],
)
def test_bad_greedy_settings(kwargs, message):
    task = DigitTask()
    with pytest.raises(ValueError, match=message):
        evaluate(
            tiny_gpt(),
            task.problems("heldout"),
            task,
            samples=2,
            ks=(1,),
            max_new_tokens=1,
            **kwargs,
        )


def test_evaluation_temperature_is_its_own(tmp_path):
    """A run trained at T = 3 is evaluated at eval_temperature: at T = 0.05 the sampled pass@1
    equals greedy."""
    cfg = tiny_config(
        tmp_path, temperature=3.0, eval_temperature=0.05, steps=1, eval_every=0, greedy_samples=4
    )
    final = train(cfg, tiny_gpt(), DigitTask(), progress=False)
    assert final["pass@1"] == pytest.approx(final["greedy_pass@1"])
    cfg = tiny_config(tmp_path / "hot", temperature=3.0, steps=1, eval_every=0)
    recs = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert recs[0]["config"]["eval_temperature"] == 0.05 and recs[0]["config"]["temperature"] == 3.0
    assert any("eval/greedy_pass@1" in r for r in recs)
    assert cfg.eval_temperature == 1.0


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"greedy_temperature": 0.2}, "greedy_temperature must be in \\(0, 0.1\\]"),
        ({"eval_temperature": 0.0}, "eval_temperature must be > 0"),
        ({"greedy_samples": 0}, "greedy_samples must be an integer >= 1"),
        ({"max_group_success": 1.5}, "max_group_success must be in \\[0, 1\\]"),
    ],
)
def test_bad_evaluation_and_shaping_configs(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig().replace(**changes)


def test_difficulty_filter_zeroes_groups_that_are_mostly_solved():
    g = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    adv = torch.arange(12, dtype=torch.float32).view(3, 4) + 1
    out = difficulty_filter(
        adv, g, 0.5
    )  # success fractions 0.75, 0.5, 0.25: only the first exceeds 0.5
    assert torch.equal(out[0], torch.zeros(4)) and torch.equal(out[1:], adv[1:])
    assert torch.equal(difficulty_filter(adv, g, 1.0), adv)
    assert torch.equal(difficulty_filter(adv, g, 0.0), torch.zeros_like(adv))


def test_positive_only_and_filter_compose():
    g = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    adv = torch.tensor([[3.0, -1.0, -1.0, -1.0], [1.0, 1.0, 1.0, -3.0]])
    cfg = TrainConfig(max_group_success=0.5, positive_only=True)
    assert torch.equal(shape_advantages(adv, g, cfg), torch.tensor([[3.0, 0, 0, 0], [0, 0, 0, 0]]))
    assert torch.equal(shape_advantages(adv, g, TrainConfig()), adv)


def test_filter_logs_the_zeroed_groups(tmp_path):
    """max_group_success = 0 zeroes every group with a success (the others have zero advantages
    anyway): every group logs zero signal and the policy does not move."""
    cfg = tiny_config(tmp_path, steps=3, eval_problems=0, max_group_success=0.0)
    model = tiny_gpt()
    before = [p.clone() for p in model.parameters()]
    train(cfg, model, DigitTask(), progress=False)
    recs = [
        json.loads(line)
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[1:]
    ]
    assert all(r["adv/zero_signal_frac"] == 1.0 for r in recs)
    assert all(
        torch.equal(a, b) for a, b in zip(before, model.parameters())
    )  # no signal, no update


@pytest.mark.slow
def test_sweep_with_a_kl_penalty_runs(tmp_path, monkeypatch):
    """`pkpo sweep --kl-coef X` evaluates the warm start (no reference needed: nothing is trained)
    and trains."""
    from pkpo.rl.cli import sweep_main

    monkeypatch.setenv("PKPO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    args = [
        "--out",
        str(out),
        "--preset",
        "quick",
        "--runs",
        "k1",
        "--seeds",
        "0",
        "--jobs",
        "1",
        "--no-progress",
        "--kl-coef",
        "0.2",
        "--steps",
        "2",
        "--warm-steps",
        "2",
        "--eval-every",
        "0",
        "--tensorboard",
        "false",
    ]
    assert sweep_main(args) == 0
    final = json.loads((out / "runs" / "k1" / "seed0" / "final.json").read_text())
    warm = json.loads((out / "runs" / "warm_start" / "seed0" / "final.json").read_text())
    assert final["config"]["kl_coef"] == 0.2 and warm["config"]["kl_coef"] == 0.0
    assert "greedy_pass@1" in final and "greedy_pass@1" in warm
