"""PKPOGRPOTrainer / PKPORLOOTrainer vs the real trl 1.16.0: tiny local Llama, CPU, no downloads."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch extra: make test installs it")
pytest.importorskip("trl", reason="the trl extra: make test installs it")
import torch  # noqa: E402

import pkpo  # noqa: E402
from pkpo.integrations.trl import PKPOGRPOConfig, PKPOGRPOTrainer, PKPORLOOConfig, PKPORLOOTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("trl_tiny", ROOT / "examples" / "trl_tiny.py")
trl_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trl_tiny)

G = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return trl_tiny.build_tiny_model(str(tmp_path_factory.mktemp("tiny-llama")))


def graded_reward(prompts, completions, **kwargs):
    """Continuous reward in {0, 1/3, 2/3, 1}: letters of the completion equal to the prompt's."""
    return [
        sum(char == prompt[0] for char in completion) / 3
        for prompt, completion in zip(prompts, completions)
    ]


def sometimes_unscorable(prompts, completions, **kwargs):
    """Binary reward, None (unscorable) when the completion starts with 'a'."""
    return [
        None if completion.startswith("a") else float(prompt[0] in completion)
        for prompt, completion in zip(prompts, completions)
    ]


def _recording(base):
    class Recording(base):
        def _calculate_rewards(self, *args):
            gathered = super()._calculate_rewards(*args)
            mode = "train" if self.model.training else "eval"
            self.records.append({"rewards": gathered.clone(), "mode": mode})
            return gathered

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            self.records[-1]["advantages"] = output["advantages"].clone()
            self.records[-1]["k"] = self.pkpo_k()
            return output

    return Recording


def _common_args(tmp_path, **overrides):
    args = {
        "output_dir": str(tmp_path / "out"),
        "num_generations": G,
        "per_device_train_batch_size": 8,
        "max_completion_length": 3,
        "max_steps": 3,
        "learning_rate": 1e-2,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
    }
    args.update(overrides)
    return args


def _trainer(trainer_cls, config, model_dir, reward_funcs, **kwargs):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = _recording(trainer_cls)(
        model=model,
        reward_funcs=reward_funcs,
        args=config,
        train_dataset=trl_tiny.prompts_dataset(2),
        processing_class=trl_tiny.build_tokenizer(),
        **kwargs,
    )
    trainer.records = []
    return trainer


def _train(trainer_cls, config, model_dir, reward_funcs):
    trainer = _trainer(trainer_cls, config, model_dir, reward_funcs)
    before = {name: value.detach().clone() for name, value in trainer.model.named_parameters()}
    trainer.train()
    changed = any(
        not torch.equal(before[name], value) for name, value in trainer.model.named_parameters()
    )
    return trainer, changed


def _expected(rewards_per_func, k, baseline, scale="mean_abs"):
    """pkpo.transform of each group of G consecutive rows of the whole gathered batch (one call,
    so one "mean_abs" normaliser); unscorable rows masked out (get 0)."""
    scorable = ~torch.isnan(rewards_per_func).all(dim=1)
    rewards = torch.nan_to_num(rewards_per_func, nan=0.0).sum(dim=1)
    mask = scorable.view(-1, G)
    grouped = rewards.view(-1, G).double()
    return pkpo.transform(grouped, k, baseline, mask=mask, scale=scale).reshape(-1)


@pytest.mark.parametrize(
    "baseline, scale", [("loo_minus_one", None), ("loo", None), ("loo_minus_one", "none")]
)
def test_grpo_trains_on_pkpo_advantages(tmp_path, model_dir, baseline, scale):
    extra = {} if scale is None else {"pkpo_scale": scale}
    config = PKPOGRPOConfig(
        **_common_args(tmp_path, logging_steps=1, log_completions=True, num_completions_to_print=0),
        pkpo_k=2,
        pkpo_baseline=baseline,
        **extra,
    )
    # TRL's own loss_type default ("dapo"), PKPO's default scale for the adapters ("mean_abs")
    assert (config.loss_type, config.scale_rewards) == ("dapo", "none")
    assert config.pkpo_scale == (scale or "mean_abs")
    trainer, changed = _train(PKPOGRPOTrainer, config, model_dir, graded_reward)
    assert changed, "three training steps left every parameter unchanged"
    assert len(trainer.records) >= 3
    for record in trainer.records:
        expected = _expected(record["rewards"], 2, baseline, config.pkpo_scale)
        torch.testing.assert_close(record["advantages"].double(), expected, rtol=1e-5, atol=1e-6)
        if config.pkpo_scale == "none":  # the paper's values, exactly: s^(loo-1) of each group
            rewards = record["rewards"].sum(dim=1).double().view(-1, G)
            paper = torch.stack([pkpo.transform(row, 2, baseline) for row in rewards])
            torch.testing.assert_close(record["advantages"].double(), paper.reshape(-1))
    nonzero = [bool(torch.any(record["advantages"] != 0)) for record in trainer.records]
    assert any(nonzero), "every advantage was zero: the test data carries no signal"
    assert any(entry.get("pkpo/k") == 2 for entry in trainer.state.log_history)
    assert any("pkpo/estimate" in entry for entry in trainer.state.log_history)
    # the completions table TRL writes shows PKPO's advantages, not TRL's (one process: all rows
    # local)
    import pandas as pd

    last = trainer.records[-1]["advantages"]
    tables = sorted((tmp_path / "out" / "completions").glob("completions_*.parquet"))
    assert tables, "log_completions=True wrote no completions table"
    logged = pd.read_parquet(tables[-1])["advantage"].to_numpy()[-len(last) :]
    np.testing.assert_allclose(logged, last.numpy(), rtol=1e-6)


def test_unscorable_rows_are_left_out_of_their_group(tmp_path, model_dir):
    config = PKPOGRPOConfig(**_common_args(tmp_path, max_steps=2), pkpo_k=2)
    trainer, _ = _train(PKPOGRPOTrainer, config, model_dir, [sometimes_unscorable, graded_reward])
    for record in trainer.records:
        torch.testing.assert_close(
            record["advantages"].double(), _expected(record["rewards"], 2, "loo_minus_one")
        )


def test_k_schedule_follows_the_global_step(tmp_path, model_dir):
    config = PKPOGRPOConfig(**_common_args(tmp_path, max_steps=3), pkpo_schedule="4->2@2")
    trainer, _ = _train(PKPOGRPOTrainer, config, model_dir, graded_reward)
    assert [record["k"] for record in trainer.records[:3]] == [4, 4, 2]
    for record in trainer.records:
        torch.testing.assert_close(
            record["advantages"].double(),
            _expected(record["rewards"], record["k"], "loo_minus_one"),
        )


def test_rloo_trains_on_pkpo_advantages(tmp_path, model_dir):
    config = PKPORLOOConfig(**_common_args(tmp_path, max_steps=2), pkpo_k=3)
    trainer, changed = _train(PKPORLOOTrainer, config, model_dir, graded_reward)
    assert changed
    for record in trainer.records:
        torch.testing.assert_close(
            record["advantages"].double(), _expected(record["rewards"], 3, "loo_minus_one")
        )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda a: PKPOGRPOConfig(**a), "set k"),
        (lambda a: PKPOGRPOConfig(**a, pkpo_k=2, pkpo_schedule="4->1@5"), "either k or schedule"),
        (
            lambda a: PKPOGRPOConfig(**a, pkpo_k=5),
            "num_generations=4 samples per prompt is too few for k=5",
        ),
        (lambda a: PKPOGRPOConfig(**a, pkpo_k=4, pkpo_baseline="loo"), "needs at least 5"),
        (lambda a: PKPOGRPOConfig(**a, pkpo_k=2, pkpo_baseline="std"), "unknown baseline"),
        (
            lambda a: PKPOGRPOConfig(**a, pkpo_k=2, pkpo_scale="x"),
            "^PKPOGRPOConfig: unknown scale 'x'; expected one of none, n_over_k, mean_abs",
        ),
        (
            lambda a: PKPOGRPOConfig(
                **a, pkpo_k=2, multi_objective_aggregation="normalize_then_sum"
            ),
            "multi_objective_aggregation='normalize_then_sum'",
        ),
        (
            lambda a: PKPORLOOConfig(**a, pkpo_k=2, normalize_advantages=True),
            "normalize_advantages=True",
        ),
        (
            lambda a: PKPOGRPOConfig(**a, pkpo_k=2, pkpo_eval_ks=[1, 8]),
            r"^PKPOGRPOConfig.pkpo_eval_ks: k=8 exceeds the 4 samples .*\(num_generations=4\)",
        ),
        (
            lambda a: PKPOGRPOConfig(**a, pkpo_k=2, num_generations_eval=2, pkpo_eval_ks=[4]),
            r"k=4 exceeds the 2 samples .*\(num_generations_eval=2\)",
        ),
        (lambda a: PKPOGRPOConfig(**a, pkpo_schedule="8->1"), "say when k changes"),
        (lambda a: PKPORLOOConfig(**a, pkpo_k=2, beta=0.05), "beta=0.05"),
    ],
)
def test_bad_configs_raise(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        make(_common_args(tmp_path))


@pytest.mark.parametrize("loss_type", ["grpo", "sapo", "bnpo"])
def test_loss_types_that_reweight_sequences_warn(tmp_path, caplog, loss_type):
    with caplog.at_level("WARNING", logger="pkpo.integrations.trl"):
        PKPOGRPOConfig(**_common_args(tmp_path), pkpo_k=2, loss_type=loss_type)
    assert f"loss_type={loss_type!r}" in caplog.text and "re-weights sequences" in caplog.text


@pytest.mark.parametrize("loss_type", ["dapo", "dr_grpo"])
def test_sequence_weighting_loss_types_do_not_warn(tmp_path, caplog, loss_type):
    with caplog.at_level("WARNING", logger="pkpo.integrations.trl"):
        PKPOGRPOConfig(**_common_args(tmp_path), pkpo_k=2, loss_type=loss_type)
    assert "pkpo" not in caplog.text


def binary_reward(prompts, completions, **kwargs):
    """1 if the completion contains the prompt's letter."""
    return [float(prompt[0] in completion) for prompt, completion in zip(prompts, completions)]


@pytest.mark.parametrize("reward, binary", [(graded_reward, False), (binary_reward, True)])
def test_evaluate_logs_unbiased_pass_and_maxg_at_k(tmp_path, model_dir, reward, binary):
    """evaluate() on num_generations_eval completions per prompt: eval_pass@k / eval_maxg@k and
    their SE equal pkpo.metrics over the rewards TRL computed for the eval prompts."""
    from pkpo.integrations._common import validation_metrics

    args = _common_args(tmp_path, num_generations_eval=4, per_device_eval_batch_size=8)
    config = PKPOGRPOConfig(**args, pkpo_k=2, pkpo_eval_ks=[1, 2, 4])
    eval_dataset = trl_tiny.prompts_dataset(1)  # 8 prompts x 4 completions, 4 eval batches
    trainer = _trainer(PKPOGRPOTrainer, config, model_dir, reward, eval_dataset=eval_dataset)
    metrics = trainer.evaluate()

    records = [record for record in trainer.records if record["mode"] == "eval"]
    rewards = torch.cat([record["rewards"][:, 0] for record in records]).double().view(-1, 4)
    assert rewards.shape[0] == 8  # every eval prompt, once
    expected = validation_metrics(rewards.tolist(), (1, 2, 4))
    if binary:
        report = pkpo.metrics.pass_at_k_report(rewards.numpy(), [1, 2, 4])
        assert metrics["eval_pass@4"] == pytest.approx(report[4].estimate)
        assert metrics["eval_pass@4/se"] == pytest.approx(report[4].se)
    else:
        assert not any(name.startswith("eval_pass@") for name in metrics)
    report = pkpo.metrics.maxg_at_k_report(rewards.numpy(), [1, 2, 4])
    for k in (1, 2, 4):
        assert metrics[f"eval_maxg@{k}"] == pytest.approx(report[k].estimate)
        assert metrics[f"eval_maxg@{k}/se"] == pytest.approx(report[k].se)
    assert {name: metrics[f"eval_{name}"] for name in expected} == pytest.approx(expected)
    assert trainer.state.log_history[-1]["eval_maxg@4"] == metrics["eval_maxg@4"]  # logged too


def test_trainer_refuses_a_plain_grpo_config(tmp_path, model_dir):
    from trl import GRPOConfig

    with pytest.raises(ValueError, match="PKPOGRPOConfig"):
        PKPOGRPOTrainer(
            model=model_dir, reward_funcs=graded_reward, args=GRPOConfig(**_common_args(tmp_path))
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_in_own_session(command, env, timeout):
    """Run ``command``; on timeout kill its whole process group (torchrun's workers too)."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -9, f"timed out after {timeout} s\n" + output
    return process.returncode, output


@pytest.mark.slow
def test_two_processes_give_the_same_advantages_as_one(tmp_path, model_dir):
    """Groups span processes (6 rows per rank, groups of 4): the slices must match one process."""
    script = Path(__file__).with_name("trl_two_process_run.py")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "WANDB_DISABLED": "true",
    }
    # torchrun, which `accelerate launch --multi_gpu` wraps (`accelerate launch --cpu` starts one
    # process only).
    # On a machine without GPUs accelerate then runs MULTI_CPU with the gloo backend.
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        str(script),
        model_dir,
        str(tmp_path),
    ]
    returncode, output = _run_in_own_session(command, env, timeout=300)
    assert returncode == 0, output[-6000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    spec = importlib.util.spec_from_file_location("two_process_run", script)
    run = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        spec.loader.exec_module(run)
    finally:
        sys.path.remove(str(ROOT / "examples"))
    assert len(ranks[0]["records"]) == len(ranks[1]["records"]) >= 2
    local_means = []
    for step0, step1 in zip(ranks[0]["records"], ranks[1]["records"]):
        prompts = step0["prompts"] + step1["prompts"]  # gather order: rank 0's rows, then rank 1's
        completions = step0["completions"] + step1["completions"]
        assert len(step0["prompts"]) == run.PER_DEVICE
        groups = [prompts[i : i + G] for i in range(0, len(prompts), G)]
        # TRL's layout: G consecutive rows per prompt; the middle group spans both ranks
        assert all(len(set(group)) == 1 for group in groups), groups
        assert groups[1][:2] == prompts[4:6] and run.PER_DEVICE % G != 0

        # one process: the reward function on all rows at once, then PKPO per group
        rewards = np.array(run.reward(prompts, completions), dtype=np.float32)
        np.testing.assert_allclose(step0["gathered_rewards"], rewards, rtol=1e-6)
        np.testing.assert_allclose(step1["gathered_rewards"], rewards, rtol=1e-6)
        # the default scale ("mean_abs") divides by the mean |A| of the gathered batch: one
        # normaliser for both ranks, as in one process
        grouped = rewards.reshape(-1, G).astype(np.float64)
        one_process = pkpo.transform(grouped, run.K, scale="mean_abs").reshape(-1)
        two_processes = np.array(step0["advantages"] + step1["advantages"])
        np.testing.assert_allclose(two_processes, one_process, rtol=1e-5, atol=1e-7)
        local_means.extend(np.abs(step["advantages"]).mean() for step in (step0, step1))
    # a per-rank normaliser would give each rank mean |A| = 1; the global one does not
    assert not np.allclose(local_means, 1.0), local_means


def test_pkpo_method_selects_another_estimator_of_the_family(tmp_path, model_dir):
    config = PKPOGRPOConfig(**_common_args(tmp_path, max_steps=2), pkpo_method="rloo")
    assert config.pkpo_options.method == "rloo" and config.pkpo_options.k_at(None) is None
    trainer, changed = _train(
        PKPOGRPOTrainer, config, model_dir, [sometimes_unscorable, graded_reward]
    )
    assert changed
    for record in trainer.records:
        rewards_per_func = record["rewards"]
        scorable = ~torch.isnan(rewards_per_func).all(dim=1)
        rewards = torch.nan_to_num(rewards_per_func, nan=0.0).sum(dim=1).view(-1, G).double()
        expected = pkpo.advantages.compute(
            "rloo", rewards, mask=scorable.view(-1, G), scale="mean_abs"
        )
        torch.testing.assert_close(record["advantages"].double(), expected.reshape(-1))
        pkpo_values = _expected(rewards_per_func, 2, "loo_minus_one")
        if bool(torch.any(pkpo_values != 0)):
            assert not torch.allclose(record["advantages"].double(), pkpo_values)
    assert not any("pkpo/k" in entry for entry in trainer.state.log_history)  # rloo has no k


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"pkpo_method": "nope"}, "^PKPOGRPOConfig: unknown advantage estimator 'nope'"),
        ({"pkpo_method": "grpo", "pkpo_k": 2}, "method 'grpo' takes no k"),
        ({"pkpo_method": "rs_grpo", "pkpo_params": "gamma=1"}, "has no parameter 'gamma'"),
        ({"pkpo_method": "passk_training", "pkpo_k": 8}, "num_generations=4 samples per prompt"),
    ],
)
def test_bad_methods_are_refused_when_the_config_is_made(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message) as error:
        PKPOGRPOConfig(**_common_args(tmp_path), **overrides)
    assert "\n" not in str(error.value)
