"""The RL trainer: loss gradient, advantages, learning direction, exact resume, config and
checkpoint errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pkpo  # noqa: E402
from pkpo.rl.config import TrainConfig  # noqa: E402
from pkpo.rl.interfaces import Problem, left_pad, positions_from_mask  # noqa: E402
from pkpo.rl.policies.gpt import GPT, PAD, GPTConfig  # noqa: E402
from pkpo.rl.training.checkpoint import load_checkpoint  # noqa: E402
from pkpo.rl.training.trainer import policy_gradient_loss, reward_advantages, train  # noqa: E402
from pkpo.transforms import scale_advantages  # noqa: E402

torch.set_num_threads(1)


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(d_model=32, n_layer=1, n_head=2, block_size=32))


class DigitTask:
    """Reward 1 when the one-token completion is a digit (10 of 95 printable characters)."""

    name = "digit"
    binary = True

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def problems(self, split):
        return [
            Problem(uid=f"{split}{i}", prompt=f"{i}:", answer=None)
            for i in range(8 if split == "train" else 4)
        ]

    def score(self, problem, completion):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        return float(completion[:1].isdigit())


def tiny_config(tmp_path, **changes):
    base = dict(
        steps=6,
        prompts_per_step=4,
        n=4,
        k="2",
        max_new_tokens=1,
        lr=1e-2,
        eval_every=3,
        eval_problems=4,
        eval_samples=4,
        eval_ks=(1, 2, 4),
        checkpoint_every=2,
        out_dir=str(tmp_path / "run"),
        tensorboard=False,
    )
    base.update(changes)
    return TrainConfig(**base)


def digit_probability(model, task):
    """Exact probability that the first generated token is a digit, averaged over training
    prompts."""
    ids, mask = left_pad([model.encode(p.prompt) for p in task.problems("train")], PAD)
    pos = positions_from_mask(mask)
    with torch.no_grad():
        probs = torch.softmax(model(ids, mask, pos)[:, -1], -1)
    digits = [model.tokenizer.stoi[c] for c in "0123456789"]
    return float(probs[:, digits].sum(-1).mean())


# --- the loss --------------------------------------------------------------------------------


def test_loss_gradient_is_mean_of_advantage_times_score_hand_checked():
    # one categorical "policy" over 3 outcomes with logits theta = 0 (uniform); samples y = (0, 1)
    theta = torch.zeros(3, requires_grad=True)
    y = torch.tensor([0, 1])
    adv = torch.tensor([1.0, -1.0])
    logp = torch.log_softmax(theta, 0)[y]
    for clip in (0.0, 0.2):  # with clipping the first epoch (ratio 1) has the same gradient
        theta.grad = None
        loss, _ = policy_gradient_loss(torch.log_softmax(theta, 0)[y], logp.detach(), adv, clip)
        loss.backward()
        # grad log p(y) = onehot(y) - 1/3; -mean_i A_i grad log p(y_i) = -(e0 - e1) / 2
        torch.testing.assert_close(theta.grad, torch.tensor([-0.5, 0.5, 0.0]))


def test_clipping_stops_gradient_beyond_the_trust_region():
    logp = torch.tensor([0.5], requires_grad=True)  # ratio e^0.5 > 1.2 with a positive advantage
    loss, clip_frac = policy_gradient_loss(logp, torch.tensor([0.0]), torch.tensor([1.0]), 0.2)
    loss.backward()
    assert logp.grad.item() == 0.0 and clip_frac.item() == 1.0


# --- advantages ------------------------------------------------------------------------------


def test_tzsm_is_the_leave_one_out_max_hand_checked():
    # [TZSM25]: A_i = max_j g_j - max_{j != i} g_j
    g = torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.2, 0.9, 0.5, 0.1]])
    expected = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.4, 0.0, 0.0]])
    torch.testing.assert_close(reward_advantages(g, TrainConfig(method="tzsm", n=4), 1), expected)
    rng = np.random.default_rng(0)
    for rewards in (
        rng.integers(0, 2, (50, 6)).astype(float),
        rng.random((50, 6)),
        np.ones((3, 6)),
    ):
        brute = rewards.max(-1, keepdims=True) - np.stack(
            [np.delete(rewards, i, axis=-1).max(-1) for i in range(6)], -1
        )
        np.testing.assert_allclose(
            reward_advantages(torch.as_tensor(rewards), TrainConfig(method="tzsm", n=6), 1).numpy(),
            brute,
            atol=1e-12,
        )


def test_method_advantages():
    g = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    # k = 1 leave-one-out (the first trainer's "loo"): (g_i - mean_{j!=i} g_j) / n
    torch.testing.assert_close(
        reward_advantages(g, TrainConfig(), 1),
        torch.tensor([[1 - 1 / 3, -2 / 3, -2 / 3, 1 - 1 / 3]]) / 4,
    )
    # GRPO with Bessel's std: std([1, 0, 0, 1]) = sqrt(1/3)
    a = reward_advantages(g, TrainConfig(method="grpo"), 1)
    torch.testing.assert_close(
        a, torch.tensor([[1.0, -1.0, -1.0, 1.0]]) * 0.5 * 3**0.5, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        reward_advantages(g, TrainConfig(k="2"), 2), pkpo.transform(g, 2, baseline="loo_minus_one")
    )
    assert scale_advantages(
        torch.tensor([[2.0, -2.0]]), 1, "mean_abs"
    ).abs().mean().item() == pytest.approx(1.0)
    assert torch.equal(scale_advantages(torch.zeros(2, 3), 1, "mean_abs"), torch.zeros(2, 3))


# --- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method, k", [("pkpo", "2"), ("grpo", "1")])
def test_rl_steps_move_policy_towards_rewarded_outputs(tmp_path, method, k):
    task, model = DigitTask(), tiny_gpt()
    before = digit_probability(model, task)
    train(
        tiny_config(tmp_path, method=method, k=k, steps=15, n=8, eval_every=0, eval_problems=0),
        model,
        task,
        progress=False,
    )
    after = digit_probability(model, task)
    assert after > before + 0.2, (before, after)


def test_negative_advantages_push_down(tmp_path):
    class NotDigit(DigitTask):
        def score(self, problem, completion):
            return 1.0 - super().score(problem, completion)

    task, model = NotDigit(), tiny_gpt()
    with torch.no_grad():  # start with digits likely, so there is something to unlearn
        model.head.weight[[model.tokenizer.stoi[c] for c in "0123456789"]] += (
            0.5 * model.ln_f.bias.new_ones(1)
        )
        model.ln_f.bias.fill_(0.0)
    before = digit_probability(model, task)
    train(
        tiny_config(tmp_path, steps=10, n=8, k="1", eval_every=0, eval_problems=0),
        model,
        task,
        progress=False,
    )
    assert digit_probability(model, task) < before


def _records(path):
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out.append(
            {
                k: v
                for k, v in rec.items()
                if not k.startswith("perf/") and k != "wall_s_this_session"
            }
        )
    return out


def test_resume_equals_uninterrupted(tmp_path):
    cfg_a = tiny_config(tmp_path / "a", entropy_coef=0.01)
    model_a = tiny_gpt()
    final_a = train(cfg_a, model_a, DigitTask(), progress=False)

    cfg_b = tiny_config(tmp_path / "b", entropy_coef=0.01)
    model_b = tiny_gpt()
    # 4 prompts x 4 samples = 16 scores per step, 16 + 4 x 2 near-greedy per evaluation (steps 0 and
    # 3); interrupt during step 5 (after the step-4 checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_b, model_b, DigitTask(fail_after=16 * 5 + 3 + 2 * (16 + 8)), progress=False)
    assert load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")["step"] == 4
    model_b = tiny_gpt(seed=123)  # fresh process: different weights until the checkpoint is loaded
    final_b = train(cfg_b, model_b, DigitTask(), resume=True, progress=False)

    for (name, pa), (_, pb) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert (
        _records(tmp_path / "a" / "run" / "metrics.jsonl")[1:]
        == _records(tmp_path / "b" / "run" / "metrics.jsonl")[1:]
    )
    assert final_a["pass@1"] == final_b["pass@1"]


def test_corrupted_checkpoint_raises(tmp_path):
    cfg = tiny_config(tmp_path, steps=2, eval_problems=0)
    train(cfg, tiny_gpt(), DigitTask(), progress=False)
    path = tmp_path / "run" / "checkpoint.pt"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted"):
        train(cfg.replace(steps=4), tiny_gpt(), DigitTask(), resume=True, progress=False)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupted"):
        load_checkpoint(path)


def test_resume_refuses_a_different_config(tmp_path):
    cfg = tiny_config(tmp_path, steps=2, eval_problems=0)
    train(cfg, tiny_gpt(), DigitTask(), progress=False)
    with pytest.raises(ValueError, match="config differs in \\['lr'\\]"):
        train(cfg.replace(lr=1e-3, steps=4), tiny_gpt(), DigitTask(), resume=True, progress=False)


def test_outputs_and_metric_keys(tmp_path):
    final = train(tiny_config(tmp_path, steps=3), tiny_gpt(), DigitTask(), progress=False)
    out = tmp_path / "run"
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "config" in recs[0]
    step_recs = [r for r in recs if "k" in r]
    assert [r["step"] for r in step_recs] == [0, 1, 2]
    for key in (
        "reward/mean",
        "reward/pass_at_k",
        "loss/policy",
        "policy/entropy",
        "train/cumulative_solve_rate",
        "perf/samples_per_s",
        "adv/zero_signal_frac",
    ):
        assert key in step_recs[0]
    assert any("eval/pass@1" in r for r in recs)
    assert json.loads((out / "final.json").read_text())["pass@4"] == final["pass@4"]
    assert 0.0 <= final["pass@1"] <= final["pass@2"] <= final["pass@4"] <= 1.0


# --- config validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"k": "8", "n": 4}, "k=8 > n=4"),
        ({"k": "4", "n": 4, "baseline": "centered"}, "needs n >= k \\+ 1"),
        ({"steps": -1}, "steps must be an integer >= 0"),
        ({"method": "ppo"}, "unknown method"),
        ({"baseline": "mean"}, "unknown baseline"),
        ({"task": "chess"}, "unknown task"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"ppo_epochs": 3}, "needs clip_eps > 0"),
        ({"k": "8->x"}, "bad k schedule"),
        ({"eval_ks": (1, 64)}, "eval k"),
        ({"n": 1}, "n must be"),
    ],
)
def test_bad_configs_raise_before_any_work(tmp_path, changes, message):
    base = TrainConfig(out_dir=str(tmp_path / "never"))
    with pytest.raises(ValueError, match=message):  # no bad config exists to be trained
        base.replace(**changes)
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({**base.to_dict(), **changes})
    assert not (tmp_path / "never").exists()


def test_kl_needs_reference(tmp_path):
    with pytest.raises(ValueError, match="reference"):
        train(tiny_config(tmp_path, kl_coef=0.1), tiny_gpt(), DigitTask(), progress=False)


def _kl_run(tmp_path, name, reference, steps=1, **changes):
    """Train a fresh tiny GPT; return it and its per-step metric records."""
    model = tiny_gpt()
    cfg = tiny_config(tmp_path / name, steps=steps, eval_problems=0, **changes)
    train(cfg, model, DigitTask(), reference=reference, progress=False)
    return model, [r for r in _records(tmp_path / name / "run" / "metrics.jsonl") if "k" in r]


def test_kl_penalty_is_zero_at_the_reference_and_pulls_towards_it(tmp_path):
    plain, _ = _kl_run(tmp_path, "plain", None)
    _, same_recs = _kl_run(
        tmp_path, "same", tiny_gpt(), steps=2, kl_coef=0.5
    )  # reference = the initial policy
    other, other_recs = _kl_run(tmp_path, "other", tiny_gpt(seed=7), kl_coef=0.5)
    # step 0: the policy is the reference, so the k3 estimate and its gradient are 0 (the same first
    # update)
    assert same_recs[0]["loss/kl"] == 0.0 and same_recs[1]["loss/kl"] > 0.0
    first_step, _ = _kl_run(tmp_path, "same1", tiny_gpt(), kl_coef=0.5)
    for (name, a), b in zip(plain.state_dict().items(), first_step.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # another reference: a positive KL whose gradient changes the update
    assert other_recs[0]["loss/kl"] > 0.0
    assert any(
        not torch.equal(a, b)
        for a, b in zip(plain.state_dict().values(), other.state_dict().values())
    )


def test_kl_is_recomputed_in_every_ppo_epoch(tmp_path):
    _, recs = _kl_run(tmp_path, "ppo", tiny_gpt(), kl_coef=0.1, clip_eps=0.2, ppo_epochs=2)
    assert (
        recs[0]["loss/kl"] > 0.0
    )  # logged after the second epoch: the first update moved the policy


def test_toml_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('steps = 7\nk = "8->1@5"\n[eval]\neval_ks = [1, 4]\n')
    cfg = TrainConfig.from_toml(path)
    assert cfg.steps == 7 and cfg.k == "8->1@5" and cfg.eval_ks == (1, 4) and cfg.schedule()(5) == 1
    path.write_text("stepz = 7\n")
    with pytest.raises(ValueError, match="unknown config keys \\['stepz'\\]"):
        TrainConfig.from_toml(path)
    path.write_text("steps = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        TrainConfig.from_toml(path)
    with pytest.raises(ValueError, match="does not exist"):
        TrainConfig.from_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "text, places",
    [
        ("steps = 7\n[rl]\nsteps = 9\n", "in the top level and in \\[rl\\]"),
        ("[rl]\nlr = 0.1\n[eval]\nlr = 0.2\n", "in \\[rl\\] and in \\[eval\\]"),
    ],
)
def test_toml_key_in_two_places_is_an_error(tmp_path, text, places):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"sets '(steps|lr)' twice: {places}"):
        TrainConfig.from_toml(path)
