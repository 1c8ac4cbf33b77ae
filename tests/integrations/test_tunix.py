"""The Tunix adapter against the real google-tunix 0.1.7: estimator, step sources, loops on CPU.

The end-to-end tests train Tunix's own Qwen3 class (tiny config, random init) with a character
tokenizer built here, Tunix's vanilla rollout and its GRPO and agentic learners, and check that
the advantages the learners train on are the PKPO transform of the rewards at the scheduled k.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jax", reason="the tunix extra: make test installs it")
pytest.importorskip("tunix", reason="the tunix extra: make test installs it")
from tunix.rl import function_registry  # noqa: E402

import pkpo  # noqa: E402
from pkpo.integrations import _common  # noqa: E402
from pkpo.integrations import tunix as pkpo_tunix  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tunix_tiny", ROOT / "examples" / "tunix_tiny.py")
tunix_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tunix_tiny)


@pytest.fixture(autouse=True)
def _restore_registry():
    """Each test registers its own estimator; leave Tunix's registry as it was."""
    before = pkpo_tunix.registered()
    yield
    if before is not None:
        function_registry.register_advantage_estimator(pkpo_tunix.ESTIMATOR_NAME)(before)


def _rewards(seed=0, groups=3, size=8, binary=False):
    rng = np.random.default_rng(seed)
    if binary:
        return rng.integers(0, 2, groups * size).astype(np.float64)
    return np.round(rng.random(groups * size), 1)  # ties included


# --- registration and the estimator ----------------------------------------------------------


def test_register_is_idempotent_and_replaces_on_new_options():
    first = pkpo_tunix.register(k=4, scale="none")
    assert pkpo_tunix.register(k=4, scale="none") is first
    assert function_registry.get_advantage_estimator("pkpo") is first
    second = pkpo_tunix.register(k=2, scale="none")
    assert second is not first and function_registry.get_advantage_estimator("pkpo") is second
    other = pkpo_tunix.register(k=2, scale="none", name="pkpo_k2")
    assert function_registry.get_advantage_estimator("pkpo_k2") is other
    assert function_registry.get_advantage_estimator("pkpo") is second


@pytest.mark.parametrize("baseline", pkpo.BASELINES)
@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_scale_none_equals_transform_of_the_groups(k, baseline):
    rewards = _rewards(k, groups=3, size=8)
    estimator = pkpo_tunix.register(k=k, baseline=baseline, scale="none")
    got = estimator(rewards=rewards, num_generations=8)
    assert isinstance(got, jax.Array) and got.shape == (24,)
    expected = pkpo.transform(rewards.reshape(-1, 8), k, baseline)  # numpy, float64
    np.testing.assert_allclose(np.asarray(got), expected.reshape(-1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("binary", [False, True])
def test_default_baseline_is_exactly_the_jax_transform(binary):
    rewards = _rewards(1, groups=4, size=8, binary=binary)
    estimator = pkpo_tunix.register(k=4, scale="none")
    got = estimator(rewards=rewards, num_generations=8)
    expected = pkpo.transform(jnp.asarray(rewards).reshape(-1, 8), 4)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected).reshape(-1))


def test_register_defaults_give_a_positive_multiple_of_the_transform():
    """register(k=4) with every other option at its default (whatever _common.DEFAULT_SCALE is)."""
    rewards = _rewards(2, groups=4, size=8)
    estimator = pkpo_tunix.register(k=4)
    assert estimator.options.scale == _common.DEFAULT_SCALE
    assert estimator.options.baseline == "loo_minus_one"
    got = np.asarray(estimator(rewards=rewards, num_generations=8), dtype=np.float64)
    paper = pkpo.transform(rewards.reshape(-1, 8), 4).reshape(-1)
    scaled = pkpo.transform(rewards.reshape(-1, 8), 4, scale=estimator.options.scale).reshape(-1)
    np.testing.assert_allclose(got, scaled, rtol=1e-6, atol=1e-7)
    ratio = got[paper != 0] / paper[paper != 0]
    assert ratio.min() > 0 and np.ptp(ratio) <= 1e-5 * ratio.max()
    np.testing.assert_array_equal(got[paper == 0], 0.0)


@pytest.mark.parametrize("scale", ["mean_abs", "n_over_k"])
def test_scales_are_positive_multiples(scale):
    rewards = _rewards(3, groups=4, size=8)
    got = np.asarray(pkpo_tunix.register(k=4, scale=scale)(rewards=rewards, num_generations=8))
    paper = pkpo.transform(rewards.reshape(-1, 8), 4).reshape(-1)
    nonzero = paper != 0
    ratio = got[nonzero] / paper[nonzero]
    assert ratio.min() > 0 and np.ptp(ratio) <= 1e-5 * ratio.max()
    expected = pkpo.transform(rewards.reshape(-1, 8), 4, scale=scale).reshape(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    if scale == "mean_abs":
        assert np.mean(np.abs(got)) == pytest.approx(1.0, rel=1e-5)


def test_estimator_traces_under_jit_without_host_transfers():
    estimator = pkpo_tunix.register(k=4, scale="mean_abs")
    rewards = jnp.asarray(_rewards(4, groups=4, size=8))
    eager = estimator(rewards=rewards, num_generations=8)
    jitted = jax.jit(estimator, static_argnames="num_generations")
    with jax.transfer_guard_device_to_host("disallow"):
        traced = jitted(rewards=rewards, num_generations=8)
        again = estimator(rewards=rewards, num_generations=8)  # eager call: no sync either
    np.testing.assert_allclose(np.asarray(traced), np.asarray(eager), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(eager))


@pytest.mark.parametrize(
    "options, size, message",
    [
        ({"k": 4}, 3, r"every group has 3 sample\(s\), fewer than the 4 that k=4"),
        ({"k": 4, "baseline": "loo"}, 4, "fewer than the 5 that k=4 with baseline 'loo'"),
        ({"k": 1}, 1, "fewer than the 2 that k=1"),
    ],
)
def test_too_small_groups_give_the_shared_error(options, size, message):
    estimator = pkpo_tunix.register(**options, scale="none")
    with pytest.raises(ValueError, match=message) as error:
        estimator(rewards=np.zeros(2 * size), num_generations=size)
    assert str(error.value).startswith(pkpo_tunix.ENGINE)


def test_bad_calls_and_options():
    estimator = pkpo_tunix.register(k=2, scale="none")
    with pytest.raises(ValueError, match="do not split into groups of num_generations=4"):
        estimator(rewards=np.zeros(6), num_generations=4)
    with pytest.raises(ValueError, match="num_generations must be >= 1; got 0"):
        estimator(rewards=np.zeros(6), num_generations=0)
    with pytest.raises(ValueError, match="give either k or schedule"):
        pkpo_tunix.register(k=2, schedule="4->2@2")
    with pytest.raises(ValueError, match="unknown scale"):
        pkpo_tunix.register(k=2, scale="std")
    with pytest.raises(ValueError, match="step_source must be"):
        pkpo_tunix.register(k=2, step_source=3)


# --- the step -------------------------------------------------------------------------------


def test_schedule_without_a_step_source_is_an_error():
    estimator = pkpo_tunix.register(schedule="4->2@2", scale="none")
    with pytest.raises(ValueError, match="needs the training step") as error:
        estimator(rewards=_rewards(), num_generations=8)
    assert "PKPOGRPOLearner" in str(error.value) and "step_source" in str(error.value)


def test_step_sources():
    rewards = _rewards(5, groups=2, size=8)

    def expected(k):
        return pkpo.transform(jnp.asarray(rewards).reshape(-1, 8), k).reshape(-1)

    estimator = pkpo_tunix.register(schedule="4->2@2", scale="none")
    for step, k in [(0, 4), (1, 4), (2, 2), (9, 2)]:
        with pkpo_tunix.at_step(step):
            got = estimator(rewards=rewards, num_generations=8)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected(k)))
        assert estimator.last_stats == {"k": k, "step": step}

    class Cluster:  # what an RLCluster offers: global_steps
        global_steps = 0

    cluster = Cluster()
    from_cluster = pkpo_tunix.register(schedule="4->2@2", scale="none", step_source=cluster)
    assert from_cluster(rewards=rewards, num_generations=8) is not None
    assert from_cluster.last_stats["k"] == 4
    cluster.global_steps = 3
    from_cluster(rewards=rewards, num_generations=8)
    assert from_cluster.last_stats == {"k": 2, "step": 3}
    with pkpo_tunix.at_step(1):  # a published step wins over the step source
        from_cluster(rewards=rewards, num_generations=8)
    assert from_cluster.last_stats == {"k": 4, "step": 1}

    steps = iter([0, 5])
    from_callable = pkpo_tunix.register(
        schedule="4->2@2", scale="none", step_source=lambda: next(steps)
    )
    from_callable(rewards=rewards, num_generations=8)
    from_callable(rewards=rewards, num_generations=8)
    assert from_callable.last_stats == {"k": 2, "step": 5}
    with pytest.raises(ValueError, match="the training step must be >= 0"), pkpo_tunix.at_step(-1):
        pass


def test_published_steps_are_per_thread():
    """The GRPO learner computes advantages in a worker thread: steps must not leak across."""
    estimator = pkpo_tunix.register(schedule="4->2@2", scale="none")
    rewards = _rewards(6, groups=2, size=8)
    seen = {}
    barrier = threading.Barrier(2)

    def worker(step):
        with pkpo_tunix.at_step(step):
            barrier.wait()
            estimator(rewards=rewards, num_generations=8)
            seen[step] = estimator.k_at(estimator.current_step())

    threads = [threading.Thread(target=worker, args=(s,)) for s in (0, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {0: 4, 5: 2}
    assert pkpo_tunix.PKPOEstimator(estimator.options).current_step() is None


def test_learner_classes():
    from tunix.rl.agentic import agentic_grpo_learner
    from tunix.rl.grpo import dapo_learner, grpo_learner

    assert issubclass(pkpo_tunix.PKPOGRPOLearner, grpo_learner.GRPOLearner)
    assert issubclass(pkpo_tunix.PKPOAgenticGRPOLearner, agentic_grpo_learner.GRPOLearner)
    assert "_process_results" in vars(pkpo_tunix.PKPOAgenticGRPOLearner)
    assert "_generate_and_compute_advantage" in vars(pkpo_tunix.PKPOGRPOLearner)
    dapo = pkpo_tunix.make_learner_class(dapo_learner.DAPOLearner)
    assert issubclass(dapo, dapo_learner.DAPOLearner) and dapo.__name__ == "PKPODAPOLearner"


# --- a real GRPO loop ------------------------------------------------------------------------

G = 4
STEPS = 4
SCHEDULE = "4->2@2"


def varied_reward(prompts, completions, **kwargs):
    """Continuous reward with ties: distinct characters / 3, + 1/4 per copy of the first letter."""
    return [len(set(c)) / 3 + c.count(p[0]) / 4 for p, c in zip(prompts, completions)]


def _recording(base):
    class Recording(base):
        records: list

        def _compute_rewards(self, *args, **kwargs):
            rewards = super()._compute_rewards(*args, **kwargs)
            step = self.rl_cluster.global_steps
            self.records.append({"rewards": np.array(rewards), "step": step})
            return rewards

        def _generate_and_compute_advantage(self, training_input, mode=None):
            example = super()._generate_and_compute_advantage(training_input, mode)
            self.records[-1]["advantages"] = np.asarray(example.advantages)
            self.records[-1]["mode"] = str(mode)
            return example

    return Recording


def _params(model):
    from flax import nnx

    return [np.array(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.fixture(scope="module")
def grpo_run():
    """4 steps of Tunix's GRPO learner: 2 prompts x 4 samples, k annealed 4 -> 2 at step 2."""
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    tokenizer = tunix_tiny.build_tokenizer()
    model = tunix_tiny.build_model(len(tokenizer), seed=0)
    cluster = tunix_tiny.build_cluster(model, tokenizer, max_steps=STEPS, learning_rate=1e-2)
    before = _params(cluster.actor_trainer.model)
    estimator = pkpo_tunix.register(schedule=SCHEDULE, scale="none")
    config = GRPOConfig(
        advantage_estimator="pkpo", num_generations=G, beta=0.0, loss_agg_mode="seq-mean-token-sum"
    )
    learner_class = _recording(pkpo_tunix.PKPOGRPOLearner)
    learner_class.records = []
    learner = learner_class(rl_cluster=cluster, algo_config=config, reward_fns=varied_reward)
    train, _ = tunix_tiny.split_prompts()
    learner.train(list(tunix_tiny.prompt_batches(train, 2, STEPS)))
    return {
        "records": learner_class.records,
        "estimator": estimator,
        "before": before,
        "after": _params(cluster.actor_trainer.model),
        "cluster": cluster,
    }


@pytest.mark.slow
def test_grpo_loop_trains_on_pkpo_advantages_at_the_scheduled_k(grpo_run):
    records = grpo_run["records"]
    assert [r["step"] for r in records] == list(range(STEPS))
    schedule = pkpo.schedules.from_spec(SCHEDULE)
    assert [schedule(r["step"]) for r in records] == [4, 4, 2, 2]
    for record in records:
        rewards, k = record["rewards"], schedule(record["step"])
        assert rewards.shape == (2 * G,) and np.ptp(rewards) > 0
        expected = pkpo.transform(jnp.asarray(rewards).reshape(-1, G), k, scale="none")
        np.testing.assert_array_equal(record["advantages"], np.asarray(expected).reshape(-1))
        np.testing.assert_allclose(
            record["advantages"],
            pkpo.transform(rewards.reshape(-1, G), k, scale="none").reshape(-1),
            rtol=1e-6,
            atol=1e-7,
        )
    assert grpo_run["estimator"].last_stats == {"k": 2, "step": STEPS - 1}


@pytest.mark.slow
def test_grpo_loop_moves_the_weights_and_logs_k(grpo_run):
    moved = [not np.array_equal(a, b) for a, b in zip(grpo_run["before"], grpo_run["after"])]
    assert all(moved), f"{moved.count(False)} of {len(moved)} parameter arrays did not move"
    history = grpo_run["cluster"]._rl_metrics_logger.get_metric_history("pkpo", "k", "train")
    assert list(np.asarray(history).reshape(-1)) == [4, 4, 2, 2]


@pytest.mark.slow
def test_learner_checks_its_config(grpo_run):
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    cluster = grpo_run["cluster"]
    pkpo_tunix.register(k=4, baseline="loo", scale="none")
    with pytest.raises(ValueError, match="num_generations=4 samples per prompt is too few for k=4"):
        pkpo_tunix.PKPOGRPOLearner(
            rl_cluster=cluster,
            algo_config=GRPOConfig(advantage_estimator="pkpo", num_generations=4, beta=0.0),
            reward_fns=varied_reward,
        )
    with pytest.raises(ValueError, match="'pkpo_unregistered' is not registered"):
        pkpo_tunix.PKPOGRPOLearner(
            rl_cluster=cluster,
            algo_config=GRPOConfig(advantage_estimator="pkpo_unregistered", num_generations=4),
            reward_fns=varied_reward,
        )


# --- the agentic learner: one estimator call per group, k at the group's expected_step --------

AGENTIC_SCHEDULE = "4->2@1"


def _recording_agentic(base):
    local = threading.local()

    class Recording(base):
        records: list

        def _compute_rewards(self, *args, **kwargs):
            local.rewards = np.array(super()._compute_rewards(*args, **kwargs))
            return local.rewards

        def _process_results(self, trajectories, mode=None, expected_step=None):
            examples = super()._process_results(trajectories, mode, expected_step)
            self.records.append(
                {
                    "step": expected_step,
                    "rewards": local.rewards,
                    "advantages": np.asarray(examples[0].advantages),
                }
            )
            return examples

    return Recording


@pytest.fixture(scope="module")
def agentic_run():
    """3 steps of Tunix's agentic GRPO learner (single-turn task environment, model agent)."""
    from tunix.rl.agentic.agentic_grpo_learner import GRPOConfig
    from tunix.rl.agentic.parser.chat_template_parser import parser as chat_parser

    tokenizer = tunix_tiny.build_tokenizer()
    tokenizer.chat_template = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    model = tunix_tiny.build_model(len(tokenizer), seed=1)
    # responses that use the whole token budget are dropped by the agentic learner: give it room
    cluster = tunix_tiny.build_cluster(
        model, tokenizer, max_steps=3, learning_rate=1e-2, max_new_tokens=8
    )
    cluster.cluster_config.rollout_config.return_logprobs = True  # the agentic learner needs them
    before = _params(cluster.actor_trainer.model)
    estimator = pkpo_tunix.register(schedule=AGENTIC_SCHEDULE, scale="none")
    config = GRPOConfig(
        advantage_estimator="pkpo",
        num_generations=G,
        beta=0.0,
        loss_agg_mode="seq-mean-token-sum",
        max_response_length=8,
        max_concurrency=4,
    )
    learner_class = _recording_agentic(pkpo_tunix.PKPOAgenticGRPOLearner)
    learner_class.records = []
    learner = learner_class(
        rl_cluster=cluster,
        algo_config=config,
        reward_fns=varied_reward,
        chat_parser=chat_parser.DefaultChatTemplateParser(tokenizer),
    )
    train, _ = tunix_tiny.split_prompts()
    learner.train([{"prompts": np.array(train[2 * i : 2 * i + 2])} for i in range(3)])
    return {
        "records": learner_class.records,
        "estimator": estimator,
        "before": before,
        "after": _params(cluster.actor_trainer.model),
    }


@pytest.mark.slow
def test_agentic_loop_trains_on_pkpo_advantages_at_each_groups_step(agentic_run):
    records = agentic_run["records"]
    assert sorted(r["step"] for r in records) == [0, 0, 1, 1, 2, 2]  # 2 groups a step
    schedule = pkpo.schedules.from_spec(AGENTIC_SCHEDULE)
    for record in records:
        rewards, k = record["rewards"], schedule(record["step"])
        assert rewards.shape == (G,)
        expected = pkpo.transform(jnp.asarray(rewards).reshape(1, G), k, scale="none")
        np.testing.assert_array_equal(record["advantages"], np.asarray(expected).reshape(-1))
    assert {schedule(r["step"]) for r in records} == {4, 2}
    moved = [not np.array_equal(a, b) for a, b in zip(agentic_run["before"], agentic_run["after"])]
    assert any(moved)


# --- register(method=...): any estimator of pkpo.advantages -----------------------------------


@pytest.mark.parametrize("method", ["grpo", "dr_grpo", "maxrl", "tzsm"])
def test_register_method_selects_that_estimator(method):
    rewards = _rewards(7, groups=3, size=8, binary=True)
    estimator = pkpo_tunix.register(method=method, scale="none")
    got = estimator(rewards=rewards, num_generations=8)
    expected = pkpo.advantages.compute(method, jnp.asarray(rewards).reshape(-1, 8)).reshape(-1)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-6, atol=1e-7)
    pkpo_values = pkpo.transform(rewards.reshape(-1, 8), 2).reshape(-1)
    assert not np.allclose(np.asarray(got), pkpo_values)
    assert estimator.last_stats == {"k": None, "step": None}


def test_register_method_with_k_follows_the_step_and_traces_under_jit():
    rewards = _rewards(8, groups=2, size=8, binary=True)
    estimator = pkpo_tunix.register(method="passk_training", schedule="4->2@2", scale="mean_abs")
    for step, k in [(0, 4), (2, 2)]:
        with pkpo_tunix.at_step(step):
            got = estimator(rewards=rewards, num_generations=8)
        expected = pkpo.advantages.compute(
            "passk_training", jnp.asarray(rewards).reshape(-1, 8), k=k, scale="mean_abs"
        ).reshape(-1)
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-6, atol=1e-7)
        assert estimator.last_stats["k"] == k
    # traced whole (k is read on the host while tracing, so the trace holds the k of its step)
    with pkpo_tunix.at_step(2):
        jitted = jax.jit(estimator, static_argnames="num_generations")(
            rewards=rewards, num_generations=8
        )
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(expected), rtol=1e-6, atol=1e-7)


def test_register_refuses_unknown_methods_with_one_line():
    with pytest.raises(
        ValueError, match="^pkpo.integrations.tunix.register: unknown advantage"
    ) as error:
        pkpo_tunix.register(method="nope")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="method 'maxrl' takes no k"):
        pkpo_tunix.register(method="maxrl", k=2)
