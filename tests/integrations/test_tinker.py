"""The tinker-cookbook adapter against the real tinker-cookbook 0.6.1 (CPU, no Tinker service).

Tested against the real package: ``tinker_cookbook.rl.train.prepare_minibatch``, the training
step's advantage step and data path (trajectory metrics, the log printer, the advantages,
``assemble_training_data`` into ``tinker.Datum``s), on real ``TrajectoryGroup``s with ragged
groups; and the real ``do_train_step_and_get_sampling_client`` /
``do_train_step_streaming_and_get_sampling_client`` publishing ``i_batch`` for a k schedule,
with only their calls to the remote training service (``train_step``, ``optim_step``, the
sampler export) replaced by stubs. Not run here: a training run against a Tinker service.
"""

from __future__ import annotations

import asyncio
import inspect
import types

import numpy as np
import pytest
import tinker
import torch
from tinker_cookbook.completers import TokensWithLogprobs
from tinker_cookbook.rl import train
from tinker_cookbook.rl.types import EnvGroupBuilder, Trajectory, TrajectoryGroup, Transition

import pkpo
from pkpo import advantages
from pkpo.integrations import tinker as pkpo_tinker

ORIGINAL_COMPUTE_ADVANTAGES = train.compute_advantages


@pytest.fixture(autouse=True)
def _unpatched():
    yield
    pkpo_tinker.unpatch()
    pkpo_tinker.last_stats.clear()


class Builder(EnvGroupBuilder):
    """The one method prepare_minibatch needs of a group's builder: its logging tags."""

    async def make_envs(self):
        raise NotImplementedError

    def logging_tags(self):
        return ["toy"]


class Tokenizer:
    """Enough of a tokenizer for the cookbook's log printer."""

    def decode(self, tokens):
        return " ".join(map(str, tokens))


def _trajectory(reward: float, rng) -> Trajectory:
    """One turn: a 3-token prompt, a 2- to 4-token answer, the reward on the turn."""
    prompt = tinker.ModelInput.from_ints([int(t) for t in rng.integers(0, 50, size=3)])
    answer = [int(t) for t in rng.integers(0, 50, size=int(rng.integers(2, 5)))]
    action = TokensWithLogprobs(tokens=answer, maybe_logprobs=[-1.0] * len(answer))
    return Trajectory(
        transitions=[Transition(ob=prompt, ac=action, reward=reward, episode_done=True)],
        final_ob=tinker.ModelInput.empty(),
    )


def _groups(sizes, seed=0, binary=False):
    """TrajectoryGroups of the given (ragged) sizes; total reward = step reward + final reward."""
    rng = np.random.default_rng(seed)
    groups = []
    for size in sizes:
        step_rewards = rng.integers(0, 2, size) if binary else rng.random(size).round(2)
        final_rewards = np.zeros(size) if binary else rng.random(size).round(2)
        groups.append(
            TrajectoryGroup(
                trajectories_G=[_trajectory(float(r), rng) for r in step_rewards],
                final_rewards_G=[float(r) for r in final_rewards],
                metrics_G=[{} for _ in range(size)],
            )
        )
    return groups


def _padded_rewards(groups):
    rows = [group.get_total_rewards() for group in groups]
    width = max(map(len, rows))
    rewards = np.zeros((len(rows), width))
    mask = np.zeros((len(rows), width), dtype=bool)
    for i, row in enumerate(rows):
        rewards[i, : len(row)] = row
        mask[i, : len(row)] = True
    return rewards, mask


def _datum_advantages(data_D):
    """The one advantage of each datum: its value on the action tokens (0 on the prompt)."""
    values = []
    for datum in data_D:
        advantages_T = datum.loss_fn_inputs["advantages"].to_torch()
        action = advantages_T[datum.loss_fn_inputs["mask"].to_torch() > 0]
        assert len(action) >= 2
        assert torch.allclose(action, action[0])
        values.append(float(action[0]))
    return np.array(values)


def _prepare(groups):
    builders = [Builder() for _ in groups]
    return asyncio.run(
        train.prepare_minibatch(
            builders, groups, Tokenizer(), None, kl_penalty_coef=0.0, kl_discount_factor=0.0
        )
    )


SIZES = [4, 3, 6, 5]  # ragged, as MinViableGroup leaves them


@pytest.mark.parametrize("scale", ["mean_abs", "none", "n_over_k"])
@pytest.mark.parametrize("baseline", ["loo_minus_one", "none", "loo", "centered"])
def test_prepare_minibatch_trains_on_pkpo_of_ragged_groups(baseline, scale):
    groups = _groups(SIZES, seed=1)
    pkpo_tinker.patch(k=2, baseline=baseline, scale=scale)
    data_D, metrics, _ = _prepare(groups)

    rewards, mask = _padded_rewards(groups)
    expected = pkpo.transform(rewards, 2, baseline, mask, scale=scale)[mask]
    assert len(data_D) == sum(SIZES)  # one datum per one-turn trajectory, in group order
    np.testing.assert_allclose(_datum_advantages(data_D), expected, rtol=1e-5, atol=1e-7)
    assert metrics["pkpo/k"] == 2


def test_the_default_is_pkpo_with_the_engines_scale():
    groups = _groups(SIZES, seed=2)
    pkpo_tinker.patch(k=3)
    got = train.compute_advantages(groups)
    rewards, mask = _padded_rewards(groups)
    expected = pkpo.transform(rewards, 3, "loo_minus_one", mask, scale="mean_abs")
    assert [tuple(t.shape) for t in got] == [(size,) for size in SIZES]
    assert all(t.dtype == torch.float32 for t in got)  # as the cookbook's own step
    for row, values in enumerate(got):
        np.testing.assert_allclose(values.numpy(), expected[row, : SIZES[row]], rtol=1e-5)


@pytest.mark.parametrize(
    "method, k, params, binary",
    [
        ("grpo", None, None, False),
        ("dr_grpo", None, None, False),
        ("rloo", None, None, False),
        ("maxrl", None, None, True),
        ("tailrl", None, None, False),
        ("rs_grpo", None, {"beta": 1.0}, False),
        ("w_reinforce", None, {"lam": 0.2}, True),
        ("tzsm", None, None, False),
        ("passk_training", 2, None, True),
    ],
)
def test_any_estimator_by_name(method, k, params, binary):
    groups = _groups(SIZES, seed=3, binary=binary)
    pkpo_tinker.patch(k=k, method=method, params=params, scale="none")
    data_D, _, _ = _prepare(groups)
    rewards, mask = _padded_rewards(groups)
    kwargs = {**(params or {}), **({} if k is None else {"k": k})}
    expected = advantages.compute(method, rewards, mask=mask, **kwargs)[mask]
    np.testing.assert_allclose(_datum_advantages(data_D), expected, rtol=1e-5, atol=1e-7)


def test_the_cookbooks_own_step_is_mean_centring_and_unpatch_restores_it():
    groups = _groups(SIZES, seed=4)
    pkpo_tinker.patch(k=2)
    pkpo_tinker.patch(k=3)  # a second patch changes the options, wraps nothing twice
    assert train.compute_advantages is pkpo_tinker.compute_advantages
    pkpo_tinker.unpatch()
    assert train.compute_advantages is ORIGINAL_COMPUTE_ADVANTAGES
    got = train.compute_advantages(groups)
    rewards, mask = _padded_rewards(groups)
    expected = advantages.compute("dr_grpo", rewards, mask=mask)  # r - mean
    for row, values in enumerate(got):
        np.testing.assert_allclose(values.numpy(), expected[row, : SIZES[row]], rtol=1e-5)


# --- the training step for a k schedule ----------------------------------------------------------


def _stub_remote_calls(monkeypatch, seen):
    """Replace the calls to the Tinker service inside the step functions; keep everything else."""

    async def train_step(data_D, **kwargs):
        seen.append(_datum_advantages(data_D))
        return [torch.zeros(1) for _ in data_D]

    async def metrics_and_sampler(*args, **kwargs):
        return "sampling client", {}

    monkeypatch.setattr(train, "train_step", train_step)
    monkeypatch.setattr(
        train, "compute_full_batch_metrics_and_get_sampling_client", metrics_and_sampler
    )


CONFIG = types.SimpleNamespace(
    kl_penalty_coef=0.0,
    kl_discount_factor=0.0,
    learning_rate=1e-5,
    num_substeps=1,
    loss_fn_config=None,
    compute_post_kl=False,
    training_loss_fn=lambda: "importance_sampling",
    records_stability_info=lambda: False,
)


def test_the_step_functions_publish_i_batch_for_a_k_schedule(monkeypatch):
    seen = []
    _stub_remote_calls(monkeypatch, seen)
    pkpo_tinker.patch(schedule="4->2@1", scale="none")
    groups = _groups([5, 4, 6], seed=5)
    rewards, mask = _padded_rewards(groups)
    for i_batch, k in [(0, 4), (1, 2), (7, 2)]:
        _, metrics = asyncio.run(
            train.do_train_step_and_get_sampling_client(
                CONFIG, i_batch, None, None, None, Tokenizer(), [Builder() for _ in groups], groups
            )
        )
        assert pkpo_tinker.last_stats["step"] == i_batch
        assert metrics["pkpo/k"] == k
        np.testing.assert_allclose(
            seen[-1], pkpo.transform(rewards, k, mask=mask)[mask], rtol=1e-5, atol=1e-7
        )


def test_both_step_functions_take_i_batch_second():
    """The streaming step function is wrapped the same way: its i_batch is found alike."""
    pkpo_tinker.patch(k=2)
    for name in pkpo_tinker.STEP_FUNCTIONS:
        wrapped = getattr(train, name)
        assert wrapped is not pkpo_tinker._state["originals"][name]
        bound = inspect.signature(wrapped).bind_partial(CONFIG, 3)
        assert bound.arguments["i_batch"] == 3


def test_a_schedule_without_a_published_step_is_refused():
    pkpo_tinker.patch(schedule="4->2@10")
    with pytest.raises(ValueError, match="needs the training step"):
        train.compute_advantages(_groups([4, 4]))
    pkpo_tinker.clock.publish(12)
    train.compute_advantages(_groups([4, 4]))
    assert pkpo_tinker.last_stats["k"] == 2


# --- errors -------------------------------------------------------------------------------------


def test_a_group_too_small_for_k_names_the_engine():
    pkpo_tinker.patch(k=4)
    with pytest.raises(ValueError, match="tinker-cookbook.*group 1 has 3 sample.*fewer than the 4"):
        train.compute_advantages(_groups([5, 3]))


def test_binary_only_estimators_refuse_continuous_rewards():
    pkpo_tinker.patch(method="maxrl")
    with pytest.raises(ValueError, match="tinker-cookbook.*binary"):
        train.compute_advantages(_groups([4, 4]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "nope"}, "unknown advantage estimator"),
        ({}, "set k"),
        ({"k": 2, "schedule": "4->2@1"}, "either k or schedule"),
        ({"method": "grpo", "k": 2}, "takes no k"),
        ({"method": "grpo", "scale": "n_over_k"}, "takes no k"),
        ({"k": 2, "scale": "huge"}, "unknown scale"),
        ({"k": 2, "baseline": "mean"}, "unknown baseline"),
        ({"k": 2, "params": {"beta": 1.0}}, "has no parameter 'beta'"),
        ({"method": "grpo", "baseline": "loo"}, "baseline applies to method 'pkpo' only"),
        ({"k": 0}, "k must be >= 1"),
    ],
)
def test_bad_options_are_refused_when_patching(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        pkpo_tinker.patch(**kwargs)
    assert "pkpo.integrations.tinker.patch" in str(error.value)
    assert train.compute_advantages is ORIGINAL_COMPUTE_ADVANTAGES
