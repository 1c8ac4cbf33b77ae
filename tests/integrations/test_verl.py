"""The verl plugin against the real verl 0.9.1 (CPU): estimator, registration, trainer subclass.

Tested against real verl: ``ray_trainer.compute_advantage`` dispatch on a real ``DataProto``,
the ``verl.plugins`` entry point on a plain ``import verl`` (fresh subprocess), idempotent
registration, the ``pkpo_sync`` trainer's registration in verl's trainer registry and its MRO.
Not run here (needs Ray clusters and GPUs): a full ``main_ppo`` training run. The step
publication of ``pkpo_sync._compute_advantage`` is tested with verl's own method replaced by a
stub that calls ``compute_advantage`` on a DataProto.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.ray_trainer import compute_advantage

import pkpo
from pkpo.integrations import verl as plugin


def _batch(scores, uids, length=5, seed=0):
    """A verl batch whose rewards sit on the last response token, like verl's reward managers."""
    rng = np.random.default_rng(seed)
    n = len(scores)
    lengths = rng.integers(1, length + 1, size=n)
    response_mask = torch.zeros(n, length)
    token_level_rewards = torch.zeros(n, length)
    for row, (score, last) in enumerate(zip(scores, lengths)):
        response_mask[row, :last] = 1.0
        token_level_rewards[row, last - 1] = score
    return DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards, "response_mask": response_mask},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )


def _config(**pkpo_options):
    return OmegaConf.create({"adv_estimator": "pkpo", "pkpo": pkpo_options})


@pytest.fixture(autouse=True)
def _fresh_clock():
    plugin.clock.reset()
    yield
    plugin.clock.reset()


def test_import_registers_the_estimator():
    assert core_algos.get_adv_estimator_fn("pkpo") is plugin.compute_pkpo_advantage


@pytest.mark.parametrize("baseline", ["loo_minus_one", "none", "loo", "centered"])
def test_compute_advantage_equals_transform_grouped_on_response_tokens(baseline):
    rng = np.random.default_rng(1)
    uids = ["a", "b", "c"] * 4 + ["d"] * 5  # interleaved groups, one of a different size (ragged)
    scores = rng.random(len(uids)).round(2)
    scores[:6] = scores[:6] > 0.5  # some binary-looking rewards too
    data = _batch(scores, uids)
    out = compute_advantage(
        data, adv_estimator="pkpo", num_repeat=4, config=_config(k=3, baseline=baseline)
    )

    expected = pkpo.transform_grouped(
        np.asarray(scores, dtype=np.float32), np.array(uids, dtype=object), 3, baseline=baseline
    )
    mask = data.batch["response_mask"]
    advantages = out.batch["advantages"]
    torch.testing.assert_close(advantages, torch.as_tensor(expected)[:, None] * mask)
    torch.testing.assert_close(out.batch["returns"], advantages)
    assert torch.all(advantages[mask == 0] == 0)


def test_advantages_match_per_group_transform_for_binary_rewards():
    # one group of 4, two successes, k=2: s^(loo-1) gives failures 0, successes C(2,1)/C(4,2)=1/3
    data = _batch([0.0, 1.0, 0.0, 1.0], ["g"] * 4)
    out = compute_advantage(data, adv_estimator="pkpo", config=_config(k=2))
    per_response = out.batch["advantages"].sum(-1) / data.batch["response_mask"].sum(-1)
    torch.testing.assert_close(per_response, torch.tensor([0.0, 1 / 3, 0.0, 1 / 3]))


def test_double_registration_is_idempotent():
    plugin.register()
    plugin.register()
    assert core_algos.ADV_ESTIMATOR_REGISTRY["pkpo"] is plugin.compute_pkpo_advantage


def test_a_second_copy_of_the_module_does_not_raise():
    # a file-path import creates a new module object with new function objects, which verl's
    # register_adv_est would reject as "already registered"; the plugin must recognise itself
    import importlib.util

    spec = importlib.util.spec_from_file_location(plugin.__name__, plugin.__file__)
    copy = importlib.util.module_from_spec(spec)  # not put into sys.modules: a second module object
    spec.loader.exec_module(copy)
    copy.register()
    assert copy.compute_pkpo_advantage is not plugin.compute_pkpo_advantage
    assert core_algos.ADV_ESTIMATOR_REGISTRY["pkpo"] is plugin.compute_pkpo_advantage


def test_a_different_estimator_under_the_name_still_raises_in_verl():
    with pytest.raises(ValueError, match="already been registered"):
        core_algos.register_adv_est("pkpo")(lambda **kwargs: None)


@pytest.mark.parametrize(
    "config, message",
    [
        (OmegaConf.create({"adv_estimator": "pkpo"}), "algorithm.pkpo"),
        (_config(), "set k"),
        (_config(k=2, schedule="8->1@10"), "either k or schedule"),
        (_config(k=0), "k must be >= 1"),
        (_config(k="eight"), "k must be an integer"),
        (_config(k=2, baseline="grpo"), "unknown baseline"),
        (_config(k=2, variant="loo"), "unknown key"),
        (_config(schedule="8->1"), "say when k changes"),
        (_config(k=8, rollout_n=4), "too few for k=8"),
    ],
)
def test_bad_configs_raise_clear_errors(config, message):
    with pytest.raises(ValueError, match=message):
        compute_advantage(_batch([0.0, 1.0], ["a", "a"]), adv_estimator="pkpo", config=config)


def test_group_smaller_than_k_is_an_error_naming_the_group():
    data = _batch([1.0, 0.0, 1.0, 0.0, 1.0], ["a", "a", "a", "b", "b"])
    with pytest.raises(ValueError, match=r"group 'b' has 2 sample\(s\)"):
        compute_advantage(data, adv_estimator="pkpo", config=_config(k=3))


def test_group_larger_than_rollout_n_is_an_error():
    # multi-session agent rows: 2 sessions x 2 samples share one uid
    data = _batch([1.0, 0.0, 1.0, 0.0], ["a"] * 4)
    with pytest.raises(ValueError, match="rollout_n=2"):
        compute_advantage(data, adv_estimator="pkpo", config=_config(k=1, rollout_n=2))


def test_schedule_without_published_step_is_an_error():
    data = _batch([1.0, 0.0, 1.0, 0.0], ["a"] * 4)
    with pytest.raises(ValueError, match="pkpo_sync|published none"):
        compute_advantage(data, adv_estimator="pkpo", config=_config(schedule="4->2@3"))


def test_schedule_follows_the_published_step():
    scores, uids = [1.0, 0.0, 1.0, 0.0, 0.5, 0.2], ["a"] * 6
    config = _config(schedule="4->2@3")
    for step, k in [(1, 4), (2, 4), (3, 2), (9, 2)]:
        plugin.clock.publish(step)
        out = compute_advantage(_batch(scores, uids), adv_estimator="pkpo", config=config)
        expected = pkpo.transform(np.array(scores, dtype=np.float32), k)
        per_response = out.batch["advantages"].sum(-1) / _batch(scores, uids).batch[
            "response_mask"
        ].sum(-1)
        np.testing.assert_allclose(per_response.numpy(), expected, rtol=1e-5, atol=1e-7)
        assert plugin.last_stats["k"] == k


def test_pkpo_sync_trainer_is_registered_as_a_subclass_of_verls_sync_trainer():
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    cls = get_trainer_cls("pkpo_sync")
    assert issubclass(cls, PPOTrainerSync) and cls is not PPOTrainerSync
    assert get_trainer_cls("sync") is PPOTrainerSync
    plugin.register()  # re-registering keeps the same class
    assert get_trainer_cls("pkpo_sync") is cls


def test_pkpo_sync_publishes_the_global_step_before_the_advantage(monkeypatch):
    """verl's real _compute_advantage needs TransferQueue/Ray; a stub stands in for it."""
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    scores, uids = [1.0, 0.0, 0.0, 1.0], ["a"] * 4
    seen = {}

    def stub(self, batch, metrics):
        seen["step_during_call"] = plugin.clock.step
        return compute_advantage(batch, adv_estimator="pkpo", config=self.config.algorithm)

    monkeypatch.setattr(PPOTrainerSync, "_compute_advantage", stub)
    cls = get_trainer_cls("pkpo_sync")
    trainer = cls.__new__(cls)  # skip verl's __init__ (it starts workers)
    trainer.config = OmegaConf.create(
        {"algorithm": {"adv_estimator": "pkpo", "pkpo": {"schedule": "4->1@5"}}}
    )
    for step, k in [(4, 4), (5, 1)]:
        trainer.global_steps = step
        metrics = {}
        out = trainer._compute_advantage(_batch(scores, uids), metrics)
        assert seen["step_during_call"] == step
        assert metrics["pkpo/k"] == k
        per_response = out.batch["advantages"].sum(-1) / _batch(scores, uids).batch[
            "response_mask"
        ].sum(-1)
        np.testing.assert_allclose(
            per_response.numpy(), pkpo.transform(np.array(scores), k), atol=1e-6
        )


def _last_line_of_fresh_python(code: str, *, plugins: str) -> str:
    """Run ``code`` in a new interpreter with VERL_USE_EXTERNAL_PLUGINS=plugins; its last stdout line."""
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": plugins, "PYTHONWARNINGS": "ignore"}
    env.pop("VERL_USE_EXTERNAL_MODULES", None)
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_plain_import_verl_loads_the_plugin_in_a_fresh_process():
    code = (
        "import json, verl\n"
        "from verl.trainer.ppo import core_algos\n"
        "fn = core_algos.ADV_ESTIMATOR_REGISTRY.get('pkpo')\n"
        "import sys\n"
        "print(json.dumps({'registered': fn is not None, 'module': getattr(fn, '__module__', None),"
        " 'v1_imported': 'verl.trainer.ppo.v1.trainer_sync' in sys.modules}))\n"
    )
    report = json.loads(_last_line_of_fresh_python(code, plugins="auto"))
    assert report == {"registered": True, "module": "pkpo.integrations.verl", "v1_imported": False}


@pytest.mark.slow
def test_plugin_is_absent_when_verl_plugins_are_disabled():
    """Control for the test above: the entry point, not something else, does the registration."""
    code = (
        "import verl\nfrom verl.trainer.ppo import core_algos\nprint('pkpo' in "
        "core_algos.ADV_ESTIMATOR_REGISTRY)\n"
    )
    assert _last_line_of_fresh_python(code, plugins="none") == "False"


def test_verl_gpu_example_overrides_compose_with_verls_config(tmp_path):
    """examples/verl_gpu.sh (not runnable here) runs with a stub python3 recording its arguments;
    those overrides must compose with verl's own Hydra config and give valid PKPO options."""
    import verl.trainer.config
    from hydra import compose, initialize_config_dir

    script = Path(__file__).resolve().parents[2] / "examples" / "verl_gpu.sh"
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    record = tmp_path / "argv.json"
    stub = stub_dir / "python3"
    stub.write_text(
        f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, "
        "'w'))\n"
    )
    stub.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}",
        "DATA": "/data/gsm8k",
    }
    result = subprocess.run(
        ["bash", str(script), "trainer.total_epochs=1"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    argv = json.loads(record.read_text())
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    overrides = argv[2:]

    config_dir = os.path.dirname(verl.trainer.config.__file__)
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    assert config.algorithm.adv_estimator == "pkpo"
    assert config.trainer.v1.trainer_mode == "pkpo_sync"
    assert config.actor_rollout_ref.actor.loss_agg_mode == "seq-mean-token-sum"
    assert config.trainer.total_epochs == 1  # extra arguments are passed through
    options = plugin.read_options(config.algorithm)
    assert (options.k_at(149), options.k_at(150), options.rollout_n) == (
        8,
        1,
        config.actor_rollout_ref.rollout.n,
    )
