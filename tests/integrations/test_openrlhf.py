"""The OpenRLHF patch and launcher, against a stand-in of OpenRLHF 0.11.2's classes.

OpenRLHF cannot be installed here (it needs flash-attn, a CUDA build), so the tests write a small
fake ``openrlhf`` package with the same module paths, class names, method signatures and data
layout as 0.11.2 (``experience.rewards`` (B,) per micro-batch, ``experience.index`` mapping rows
back to prompt order, groups of ``args.rollout.n_samples_per_prompt`` consecutive rows in prompt
order) and check that the method OpenRLHF would run sees PKPO rewards. The last test runs the
patch on the real package where it is installed; it is the one skip allowed in this project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pkpo
from pkpo.integrations import openrlhf as adapter
from pkpo.launch import openrlhf as launcher

FAKE_EXPERIENCE_MAKER = '''
"""Stand-in for openrlhf/trainer/ppo_utils/experience_maker.py (0.11.2 layout)."""
import torch


class Experience:
    def __init__(self, rewards, index):
        self.rewards = rewards
        self.index = index
        self.info = {"reward": rewards.clone()}
        self.returns = None


class RemoteExperienceMaker:
    def __init__(self, args):
        self.args = args
        self.advantage_estimator = args.algo.advantage.estimator
        self.seen_in_prompt_order = None

    def compute_advantages_and_returns(self, experiences, **kwargs):
        n = self.args.rollout.n_samples_per_prompt
        exp_len = [len(e.index) for e in experiences]
        indices = torch.tensor(sum([e.index for e in experiences], []))
        raw = torch.cat([e.rewards for e in experiences], dim=0)
        rewards = torch.empty_like(raw)
        rewards[indices] = raw
        rewards = rewards.reshape(-1, n)
        self.seen_in_prompt_order = rewards.clone()
        # estimator "reinforce": no group shaping; returns = rewards (gamma = 1, reward at the end)
        rewards = rewards.reshape(-1)[indices].split(exp_len)
        for experience, reward in zip(experiences, rewards):
            experience.returns = reward.clone()
        return experiences
'''

FAKE_PPO_TRAINER = '''
"""Stand-in for openrlhf/trainer/ppo_trainer.py.

BasePPOTrainer.train_step(self, rollout_samples, global_step) as in 0.11.2.
"""


class BasePPOTrainer:
    def __init__(self, experience_maker):
        self.experience_maker = experience_maker

    def train_step(self, rollout_samples, global_step):
        return self.experience_maker.compute_advantages_and_returns(rollout_samples)
'''

FAKE_TRAIN_PPO_RAY = '''
"""Stand-in for openrlhf/cli/train_ppo_ray.py: records what the launcher handed it."""
import json, os, sys
import ray
from openrlhf.trainer.ppo_utils import experience_maker

if __name__ == "__main__":
    method = experience_maker.RemoteExperienceMaker.compute_advantages_and_returns
    with open(os.environ["FAKE_RECORD"], "w") as handle:
        json.dump({"argv": sys.argv, "runtime_env": ray.recorded_runtime_env,
                   "env": {k: os.environ.get(k) for k in ("PKPO_K", "PKPO_SCHEDULE",
                                                           "PKPO_BASELINE")},
                   "patched_in_driver": hasattr(method, "__pkpo_original__")}, handle)
'''

FAKE_RAY = '''
"""Stand-in for ray: records ray.init's runtime_env."""
recorded_runtime_env = None
_initialized = False


def is_initialized():
    return _initialized


def init(runtime_env=None, **kwargs):
    global recorded_runtime_env, _initialized
    recorded_runtime_env, _initialized = runtime_env, True
'''


def write_fake_packages(root: Path, with_ray: bool = False) -> Path:
    files = {
        "openrlhf/__init__.py": "",
        "openrlhf/trainer/__init__.py": "",
        "openrlhf/trainer/ppo_utils/__init__.py": "",
        "openrlhf/trainer/ppo_utils/experience_maker.py": FAKE_EXPERIENCE_MAKER,
        "openrlhf/trainer/ppo_trainer.py": FAKE_PPO_TRAINER,
        "openrlhf/cli/__init__.py": "",
        "openrlhf/cli/train_ppo_ray.py": FAKE_TRAIN_PPO_RAY,
    }
    if with_ray:
        files["ray/__init__.py"] = FAKE_RAY
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def fake_openrlhf(tmp_path, monkeypatch):
    """Import the stand-in package in this process; clean up modules and the patch afterwards."""
    monkeypatch.syspath_prepend(str(write_fake_packages(tmp_path)))
    for name in [m for m in sys.modules if m == "openrlhf" or m.startswith("openrlhf.")]:
        monkeypatch.delitem(sys.modules, name)
    yield tmp_path
    adapter.unpatch()
    for name in [m for m in sys.modules if m == "openrlhf" or m.startswith("openrlhf.")]:
        del sys.modules[name]


def _modules():
    from openrlhf.trainer import ppo_trainer
    from openrlhf.trainer.ppo_utils import experience_maker

    return experience_maker, ppo_trainer


def _args(n=4, estimator="reinforce"):
    return SimpleNamespace(
        rollout=SimpleNamespace(n_samples_per_prompt=n),
        algo=SimpleNamespace(advantage=SimpleNamespace(estimator=estimator)),
    )


def _experiences(experience_maker, rewards_in_prompt_order, micro_batch, seed=0):
    """Rows shuffled as dynamic batching does, split into micro-batches of different sizes."""
    permutation = np.random.default_rng(seed).permutation(len(rewards_in_prompt_order))
    experiences, start = [], 0
    for size in micro_batch:
        rows = permutation[start : start + size].tolist()
        experiences.append(
            experience_maker.Experience(torch.tensor(rewards_in_prompt_order[rows]), rows)
        )
        start += size
    assert start == len(rewards_in_prompt_order)
    return experiences


@pytest.mark.parametrize("baseline", ["loo_minus_one", "none", "centered"])
def test_patched_method_sees_pkpo_rewards_in_prompt_order(fake_openrlhf, baseline):
    experience_maker, _ = _modules()
    adapter.patch(k=2, baseline=baseline)
    rewards = np.random.default_rng(1).random(12).astype(np.float32)  # 3 prompts x n=4, continuous
    rewards[:4] = [0, 1, 0, 1]
    maker = experience_maker.RemoteExperienceMaker(_args())
    experiences = _experiences(experience_maker, rewards, micro_batch=[5, 3, 4])
    maker.compute_advantages_and_returns(experiences)

    expected = pkpo.transform(rewards.reshape(-1, 4), 2, baseline)
    np.testing.assert_allclose(maker.seen_in_prompt_order.numpy(), expected, rtol=1e-6, atol=1e-7)
    for experience in experiences:  # each row's return is its own group's PKPO reward
        np.testing.assert_allclose(
            experience.returns.numpy(), expected.reshape(-1)[experience.index], rtol=1e-6
        )
        assert torch.all(experience.info["pkpo_k"] == 2)
        raw_kept = experience.info["reward"].numpy()
        np.testing.assert_allclose(raw_kept, rewards[experience.index])


def test_transform_experience_rewards_is_the_identity_layout_without_dynamic_batching():
    rewards = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0])]
    options = adapter.parse_options(k=2)
    out, estimate = adapter.transform_experience_rewards(
        rewards, [[0, 1, 2], [3, 4, 5]], 3, 2, options
    )
    expected = pkpo.transform(torch.cat(rewards).reshape(2, 3), 2)
    torch.testing.assert_close(torch.cat(out), expected.reshape(-1))
    assert estimate == pytest.approx(
        float(np.mean(pkpo.pass_at_k(np.array([[1, 0, 0], [1, 1, 0]]), 2)))
    )


def test_patch_is_idempotent(fake_openrlhf):
    experience_maker, ppo_trainer = _modules()
    original = experience_maker.RemoteExperienceMaker.compute_advantages_and_returns
    adapter.patch(k=2)
    once = experience_maker.RemoteExperienceMaker.compute_advantages_and_returns
    adapter.patch(k=3)  # changes the options, does not wrap twice
    assert experience_maker.RemoteExperienceMaker.compute_advantages_and_returns is once
    assert once.__pkpo_original__ is original
    assert hasattr(ppo_trainer.BasePPOTrainer.train_step, "__pkpo_original__")
    adapter.unpatch()
    assert experience_maker.RemoteExperienceMaker.compute_advantages_and_returns is original


def test_patch_applies_lazily_when_openrlhf_is_imported_later(fake_openrlhf):
    assert "openrlhf.trainer.ppo_utils.experience_maker" not in sys.modules
    adapter.patch(k=2)
    experience_maker, ppo_trainer = _modules()
    assert hasattr(
        experience_maker.RemoteExperienceMaker.compute_advantages_and_returns, "__pkpo_original__"
    )
    assert hasattr(ppo_trainer.BasePPOTrainer.train_step, "__pkpo_original__")


def test_k_schedule_follows_the_global_step_of_train_step(fake_openrlhf):
    experience_maker, ppo_trainer = _modules()
    adapter.patch(schedule="4->2@10")
    rewards = np.array([1, 0, 0, 1, 0, 1, 1, 0], dtype=np.float32)
    maker = experience_maker.RemoteExperienceMaker(_args())
    trainer = ppo_trainer.BasePPOTrainer(maker)
    for step, k in [(9, 4), (10, 2)]:
        trainer.train_step(_experiences(experience_maker, rewards, [4, 4]), step)
        np.testing.assert_allclose(
            maker.seen_in_prompt_order.numpy(), pkpo.transform(rewards.reshape(2, 4), k), rtol=1e-6
        )


def test_schedule_without_train_step_is_an_error(fake_openrlhf):
    experience_maker, _ = _modules()
    adapter.patch(schedule="4->2@10")
    maker = experience_maker.RemoteExperienceMaker(_args())
    with pytest.raises(ValueError, match="published none"):
        maker.compute_advantages_and_returns(
            _experiences(experience_maker, np.zeros(4, np.float32), [4])
        )


def test_other_estimators_are_refused(fake_openrlhf):
    experience_maker, _ = _modules()
    adapter.patch(k=2)
    maker = experience_maker.RemoteExperienceMaker(_args(estimator="group_norm"))
    with pytest.raises(ValueError, match="needs 'reinforce'"):
        maker.compute_advantages_and_returns(
            _experiences(experience_maker, np.zeros(4, np.float32), [4])
        )


def test_bad_layouts_raise(fake_openrlhf):
    options = adapter.parse_options(k=2)
    with pytest.raises(ValueError, match="not a permutation"):
        adapter.transform_experience_rewards(
            [torch.zeros(2), torch.zeros(2)], [[0, 1], [1, 3]], 2, 2, options
        )
    with pytest.raises(ValueError, match="do not split into groups of 3"):
        adapter.transform_experience_rewards([torch.zeros(4)], [[0, 1, 2, 3]], 3, 2, options)
    with pytest.raises(ValueError, match="fewer than the 3"):
        adapter.transform_experience_rewards([torch.zeros(4)], [[0, 1, 2, 3]], 2, 3, options)
    with pytest.raises(ValueError, match="one scalar reward per row"):
        adapter.transform_experience_rewards([torch.zeros(4, 2)], [[0, 1, 2, 3]], 2, 2, options)


def test_options_from_the_environment():
    assert adapter.options_from_env({"PKPO_K": "8"}).k_at(None) == 8
    options = adapter.options_from_env({"PKPO_SCHEDULE": "8->1@100", "PKPO_BASELINE": "loo"})
    assert (options.k_at(99), options.k_at(100), options.baseline) == (8, 1, "loo")
    with pytest.raises(ValueError, match="PKPO_K"):
        adapter.options_from_env({})
    with pytest.raises(ValueError, match="k must be an integer"):
        adapter.options_from_env({"PKPO_K": "many"})


# --- launcher --------------------------------------------------------------------------------


def test_split_argv_strips_pkpo_flags():
    env, rest = launcher.split_argv(
        [
            "--pkpo.k",
            "8",
            "--rollout.n_samples_per_prompt",
            "8",
            "--pkpo.baseline=loo",
            "--train.batch_size",
            "64",
        ]
    )
    assert env == {"PKPO_K": "8", "PKPO_BASELINE": "loo"}
    assert rest == ["--rollout.n_samples_per_prompt", "8", "--train.batch_size", "64"]
    with pytest.raises(ValueError, match="unknown flag --pkpo.variant"):
        launcher.split_argv(["--pkpo.variant", "s"])
    with pytest.raises(ValueError, match="needs a value"):
        launcher.split_argv(["--pkpo.k"])


def test_estimator_is_forced_to_reinforce():
    assert launcher.with_reinforce_estimator(["--x", "1"]) == [
        "--x",
        "1",
        "--algo.advantage.estimator",
        "reinforce",
        "--algo.advantage.no_std_norm",
    ]
    kept = launcher.with_reinforce_estimator(
        ["--algo.advantage.estimator=reinforce", "--algo.advantage.no_std_norm"]
    )
    assert kept == ["--algo.advantage.estimator=reinforce", "--algo.advantage.no_std_norm"]
    with pytest.raises(ValueError, match="'group_norm' would reshape"):
        launcher.with_reinforce_estimator(["--algo.advantage.estimator", "group_norm"])


def test_runtime_env_carries_the_hook_and_openrlhf_defaults():
    env = launcher.runtime_env({"PKPO_K": "4"}, environ={"NCCL_DEBUG": "INFO"})
    assert env["worker_process_setup_hook"] == "pkpo.integrations.openrlhf.patch"
    assert env["env_vars"] == {
        "TOKENIZERS_PARALLELISM": "true",
        "NCCL_DEBUG": "INFO",
        "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
        "PKPO_K": "4",
    }


def _launch(tmp_path, *argv):
    root = write_fake_packages(tmp_path / "fake", with_ray=True)
    record = tmp_path / "record.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "FAKE_RECORD": str(record),
    }
    for name in ("PKPO_K", "PKPO_SCHEDULE", "PKPO_BASELINE"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "pkpo.launch.openrlhf", *argv],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return result, record


def test_launcher_runs_train_ppo_ray_with_the_hook(tmp_path):
    result, record = _launch(
        tmp_path, "--pkpo.schedule", "8->1@100", "--rollout.n_samples_per_prompt", "8"
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(record.read_text())
    assert seen["argv"][1:] == [
        "--rollout.n_samples_per_prompt",
        "8",
        "--algo.advantage.estimator",
        "reinforce",
        "--algo.advantage.no_std_norm",
    ]
    assert seen["runtime_env"]["worker_process_setup_hook"] == "pkpo.integrations.openrlhf.patch"
    assert seen["runtime_env"]["env_vars"]["PKPO_SCHEDULE"] == "8->1@100"
    assert seen["env"]["PKPO_SCHEDULE"] == "8->1@100"
    assert seen["patched_in_driver"] is True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--rollout.n_samples_per_prompt", "8"], "set k"),
        (["--pkpo.k", "0"], "k must be >= 1"),
        (["--pkpo.k", "4", "--algo.advantage.estimator", "rloo"], "would reshape"),
    ],
)
def test_launcher_bad_arguments_exit_cleanly(tmp_path, argv, message):
    result, record = _launch(tmp_path, *argv)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not record.exists()


def test_real_openrlhf_is_patched_where_installed():
    """The one allowed skip: OpenRLHF needs flash-attn/CUDA, not installable on CPU machines."""
    pytest.importorskip("openrlhf")
    from openrlhf.trainer import ppo_trainer
    from openrlhf.trainer.ppo_utils import experience_maker

    try:
        adapter.patch(k=2)
        method = experience_maker.RemoteExperienceMaker.compute_advantages_and_returns
        assert hasattr(method, "__pkpo_original__")
        assert hasattr(ppo_trainer.BasePPOTrainer.train_step, "__pkpo_original__")
        import inspect

        assert list(inspect.signature(method.__pkpo_original__).parameters)[:2] == [
            "self",
            "experiences",
        ]
        assert list(
            inspect.signature(ppo_trainer.BasePPOTrainer.train_step.__pkpo_original__).parameters
        )[:3] == ["self", "rollout_samples", "global_step"]
    finally:
        adapter.unpatch()
