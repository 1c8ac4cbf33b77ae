"""The SkyRL adapter against the real skyrl 0.3.0 (CPU): registry, estimator call, trainer step.

Tested against the real package: ``AdvantageEstimatorRegistry`` registration and lookup,
``ppo_utils.compute_advantages_and_returns`` (SkyRL's dispatch with its own arguments), and
``RayPPOTrainer.compute_advantages_and_returns`` on a real ``TrainingInputBatch`` padded by
SkyRL's ``pad_training_input_batch`` (plain and step-wise trajectories), run by the trainer
subclass with its ``global_step``. The trainer object is made without ``__init__`` (which starts
Ray placement groups and inference engines); that method reads only its config and the batch.
Not run here: a SkyRL training run (it needs GPUs and vLLM), and the Ray-actor sync of the
registry.

SkyRL's modules are imported with ``pkpo.integrations.skyrl.import_skyrl``, as the adapter
does: skyrl 0.3.0 needs ``typing_extensions.TypedDict`` in place of ``typing``'s on Python 3.11
while its pydantic models load (see its docstring); nothing else of SkyRL is changed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pkpo
from pkpo import advantages
from pkpo.integrations import skyrl as pkpo_skyrl

ppo_utils = pkpo_skyrl.import_skyrl("skyrl.backends.skyrl_train.utils.ppo_utils")
training_batch = pkpo_skyrl.import_skyrl("skyrl.backends.skyrl_train.training_batch")
TrainingInputBatch = training_batch.TrainingInputBatch
pad_training_input_batch = training_batch.pad_training_input_batch
SkyRLTrainConfig = pkpo_skyrl.import_skyrl("skyrl.train.config").SkyRLTrainConfig
RayPPOTrainer = pkpo_skyrl.import_skyrl("skyrl.train.trainer").RayPPOTrainer
Registry = ppo_utils.AdvantageEstimatorRegistry


@pytest.fixture(autouse=True)
def _clean_registry():
    yield
    for name in ("pkpo", "pkpo_maxrl"):
        if name in Registry.list_available():
            Registry.unregister(name)
    pkpo_skyrl.clock.reset()


UIDS = ["a", "b", "c"] * 4 + ["d"] * 5  # interleaved groups, one of another size (ragged)


def _rewards(uids, seed=0, binary=False, length=5):
    """SkyRL's layout: each response's score on its last token, a response mask per row."""
    rng = np.random.default_rng(seed)
    n = len(uids)
    scores = rng.integers(0, 2, n).astype(float) if binary else rng.random(n).round(2)
    lengths = rng.integers(1, length + 1, size=n)
    response_mask = torch.zeros(n, length)
    token_level_rewards = torch.zeros(n, length)
    for row, (score, last) in enumerate(zip(scores, lengths)):
        response_mask[row, :last] = 1.0
        token_level_rewards[row, last - 1] = score
    return scores, token_level_rewards, response_mask


def _per_response(advantages_T, response_mask):
    """The one advantage of each response: constant on its tokens, 0 elsewhere."""
    values = advantages_T[:, 0]
    assert torch.allclose(advantages_T, values[:, None] * response_mask)
    return values.double().numpy()


def _dispatch(token_level_rewards, response_mask, uids, name="pkpo"):
    """SkyRL's own estimator dispatch, with the arguments its trainer passes."""
    cfg = SkyRLTrainConfig()
    return ppo_utils.compute_advantages_and_returns(
        token_level_rewards=token_level_rewards,
        response_mask=response_mask,
        index=np.array(uids),
        adv_estimator=name,
        config=cfg.trainer.algorithm,
        values=None,
        gamma=1.0,
        lambd=1.0,
        grpo_norm_by_std=True,
    )


@pytest.mark.parametrize("scale", ["mean_abs", "none", "n_over_k"])
@pytest.mark.parametrize("baseline", ["loo_minus_one", "none", "loo", "centered"])
def test_skyrls_dispatch_gives_pkpo_of_each_uid_group(baseline, scale):
    scores, rewards_T, mask_T = _rewards(UIDS, seed=1)
    pkpo_skyrl.register(k=3, baseline=baseline, scale=scale)
    advantages_T, returns_T = _dispatch(rewards_T, mask_T, UIDS)
    expected = pkpo.transform_grouped(scores, UIDS, 3, baseline, scale=scale)
    np.testing.assert_allclose(_per_response(advantages_T, mask_T), expected, rtol=1e-5, atol=1e-7)
    assert torch.equal(advantages_T, returns_T)
    assert advantages_T.dtype == rewards_T.dtype


@pytest.mark.parametrize(
    "method, k, params, binary",
    [
        ("grpo", None, None, False),
        ("rloo", None, None, False),
        ("maxrl", None, None, True),
        ("tailrl", None, None, False),
        ("rs_grpo", None, {"beta": 2.0}, False),
        ("w_reinforce", None, None, True),
        ("tzsm", None, None, False),
        ("passk_training", 2, None, True),
    ],
)
def test_any_estimator_by_name(method, k, params, binary):
    scores, rewards_T, mask_T = _rewards(UIDS, seed=2, binary=binary)
    pkpo_skyrl.register(k=k, method=method, params=params, scale="none", name="pkpo_maxrl")
    advantages_T, _ = _dispatch(rewards_T, mask_T, UIDS, name="pkpo_maxrl")
    got = _per_response(advantages_T, mask_T)
    kwargs = {**(params or {}), **({} if k is None else {"k": k})}
    for uid in sorted(set(UIDS)):
        rows = [i for i, u in enumerate(UIDS) if u == uid]
        np.testing.assert_allclose(
            got[rows], advantages.compute(method, scores[rows], **kwargs), rtol=1e-5, atol=1e-7
        )


def test_skyrls_import_leaves_typing_as_it_was():
    import typing

    assert typing.TypedDict.__module__ == "typing"
    assert pkpo_skyrl.import_skyrl("skyrl.tinker.types").MultiModalKwargs  # the TypedDict model


def test_register_replaces_its_own_estimator_and_refuses_skyrls():
    pkpo_skyrl.register(k=2)
    estimator = pkpo_skyrl.register(k=3)
    assert Registry.get("pkpo") is estimator
    assert estimator.options.k_at(None) == 3
    ppo_utils.repopulate_all_registries()  # what SkyRL's validate_cfg runs: keeps ours
    assert "pkpo" in Registry.list_available()
    with pytest.raises(ValueError, match="'grpo' is already registered"):
        pkpo_skyrl.register(k=2, name="grpo")


def test_the_estimator_survives_cloudpickle_as_skyrls_ray_registry_sends_it():
    """With Ray up, SkyRL ships registered functions to a named actor with cloudpickle."""
    import cloudpickle

    estimator = pkpo_skyrl.register(schedule="4->2@3", scale="none")
    copy = cloudpickle.loads(cloudpickle.dumps(estimator))
    assert type(copy) is pkpo_skyrl.PKPOEstimator and copy.options == estimator.options
    _, rewards_T, mask_T = _rewards(UIDS, seed=8)
    pkpo_skyrl.clock.publish(3)  # the module's clock, as a trainer in the Ray worker publishes it
    assert torch.equal(
        copy(rewards_T, mask_T, index=UIDS)[0], estimator(rewards_T, mask_T, index=UIDS)[0]
    )
    assert copy.last_stats["k"] == 2


# --- the trainer's advantage step ---------------------------------------------------------------


def _trainer(global_step, *, step_wise=False):
    """SkyRL's trainer (a PKPOTrainer) without __init__: the advantage step reads cfg and batch."""
    cfg = SkyRLTrainConfig()
    cfg.trainer.algorithm.advantage_estimator = "pkpo"
    cfg.generator.step_wise_trajectories = step_wise
    trainer = object.__new__(pkpo_skyrl.PKPOTrainer)
    trainer.cfg = cfg
    trainer.global_step = global_step
    trainer.all_metrics = {}
    return trainer


def _training_batch(rewards_T, mask_T, uids, pad_size, is_last_step=None):
    batch = TrainingInputBatch(
        {"rewards": rewards_T, "response_mask": mask_T, "loss_mask": mask_T.clone(), "values": None}
    )
    batch.metadata = {"uids": list(uids), "avg_response_length": 3.0}
    if is_last_step is not None:
        batch.metadata["is_last_step"] = list(is_last_step)
    return pad_training_input_batch(batch, pad_size)


def test_the_trainer_publishes_global_step_and_leaves_skyrls_padding_out():
    pkpo_skyrl.register(schedule="4->2@3", scale="none")
    scores, rewards_T, mask_T = _rewards(UIDS, seed=3)
    assert "PKPOTrainer" in [cls.__name__ for cls in type(_trainer(1)).__mro__]
    assert issubclass(pkpo_skyrl.PKPOTrainer, RayPPOTrainer)
    for global_step, k in [(1, 4), (2, 4), (3, 2)]:
        trainer = _trainer(global_step)
        data = trainer.compute_advantages_and_returns(_training_batch(rewards_T, mask_T, UIDS, 3))
        assert data.metadata["pad_size"] == 3 and data["advantages"].shape[0] == len(UIDS) + 3
        got = _per_response(data["advantages"], data["response_mask"])
        np.testing.assert_allclose(
            got[: len(UIDS)], pkpo.transform_grouped(scores, UIDS, k), rtol=1e-5, atol=1e-7
        )
        assert not got[len(UIDS) :].any()  # the padding rows 'pad0'..'pad2'
        assert trainer.all_metrics["pkpo/k"] == k


def test_step_wise_trajectories_use_the_last_step_of_each():
    """Step-wise training: the estimator sees each trajectory's last step, its advantage is put
    on every step of the trajectory (SkyRL's broadcast)."""
    pkpo_skyrl.register(k=2, scale="none")
    uids = ["a"] * 3 + ["b"] * 4
    steps = [2, 1, 1, 3, 1, 2, 1]  # steps per trajectory
    scores, last_rewards_T, last_mask_T = _rewards(uids, seed=4)
    rows_uids, is_last, rewards, masks = [], [], [], []
    for uid, count, reward_row, mask_row in zip(uids, steps, last_rewards_T, last_mask_T):
        for step in range(count):
            rows_uids.append(uid)
            is_last.append(step == count - 1)
            rewards.append(reward_row if step == count - 1 else torch.zeros_like(reward_row))
            masks.append(mask_row)
    data = _trainer(1, step_wise=True).compute_advantages_and_returns(
        _training_batch(torch.stack(rewards), torch.stack(masks), rows_uids, 2, is_last)
    )
    got = _per_response(data["advantages"], data["response_mask"])
    expected = np.repeat(pkpo.transform_grouped(scores, uids, 2), steps)
    np.testing.assert_allclose(got[: len(rows_uids)], expected, rtol=1e-5, atol=1e-7)
    assert not got[len(rows_uids) :].any()


def test_without_the_trainer_skyrls_padding_is_named_in_the_error():
    pkpo_skyrl.register(k=2)
    _, rewards_T, mask_T = _rewards(UIDS, seed=5)
    plain = object.__new__(RayPPOTrainer)
    plain.cfg = _trainer(1).cfg
    plain.all_metrics = {}
    with pytest.raises(ValueError, match="group 'pad0' has 1 sample.*PKPOTrainer"):
        plain.compute_advantages_and_returns(_training_batch(rewards_T, mask_T, UIDS, 2))


def test_a_schedule_needs_the_trainer_or_a_published_step():
    pkpo_skyrl.register(schedule="4->2@3")
    _, rewards_T, mask_T = _rewards(UIDS, seed=6)
    with pytest.raises(ValueError, match="needs the training step"):
        _dispatch(rewards_T, mask_T, UIDS)
    pkpo_skyrl.clock.publish(5)
    _dispatch(rewards_T, mask_T, UIDS)
    assert Registry.get("pkpo").last_stats["k"] == 2


def test_errors_name_the_engine():
    pkpo_skyrl.register(k=5)
    _, rewards_T, mask_T = _rewards(UIDS, seed=7)
    with pytest.raises(ValueError, match="skyrl advantage_estimator='pkpo'.*'a' has 4 sample"):
        _dispatch(rewards_T, mask_T, UIDS)  # groups a, b, c have 4 responses
    with pytest.raises(ValueError, match="uid group index"):
        Registry.get("pkpo")(rewards_T, mask_T, index=None)
    with pytest.raises(ValueError, match="pkpo.integrations.skyrl.register.*takes no k"):
        pkpo_skyrl.register(k=2, method="grpo")
