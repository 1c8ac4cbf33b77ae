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
import torch

import pkpo
from pkpo.integrations.trl import PKPOGRPOConfig, PKPOGRPOTrainer, PKPORLOOConfig, PKPORLOOTrainer

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
            self.records.append({"rewards": gathered.clone()})
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


def _train(trainer_cls, config, model_dir, reward_funcs):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    trainer = _recording(trainer_cls)(
        model=model,
        reward_funcs=reward_funcs,
        args=config,
        train_dataset=trl_tiny.prompts_dataset(2),
        processing_class=trl_tiny.build_tokenizer(),
    )
    trainer.records = []
    trainer.train()
    changed = any(
        not torch.equal(before[name], value) for name, value in trainer.model.named_parameters()
    )
    return trainer, changed


def _expected(rewards_per_func, k, baseline):
    """pkpo.transform of each group of G consecutive rows; unscorable rows masked out (get 0)."""
    scorable = ~torch.isnan(rewards_per_func).all(dim=1)
    rewards = torch.nan_to_num(rewards_per_func, nan=0.0).sum(dim=1)
    mask = scorable.view(-1, G)
    return pkpo.transform(rewards.view(-1, G).double(), k, baseline, mask=mask).reshape(-1)


@pytest.mark.parametrize("baseline", ["loo_minus_one", "loo"])
def test_grpo_trains_on_pkpo_advantages(tmp_path, model_dir, baseline):
    config = PKPOGRPOConfig(**_common_args(tmp_path), pkpo_k=2, pkpo_baseline=baseline)
    assert config.loss_type == "dr_grpo" and config.scale_rewards == "none"
    trainer, changed = _train(PKPOGRPOTrainer, config, model_dir, graded_reward)
    assert changed, "three training steps left every parameter unchanged"
    assert len(trainer.records) >= 3
    for record in trainer.records:
        expected = _expected(record["rewards"], 2, baseline)
        torch.testing.assert_close(record["advantages"].double(), expected, rtol=1e-5, atol=1e-6)
    nonzero = [bool(torch.any(record["advantages"] != 0)) for record in trainer.records]
    assert any(nonzero), "every advantage was zero: the test data carries no signal"
    assert any(entry.get("pkpo/k") == 2 for entry in trainer.state.log_history)
    assert any("pkpo/estimate" in entry for entry in trainer.state.log_history)
    # the completions table shows PKPO's advantages, not TRL's (one process: all rows are local)
    last = trainer.records[-1]["advantages"]
    logged = list(trainer._logs["advantages"])[-len(last) :]
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
        (lambda a: PKPOGRPOConfig(**a, pkpo_k=5), "num_generations=4 is too few for k=5"),
        (lambda a: PKPOGRPOConfig(**a, pkpo_k=4, pkpo_baseline="loo"), "needs at least 5"),
        (lambda a: PKPOGRPOConfig(**a, pkpo_k=2, pkpo_baseline="std"), "unknown baseline"),
        (lambda a: PKPOGRPOConfig(**a, pkpo_schedule="8->1"), "say when k changes"),
        (lambda a: PKPORLOOConfig(**a, pkpo_k=2, beta=0.05), "beta=0.05"),
    ],
)
def test_bad_configs_raise(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        make(_common_args(tmp_path))


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
        one_process = pkpo.transform(rewards.reshape(-1, G).astype(np.float64), run.K).reshape(-1)
        two_processes = np.array(step0["advantages"] + step1["advantages"])
        np.testing.assert_allclose(two_processes, one_process, rtol=1e-5, atol=1e-7)
