"""verl >= 0.9 plugin: the ``pkpo`` advantage estimator and ``pkpo_sync`` trainer (tested: 0.9.1).

Select it with ``algorithm.adv_estimator=pkpo`` and options under ``algorithm.pkpo``::

    algorithm.adv_estimator=pkpo +algorithm.pkpo.k=8 +algorithm.pkpo.baseline=loo_minus_one
    # or anneal k (needs the trainer below):
    algorithm.adv_estimator=pkpo +algorithm.pkpo.schedule='8->1@1500' \
        trainer.v1.trainer_mode=pkpo_sync

How it gets into the process that computes advantages (verl's Ray ``TaskRunner`` actor): the
package declares the entry point ``verl.plugins: pkpo = pkpo.integrations.verl:register``;
``import verl`` imports every such module in every process, and importing this module
registers the estimator (verl loads the entry point's attribute but does not call it, so the
registration runs at import). Fallbacks: ``VERL_USE_EXTERNAL_MODULES=pkpo.integrations.verl``
or a Ray ``worker_process_setup_hook=pkpo.integrations.verl.register``.

The estimator (paper eq. 33 for the default baseline; all baselines via :func:`pkpo.transform`)
sums ``token_level_rewards`` over tokens into one score per response, groups the rows by
``uid`` (ragged groups allowed), and broadcasts the per-response advantage over the response
tokens. verl calls it without a training step, so a k schedule needs the step published by
the ``pkpo_sync`` trainer (a subclass of verl's ``PPOTrainerSync``, registered lazily when
verl imports its V1 trainers).
"""

from __future__ import annotations

import logging
from typing import Any

from ._common import PKPOOptions, StepClock, grouped_advantages, options_from_mapping, when_imported

logger = logging.getLogger("pkpo.integrations.verl")

ESTIMATOR_NAME = "pkpo"
TRAINER_NAME = "pkpo_sync"

#: the global step published by the ``pkpo_sync`` trainer (None until its first step)
clock = StepClock()
#: diagnostics of the latest estimator call: {"k": ..., "estimate": ..., "step": ...}
last_stats: dict[str, Any] = {}


def read_options(config) -> PKPOOptions:
    """PKPO options from verl's ``config.algorithm`` (a DictConfig, a dict or None).

    Reads ``config.get("pkpo", {})`` with keys ``k`` or ``schedule``, ``baseline`` (default
    ``"loo_minus_one"``) and an optional ``rollout_n`` (the largest allowed group).
    """
    section = config.get("pkpo", None) if config is not None and hasattr(config, "get") else None
    if section is None:
        raise ValueError(
            "verl adv_estimator=pkpo needs options under algorithm.pkpo, e.g. "
            "'+algorithm.pkpo.k=8' (or '+algorithm.pkpo.schedule=8->1@1500' with "
            "trainer.v1.trainer_mode=pkpo_sync)."
        )
    return options_from_mapping(section, source="algorithm.pkpo")


def compute_pkpo_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """verl advantage estimator ``pkpo``: PKPO transformed rewards, one per response, on its tokens.

    A_i = transform(scores of the group of i)_i with scores s_i = sum_t token_level_rewards[i, t]
    (s^(loo-1) of paper eq. 33 by default), returned as ``(A[:, None] * response_mask, same)``,
    verl's contract for outcome-reward estimators (advantages, returns).

    Args:
        token_level_rewards: (bs, T) tensor.
        response_mask: (bs, T) 0/1 tensor of response tokens.
        index: (bs,) group ids (verl's ``uid`` object array); required.
        config: ``config.algorithm`` with an ``algorithm.pkpo`` section (see :func:`read_options`).
    """
    import torch

    options = read_options(config)
    if index is None:
        raise ValueError(
            "verl adv_estimator=pkpo needs the 'uid' group index of each row; none was passed."
        )
    step = clock.step
    k = options.k_at(step)
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        advantages, estimate = grouped_advantages(
            scores, index, k, options, engine="verl adv_estimator=pkpo"
        )
        advantages = advantages.to(token_level_rewards.dtype)[:, None] * response_mask
    last_stats.update({"k": k, "estimate": estimate, "step": step})
    return advantages, advantages


# --- registration --------------------------------------------------------------------------


def _register_estimator() -> bool:
    from verl.trainer.ppo import core_algos

    existing = core_algos.ADV_ESTIMATOR_REGISTRY.get(ESTIMATOR_NAME)
    if existing is compute_pkpo_advantage:
        return False
    # the same function from a second copy of this module (e.g. a file-path import) counts as ours
    if (
        existing is not None
        and getattr(existing, "__qualname__", None) == compute_pkpo_advantage.__qualname__
        and getattr(existing, "__module__", None) == compute_pkpo_advantage.__module__
    ):
        return False
    core_algos.register_adv_est(ESTIMATOR_NAME)(compute_pkpo_advantage)
    return True


def make_trainer_class(base):
    """A subclass of verl's sync V1 trainer whose advantage step publishes the global step first."""

    class PKPOTrainerSync(base):
        """``trainer.v1.trainer_mode=pkpo_sync``: verl's sync trainer + the step for k schedules."""

        def _compute_advantage(self, batch, metrics):
            clock.publish(self.global_steps)
            result = super()._compute_advantage(batch, metrics)
            if self.config.algorithm.get("adv_estimator") == ESTIMATOR_NAME and last_stats:
                metrics["pkpo/k"] = last_stats["k"]
                metrics["pkpo/estimate_mean"] = last_stats["estimate"]
            return result

    PKPOTrainerSync.__module__ = __name__
    PKPOTrainerSync.__qualname__ = "PKPOTrainerSync"
    return PKPOTrainerSync


_trainer_class = None


def _register_trainer(trainer_sync_module) -> None:
    global _trainer_class
    from verl.trainer.ppo.v1 import trainer_base

    existing = trainer_base.TRAINER_REGISTRY.get(TRAINER_NAME)
    if existing is not None and existing is _trainer_class:
        return
    if existing is not None and existing.__module__ == __name__:
        _trainer_class = existing  # registered by another copy of this module
        return
    _trainer_class = make_trainer_class(trainer_sync_module.PPOTrainerSync)
    trainer_base.register_trainer(TRAINER_NAME)(_trainer_class)
    logger.info("pkpo: registered verl V1 trainer %r", TRAINER_NAME)


def register() -> None:
    """Register the ``pkpo`` estimator now, the ``pkpo_sync`` trainer when verl loads its trainers.

    Idempotent (a second call, or a second copy of this module, changes nothing). Runs on import
    of this module, which is how verl's ``verl.plugins`` entry point and
    ``VERL_USE_EXTERNAL_MODULES`` load it; call it yourself from a Ray setup hook or script.
    """
    if _register_estimator():
        logger.info("pkpo: registered verl advantage estimator %r", ESTIMATOR_NAME)
    when_imported("verl.trainer.ppo.v1.trainer_sync", _register_trainer)


def _register_on_import() -> None:
    try:
        register()
    except ImportError as error:  # verl missing: importing the adapter is still fine
        logger.debug("pkpo: verl not importable, estimator not registered: %s", error)


_register_on_import()

__all__ = [
    "clock",
    "compute_pkpo_advantage",
    "last_stats",
    "make_trainer_class",
    "read_options",
    "register",
]
