"""TRL 1.16 trainers on PKPO transformed rewards: ``PKPOGRPOTrainer`` and ``PKPORLOOTrainer``.

TRL has no advantage hook; its maintainers' advice (huggingface/trl#4525) is to subclass and
override ``_generate_and_score_completions``. These trainers do exactly that, using two private
methods of trl 1.16.0 (the version the tests pin; the ``trl`` extra asks for ``trl>=1.16``):

1. ``_calculate_rewards`` is wrapped to keep the rewards it returns. They are already gathered
   from all processes, (N_global, n_reward_funcs), so every group of ``num_generations``
   consecutive rows is complete even when it spans processes (a reward function sees only its
   process's rows and cannot do this, trl#3896).
2. After TRL's ``_generate_and_score_completions``, ``output["advantages"]`` is replaced by the
   PKPO transformed rewards of those groups (:func:`pkpo.transform`; s^(loo-1), paper eq. 33, by
   default), sliced to this process's rows. Rows whose reward functions all returned None are
   left out of their group and get advantage 0, as in TRL.

Scalar rewards are TRL's: the ``reward_weights``-weighted nansum over reward functions (for RLOO
also ``reward_clip_range``). k comes from ``pkpo_k`` or the ``pkpo_schedule`` evaluated at
``trainer.state.global_step``; ``pkpo/k`` and ``pkpo/estimate`` (the mean per-group unbiased
pass@k / maxg@k estimate) are logged.

Method: ``pkpo_method`` (default ``"pkpo"``) selects any estimator of :mod:`pkpo.advantages` by
name (``"grpo"``, ``"rloo"``, ``"maxrl"``, ...), on the same path: the same groups, masks and
scale, ``pkpo_k`` / ``pkpo_schedule`` for the methods that take k, ``pkpo_params`` for the
method's other parameters (``"beta=2.0"`` for ``"rs_grpo"``).

Scale: ``pkpo_scale`` (default ``"mean_abs"``) is :func:`pkpo.transform`'s ``scale``, applied to
the gathered batch of all processes before the local slice, so every process divides by the
same mean |A| and a GRPO learning rate carries over. ``"none"`` gives the paper's values.

Loss aggregation: ``PKPOGRPOConfig`` keeps TRL's ``loss_type="dapo"``: every sequence's
token-summed loss over the global token count of the batch, a positive factor per batch like
verl's ``token-mean``; ``"dr_grpo"`` (a constant normaliser) is exactly unbiased with
``pkpo_scale="none"`` or ``"n_over_k"``. ``"grpo"``, ``"sapo"`` (each sequence over its own
length) and ``"bnpo"`` (local token count) re-weight sequences and get a warning. RLOO's loss is
already sequence-level (summed log-probs, mean over sequences); ``PKPORLOOConfig`` defaults to
``beta=0.0`` and refuses a KL-in-reward penalty, which the replaced advantages would drop.
Options whose effect PKPO's advantages would silently replace are refused:
``multi_objective_aggregation="normalize_then_sum"`` and RLOO's ``normalize_advantages=True``.

Evaluation: with ``pkpo_eval_ks=[1, 4]``, ``trainer.evaluate()`` also returns and logs unbiased
``eval_pass@k`` / ``eval_maxg@k`` and their standard errors over the eval prompts
(``eval_pass@k/se``), from the ``num_generations_eval`` completions of each prompt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from ._common import (
    DEFAULT_METHOD,
    DEFAULT_SCALE,
    PKPOOptions,
    check_samples_per_prompt,
    consecutive_advantages,
    parse_options,
    parse_val_ks,
    validation_metrics,
)

logger = logging.getLogger("pkpo.integrations.trl")

_METHOD_HELP = (
    "Advantage estimator of pkpo.advantages: pkpo (default), grpo, dr_grpo, rloo, maxrl, tailrl, "
    "rs_grpo, w_reinforce, tzsm, passk_training, ... (pkpo.advantages.names())."
)
_PARAMS_HELP = "The method's other parameters, e.g. {'beta': 2.0} or 'beta=2.0' for rs_grpo."
_K_HELP = "k of pass@k to optimise (constant), for methods that take k. Or pkpo_schedule."
_BASELINE_HELP = (
    "PKPO's baseline (method pkpo only): loo_minus_one (the paper's PKPO, default), none, loo or "
    "centered."
)
_SCHEDULE_HELP = "k schedule by global step, e.g. '8->1@1500' (see pkpo.schedules.from_spec)."
_SCALE_HELP = (
    f"Advantage scale: mean_abs (divided by the batch's mean |A|, so GRPO's lr carries over; "
    f"slightly biased), n_over_k (times n/k, unbiased) or none (the paper's values); default "
    f"{DEFAULT_SCALE}."
)
_EVAL_KS_HELP = (
    "ks of the unbiased eval_pass@k / eval_maxg@k (with standard errors) logged by evaluate(), "
    "e.g. [1, 4]; each <= num_generations_eval."
)
_UNFAITHFUL_LOSS_TYPES = {
    "grpo": "divides each sequence's loss by its own length",
    "sapo": "divides each sequence's loss by its own length",
    "bnpo": "divides by the token count of the local batch, which differs between processes",
}


@dataclass
class PKPOFields:
    """The PKPO fields of both trainer configs (a mixin before TRL's config class), parsed once
    when the config is made.

    ``pkpo_options`` (:class:`PKPOOptions`) and ``pkpo_parsed_eval_ks`` (a sorted tuple) are
    what the trainers read; the raw fields stay as given, for TRL's config printing and saving.
    """

    pkpo_method: str = field(default=DEFAULT_METHOD, metadata={"help": _METHOD_HELP})
    pkpo_k: int | None = field(default=None, metadata={"help": _K_HELP})
    pkpo_baseline: str | None = field(default=None, metadata={"help": _BASELINE_HELP})
    pkpo_schedule: str | None = field(default=None, metadata={"help": _SCHEDULE_HELP})
    pkpo_scale: str = field(default=DEFAULT_SCALE, metadata={"help": _SCALE_HELP})
    pkpo_eval_ks: list[int] | None = field(default=None, metadata={"help": _EVAL_KS_HELP})
    pkpo_params: str | None = field(default=None, metadata={"help": _PARAMS_HELP})

    def __post_init__(self):
        super().__post_init__()
        source = type(self).__name__
        options = parse_options(
            k=self.pkpo_k,
            baseline=self.pkpo_baseline,
            schedule=self.pkpo_schedule,
            scale=self.pkpo_scale,
            method=self.pkpo_method,
            params=self.pkpo_params,
            source=source,
        )
        check_samples_per_prompt(
            self.num_generations, options, source=source, name="num_generations"
        )
        n_eval = self.num_generations_eval or self.num_generations
        eval_ks = parse_val_ks(
            self.pkpo_eval_ks,
            source=f"{source}.pkpo_eval_ks",
            largest_n=n_eval,
            n_name="num_generations_eval" if self.num_generations_eval else "num_generations",
        )
        # plain attributes, not fields: TRL's to_dict / HfArgumentParser see only the fields
        self._pkpo_parsed = (options, eval_ks)

    @property
    def pkpo_options(self) -> PKPOOptions:
        return self._pkpo_parsed[0]

    @property
    def pkpo_parsed_eval_ks(self) -> tuple[int, ...]:
        return self._pkpo_parsed[1]


@dataclass
class PKPOGRPOConfig(PKPOFields, GRPOConfig):
    """:class:`trl.GRPOConfig` plus the PKPO options (TRL's own defaults otherwise)."""

    scale_rewards: str = field(
        default="none", metadata={"help": "Ignored by PKPO (its advantages replace TRL's)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                f"PKPOGRPOConfig: multi_objective_aggregation={self.multi_objective_aggregation!r} "
                "normalises each reward function per group before summing; PKPO transforms the "
                "weighted sum of the raw rewards (TRL's 'sum_then_normalize' reward) and would "
                "silently ignore it. Keep 'sum_then_normalize' (scale with pkpo_scale)."
            )
        if self.loss_type in _UNFAITHFUL_LOSS_TYPES:
            logger.warning(
                "pkpo: loss_type=%r %s, which re-weights sequences and biases the PKPO gradient; "
                "prefer 'dapo' (TRL's default) or 'dr_grpo' (see docs/integrations.md).",
                self.loss_type,
                _UNFAITHFUL_LOSS_TYPES[self.loss_type],
            )


@dataclass
class PKPORLOOConfig(PKPOFields, RLOOConfig):
    """:class:`trl.RLOOConfig` plus the PKPO options; ``beta`` (KL in the reward) must stay 0."""

    beta: float = field(
        default=0.0,
        metadata={"help": "Must be 0: PKPO replaces the advantages that carry RLOO's KL."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.beta != 0.0:
            raise ValueError(
                f"PKPORLOOConfig: beta={self.beta} puts a KL penalty into RLOO's rewards, which "
                "PKPO's advantages would drop; set beta=0.0 (or use PKPOGRPOTrainer, whose KL "
                "term is in the loss)."
            )
        if self.normalize_advantages:
            raise ValueError(
                "PKPORLOOConfig: normalize_advantages=True whitens RLOO's advantages over the "
                "batch, but PKPO replaces them and would silently ignore it; set it to False and "
                f"choose the size of PKPO's advantages with pkpo_scale (default {DEFAULT_SCALE!r})."
            )


class _PKPOAdvantages:
    """Mixin over a TRL GRPO-family trainer: PKPO advantages from the gathered rewards."""

    _pkpo_stash = None
    _pkpo_eval_warned = False
    _pkpo_eval_groups: list | None = None  # eval rewards per prompt, collected by evaluation_loop
    _pkpo_config_class: type = type(None)  # the matching PKPO config, set by each trainer

    def __init__(self, *args, **kwargs):
        config = kwargs.get("args", args[2] if len(args) > 2 else None)
        if not isinstance(config, self._pkpo_config_class):
            raise ValueError(  # noqa: TRY004 (the project reports bad input as ValueError)
                f"{type(self).__name__} needs args={self._pkpo_config_class.__name__}(..., "
                f"pkpo_k=...) (got {type(config).__name__})."
            )
        super().__init__(*args, **kwargs)

    @property
    def pkpo_options(self) -> PKPOOptions:
        """The options parsed once by the config (:class:`PKPOFields`)."""
        return self.args.pkpo_options

    def pkpo_k(self) -> int | None:
        """The k optimised at the current ``state.global_step`` (the trainer's own step); None for
        a method without k."""
        return self.pkpo_options.k_at(self.state.global_step)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(
            inputs, prompts, completions, completion_ids_list
        )
        self._pkpo_stash = rewards_per_func  # gathered over processes: (N_global, n_reward_funcs)
        return rewards_per_func

    def _pkpo_scalar_rewards(self, rewards_per_func):
        """TRL's scalar reward per row and whether it is scorable (a reward function answered)."""
        scorable = ~torch.isnan(rewards_per_func).all(dim=1)
        weights = self.reward_weights.to(rewards_per_func.device)
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        return rewards, scorable

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        rewards_per_func, self._pkpo_stash = self._pkpo_stash, None
        if rewards_per_func is None:
            raise RuntimeError(
                "pkpo: TRL did not call _calculate_rewards; this trl version is not supported."
            )
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        rewards, scorable = self._pkpo_scalar_rewards(rewards_per_func)
        if mode == "eval" and self._pkpo_eval_groups is not None:
            self._pkpo_collect_eval_groups(rewards, scorable, group_size)
        options = self.pkpo_options
        k = self.pkpo_k()
        if mode == "eval" and group_size < options.min_group_size(k):
            if not self._pkpo_eval_warned:
                logger.warning(
                    "pkpo: num_generations_eval=%d < k=%d; eval loss uses TRL's advantages.",
                    group_size,
                    k,
                )
                self._pkpo_eval_warned = True
            return output

        advantages, estimate = consecutive_advantages(
            rewards, group_size, k, options, valid=scorable, engine=f"{type(self).__name__}"
        )
        local_rows = output["prompt_ids"].shape[0]
        start = self.accelerator.process_index * local_rows
        output["advantages"] = advantages[start : start + local_rows].to(output["advantages"].dtype)

        # TRL logged its own advantages of all processes: replace them with PKPO's
        logged = self._logs["advantages"]
        for _ in range(min(len(advantages), len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())
        if k is not None:  # None: a method without k (and without a pass@k estimate)
            self._metrics[mode]["pkpo/k"].append(float(k))
        if estimate is not None:
            self._metrics[mode]["pkpo/estimate"].append(estimate)
        return output

    # --- unbiased pass@k / maxg@k in evaluation

    def _pkpo_collect_eval_groups(self, rewards, scorable, group_size: int) -> None:
        """Keep the scorable rewards of each eval prompt (gathered: the same on every process)."""
        rewards = rewards.detach().double().cpu().view(-1, group_size)
        scorable = scorable.cpu().view(-1, group_size)
        self._pkpo_eval_groups.extend(row[keep].tolist() for row, keep in zip(rewards, scorable))

    def evaluation_loop(self, *args, **kwargs):
        """TRL's evaluation, plus ``{prefix}_pass@k`` / ``{prefix}_maxg@k`` (and ``/se``) for
        each k of ``pkpo_eval_ks``, over all eval prompts (:func:`validation_metrics`)."""
        ks = self.args.pkpo_parsed_eval_ks
        if not ks:
            return super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        self._pkpo_eval_groups = []
        try:
            output = super().evaluation_loop(*args, **kwargs)
            metrics = validation_metrics(self._pkpo_eval_groups, ks)
        finally:
            self._pkpo_eval_groups = None
        output.metrics.update({f"{prefix}_{name}": value for name, value in metrics.items()})
        return output


class PKPOGRPOTrainer(_PKPOAdvantages, GRPOTrainer):
    """:class:`trl.GRPOTrainer` trained on PKPO advantages. Use with :class:`PKPOGRPOConfig`."""

    _pkpo_config_class = PKPOGRPOConfig


class PKPORLOOTrainer(_PKPOAdvantages, RLOOTrainer):
    """:class:`trl.RLOOTrainer` (sequence-level loss) on PKPO advantages; see PKPORLOOConfig."""

    _pkpo_config_class = PKPORLOOConfig

    def _pkpo_scalar_rewards(self, rewards_per_func):
        rewards, scorable = super()._pkpo_scalar_rewards(rewards_per_func)
        if self.reward_clip_range:
            rewards = rewards.clamp(min=self.reward_clip_range[0], max=self.reward_clip_range[1])
        return rewards, scorable


__all__ = ["PKPOGRPOConfig", "PKPOGRPOTrainer", "PKPORLOOConfig", "PKPORLOOTrainer"]
