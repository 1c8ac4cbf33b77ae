"""Tunix 0.1.7 adapter: the ``pkpo`` advantage estimator, and GRPO learners that give it the step.

Register the estimator, name it in Tunix's GRPO config, train with a learner below::

    from pkpo.integrations import tunix as pkpo_tunix
    from tunix.rl.grpo.grpo_learner import GRPOConfig

    pkpo_tunix.register(k=4)                        # or schedule="8->1@150", method="maxrl"
    config = GRPOConfig(advantage_estimator="pkpo", num_generations=8,
                        loss_agg_mode="seq-mean-token-sum", beta=0.0)
    learner = pkpo_tunix.PKPOGRPOLearner(rl_cluster=cluster, algo_config=config,
                                         reward_fns=reward_fn)
    learner.train(dataset)

How it plugs in: Tunix looks advantage estimators up by name in
``tunix.rl.function_registry``. Both of its GRPO learners call the one named by
``algo_config.advantage_estimator`` as ``estimator(rewards=..., num_generations=G)``: the GRPO
learner once per rollout batch with the flat [B*G] rewards, group after group, and the agentic
learner once per group ([G]). :func:`register` puts a :class:`PKPOEstimator` there: it reshapes
the rewards to (B, G) and returns ``pkpo.transform(rewards, k, baseline, scale=...)`` flattened
(s^(loo-1), paper eq. 33, by default). It is JAX-native: the rewards go to the device once and
never come back to the host (``validate=False``: no value checks), and it traces under
``jax.jit`` with ``num_generations`` static.

The step. Tunix calls estimators without the training step. A constant k needs none; a k
schedule needs a step source, and without one the first call raises (never a silent constant
k). Sources, first found wins:

1. :class:`PKPOGRPOLearner` / :class:`PKPOAgenticGRPOLearner` (or :func:`make_learner_class` of
   another GRPO-family learner): the GRPO learner publishes ``rl_cluster.global_steps`` (0 at the
   first rollout batch, +1 per global step) around each advantage step, the agentic learner the
   ``expected_step`` of each group (its global step, also for off-policy groups);
2. :func:`at_step` around your own call of the estimator;
3. ``register(..., step_source=cluster)``: an object with ``global_steps`` (an ``RLCluster``) or
   a callable returning the step, read at each call.

k must be a Python int when the transform is traced (its rank weights depend on k), so the
schedule is read on the host and each distinct k (and batch shape) compiles the transform once:
a sort and a few scans, 1-3 s on a busy 2-core CPU. A schedule compiles once per k it visits.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tunix.rl import function_registry
from tunix.rl import rl_cluster as rl_cluster_lib
from tunix.rl.agentic import agentic_grpo_learner
from tunix.rl.grpo import grpo_learner

from ..advantages import compute
from ..transforms import transform
from ._common import (
    DEFAULT_METHOD,
    PKPOOptions,
    StepClock,
    as_int,
    check_rollout_n,
    check_samples_per_prompt,
    engine_errors,
    parse_options,
    rows_of_group,
)

logger = logging.getLogger("pkpo.integrations.tunix")

ESTIMATOR_NAME = "pkpo"
ENGINE = "tunix advantage_estimator=pkpo"
#: loss_agg_mode values that weight every sequence by a constant (see docs/integrations.md)
FAITHFUL_LOSS_AGG_MODES = (
    "seq-mean-token-sum",
    "sequence-mean-token-sum-norm",
    "sequence-mean-token-scale",
)

#: the training step: set by the PKPO learners around each advantage step (per thread and asyncio
#: task), or published by hand
clock = StepClock()


def at_step(step):
    """Within this block (this thread / asyncio task), PKPO estimators read ``step`` as the step.

    The same as ``clock.at(step)`` (:class:`pkpo.integrations._common.StepClock`).
    """
    return clock.at(step)


# --- the estimator ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("group_size", "k", "options"))
def _advantages(rewards, *, group_size: int, k: int | None, options: PKPOOptions):
    """[B*G] rewards -> [B*G] advantages of each group of ``group_size`` consecutive rows: PKPO's
    (:func:`pkpo.transform`) or those of ``options.method`` (:func:`pkpo.advantages.compute`)."""
    groups = rewards.reshape(-1, group_size)
    if options.method == DEFAULT_METHOD:
        advantages = transform(groups, k, options.baseline, scale=options.scale, validate=False)
    else:
        advantages = compute(
            options.method,
            groups,
            scale=options.scale,
            validate=False,
            **options.method_params(k),
        )
    return advantages.reshape(-1)


class PKPOEstimator:
    """Tunix advantage estimator ``estimator(rewards, num_generations) -> advantages`` for PKPO.

    Build it with :func:`register`. ``last_stats`` holds ``{"k", "step"}`` of the latest call.
    """

    def __init__(self, options: PKPOOptions, step_source=None, name: str = ESTIMATOR_NAME):
        if step_source is not None and not (
            callable(step_source) or hasattr(step_source, "global_steps")
        ):
            raise ValueError(
                f"{ENGINE}: step_source must be a callable returning the step or an object with a "
                f"'global_steps' attribute (an RLCluster); got {step_source!r}."
            )
        self.options = options
        self.step_source = step_source
        self.name = name
        self.last_stats: dict[str, Any] = {}

    def current_step(self) -> int | None:
        """The step on :data:`clock` (a PKPO learner, :func:`at_step`), else the step source's."""
        step = clock.step
        if step is not None or self.step_source is None:
            return step
        if hasattr(self.step_source, "global_steps"):
            step = self.step_source.global_steps
        else:
            step = self.step_source()
        return as_int(step, "the training step", source=ENGINE, minimum=0)

    def k_at(self, step: int | None) -> int:
        try:
            return self.options.k_at(step)
        except ValueError as error:
            raise ValueError(
                f"{ENGINE}: {error} In Tunix: train with PKPOGRPOLearner / "
                "PKPOAgenticGRPOLearner, or register(..., step_source=rl_cluster)."
            ) from None

    def __call__(self, rewards, num_generations):
        """PKPO advantages [B*G] of the rewards [B*G] (B groups of ``num_generations`` rows)."""
        group_size = as_int(num_generations, "num_generations", source=ENGINE, minimum=1)
        step = self.current_step()
        k = self.k_at(step)
        rewards = jnp.asarray(rewards)
        if rewards.ndim != 1 or rewards.shape[0] % group_size:
            raise ValueError(
                f"{ENGINE}: rewards of shape {rewards.shape} do not split into groups of "
                f"num_generations={group_size} consecutive rows."
            )
        check_rollout_n(rows_of_group(group_size)(0), group_size, self.options, engine=ENGINE)
        with engine_errors(ENGINE, rows_of_group(group_size)):
            advantages = _advantages(rewards, group_size=group_size, k=k, options=self.options)
        self.last_stats = {"k": k, "step": step}
        return advantages

    def same_as(self, other) -> bool:
        """True if ``other`` is a PKPO estimator with the same options and step source."""
        return (
            isinstance(other, PKPOEstimator)
            and other.options == self.options
            and other.step_source is self.step_source
        )

    def __repr__(self) -> str:
        return f"PKPOEstimator({self.options.describe()})"


def register(
    k=None,
    schedule=None,
    baseline=None,
    scale=None,
    rollout_n=None,
    *,
    method=None,
    params=None,
    step_source=None,
    name: str = ESTIMATOR_NAME,
) -> PKPOEstimator:
    """Register a :class:`PKPOEstimator` in Tunix's function registry under ``name``; return it.

    Options as in the other adapters (``pkpo.integrations._common.parse_options``): ``method``
    (default "pkpo"; any name of :func:`pkpo.advantages.names`), ``k`` or a k ``schedule``
    (``"8->1@150"``, ...) for the methods that take k, ``baseline`` (PKPO's, default
    "loo_minus_one"), ``params`` (the method's other parameters, e.g. ``{"beta": 2.0}``),
    ``scale`` (default ``_common.DEFAULT_SCALE``) and an optional ``rollout_n`` (largest group
    allowed).
    ``step_source``: an ``RLCluster`` (its ``global_steps``) or a callable returning the step,
    for a schedule used without a PKPO learner. Idempotent: if ``name`` already holds an
    estimator with the same options and step source, that one is kept and returned.
    """
    options = parse_options(
        k=k,
        baseline=baseline,
        schedule=schedule,
        rollout_n=rollout_n,
        scale=scale,
        method=method,
        params=params,
        source="pkpo.integrations.tunix.register",
    )
    estimator = PKPOEstimator(options, step_source, name)
    existing = registered(name)
    if existing is not None and estimator.same_as(existing):
        return existing
    function_registry.register_advantage_estimator(name)(estimator)
    logger.info("pkpo: registered Tunix advantage estimator %r (%s)", name, options.describe())
    return estimator


def registered(name: str = ESTIMATOR_NAME):
    """The advantage estimator registered under ``name`` in Tunix, or None."""
    if name not in function_registry.default_registry.list_functions("advantage_estimator"):
        return None
    return function_registry.get_advantage_estimator(name)


# --- learners that publish the step ---------------------------------------------------------


def make_learner_class(base: type) -> type:
    """A subclass of a Tunix GRPO-family learner that publishes the step to PKPO estimators.

    For the agentic learner (``_process_results`` per group) the step is the group's
    ``expected_step``; for the others (``_generate_and_compute_advantage`` per rollout batch) it
    is ``rl_cluster.global_steps``. The learner also logs ``pkpo/k`` and, at construction, checks
    that the configured estimator is registered, that ``num_generations`` is large enough for
    the schedule's largest k, and warns about a loss aggregation that biases the gradient.
    """
    agentic = hasattr(base, "_process_results")

    class Learner(base):
        def __init__(self, *args, **kwargs):
            # checked before Tunix's __init__, which starts building on the cluster
            self._pkpo_check_config(kwargs.get("algo_config", args[1] if len(args) > 1 else None))
            super().__init__(*args, **kwargs)

        def _pkpo_estimator(self):
            estimator = registered(self.algo_config.advantage_estimator)
            return estimator if isinstance(estimator, PKPOEstimator) else None

        def _pkpo_check_config(self, config) -> None:
            name = getattr(config, "advantage_estimator", None)
            if name is None:
                raise ValueError(
                    f"{type(self).__name__} needs algo_config=GRPOConfig(advantage_estimator="
                    f"'pkpo', ...); got {config!r}."
                )
            estimator = registered(name)
            if not isinstance(estimator, PKPOEstimator):
                if estimator is None:
                    raise ValueError(
                        f"{type(self).__name__}: advantage_estimator={name!r} is not registered; "
                        "call pkpo.integrations.tunix.register(k=...) before building the learner."
                    )
                logger.warning(
                    "pkpo: %s uses advantage_estimator=%r, not a PKPO estimator; it only "
                    "publishes the step.",
                    type(self).__name__,
                    name,
                )
                return
            options = estimator.options
            check_samples_per_prompt(
                config.num_generations, options, source=type(self).__name__, name="num_generations"
            )
            mode = getattr(config, "loss_agg_mode", None)
            if mode is not None and mode not in FAITHFUL_LOSS_AGG_MODES:
                logger.warning(
                    "pkpo: loss_agg_mode=%r normalises by each sequence's length or by the "
                    "batch's token count, which biases the PKPO gradient; prefer %s.",
                    mode,
                    " or ".join(repr(m) for m in FAITHFUL_LOSS_AGG_MODES[:2]),
                )
            if agentic and options.scale == "mean_abs":
                logger.warning(
                    "pkpo: the agentic learner calls the estimator once per group, so "
                    "scale='mean_abs' divides each group by its own mean |A| (a per-group "
                    "normalisation); prefer scale='n_over_k' or 'none' with a tuned learning rate."
                )

        def _pkpo_log_k(self, mode, step: int, *, at_group_step: bool = False) -> None:
            """Log the k of ``step`` (not ``last_stats``: groups of other steps may run too)."""
            estimator = self._pkpo_estimator()
            if estimator is None or estimator.options.schedule is None:  # no estimator or no k
                return
            metrics = {"pkpo/k": (estimator.k_at(step), np.mean)}
            if at_group_step:
                self.rl_cluster.buffer_metrics_async(metrics, mode=mode, step=step)
            else:
                self.rl_cluster.buffer_metrics(metrics, mode=mode)

        if agentic:

            def _process_results(
                self, trajectories, mode=rl_cluster_lib.Mode.TRAIN, expected_step=None
            ):
                step = self.rl_cluster.global_steps if expected_step is None else expected_step
                with at_step(step):
                    examples = super()._process_results(trajectories, mode, expected_step)
                self._pkpo_log_k(mode, step, at_group_step=True)
                return examples

        else:

            def _generate_and_compute_advantage(
                self, training_input, mode=rl_cluster_lib.Mode.TRAIN
            ):
                step = self.rl_cluster.global_steps
                with at_step(step):
                    example = super()._generate_and_compute_advantage(training_input, mode)
                self._pkpo_log_k(mode, step)
                return example

    Learner.__name__ = Learner.__qualname__ = f"PKPO{base.__name__}"
    Learner.__module__ = __name__
    Learner.__doc__ = f"{base.__module__}.{base.__qualname__} that publishes the step to PKPO."
    return Learner


#: Tunix's GRPO learner (``tunix.rl.grpo.grpo_learner.GRPOLearner``) publishing ``global_steps``
PKPOGRPOLearner = make_learner_class(grpo_learner.GRPOLearner)
#: Tunix's agentic GRPO learner publishing each group's ``expected_step``
PKPOAgenticGRPOLearner = make_learner_class(agentic_grpo_learner.GRPOLearner)
PKPOAgenticGRPOLearner.__name__ = PKPOAgenticGRPOLearner.__qualname__ = "PKPOAgenticGRPOLearner"

__all__ = [
    "ENGINE",
    "ESTIMATOR_NAME",
    "FAITHFUL_LOSS_AGG_MODES",
    "PKPOAgenticGRPOLearner",
    "PKPOEstimator",
    "PKPOGRPOLearner",
    "at_step",
    "clock",
    "make_learner_class",
    "register",
    "registered",
]
