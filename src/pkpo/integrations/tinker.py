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
``tinker_cookbook.rl.train`` so that their advantage step runs with ``i_batch`` as the step of
:data:`clock` (``clock.at``, per asyncio task); sync, streaming and async training all go through
them. Elsewhere (your own
loop calling ``prepare_minibatch``) publish the step yourself: ``clock.publish(step)``.

Scale: ``scale="mean_abs"`` (the default, :data:`pkpo.integrations._common.DEFAULT_SCALE`)
divides by the mean |A| over all groups of one ``compute_advantages`` call: one training batch
(one minibatch with ``stream_minibatch_config``), so a learning rate tuned for the cookbook's
mean-centred advantages carries over. ``"none"`` gives the estimator's own values.

Loss: the cookbook's losses (``importance_sampling``, ``ppo``, ...) put a trajectory's advantage
on each of its action tokens and sum over tokens, with no length normalisation, so the update is
sum_i A_i grad log pi(y_i): the estimator's own expected update (paper eq. 33 gives an unbiased
pass@k gradient).

``pkpo/k`` (the k of the latest advantage step) and, for PKPO, ``pkpo/estimate`` (the mean
per-group unbiased pass@k / maxg@k) are added to the metrics of ``prepare_minibatch``, which the
cookbook logs.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

import numpy as np

from ._common import PKPOOptions, StepClock, grouped_advantages, parse_options

logger = logging.getLogger("pkpo.integrations.tinker")

ENGINE = "tinker-cookbook compute_advantages"
#: the functions of ``tinker_cookbook.rl.train`` whose ``i_batch`` is the training step
STEP_FUNCTIONS = (
    "do_train_step_and_get_sampling_client",
    "do_train_step_streaming_and_get_sampling_client",
)

#: the training step published by the patched step functions (or by you)
clock = StepClock()
#: ``{"k", "step", "method", "estimate"}`` of the latest advantage step (``estimate``: the mean
#: per-group unbiased pass@k / maxg@k for PKPO, else None)
last_stats: dict[str, Any] = {}
_state: dict[str, Any] = {"options": None, "originals": {}}


def compute_advantages(trajectory_groups_P) -> list:
    """Drop-in for ``tinker_cookbook.rl.data_processing.compute_advantages``.

    Returns one float32 tensor (G,) per trajectory group: the advantages of the patched
    estimator (:func:`patch`) for the groups' total rewards, all groups in one call (one
    ``scale`` normaliser), each group with its own size.
    """
    import torch

    options: PKPOOptions | None = _state["options"]
    if options is None:
        raise ValueError(f"{ENGINE}: call pkpo.integrations.tinker.patch(...) first.")
    rewards = [traj_group.get_total_rewards() for traj_group in trajectory_groups_P]
    if not rewards:
        return []
    sizes = [len(row) for row in rewards]
    if 0 in sizes:
        raise ValueError(f"{ENGINE}: trajectory group {sizes.index(0)} has no trajectories.")
    flat = np.concatenate([np.asarray(row, dtype=np.float64) for row in rewards])
    group_of_row = np.repeat(np.arange(len(rewards)), sizes)
    step = clock.step
    k = options.k_at(step)
    advantages, estimate = grouped_advantages(flat, group_of_row, k, options, engine=ENGINE)
    last_stats.update({"k": k, "step": step, "method": options.method, "estimate": estimate})
    values = torch.from_numpy(np.asarray(advantages, dtype=np.float32))
    return [group.clone() for group in torch.split(values, sizes)]


def patch(
    k=None, schedule=None, baseline=None, scale=None, *, method=None, params=None
) -> PKPOOptions:
    """Train tinker-cookbook's RL loop on an estimator of :mod:`pkpo.advantages`.

    Options as in the other adapters (``pkpo.integrations._common.parse_options``): ``method``
    (default "pkpo"; any name of :func:`pkpo.advantages.names`), ``k`` or a k ``schedule``
    ("8->1@100", evaluated at the cookbook's ``i_batch``) for the methods that take k,
    ``baseline`` (PKPO's), ``params`` (the method's other parameters, e.g. ``{"beta": 2.0}``)
    and ``scale`` (default "mean_abs"; see the module docstring).

    Returns the parsed options. Calling it again changes the options; :func:`unpatch` undoes it.
    """
    options = parse_options(
        k=k,
        baseline=baseline,
        schedule=schedule,
        scale=scale,
        method=method,
        params=params,
        source="pkpo.integrations.tinker.patch",
    )
    from tinker_cookbook.rl import train

    originals = _state["originals"]
    if not originals:
        originals["compute_advantages"] = train.compute_advantages
        originals["prepare_minibatch"] = train.prepare_minibatch
        for name in STEP_FUNCTIONS:
            originals[name] = getattr(train, name)
        train.compute_advantages = compute_advantages
        train.prepare_minibatch = _logging_stats(originals["prepare_minibatch"])
        for name in STEP_FUNCTIONS:
            setattr(train, name, _publishing_step(originals[name]))
    _state["options"] = options
    logger.info("pkpo: tinker-cookbook advantages from %s", options.describe())
    return options


def unpatch() -> None:
    """Restore tinker-cookbook's own advantage step (and forget the options)."""
    from tinker_cookbook.rl import train

    for name, original in _state["originals"].items():
        setattr(train, name, original)
    _state["originals"] = {}
    _state["options"] = None
    clock.reset()


def _publishing_step(step_function):
    """``step_function(config, i_batch, ...)`` run with ``i_batch`` as :data:`clock`'s step."""
    signature = inspect.signature(step_function)

    @functools.wraps(step_function)
    async def wrapper(*args, **kwargs):
        with clock.at(signature.bind_partial(*args, **kwargs).arguments["i_batch"]):
            return await step_function(*args, **kwargs)

    return wrapper


def _logging_stats(prepare_minibatch):
    """``prepare_minibatch`` whose metrics also hold ``pkpo/k`` and ``pkpo/estimate``."""

    @functools.wraps(prepare_minibatch)
    async def wrapper(*args, **kwargs):
        data_D, metrics, usage = await prepare_minibatch(*args, **kwargs)
        for name in ("k", "estimate"):
            if last_stats.get(name) is not None:
                metrics[f"pkpo/{name}"] = last_stats[name]
        return data_D, metrics, usage

    return wrapper


__all__ = ["clock", "compute_advantages", "last_stats", "patch", "unpatch"]
