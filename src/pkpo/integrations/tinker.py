"""tinker-cookbook 0.6 adapter: any :mod:`pkpo.advantages` estimator as the RL advantage step.

tinker-cookbook computes RL advantages on the client's CPU, in one function,
``tinker_cookbook.rl.data_processing.compute_advantages(trajectory_groups_P)``, which returns one
tensor (G,) per trajectory group: the group's total rewards minus their mean. The training
service only sees the advantages on each action token. ``tinker_cookbook/rl/train.py`` imports
that function by name, so :func:`patch` replaces the name there, in ``tinker_cookbook.rl.train``
(where ``prepare_minibatch`` and the log printer ``print_group`` call it)::

    import asyncio
    from tinker_cookbook.rl import train
    from pkpo.integrations import tinker as pkpo_tinker

    pkpo_tinker.patch(k=8)                           # PKPO: s^(loo-1), paper eq. 33
    pkpo_tinker.patch(schedule="8->1@100")           # anneal k by training step
    pkpo_tinker.patch(method="maxrl", scale="none")  # any estimator of pkpo.advantages
    asyncio.run(train.main(config))

Rewards are ``traj_group.get_total_rewards()`` (the per-step rewards plus the group's final
reward), as in the cookbook's own step. Groups may be ragged (``MinViableGroup`` keeps partial
groups): each uses its own n, and a group too small for k raises a ``ValueError``.

The step: both of ``train.py``'s step functions, ``do_train_step_and_get_sampling_client`` and
``do_train_step_streaming_and_get_sampling_client``, take ``i_batch``, the training iteration
(0-based, continued on resume, the step the cookbook logs). :func:`patch` wraps both in
``tinker_cookbook.rl.train`` so that ``i_batch`` is published to :data:`clock` before their
advantage step runs; sync, streaming and async training all go through them. Elsewhere (your own
loop calling ``prepare_minibatch``) publish the step yourself: ``clock.publish(step)``.

Scale: ``scale="mean_abs"`` (the default, :data:`pkpo.integrations._common.DEFAULT_SCALE`)
divides by the mean |A| over all groups of one ``compute_advantages`` call: one training batch
(one minibatch with ``stream_minibatch_config``), so a learning rate tuned for the cookbook's
mean-centred advantages carries over. ``"none"`` gives the estimator's own values.

Loss: the cookbook's losses (``importance_sampling``, ``ppo``, ...) put a trajectory's advantage
on each of its action tokens and sum over tokens, with no length normalisation, so the update is
sum_i A_i grad log pi(y_i): the estimator's own expected update (paper eq. 33 gives an unbiased
pass@k gradient).

``pkpo/k`` (the k of the latest advantage step) is added to the metrics of ``prepare_minibatch``,
which the cookbook logs.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

import numpy as np

from ._common import StepClock
from ._method import MethodOptions, pad_lists, parse_method

logger = logging.getLogger("pkpo.integrations.tinker")

TRAIN_MODULE = "tinker_cookbook.rl.train"
ENGINE = "tinker-cookbook compute_advantages"
#: the functions of ``tinker_cookbook.rl.train`` whose ``i_batch`` is the training step
STEP_FUNCTIONS = (
    "do_train_step_and_get_sampling_client",
    "do_train_step_streaming_and_get_sampling_client",
)

#: the training step published by the patched step functions (or by you)
clock = StepClock()
#: ``{"k", "step", "method"}`` of the latest advantage step
last_stats: dict[str, Any] = {}
_state: dict[str, Any] = {"options": None, "originals": {}}


def compute_advantages(trajectory_groups_P) -> list:
    """Drop-in for ``tinker_cookbook.rl.data_processing.compute_advantages``.

    Returns one float32 tensor (G,) per trajectory group: the advantages of the patched
    estimator (:func:`patch`) for the groups' total rewards, all groups in one call (one
    ``scale`` normaliser), each group with its own size.
    """
    import torch

    options: MethodOptions | None = _state["options"]
    if options is None:
        raise ValueError(f"{ENGINE}: call pkpo.integrations.tinker.patch(...) first.")
    rewards = [traj_group.get_total_rewards() for traj_group in trajectory_groups_P]
    if not rewards:
        return []
    empty = [i for i, row in enumerate(rewards) if not row]
    if empty:
        raise ValueError(f"{ENGINE}: trajectory group {empty[0]} has no trajectories.")
    padded, mask = pad_lists(rewards)
    step = clock.step
    advantages, k = options.advantages(padded, mask, step, engine=ENGINE)
    last_stats.update({"k": k, "step": step, "method": options.method})
    values = torch.from_numpy(np.asarray(advantages, dtype=np.float32))
    return [values[i, : len(row)].clone() for i, row in enumerate(rewards)]


def patch(method=None, *, k=None, schedule=None, scale=None, **params) -> MethodOptions:
    """Train tinker-cookbook's RL loop on the estimator ``method`` of :mod:`pkpo.advantages`.

    Args:
        method: an estimator name (default "pkpo"; :func:`pkpo.advantages.names`).
        k, schedule: for estimators that take k (PKPO), a constant k or a k schedule
            ("8->1@100"), evaluated at the cookbook's ``i_batch``.
        scale: "mean_abs" (default), "none" or "n_over_k" (see the module docstring).
        **params: the estimator's other parameters, e.g. ``baseline="loo"`` for PKPO.

    Returns the parsed options. Calling it again changes the options; :func:`unpatch` undoes it.
    """
    options = parse_method(
        method, k=k, schedule=schedule, scale=scale, source="pkpo.integrations.tinker.patch",
        **params,
    )
    import tinker_cookbook.rl.train as train

    originals = _state["originals"]
    if not originals:
        originals["compute_advantages"] = train.compute_advantages
        originals["prepare_minibatch"] = train.prepare_minibatch
        for name in STEP_FUNCTIONS:
            originals[name] = getattr(train, name)
        train.compute_advantages = compute_advantages
        train.prepare_minibatch = _logging_k(originals["prepare_minibatch"])
        for name in STEP_FUNCTIONS:
            setattr(train, name, _publishing_step(originals[name]))
    _state["options"] = options
    logger.info("pkpo: tinker-cookbook advantages from %s", options.describe())
    return options


def unpatch() -> None:
    """Restore tinker-cookbook's own advantage step (and forget the options)."""
    import tinker_cookbook.rl.train as train

    for name, original in _state["originals"].items():
        setattr(train, name, original)
    _state["originals"] = {}
    _state["options"] = None
    clock.reset()


def _publishing_step(step_function):
    """``step_function(config, i_batch, ...)`` that publishes ``i_batch`` to :data:`clock` first."""
    signature = inspect.signature(step_function)

    @functools.wraps(step_function)
    async def wrapper(*args, **kwargs):
        clock.publish(signature.bind_partial(*args, **kwargs).arguments["i_batch"])
        return await step_function(*args, **kwargs)

    return wrapper


def _logging_k(prepare_minibatch):
    """``prepare_minibatch`` whose metrics also hold ``pkpo/k`` (estimators with k)."""

    @functools.wraps(prepare_minibatch)
    async def wrapper(*args, **kwargs):
        data_D, metrics, usage = await prepare_minibatch(*args, **kwargs)
        if last_stats.get("k") is not None:
            metrics["pkpo/k"] = last_stats["k"]
        return data_D, metrics, usage

    return wrapper


__all__ = ["clock", "compute_advantages", "last_stats", "patch", "unpatch"]
