"""The verl plugin against the real verl 0.9.1 (CPU): estimator, registration, trainer subclass.

Tested against real verl: ``ray_trainer.compute_advantage`` dispatch on a real ``DataProto``,
the ``verl.plugins`` entry point on a plain ``import verl`` (fresh subprocess), idempotent
registration, the ``pkpo_sync`` trainer's registration in verl's trainer registry and its MRO,
and its validation metrics through verl's real ``_val_metrics_update`` (which runs verl's
``process_validation_metrics``). Not run here (needs Ray clusters and GPUs): a full
``main_ppo`` training run. The step publication of ``pkpo_sync._compute_advantage`` is tested
with verl's own method replaced by a stub that calls ``compute_advantage`` on a DataProto.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch extra: make test installs it")
pytest.importorskip("verl", reason="the verl extra: make test installs it")
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402

import pkpo  # noqa: E402
from pkpo.integrations import verl as plugin  # noqa: E402


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
    plugin.trainer_rollout_n["n"] = None
    yield
    plugin.clock.reset()
    plugin.trainer_rollout_n["n"] = None


def _per_response(out, data):
    """The one advantage of each response (constant over its tokens)."""
    return out.batch["advantages"].sum(-1) / data.batch["response_mask"].sum(-1)


def test_import_registers_the_estimator():
    assert core_algos.get_adv_estimator_fn("pkpo") is plugin.compute_pkpo_advantage


@pytest.mark.parametrize("scale", [None, "none", "n_over_k", "mean_abs"])
@pytest.mark.parametrize("baseline", ["loo_minus_one", "none", "loo", "centered"])
def test_compute_advantage_equals_transform_grouped_on_response_tokens(baseline, scale):
    rng = np.random.default_rng(1)
    uids = ["a", "b", "c"] * 4 + ["d"] * 5  # interleaved groups, one of a different size (ragged)
    scores = rng.random(len(uids)).round(2)
    scores[:6] = scores[:6] > 0.5  # some binary-looking rewards too
    data = _batch(scores, uids)
    options = {"k": 3, "baseline": baseline} | ({} if scale is None else {"scale": scale})
    out = compute_advantage(data, adv_estimator="pkpo", num_repeat=4, config=_config(**options))

    # the default scale is the adapters' "mean_abs", over the whole batch of the call
    assert plugin.read_options(_config(**options)).scale == (scale or "mean_abs")
    expected = pkpo.transform_grouped(
        np.asarray(scores, dtype=np.float32),
        np.array(uids, dtype=object),
        3,
        baseline=baseline,
        scale=scale or "mean_abs",
    )
    mask = data.batch["response_mask"]
    advantages = out.batch["advantages"]
    torch.testing.assert_close(advantages, torch.as_tensor(expected)[:, None] * mask)
    torch.testing.assert_close(out.batch["returns"], advantages)
    assert torch.all(advantages[mask == 0] == 0)


@pytest.mark.parametrize(
    "scale, successes",
    [
        ("none", 1 / 3),  # the paper's values: s^(loo-1) = C(2,1)/C(4,2) for a success, 0 else
        ("n_over_k", 2 / 3),  # times n/k = 2
        ("mean_abs", 2.0),  # divided by the batch's mean |A| = (1/3 + 1/3) / 4
    ],
)
def test_advantages_match_per_group_transform_for_binary_rewards(scale, successes):
    # one group of 4, two successes, k=2
    data = _batch([0.0, 1.0, 0.0, 1.0], ["g"] * 4)
    out = compute_advantage(data, adv_estimator="pkpo", config=_config(k=2, scale=scale))
    torch.testing.assert_close(
        _per_response(out, data), torch.tensor([0.0, successes, 0.0, successes])
    )


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
        (
            _config(k=2, scale="x"),
            "^algorithm.pkpo: unknown scale 'x'; expected one of none, n_over_k, mean_abs",
        ),
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
    with pytest.raises(
        ValueError,
        match=r"^verl adv_estimator=pkpo: group 'b' has 2 sample\(s\), fewer than the 3 that k=3",
    ):
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
        data = _batch(scores, uids)
        out = compute_advantage(data, adv_estimator="pkpo", config=config)
        expected = pkpo.transform(np.array(scores, dtype=np.float32), k, scale="mean_abs")
        np.testing.assert_allclose(_per_response(out, data).numpy(), expected, rtol=1e-5, atol=1e-7)
        assert plugin.last_stats["k"] == k


def test_pkpo_sync_trainer_is_registered_as_a_subclass_of_verls_sync_trainer():
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    cls = get_trainer_cls("pkpo_sync")
    assert issubclass(cls, PPOTrainerSync) and cls is not PPOTrainerSync
    assert get_trainer_cls("sync") is PPOTrainerSync
    plugin.register()  # re-registering keeps the same class
    assert get_trainer_cls("pkpo_sync") is cls


def _sync_trainer(algorithm, rollout_n=4, val_n=4, val_temperature=1.0):
    """A ``pkpo_sync`` trainer object without verl's __init__ (which starts Ray workers)."""
    from verl.trainer.ppo.v1 import get_trainer_cls

    cls = get_trainer_cls("pkpo_sync")
    trainer = cls.__new__(cls)
    val_kwargs = {"n": val_n, "temperature": val_temperature}
    trainer.config = OmegaConf.create(
        {
            "algorithm": algorithm,
            "actor_rollout_ref": {"rollout": {"n": rollout_n, "val_kwargs": val_kwargs}},
        }
    )
    return trainer


def _stub_verl_advantage_step(monkeypatch, seen=None):
    """verl's real _compute_advantage needs TransferQueue/Ray; a stub stands in for it."""
    from verl.trainer.ppo.v1 import PPOTrainerSync

    def stub(self, batch, metrics):
        if seen is not None:
            seen["step_during_call"] = plugin.clock.step
        return compute_advantage(batch, adv_estimator="pkpo", config=self.config.algorithm)

    monkeypatch.setattr(PPOTrainerSync, "_compute_advantage", stub)


def test_pkpo_sync_publishes_the_global_step_before_the_advantage(monkeypatch):
    seen = {}
    _stub_verl_advantage_step(monkeypatch, seen)
    scores, uids = [1.0, 0.0, 0.0, 1.0], ["a"] * 4
    trainer = _sync_trainer({"adv_estimator": "pkpo", "pkpo": {"schedule": "4->1@5"}})
    for step, k in [(4, 4), (5, 1)]:
        trainer.global_steps = step
        metrics = {}
        data = _batch(scores, uids)
        out = trainer._compute_advantage(data, metrics)
        assert seen["step_during_call"] == step
        assert metrics["pkpo/k"] == k
        np.testing.assert_allclose(
            _per_response(out, data).numpy(),
            pkpo.transform(np.array(scores), k, scale="mean_abs"),
            atol=1e-6,
        )


def test_pkpo_sync_caps_groups_at_the_trainers_rollout_n(monkeypatch):
    """Multi-output agent loops: rows {uid}_{session}_{i} of one uid outnumber rollout.n."""
    _stub_verl_advantage_step(monkeypatch)
    scores, uids = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0], ["a"] * 6  # 3 sessions x 2 outputs, n = 3
    trainer = _sync_trainer({"adv_estimator": "pkpo", "pkpo": {"k": 2}}, rollout_n=3)
    trainer.global_steps = 1
    with pytest.raises(ValueError, match=r"group 'a' has 6 rows but rollout_n=3"):
        trainer._compute_advantage(_batch(scores, uids), {})
    # without the trainer (plain estimator, no algorithm.pkpo.rollout_n) nothing caps the group
    plugin.trainer_rollout_n["n"] = None
    compute_advantage(_batch(scores, uids), adv_estimator="pkpo", config=_config(k=2))
    # an explicit algorithm.pkpo.rollout_n wins over the trainer's rollout.n
    trainer = _sync_trainer(
        {"adv_estimator": "pkpo", "pkpo": {"k": 2, "rollout_n": 6}}, rollout_n=3
    )
    trainer.global_steps = 1
    trainer._compute_advantage(_batch(scores, uids), {})


def _validation_samples():
    """What verl's _validate hands _val_metrics_update: one entry per final session output.

    Two data sources: "math" with 0/1 ``acc`` in the reward extra info (one of its prompts lost
    a session, which verl counts as a failure via ``expected_acc_counts``), "judge" with
    continuous scores only. 4 samples per prompt, prompts interleaved as verl's batches are.
    """
    rng = np.random.default_rng(7)
    data_sources, uids, rewards, acc = [], [], [], []
    expected = {}
    for source, n_prompts in (("math", 5), ("judge", 4)):
        for p in range(n_prompts):
            uid = f"{source}-{p}"
            expected[(source, uid)] = 4
            kept = 3 if (source, p) == ("math", 2) else 4  # one failed session
            for _ in range(kept):
                data_sources.append(source)
                uids.append(uid)
                if source == "math":
                    correct = bool(rng.random() < 0.4)
                    acc.append(correct)
                    rewards.append(1.0 if correct else -1.0)  # DAPO-style scores: +1 / -1
                else:
                    acc.append(None)
                    rewards.append(round(float(rng.random()), 3))
    order = rng.permutation(len(uids))

    def pick(values):
        return [values[i] for i in order]

    infos = {"reward": pick(rewards), "acc": pick(acc)}
    return pick(data_sources), pick(uids), infos, expected


def _rows(data_sources, uids, values, source):
    rows = {}
    for s, u, v in zip(data_sources, uids, values):
        if s == source:
            rows.setdefault(u, []).append(v)
    return rows


def test_pkpo_sync_adds_unbiased_pass_and_maxg_at_k_to_verls_validation_metrics():
    sources, uids, infos, expected_counts = _validation_samples()
    trainer = _sync_trainer(
        {"adv_estimator": "grpo", "pkpo": {"val_ks": [1, 2, 4]}}, val_n=4
    )  # any estimator: the metrics need only the trainer
    turns = [1] * len(uids)
    metrics = trainer._val_metrics_update(
        sources, uids, infos, turns, expected_acc_counts=expected_counts
    )
    # verl's own metrics are still there (its real process_validation_metrics ran)
    assert "val-core/math/acc/mean@4" in metrics and "val-aux/num_turns/mean" in metrics

    math_acc = _rows(sources, uids, infos["acc"], "math")
    math_acc = [[float(a) for a in row] + [0.0] * (4 - len(row)) for row in math_acc.values()]
    math_scores = list(_rows(sources, uids, infos["reward"], "math").values())
    judge_scores = list(_rows(sources, uids, infos["reward"], "judge").values())
    pass_report = pkpo.metrics.pass_at_k_report(math_acc, [1, 2, 4])
    for k in (1, 2, 4):
        assert metrics[f"val-core/math/acc/pass@{k}"] == pytest.approx(pass_report[k].estimate)
        assert metrics[f"val-core/math/acc/pass@{k}/se"] == pytest.approx(pass_report[k].se)
        for source, rows in (("math", math_scores), ("judge", judge_scores)):
            report = pkpo.metrics.maxg_at_k_report(rows, [k], skip_insufficient=True)
            assert metrics[f"val-core/{source}/reward/maxg@{k}"] == pytest.approx(
                report[k].estimate
            )
            assert metrics[f"val-core/{source}/reward/maxg@{k}/se"] == pytest.approx(report[k].se)
    # verl's mean@4 of acc counts the lost session as a failure, and so does pass@1
    assert metrics["val-core/math/acc/pass@1"] == pytest.approx(metrics["val-core/math/acc/mean@4"])
    assert not any(name.startswith("val-core/judge/") and "pass@" in name for name in metrics)


def test_pkpo_sync_validation_without_val_ks_adds_nothing_and_bad_val_ks_raise():
    sources, uids, infos, expected_counts = _validation_samples()
    trainer = _sync_trainer({"adv_estimator": "grpo"})
    metrics = trainer._val_metrics_update(sources, uids, infos, [], expected_counts)
    assert not any("pass@" in name or "maxg@" in name for name in metrics)
    trainer = _sync_trainer({"adv_estimator": "grpo", "pkpo": {"val_ks": [1, 8]}}, val_n=4)
    with pytest.raises(
        ValueError,
        match=r"^algorithm.pkpo.val_ks: k=8 exceeds the 4 samples drawn per validation prompt "
        r"\(actor_rollout_ref.rollout.val_kwargs.n=4\)",
    ):
        trainer._val_metrics_update(sources, uids, infos, [], expected_counts)


def test_greedy_validation_samples_get_a_warning(caplog):
    sources, uids, infos, expected_counts = _validation_samples()
    trainer = _sync_trainer({"pkpo": {"val_ks": [1, 4]}}, val_temperature=0)
    with caplog.at_level("WARNING", logger="pkpo.integrations.verl"):
        trainer._val_metrics_update(sources, uids, infos, [], expected_counts)
    assert "pass@k equals pass@1" in caplog.text


def test_val_ks_is_accepted_next_to_the_estimator_options():
    config = _config(k=2, val_ks=[1, 2])
    assert plugin.read_options(config).k_at(None) == 2
    data = _batch([0.0, 1.0, 0.0, 1.0], ["g"] * 4)
    compute_advantage(data, adv_estimator="pkpo", config=config)


def _last_line_of_fresh_python(code: str, *, plugins: str) -> str:
    """Run ``code`` in a new interpreter with VERL_USE_EXTERNAL_PLUGINS=plugins; its last stdout
    line."""
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": plugins, "PYTHONWARNINGS": "ignore"}
    env.pop("VERL_USE_EXTERNAL_MODULES", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
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
    assert config.actor_rollout_ref.actor.loss_agg_mode == "token-mean"  # verl's default
    assert plugin.read_options(config.algorithm).scale == "mean_abs"  # the adapter's default
    assert config.trainer.total_epochs == 1  # extra arguments are passed through
    options = plugin.read_options(config.algorithm)
    assert (options.k_at(149), options.k_at(150), options.rollout_n) == (
        8,
        1,
        config.actor_rollout_ref.rollout.n,
    )


# --- algorithm.pkpo.method: any estimator of pkpo.advantages ----------------------------------


@pytest.mark.parametrize("method", ["grpo", "rloo", "maxrl", "w_reinforce", "tzsm"])
def test_method_selects_that_estimator_on_the_same_path(method):
    uids = ["a", "b"] * 4  # two interleaved groups of 4
    scores = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    data = _batch(scores, uids)
    out = compute_advantage(data, adv_estimator="pkpo", config=_config(method=method, scale="none"))
    groups = np.array(scores).reshape(4, 2).T  # rows: group a, group b
    expected = pkpo.advantages.compute(method, groups).T.reshape(-1)
    np.testing.assert_allclose(_per_response(out, data).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert plugin.last_stats["k"] is None and plugin.last_stats["estimate"] is None
    pkpo_out = compute_advantage(
        _batch(scores, uids), adv_estimator="pkpo", config=_config(k=2, scale="none")
    )
    assert not torch.allclose(_per_response(out, data), _per_response(pkpo_out, data))


def test_method_with_k_follows_the_schedule_and_params_reach_the_estimator():
    scores, uids = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], ["a"] * 6
    config = _config(method="passk_training", schedule="4->2@3", scale="none")
    for step, k in [(1, 4), (3, 2)]:
        plugin.clock.publish(step)
        data = _batch(scores, uids)
        out = compute_advantage(data, adv_estimator="pkpo", config=config)
        expected = pkpo.advantages.compute("passk_training", np.array(scores), k=k)
        np.testing.assert_allclose(_per_response(out, data).numpy(), expected, rtol=1e-5, atol=1e-6)
        assert plugin.last_stats["k"] == k
    plugin.clock.reset()
    data = _batch([0.2, 0.9, 0.4, 0.7], ["a"] * 4)
    config = _config(method="rs_grpo", params={"beta": 0.5}, scale="none")
    out = compute_advantage(data, adv_estimator="pkpo", config=config)
    expected = pkpo.advantages.compute("rs_grpo", np.array([0.2, 0.9, 0.4, 0.7]), beta=0.5)
    np.testing.assert_allclose(_per_response(out, data).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_unknown_method_is_one_line_naming_the_option():
    data = _batch([1.0, 0.0, 1.0, 0.0], ["a"] * 4)
    with pytest.raises(
        ValueError, match=r"^algorithm\.pkpo: unknown advantage estimator 'nope'"
    ) as error:
        compute_advantage(data, adv_estimator="pkpo", config=_config(method="nope"))
    assert "\n" not in str(error.value) and "maxrl" in str(error.value)
