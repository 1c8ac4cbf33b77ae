"""The OpenRLHF patch and launcher against the real openrlhf 0.11.2 package, on CPU.

Real: the installed openrlhf wheel (``RemoteExperienceMaker``, ``apply_length_penalties``,
``Experience``, ``BasePPOTrainer``, the ``@ray.remote`` ``PPOTrainer`` and ``TrainingActor``
with their real ``train_step``, the ``train_ppo_ray`` parser and argument checks), a real local
Ray (2 CPUs) started by the launcher with its runtime_env, a tiny local Llama tokenizer.
Stubbed (tests/integrations/openrlhf_harness.py): the CUDA-only packages ``flash_attn``,
``deepspeed`` and ``vllm``, and the policy-model actor group (DeepSpeed models on GPUs), whose
"forward" returns zero log-probs. No vLLM generation, model forward or PPO update runs here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import openrlhf_harness as harness
import pytest

pytest.importorskip("torch", reason="the torch extra: make test installs it")
pytest.importorskip("openrlhf", reason="the openrlhf extra: make test installs it")
import torch  # noqa: E402

import pkpo  # noqa: E402
from pkpo.integrations import openrlhf as adapter  # noqa: E402
from pkpo.integrations import openrlhf_launch as launcher  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
N = 4  # samples per prompt
REWARDS = [1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0]  # 4 prompts in prompt order, ints
BASE_ARGV = ["--rollout.n_samples_per_prompt", str(N), "--actor.num_gpus_per_node", "1"]


# --- fixtures: the real package with the CUDA-only modules stubbed ----------------------------


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    return harness.write_stubs(tmp_path_factory.mktemp("cuda-stubs"))


@pytest.fixture(scope="module")
def orl(stubs):
    """The real openrlhf modules (imported once per module; unimported afterwards)."""
    with harness.stubbed_imports(stubs):
        from openrlhf.trainer import ppo_trainer, ppo_trainer_async
        from openrlhf.trainer.ppo_utils import experience, experience_maker, kl_controller
        from openrlhf.utils import get_strategy

        yield type(
            "OpenRLHF",
            (),
            {
                "experience_maker": experience_maker,
                "Experience": experience.Experience,
                "FixedKLController": kl_controller.FixedKLController,
                "ppo_trainer": ppo_trainer,
                "TrainingActor": ppo_trainer_async.TrainingActor,
                "get_strategy": staticmethod(get_strategy),
            },
        )
        adapter.unpatch()


@pytest.fixture(autouse=True)
def _unpatched():
    yield
    adapter.unpatch()


def parse(*argv):
    """args of the real train_ppo_ray parser, with what the launcher adds."""
    rest, _ = launcher.with_pkpo_defaults([*BASE_ARGV, "--reward.remote_url", "http://x", *argv])
    return harness.parse_args(rest)


def make_maker(orl, args):
    strategy = orl.get_strategy(args)  # the real DeepspeedStrategy (no distributed set-up)
    kl = orl.FixedKLController(args.algo.kl.init_coef)
    return orl.experience_maker.RemoteExperienceMaker(None, None, None, None, kl, strategy, None)


def micro_batches(orl, rewards, sizes, *, seed=0, dtype=None, response_lengths=None):
    """Experiences as make_experience leaves them: rows shuffled as dynamic batching does."""
    samples = harness.rollout_samples(rewards, response_lengths)
    order = np.random.default_rng(seed).permutation(len(samples)).tolist()
    batches, start = [], 0
    for size in sizes:
        rows = order[start : start + size]
        for row in rows:
            samples[row].index = [row]
            if dtype is not None:
                samples[row].rewards = samples[row].rewards.to(dtype)
                samples[row].info["reward"] = samples[row].rewards.clone()
        batch = orl.Experience.concat_experiences([samples[row] for row in rows], 0)
        batch.kl = torch.zeros(batch.action_mask.shape)
        batches.append(batch)
        start += size
    assert start == len(samples)
    return batches


def expected(rewards, k, options):
    """The PKPO rewards in prompt order, float64."""
    groups = np.asarray(rewards, dtype=np.float64).reshape(-1, N)
    return pkpo.transform(groups, k, options.baseline, scale=options.scale).reshape(-1)


def first_returns(batches):
    """Each row's return at its first response token, by prompt-order row."""
    values = {}
    for batch in batches:
        for row, value in zip(batch.index, batch.returns[:, 0].tolist()):
            values[row] = value
    return np.array([values[row] for row in range(len(values))])


# --- the patched experience maker ---------------------------------------------------------------


@pytest.mark.parametrize(
    "baseline, scale", [("loo_minus_one", "none"), ("centered", "mean_abs"), ("loo", "n_over_k")]
)
def test_returns_and_advantages_are_the_pkpo_rewards(orl, baseline, scale):
    options = adapter.patch(k=2, baseline=baseline, scale=scale)
    rng = np.random.default_rng(1)
    rewards = np.round(rng.random(len(REWARDS)), 3).tolist()  # continuous rewards
    batches = micro_batches(orl, rewards, sizes=[5, 3, 8])
    make_maker(orl, parse()).compute_advantages_and_returns(batches)

    pkpo_rewards = expected(rewards, 2, options)
    np.testing.assert_allclose(first_returns(batches), pkpo_rewards, rtol=1e-5, atol=1e-6)
    # reinforce + no_std_norm: advantages = returns - their global token mean
    returns = torch.cat([b.returns[b.action_mask] for b in batches])
    mean = returns.mean()
    for batch in batches:
        torch.testing.assert_close(
            batch.advantages[batch.action_mask], batch.returns[batch.action_mask] - mean
        )
        assert torch.all(batch.info["pkpo_k"] == 2)


def test_scale_none_gives_the_papers_values(orl):
    adapter.patch(k=2, scale="none")
    batches = micro_batches(orl, REWARDS, sizes=[16])
    make_maker(orl, parse()).compute_advantages_and_returns(batches)
    # s^(loo-1) = s_i - (k/n) rho_{k-1}(g without i) (paper eq. 33) at k=2, n=4, by hand: a
    # success gets s_i = k/n = 1/2 minus (1/2)(other successes)/3; a failure gets 0
    paper = [1 / 2, 0, 0, 0, 0, 1 / 3, 1 / 3, 0, 0, 0, 0, 0, 1 / 6, 1 / 6, 1 / 6, 0]
    np.testing.assert_allclose(first_returns(batches), paper, rtol=1e-6)


def test_scale_mean_abs_normalises_over_the_whole_call(orl):
    options = adapter.patch(k=2, scale="mean_abs")
    batches = micro_batches(orl, REWARDS, sizes=[7, 9])
    make_maker(orl, parse()).compute_advantages_and_returns(batches)
    values = first_returns(batches)
    assert np.mean(np.abs(values)) == pytest.approx(1.0, rel=1e-6)
    paper = expected(REWARDS, 2, adapter.parse_options(k=2, scale="none"))
    np.testing.assert_allclose(values, paper / np.mean(np.abs(paper)), rtol=1e-6)
    assert options.scale == "mean_abs"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.int64])
def test_reward_dtypes(orl, dtype):
    """OpenRLHF's own test_reward_shaping dtypes: bf16 used to crash, int64 0/1 became 0."""
    options = adapter.patch(k=2)
    batches = micro_batches(orl, REWARDS, sizes=[6, 10], dtype=dtype)
    make_maker(orl, parse()).compute_advantages_and_returns(batches)
    for batch in batches:
        assert batch.rewards.dtype == batch.returns.dtype == torch.float32
        assert batch.info["reward"].dtype == torch.float32
    values = first_returns(batches)
    np.testing.assert_allclose(values, expected(REWARDS, 2, options), rtol=1e-5, atol=1e-7)
    assert np.count_nonzero(values) == 6


def test_logs_keep_the_task_reward_and_penalties_come_first(orl):
    """info["reward"] (rollout/reward_mean, the sample log) and group_reward_std stay the task
    reward; OpenRLHF's overlong penalty applies to it before the transform."""
    options = adapter.patch(k=2)
    args = parse(
        *["--reward.overlong_buffer_len", "2", "--reward.overlong_penalty_factor", "0.5"],
        *["--rollout.max_new_tokens", "4"],
    )
    lengths = [2, 3, 4, 2] * 4  # 3 tokens: penalty 0.25; 4 tokens: 0.5
    penalty = {2: 0.0, 3: 0.25, 4: 0.5}
    task = np.array([reward - penalty[length] for reward, length in zip(REWARDS, lengths)])
    batches = micro_batches(orl, REWARDS, sizes=[8, 8], response_lengths=lengths)
    make_maker(orl, args).compute_advantages_and_returns(batches)

    np.testing.assert_allclose(first_returns(batches), expected(task, 2, options), rtol=1e-5)
    for batch in batches:
        np.testing.assert_allclose(batch.info["reward"].numpy(), task[batch.index], rtol=1e-6)
        stds = task.reshape(-1, N).std(axis=1, ddof=1).repeat(N)
        np.testing.assert_allclose(batch.info["group_reward_std"].numpy(), stds[batch.index], 1e-6)
    stats = orl.ppo_trainer.BasePPOTrainer._compute_rollout_stats(None, batches)
    assert stats["rollout/reward_mean"] == pytest.approx(task.mean(), rel=1e-6)


def test_other_estimators_are_refused(orl):
    adapter.patch(k=2)
    args = harness.parse_args([*BASE_ARGV, "--algo.advantage.estimator", "group_norm"])
    with pytest.raises(ValueError, match="needs 'reinforce'"):
        make_maker(orl, args).compute_advantages_and_returns(micro_batches(orl, REWARDS, [16]))


def test_schedule_outside_train_step_needs_a_published_step(orl):
    adapter.patch(schedule="4->2@10")
    maker = make_maker(orl, parse())
    with pytest.raises(ValueError, match="published none"):
        maker.compute_advantages_and_returns(micro_batches(orl, REWARDS, [16]))
    adapter.clock.publish(10)
    batches = micro_batches(orl, REWARDS, [16])
    maker.compute_advantages_and_returns(batches)
    assert torch.all(batches[0].info["pkpo_k"] == 2)


def test_clipped_pkpo_rewards_are_reported(orl, caplog):
    adapter.patch(k=1, scale="mean_abs")
    rewards = [1] + [0] * (len(REWARDS) - 1)  # one success: mean_abs gives it a large value
    batches = micro_batches(orl, rewards, [16])
    with caplog.at_level("WARNING", logger="pkpo.integrations.openrlhf"):
        make_maker(orl, parse("--reward.clip_range", "-2", "2")).compute_advantages_and_returns(
            batches
        )
    assert "outside --reward.clip_range" in caplog.text
    assert first_returns(batches).max() == pytest.approx(2.0)  # OpenRLHF clipped it


def test_patch_is_idempotent_and_undone(orl):
    maker_class = orl.experience_maker.RemoteExperienceMaker
    original = maker_class.compute_advantages_and_returns
    original_penalties = orl.experience_maker.apply_length_penalties
    adapter.patch(k=2)
    once = maker_class.compute_advantages_and_returns
    adapter.patch(k=3)  # changes the options, does not wrap twice
    assert maker_class.compute_advantages_and_returns is once
    assert once.__pkpo_original__ is original
    assert orl.experience_maker.apply_length_penalties.__pkpo_original__ is original_penalties
    adapter.unpatch()
    assert maker_class.compute_advantages_and_returns is original
    assert orl.experience_maker.apply_length_penalties is original_penalties


def test_patch_applies_when_openrlhf_is_imported_later(orl, monkeypatch):
    import importlib

    name = adapter.EXPERIENCE_MODULE
    monkeypatch.delitem(sys.modules, name)  # restored afterwards
    adapter.patch(k=2)
    fresh = importlib.import_module(name)  # runs the real module body again
    assert fresh is not orl.experience_maker
    assert hasattr(fresh.RemoteExperienceMaker.compute_advantages_and_returns, "__pkpo_original__")
    assert hasattr(fresh.apply_length_penalties, "__pkpo_original__")


def test_transform_experience_rewards_layouts():
    options = adapter.parse_options(k=2, scale="none")
    rewards = [torch.tensor([1, 0, 0]), torch.tensor([1, 1, 0])]  # int64
    out, estimate = adapter.transform_experience_rewards(
        rewards, [[0, 1, 2], [3, 4, 5]], 3, 2, options
    )
    assert out[0].dtype == torch.float32
    np.testing.assert_allclose(
        torch.cat(out).numpy(), pkpo.transform(np.array([[1.0, 0, 0], [1, 1, 0]]), 2).reshape(-1)
    )
    assert estimate == pytest.approx(
        float(np.mean(pkpo.pass_at_k(np.array([[1, 0, 0], [1, 1, 0]]), 2)))
    )
    with pytest.raises(ValueError, match="not a permutation"):
        adapter.transform_experience_rewards(
            [torch.zeros(2), torch.zeros(2)], [[0, 1], [1, 3]], 2, 2, options
        )
    with pytest.raises(ValueError, match="do not split into groups of 3"):
        adapter.transform_experience_rewards([torch.zeros(4)], [[0, 1, 2, 3]], 3, 2, options)
    with pytest.raises(
        ValueError,
        match=r"^OpenRLHF: every group has 2 sample\(s\), fewer than the 4 that k=3 with baseline "
        r"'loo'",
    ):
        adapter.transform_experience_rewards(
            [torch.zeros(4)], [[0, 1, 2, 3]], 2, 3, adapter.parse_options(k=3, baseline="loo")
        )
    with pytest.raises(ValueError, match="one scalar reward per row"):
        adapter.transform_experience_rewards([torch.zeros(4, 2)], [[0, 1, 2, 3]], 2, 2, options)


def test_options_from_the_environment():
    assert adapter.options_from_env({"PKPO_K": "8"}).k_at(None) == 8
    options = adapter.options_from_env(
        {"PKPO_SCHEDULE": "8->1@100", "PKPO_BASELINE": "loo", "PKPO_SCALE": "n_over_k"}
    )
    assert (options.k_at(99), options.k_at(100), options.baseline, options.scale) == (
        8,
        1,
        "loo",
        "n_over_k",
    )
    with pytest.raises(ValueError, match="PKPO_K"):
        adapter.options_from_env({})
    with pytest.raises(ValueError, match="unknown scale"):
        adapter.options_from_env({"PKPO_K": "2", "PKPO_SCALE": "std"})
    with pytest.raises(ValueError, match="needs at least 9"):
        adapter.options_from_env({"PKPO_K": "8", "PKPO_BASELINE": "loo"}, rollout_n=8)


# --- launcher ------------------------------------------------------------------------------------


def test_split_argv_strips_pkpo_flags():
    env, rest = launcher.split_argv(
        [
            "--pkpo.k",
            "8",
            "--rollout.n_samples_per_prompt",
            "8",
            "--pkpo.scale=mean_abs",
            "--x",
            "1",
        ]
    )
    assert env == {"PKPO_K": "8", "PKPO_SCALE": "mean_abs"}
    assert rest == ["--rollout.n_samples_per_prompt", "8", "--x", "1"]
    with pytest.raises(ValueError, match="unknown flag --pkpo.variant"):
        launcher.split_argv(["--pkpo.variant", "s"])
    with pytest.raises(ValueError, match="needs a value"):
        launcher.split_argv(["--pkpo.k"])


def test_pkpo_defaults_are_added_unless_given():
    rest, notes = launcher.with_pkpo_defaults(["--x", "1"])
    assert rest == [
        "--x",
        "1",
        "--algo.advantage.estimator",
        "reinforce",
        "--algo.advantage.no_std_norm",
        "--algo.kl.init_coef",
        "0",
    ]
    assert len(notes) == 1 and "KL-in-reward is off" in notes[0]
    given = ["--algo.advantage.estimator=reinforce", "--algo.advantage.no_std_norm"]
    rest, _ = launcher.with_pkpo_defaults([*given, "--algo.kl.use_loss"])
    assert rest == [*given, "--algo.kl.use_loss"]  # KL as a loss: its coefficient is kept
    rest, notes = launcher.with_pkpo_defaults(["--algo.kl.init_coef", "0.05"])
    assert rest.count("--algo.kl.init_coef") == 1 and "not transformed" in notes[0]
    _, notes = launcher.with_pkpo_defaults(["--actor.loss_agg_mode", "seq-mean-token-mean"])
    assert any("1/length" in note for note in notes)
    with pytest.raises(ValueError, match="'group_norm' would reshape"):
        launcher.with_pkpo_defaults(["--algo.advantage.estimator", "group_norm"])


def test_pkpo_defaults_through_the_real_parser(orl):
    args = parse()
    assert args.algo.advantage.estimator == "reinforce" and args.algo.advantage.no_std_norm
    assert args.algo.kl.init_coef == 0 and not args.algo.kl.use_loss
    assert args.actor.loss_agg_mode == "token-mean"
    kl_loss = parse("--algo.kl.use_loss", "--algo.kl.estimator", "k3")
    assert kl_loss.algo.kl.use_loss and kl_loss.algo.kl.init_coef == 0.01  # OpenRLHF's default


def test_runtime_env_carries_the_hook_and_openrlhf_defaults():
    env = launcher.runtime_env({"PKPO_K": "4"}, environ={"NCCL_DEBUG": "INFO"})
    assert env["worker_process_setup_hook"] == "pkpo.integrations.openrlhf.patch"
    assert env["env_vars"] == {
        "TOKENIZERS_PARALLELISM": "true",
        "NCCL_DEBUG": "INFO",
        "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
        "PKPO_K": "4",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--rollout.n_samples_per_prompt", "8"], "set k"),
        (["--pkpo.k", "0"], "k must be >= 1"),
        (["--pkpo.k", "4", "--pkpo.scale", "std"], "unknown scale"),
        (["--pkpo.k", "4"], "--rollout.n_samples_per_prompt=1 samples per prompt is too few"),
        (["--pkpo.k", "4", "--rollout.n_samples_per_prompt", "4.5"], "must be an integer"),
        (["--pkpo.k", "4", *BASE_ARGV, "--algo.advantage.estimator", "rloo"], "would reshape"),
    ],
)
def test_launcher_bad_arguments_exit_cleanly(argv, message, capsys):
    assert launcher.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_launcher_help_names_the_pkpo_flags(capsys):
    assert launcher.main(["--pkpo.k", "4", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in launcher.PKPO_FLAGS:
        assert flag in out
    assert "python -m openrlhf.cli.train_ppo_ray --help" in out


def test_launcher_without_openrlhf_says_what_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openrlhf", None)  # find_spec reports it missing
    assert launcher.main(["--pkpo.k", "4", *BASE_ARGV]) == 2
    err = capsys.readouterr().err
    assert "missing: openrlhf" in err and "pip install" in err
    assert len(err.strip().splitlines()) == 1


def test_launcher_on_a_cpu_machine_exits_with_one_line():
    """This venv has openrlhf but not its CUDA-only dependencies (no stubs on the path)."""
    result = subprocess.run(
        [sys.executable, "-m", "pkpo.integrations.openrlhf_launch", "--pkpo.k", "4", *BASE_ARGV],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PKPO_")},
        check=False,
    )
    assert result.returncode == 2
    message = (
        "pkpo.integrations.openrlhf_launch: error: OpenRLHF cannot be imported here (missing: "
        "flash_attn, deepspeed, vllm); install it on a CUDA machine: pip install "
        "'openrlhf[vllm]==0.11.2' (docs/integrations.md)."
    )
    assert result.stderr.strip().splitlines() == [message]


# --- the launcher, real Ray and the real Ray actors ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("trl_tiny", ROOT / "examples" / "trl_tiny.py")
    trl_tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trl_tiny)
    return trl_tiny.build_tiny_model(str(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="module")
def launched(orl, stubs, tiny_model, tmp_path_factory):
    """``python -m pkpo.integrations.openrlhf_launch`` run in this process up to ``train(args)``.

    Ray is really started by the launcher with its runtime_env (the workers find the stubs and
    the harness through PYTHONPATH); train() is stopped at its first call after ray.init.
    """
    import ray

    prompts = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"ab{i}"}) + "\n" for i in range(8)))
    saved_env, saved_argv = dict(os.environ), list(sys.argv)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(stubs), str(HERE)])
    for name in launcher.PKPO_FLAGS.values():
        os.environ.pop(name, None)
    real_init, seen = ray.init, {}

    def init(**kwargs):  # what the launcher passes, plus a small footprint for this machine
        seen.update(kwargs)
        return real_init(num_cpus=2, include_dashboard=False, **kwargs)

    ray.init = init
    try:
        with harness.launched_args() as launched_args:
            launcher.main(
                ["--pkpo.schedule", "4->2@1", "--pkpo.scale", "none", *BASE_ARGV]
                + ["--actor.model_name_or_path", tiny_model, "--data.prompt_dataset", str(prompts)]
                + ["--reward.remote_url", "http://localhost:1/reward", "--data.input_key", "prompt"]
                + ["--rollout.batch_size", "4", "--rollout.micro_batch_size", "3"]
                + ["--train.batch_size", "16"]
            )
        yield launched_args["args"], seen["runtime_env"]
    finally:
        ray.init = real_init
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv[:] = saved_argv


def test_launcher_starts_ray_with_the_hook_and_the_real_parser_args(launched):
    args, runtime_env = launched
    assert runtime_env["worker_process_setup_hook"] == "pkpo.integrations.openrlhf.patch"
    assert runtime_env["env_vars"]["PKPO_SCHEDULE"] == "4->2@1"
    assert runtime_env["env_vars"]["PKPO_SCALE"] == "none"
    assert args.algo.advantage.estimator == "reinforce" and args.algo.advantage.no_std_norm
    assert args.algo.kl.init_coef == 0
    assert args.rollout.n_samples_per_prompt == N


def test_k_schedule_follows_train_step_in_the_ray_actors(orl, launched, tiny_model):
    """The real @ray.remote PPOTrainer (sync mode, OpenRLHF's default) and TrainingActor (async):
    the workers get the patch from the setup hook, the schedule follows global_step (k=4 at
    step 0, k=2 from step 1), the logs keep the task rewards."""
    import ray

    args, _ = launched
    strategy = orl.get_strategy(args)
    queues = {"vllm_lock": None, "rollout_queue": None, "rollout_slots": None}  # unused here
    trainers = {  # both workers start at once
        "sync PPOTrainer": orl.ppo_trainer.PPOTrainer.remote(
            tiny_model, strategy, harness.CPUModelGroup(), None, None, None, None
        ),
        "async TrainingActor": orl.TrainingActor.remote(
            tiny_model, strategy, harness.CPUModelGroup(), None, None, None, None, **queues
        ),
    }
    options = adapter.options_from_env({"PKPO_SCHEDULE": "4->2@1", "PKPO_SCALE": "none"})
    try:
        for mode, trainer in trainers.items():
            for step in (0, 1):
                status, next_step = ray.get(
                    trainer.train_step.remote(harness.rollout_samples(REWARDS), step), timeout=300
                )
                assert next_step == step + 1
                k = options.k_at(step)
                rows = {}
                for batch in status["pkpo_test/experiences"]:
                    assert torch.all(batch["info"]["pkpo_k"] == k), (mode, step)
                    np.testing.assert_array_equal(
                        batch["info"]["reward"].numpy(), np.array(REWARDS)[batch["index"]]
                    )
                    rows.update(zip(batch["index"], batch["returns"][:, 0].tolist()))
                values = np.array([rows[row] for row in range(len(REWARDS))])
                np.testing.assert_allclose(
                    values, expected(REWARDS, k, options), rtol=1e-5, err_msg=f"{mode}, step {step}"
                )
                assert status["rollout/reward_mean"] == pytest.approx(np.mean(REWARDS))
                assert status["generated_samples"][1] == REWARDS[0]
    finally:
        for trainer in trainers.values():
            ray.kill(trainer)


# --- --pkpo.method: any estimator of pkpo.advantages ---------------------------------------------


@pytest.mark.parametrize("method", ["grpo", "maxrl", "w_reinforce"])
def test_method_selects_that_estimator_in_the_experience_maker(orl, method):
    options = adapter.patch(method=method, scale="none")
    batches = micro_batches(orl, REWARDS, sizes=[5, 11])
    make_maker(orl, parse()).compute_advantages_and_returns(batches)
    groups = np.asarray(REWARDS, dtype=np.float64).reshape(-1, N)
    wanted = pkpo.advantages.compute(method, groups).reshape(-1)
    np.testing.assert_allclose(first_returns(batches), wanted, rtol=1e-5, atol=1e-6)
    assert options.method == method
    assert not any("pkpo_k" in batch.info or "pkpo_estimate" in batch.info for batch in batches)
    assert not np.allclose(wanted, expected(REWARDS, 2, adapter.parse_options(k=2, scale="none")))


def test_method_from_the_environment_and_the_launcher_flags():
    options = adapter.options_from_env(
        {"PKPO_METHOD": "rs_grpo", "PKPO_PARAMS": "beta=0.5", "PKPO_SCALE": "none"}
    )
    assert (options.method, options.params, options.k_at(None)) == (
        "rs_grpo",
        (("beta", 0.5),),
        None,
    )
    env, rest = launcher.split_argv(["--pkpo.method", "passk_training", "--pkpo.k=2", "--x", "1"])
    assert env == {"PKPO_METHOD": "passk_training", "PKPO_K": "2"} and rest == ["--x", "1"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pkpo.method", "nope", *BASE_ARGV], "unknown advantage estimator 'nope'"),
        (["--pkpo.method", "grpo", "--pkpo.k", "2", *BASE_ARGV], "method 'grpo' takes no k"),
        (
            ["--pkpo.method", "rs_grpo", "--pkpo.params", "beta=x", *BASE_ARGV],
            "beta must be a finite",
        ),
    ],
)
def test_launcher_refuses_bad_methods_with_one_line(argv, message, capsys):
    assert launcher.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
