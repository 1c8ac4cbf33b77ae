"""TRL 1.16 trainers on PKPO transformed rewards: ``PKPOGRPOTrainer`` and ``PKPORLOOTrainer``.

TRL has no advantage hook; its maintainers' advice (huggingface/trl#4525) is to subclass and
override ``_generate_and_score_completions``. These trainers do exactly that, using two private
methods of trl 1.16.0 (pin ``trl==1.16.0``, the ``pkpo[trl]`` extra):

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

Loss aggregation: the advantages are unbiased for grad pass@k only with a loss that sums over
sequences with a constant normaliser. ``PKPOGRPOConfig`` therefore defaults to
``loss_type="dr_grpo"`` (constant normaliser; ``"dapo"`` is fine too) and ``scale_rewards="none"``
(ignored by PKPO anyway, but keeps TRL's own logs honest). RLOO's loss is already sequence-level
(summed log-probs, mean over sequences), the most faithful host; ``PKPORLOOConfig`` defaults to
``beta=0.0`` and refuses a KL-in-reward penalty, which the replaced advantages would drop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from .._validation import min_group_size
from ._common import PKPOOptions, consecutive_advantages, parse_options

logger = logging.getLogger("pkpo.integrations.trl")

_K_HELP = "k of pass@k to optimise (constant). Give this or pkpo_schedule."
_BASELINE_HELP = "PKPO baseline: loo_minus_one (paper's PKPO, default), none, loo or centered."
_SCHEDULE_HELP = "k schedule by global step, e.g. '8->1@1500' (see pkpo.schedules.from_spec)."
_UNFAITHFUL_LOSS_TYPES = ("grpo", "bnpo")


def _options_of(config) -> PKPOOptions:
    options = parse_options(
        k=config.pkpo_k,
        baseline=config.pkpo_baseline,
        schedule=config.pkpo_schedule,
        source=type(config).__name__,
    )
    needed = min_group_size(options.schedule.max_k, options.baseline)
    if config.num_generations < needed:
        raise ValueError(
            f"{type(config).__name__}: num_generations={config.num_generations} is too few for "
            f"k={options.schedule.max_k} with baseline {options.baseline!r} (needs at least "
            f"{needed})."
        )
    return options


@dataclass
class PKPOGRPOConfig(GRPOConfig):
    """:class:`trl.GRPOConfig` plus the PKPO options; defaults to a constant loss normaliser."""

    pkpo_k: int | None = field(default=None, metadata={"help": _K_HELP})
    pkpo_baseline: str = field(default="loo_minus_one", metadata={"help": _BASELINE_HELP})
    pkpo_schedule: str | None = field(default=None, metadata={"help": _SCHEDULE_HELP})
    loss_type: str = field(
        default="dr_grpo", metadata={"help": "dr_grpo (default here) or dapo keep PKPO unbiased."}
    )
    scale_rewards: str = field(
        default="none", metadata={"help": "Ignored by PKPO (its advantages replace TRL's)."}
    )

    def __post_init__(self):
        super().__post_init__()
        _options_of(self)
        if self.loss_type in _UNFAITHFUL_LOSS_TYPES:
            logger.warning(
                "pkpo: loss_type=%r normalises per sequence or per local batch, which biases the "
                "PKPO gradient; prefer 'dr_grpo' or 'dapo'.",
                self.loss_type,
            )


@dataclass
class PKPORLOOConfig(RLOOConfig):
    """:class:`trl.RLOOConfig` plus the PKPO options; ``beta`` (KL in the reward) must stay 0."""

    pkpo_k: int | None = field(default=None, metadata={"help": _K_HELP})
    pkpo_baseline: str = field(default="loo_minus_one", metadata={"help": _BASELINE_HELP})
    pkpo_schedule: str | None = field(default=None, metadata={"help": _SCHEDULE_HELP})
    beta: float = field(
        default=0.0,
        metadata={"help": "Must be 0: PKPO replaces the advantages that carry RLOO's KL."},
    )

    def __post_init__(self):
        super().__post_init__()
        _options_of(self)
        if self.beta != 0.0:
            raise ValueError(
                f"PKPORLOOConfig: beta={self.beta} puts a KL penalty into RLOO's rewards, which "
                "PKPO's advantages would drop; set beta=0.0 (or use PKPOGRPOTrainer, whose KL "
                "term is in the loss)."
            )


class _PKPOAdvantages:
    """Mixin over a TRL GRPO-family trainer: PKPO advantages from the gathered rewards."""

    _pkpo_stash = None
    _pkpo_eval_warned = False
    _pkpo_config_class: type = type(None)  # the matching PKPO config, set by each trainer

    def __init__(self, *args, **kwargs):
        config = kwargs.get("args", args[2] if len(args) > 2 else None)
        if not isinstance(config, self._pkpo_config_class):
            raise ValueError(  # noqa: TRY004 (the project reports bad input as ValueError)
                f"{type(self).__name__} needs args={self._pkpo_config_class.__name__}(..., pkpo_k=...) "
                f"(got {type(config).__name__})."
            )
        super().__init__(*args, **kwargs)

    @property
    def pkpo_options(self) -> PKPOOptions:
        return _options_of(self.args)

    def pkpo_k(self) -> int:
        """The k optimised at the current ``state.global_step``."""
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
        options = self.pkpo_options
        k = self.pkpo_k()
        if mode == "eval" and group_size < min_group_size(k, options.baseline):
            if not self._pkpo_eval_warned:
                logger.warning(
                    "pkpo: num_generations_eval=%d < k=%d; eval loss uses TRL's advantages.",
                    group_size,
                    k,
                )
                self._pkpo_eval_warned = True
            return output

        rewards, scorable = self._pkpo_scalar_rewards(rewards_per_func)
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
        self._metrics[mode]["pkpo/k"].append(float(k))
        self._metrics[mode]["pkpo/estimate"].append(estimate)
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
