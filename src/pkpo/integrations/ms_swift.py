"""ms-swift 4.6 adapter: GRPO on any :mod:`pkpo.advantages` estimator (``PKPOGRPOTrainer``).

ms-swift's ``--advantage_estimator`` is a closed list (grpo, rloo, reinforce_plus_plus), so the
adapter subclasses its GRPO trainer (``swift.rlhf_trainers.GRPOTrainer``, the transformers
backend) and replaces the advantage step, ``_compute_advantages``. :func:`patch` chooses the
estimator and points ms-swift's trainer table (``TrainerFactory.TRAINER_MAPPING["grpo"]``) at
:class:`PKPOGRPOTrainer`, so ``swift rlhf --rlhf_type grpo`` trains with it. From the command
line, load the patch as a plugin::

    # pkpo_plugin.py
    from pkpo.integrations import ms_swift
    ms_swift.patch(k=4)            # or schedule="8->1@300", method="maxrl", scale="none", ...

    swift rlhf --rlhf_type grpo --external_plugins pkpo_plugin.py --num_generations 8 ...

and from Python call ``ms_swift.patch(...)`` before ``swift.pipelines.rlhf_main(args)``.

The advantage step: ms-swift hands ``_compute_advantages`` the rewards of the whole generation
batch, gathered over processes, (N, reward functions). ms-swift's own step runs first (it logs
the reward metrics); then its advantages are replaced by the estimator's for each group of
``num_generations`` consecutive rows (``num_generations_eval`` in evaluation). The scalar reward
is ms-swift's: the ``reward_weights``-weighted nansum over reward functions; rows whose reward
functions all returned None are left out of their group (advantage 0), as in the TRL adapter.
k comes from the k schedule at ``state.global_step`` (the optimizer steps done); ``pkpo/k`` is
logged. ``scale`` (default "mean_abs") is applied over the gathered batch, so every process
divides by the same number.

Refused, because the replaced advantages would silently drop them: ``kl_in_reward`` with
``beta != 0`` (use the KL loss instead), request-aware grouping of multi-turn rollouts with a
varying number of samples per prompt (``dynamic_num_samples``), and an evaluation with fewer
samples per prompt than k needs (its advantages stay ms-swift's, with a warning).
``pkpo/k`` and, for PKPO, ``pkpo/estimate`` (the mean per-group unbiased pass@k / maxg@k) are
logged with ms-swift's metrics.
ms-swift's ``advantage_estimator`` and ``scale_rewards`` have no effect.

Loss: ms-swift's default ``loss_type="grpo"`` divides each sequence's loss by its own length,
which re-weights sequences (a warning says so); ``dapo`` (token sum over the batch's token
count) or ``dr_grpo`` (a constant normaliser) keep the estimator's expected update.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from swift.rlhf_trainers import GRPOTrainer

from ._common import (
    PKPOOptions,
    check_samples_per_prompt,
    consecutive_advantages,
    parse_options,
)

logger = logging.getLogger("pkpo.integrations.ms_swift")

TRAINER_PATH = f"{__name__}.PKPOGRPOTrainer"
ENGINE = "ms-swift GRPO"
_RE_WEIGHTING_LOSS_TYPES = {
    "grpo": "divides each sequence's loss by its own length",
    "sapo": "divides each sequence's loss by its own length",
    "bnpo": "divides by the token count of the local batch, which differs between processes",
    "real": "uses only the sign of each advantage",
}
_state: dict[str, Any] = {"options": None, "original_trainer": None}


def patch(
    k=None, schedule=None, baseline=None, scale=None, *, method=None, params=None
) -> PKPOOptions:
    """Train ms-swift's GRPO on an estimator of :mod:`pkpo.advantages`.

    Options as in the other adapters (``pkpo.integrations._common.parse_options``): ``method``
    (default "pkpo"; any name of :func:`pkpo.advantages.names`), ``k`` or a k ``schedule``
    ("8->1@300", evaluated at the trainer's ``state.global_step``) for the methods that take k,
    ``baseline`` (PKPO's), ``params`` (the method's other parameters, e.g. ``{"beta": 2.0}``)
    and ``scale`` (default "mean_abs").

    Returns the parsed options. Calling it again changes the options; :func:`unpatch` undoes it.
    """
    options = parse_options(
        k=k,
        baseline=baseline,
        schedule=schedule,
        scale=scale,
        method=method,
        params=params,
        source="pkpo.integrations.ms_swift.patch",
    )
    from swift.trainers import TrainerFactory

    if _state["original_trainer"] is None:
        _state["original_trainer"] = TrainerFactory.TRAINER_MAPPING["grpo"]
    TrainerFactory.TRAINER_MAPPING["grpo"] = TRAINER_PATH
    _state["options"] = options
    logger.info("pkpo: ms-swift GRPO advantages from %s", options.describe())
    return options


def unpatch() -> None:
    """Give ms-swift back its own GRPO trainer (and forget the options)."""
    from swift.trainers import TrainerFactory

    if _state["original_trainer"] is not None:
        TrainerFactory.TRAINER_MAPPING["grpo"] = _state["original_trainer"]
    _state["original_trainer"] = None
    _state["options"] = None


def _options() -> PKPOOptions:
    options = _state["options"]
    if options is None:
        raise ValueError(
            f"{ENGINE}: PKPOGRPOTrainer needs pkpo.integrations.ms_swift.patch(...) first."
        )
    return options


class PKPOGRPOTrainer(GRPOTrainer):
    """ms-swift's GRPO trainer on the advantages of the patched estimator (:func:`patch`)."""

    def __init__(self, *args, **kwargs):
        options = _options()
        super().__init__(*args, **kwargs)
        source = type(self).__name__
        check_samples_per_prompt(
            self.num_generations, options, source=source, name="num_generations"
        )
        if self.kl_in_reward and self.beta != 0.0:
            raise ValueError(
                f"{source}: kl_in_reward=True with beta={self.beta} subtracts the KL from the "
                "rewards, which the estimator's advantages would drop; set kl_in_reward=False "
                "(the KL then goes into the loss)."
            )
        if self.loss_type in _RE_WEIGHTING_LOSS_TYPES:
            logger.warning(
                "pkpo: loss_type=%r %s, which changes the estimator's expected update; prefer "
                "'dapo' or 'dr_grpo' (see docs/integrations.md).",
                self.loss_type,
                _RE_WEIGHTING_LOSS_TYPES[self.loss_type],
            )
        self._pkpo_eval_warned = False

    def pkpo_k(self) -> int | None:
        """The k at the current ``state.global_step`` (None for estimators without k)."""
        return _options().k_at(self.state.global_step)

    def _compute_advantages(self, samples, rewards_per_func, batch_encoded_inputs):
        swift_advantages = super()._compute_advantages(
            samples, rewards_per_func, batch_encoded_inputs
        )
        if self.dynamic_num_samples:
            raise ValueError(
                f"{ENGINE}: this batch has a varying number of samples per prompt (multi-turn "
                "request-aware grouping), which PKPOGRPOTrainer does not support yet."
            )
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        options = _options()
        k = self.pkpo_k()
        if mode == "eval" and group_size < options.min_group_size(k):
            if not self._pkpo_eval_warned:
                logger.warning(
                    "pkpo: num_generations_eval=%d is too few for k=%s; the eval loss uses "
                    "ms-swift's advantages.",
                    group_size,
                    k,
                )
                self._pkpo_eval_warned = True
            return swift_advantages
        scorable = ~torch.isnan(rewards_per_func).all(dim=1)
        weights = self.reward_weights.to(rewards_per_func.device)
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        advantages, estimate = consecutive_advantages(
            rewards, group_size, k, options, valid=scorable, engine=ENGINE
        )
        if k is not None:
            self._metrics[mode]["pkpo/k"].append(float(k))
        if estimate is not None:
            self._metrics[mode]["pkpo/estimate"].append(estimate)
        return advantages.to(swift_advantages.dtype)


__all__ = ["PKPOGRPOTrainer", "patch", "unpatch"]
