"""verl >= 0.9 plugin: the ``pkpo`` advantage estimator and ``pkpo_sync`` trainer (tested: 0.9.1).

Select it with ``algorithm.adv_estimator=pkpo`` and options under ``algorithm.pkpo``::

    algorithm.adv_estimator=pkpo +algorithm.pkpo.k=8 +algorithm.pkpo.baseline=loo_minus_one
    # any estimator of pkpo.advantages by name, on the same path (scale and validation alike):
    algorithm.adv_estimator=pkpo +algorithm.pkpo.method=maxrl
    # or anneal k (needs the trainer below):
    algorithm.adv_estimator=pkpo +algorithm.pkpo.schedule='8->1@1500' \
        trainer.v1.trainer_mode=pkpo_sync
    # unbiased pass@k / maxg@k in validation (the trainer below, any estimator):
    +algorithm.pkpo.val_ks=[1,4,8] trainer.v1.trainer_mode=pkpo_sync

``algorithm.pkpo.scale`` (default :data:`pkpo.integrations._common.DEFAULT_SCALE`, ``mean_abs``)
sets the size of the advantages; "mean_abs" divides by their mean |A| over the whole batch of
the estimator call (the controller's full training batch), so GRPO's learning rate carries over.

How it gets into the process that computes advantages (verl's Ray ``TaskRunner`` actor): the
package declares the entry point ``verl.plugins: pkpo = pkpo.integrations.verl:register``;
``import verl`` imports every such module in every process, and importing this module
registers the estimator (verl loads the entry point's attribute but does not call it, so the
registration runs at import). Fallbacks: ``VERL_USE_EXTERNAL_MODULES=pkpo.integrations.verl``
or a Ray ``worker_process_setup_hook=pkpo.integrations.verl.register``.

The estimator (paper eq. 33 for the default baseline; all baselines via :func:`pkpo.transform`)
sums ``token_level_rewards`` over tokens into one score per response, groups the rows by
``uid`` (ragged groups allowed), and broadcasts the per-response advantage over the response
tokens. verl calls it without a training step, so a k schedule needs the step that the
``pkpo_sync`` trainer (a subclass of verl's ``PPOTrainerSync``, registered lazily when verl
imports its V1 trainers) sets on :data:`clock` around its advantage step (a custom loop calls
``clock.publish(step)``). The options of ``algorithm.pkpo`` are parsed once per distinct
section, not at every call. That trainer also publishes ``actor_rollout_ref.rollout.n`` as
the largest allowed group (unless ``algorithm.pkpo.rollout_n`` is set), and adds unbiased
pass@k / maxg@k with standard errors to verl's validation metrics (:func:`validation_metrics`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import defaultdict
from typing import Any

from ._common import (
    PKPOOptions,
    StepClock,
    grouped_advantages,
    options_from_mapping,
    parse_val_ks,
    when_imported,
)
from ._common import validation_metrics as _validation_metrics

logger = logging.getLogger("pkpo.integrations.verl")

ESTIMATOR_NAME = "pkpo"
TRAINER_NAME = "pkpo_sync"

VAL_KS_KEY = "val_ks"

#: the global step: set by the ``pkpo_sync`` trainer around its advantage step, or published
clock = StepClock()
#: diagnostics of the latest estimator call: {"k": ..., "estimate": ..., "step": ...} (k and the
#: mean pass@k / maxg@k estimate are None for a method without them)
last_stats: dict[str, Any] = {}
#: samples per prompt of the running ``pkpo_sync`` trainer (``actor_rollout_ref.rollout.n``)
trainer_rollout_n: dict[str, int | None] = {"n": None}


def read_options(config) -> PKPOOptions:
    """PKPO options from verl's ``config.algorithm`` (a DictConfig, a dict or None).

    Reads ``config.get("pkpo", {})`` with keys ``method`` (default ``"pkpo"``; any name of
    :func:`pkpo.advantages.names`), ``k`` or ``schedule`` (for the methods that take k),
    ``baseline`` (PKPO's, default ``"loo_minus_one"``), ``params`` (the method's other
    parameters, e.g. ``{beta: 2.0}``), ``scale`` (default ``"mean_abs"``) and an optional
    ``rollout_n`` (the largest allowed group); ``val_ks`` belongs to the trainer's validation
    (:func:`read_val_ks`).
    verl hands the same section to every call: it is parsed once and the result reused.
    """
    section = config.get("pkpo", None) if config is not None and hasattr(config, "get") else None
    if section is None:
        raise ValueError(
            "verl adv_estimator=pkpo needs options under algorithm.pkpo, e.g. "
            "'+algorithm.pkpo.k=8' (or '+algorithm.pkpo.schedule=8->1@1500' with "
            "trainer.v1.trainer_mode=pkpo_sync)."
        )
    key = _hashable(section)
    options = _parsed_sections.get(key)
    if options is None:
        options = options_from_mapping(section, source="algorithm.pkpo", other_keys=(VAL_KS_KEY,))
        _parsed_sections[key] = options
    return options


_parsed_sections: dict[Any, PKPOOptions] = {}  # the sections read so far, by their content


def _hashable(value):
    """A config value as a hashable key: mappings and sequences become nested tuples."""
    if hasattr(value, "items"):
        return ("map", tuple(sorted((str(key), _hashable(item)) for key, item in value.items())))
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return value
    return ("seq", tuple(_hashable(item) for item in value))


def read_val_ks(config) -> tuple[int, ...]:
    """``algorithm.pkpo.val_ks`` of verl's full config, each k checked against the number of
    validation samples per prompt (``actor_rollout_ref.rollout.val_kwargs.n``); () when unset."""
    section = config.algorithm.get("pkpo", None)
    value = section.get(VAL_KS_KEY, None) if section is not None else None
    if value is None:
        return ()
    val_kwargs = config.actor_rollout_ref.rollout.val_kwargs
    ks = parse_val_ks(
        value,
        source=f"algorithm.pkpo.{VAL_KS_KEY}",
        largest_n=int(val_kwargs.n),
        n_name="actor_rollout_ref.rollout.val_kwargs.n",
    )
    if ks and ks[-1] > 1 and not val_kwargs.get("temperature", 0):
        logger.warning(
            "pkpo: algorithm.pkpo.val_ks asks for pass@k with k > 1, but validation samples "
            "greedily (actor_rollout_ref.rollout.val_kwargs.temperature=0): all samples of a "
            "prompt are the same, so pass@k equals pass@1. Set val_kwargs.temperature (e.g. 1.0)."
        )
    return ks


def compute_pkpo_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """verl advantage estimator ``pkpo``: one advantage per response, on its tokens.

    A_i = transform(scores of the group of i)_i with scores s_i = sum_t token_level_rewards[i, t]
    (s^(loo-1) of paper eq. 33 by default; with ``algorithm.pkpo.method`` set, that estimator of
    :mod:`pkpo.advantages`), returned as ``(A[:, None] * response_mask, same)``, verl's contract
    for outcome-reward estimators (advantages, returns).

    Args:
        token_level_rewards: (bs, T) tensor.
        response_mask: (bs, T) 0/1 tensor of response tokens.
        index: (bs,) group ids (verl's ``uid`` object array); required.
        config: ``config.algorithm`` with an ``algorithm.pkpo`` section (see :func:`read_options`).
    """
    import torch

    options = read_options(config)
    if options.rollout_n is None and trainer_rollout_n["n"] is not None:
        options = dataclasses.replace(options, rollout_n=trainer_rollout_n["n"])
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


# --- validation metrics --------------------------------------------------------------------


def validation_metrics(
    data_sources, sample_uids, infos, ks, *, expected_acc_counts=None
) -> dict[str, float]:
    """Unbiased pass@k / maxg@k and their SE per data source, from verl's validation samples.

    Takes what verl 0.9.1's ``_validate`` hands ``_val_metrics_update``: one data source, uid
    and ``infos`` entry (``infos["reward"]``: the sequence score; optionally ``infos["acc"]``)
    per sample, the final output of each session. Samples are grouped by (data source, uid).
    Returns, for each k and data source ``ds``:

    * ``val-core/{ds}/reward/maxg@{k}`` and ``.../maxg@{k}/se`` from the scores;
    * ``val-core/{ds}/acc/pass@{k}`` and ``.../pass@{k}/se`` where the data source reports 0/1
      ``acc`` (sessions that produced no output count as failures, as in verl's own ``acc``
      metrics with ``expected_acc_counts``), else ``val-core/{ds}/reward/pass@{k}`` when every
      score is 0 or 1.

    Unlike verl's ``best@N`` (a bootstrap maximum, biased low; verl PR #7240), these are the
    unbiased estimators of paper eqs. 3 and 12, averaged over prompts (:mod:`pkpo.metrics`); the
    SE is over prompts. A prompt with fewer than k samples is left out at that k.
    """
    rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for position, (source, uid) in enumerate(zip(data_sources, sample_uids)):
        rows[str(source)][str(uid)].append(position)
    rewards_all = infos["reward"]
    acc_all = infos.get("acc")
    metrics: dict[str, float] = {}
    for source, by_uid in rows.items():
        rewards = [_finite([rewards_all[i] for i in positions]) for positions in by_uid.values()]
        correct = None
        if acc_all is not None:
            correct = _acc_rows(source, by_uid, acc_all, expected_acc_counts or {})
        found = _validation_metrics(rewards, ks, correct_per_prompt=correct)
        for name, value in found.items():
            var = "acc" if correct is not None and name.startswith("pass@") else "reward"
            metrics[f"val-core/{source}/{var}/{name}"] = value
    return metrics


def _finite(values) -> list[float]:
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(kept) < len(values):
        logger.warning(
            "pkpo: %d validation score(s) were None/NaN/inf and left out", len(values) - len(kept)
        )
    return kept


def _acc_rows(source, by_uid, acc_all, expected_counts):
    """0/1 ``acc`` per prompt of one data source, failed sessions as 0; None if it has no 0/1
    acc."""
    observed = [
        [float(acc_all[i]) for i in positions if acc_all[i] is not None]
        for positions in by_uid.values()
    ]
    values = [value for row in observed for value in row]
    if not values or not all(value in (0.0, 1.0) for value in values):
        return None  # no acc, or a non-binary one: pass@k falls back to 0/1 scores
    return [
        row + [0.0] * max(int(expected_counts.get((source, uid), 0)) - len(row), 0)
        for uid, row in zip(by_uid, observed)
    ]


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
    """A subclass of verl's sync V1 trainer whose advantage step runs at the global step
    (``clock.at(global_steps)``)."""

    class PKPOTrainerSync(base):
        """``trainer.v1.trainer_mode=pkpo_sync``: verl's sync trainer, plus the step for k
        schedules, ``rollout.n`` as the group-size cap, and pass@k / maxg@k in validation."""

        def _compute_advantage(self, batch, metrics):
            trainer_rollout_n["n"] = int(self.config.actor_rollout_ref.rollout.n)
            with clock.at(self.global_steps):
                result = super()._compute_advantage(batch, metrics)
            if self.config.algorithm.get("adv_estimator") == ESTIMATOR_NAME and last_stats:
                for name, key in (("pkpo/k", "k"), ("pkpo/estimate_mean", "estimate")):
                    if last_stats[key] is not None:  # None: a method without k or estimate
                        metrics[name] = last_stats[key]
            return result

        def _val_metrics_update(
            self,
            data_sources,
            sample_uids,
            reward_extra_infos_dict,
            sample_turns,
            expected_acc_counts=None,
        ):
            metric_dict = super()._val_metrics_update(
                data_sources,
                sample_uids,
                reward_extra_infos_dict,
                sample_turns,
                expected_acc_counts=expected_acc_counts,
            )
            ks = read_val_ks(self.config)
            if ks:
                metric_dict.update(
                    validation_metrics(
                        data_sources,
                        sample_uids,
                        reward_extra_infos_dict,
                        ks,
                        expected_acc_counts=expected_acc_counts,
                    )
                )
            return metric_dict

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
    "read_val_ks",
    "register",
    "trainer_rollout_n",
    "validation_metrics",
]
