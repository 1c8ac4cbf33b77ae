"""OpenRLHF 0.11.x patch: train on PKPO transformed rewards (written against the 0.11.2 layout).

OpenRLHF's ``--algo.advantage.estimator`` is a closed argparse choice, so PKPO goes in by a
monkeypatch, :func:`patch`, which wraps two methods:

* ``RemoteExperienceMaker.compute_advantages_and_returns`` (module
  ``openrlhf.trainer.ppo_utils.experience_maker``):
  before the original runs, every ``experience.rewards`` is replaced by the PKPO transformed
  rewards (:func:`pkpo.transform`; s^(loo-1), paper eq. 33, by default). The groups are formed
  exactly as the original forms them: rows put back into prompt order through
  ``experience.index``, then ``n_samples_per_prompt`` consecutive rows per prompt. Pair it with
  ``--algo.advantage.estimator reinforce --algo.advantage.no_std_norm``, which leaves the
  rewards unshaped (only OpenRLHF's global token-mean subtraction remains: an O(1/B) centring).
* ``openrlhf.trainer.ppo_trainer.BasePPOTrainer.train_step(self, rollout_samples, global_step)``:
  publishes ``global_step`` so that a k schedule can be evaluated.

Options come from the arguments of :func:`patch` or, when it runs as a Ray
``worker_process_setup_hook`` (no arguments), from the environment: ``PKPO_K`` or
``PKPO_SCHEDULE``, and ``PKPO_BASELINE``. ``python -m pkpo.launch.openrlhf`` sets both up.

The patch is idempotent and lazy: if OpenRLHF is not imported yet, it is applied right after
the two modules are first imported, so the hook costs nothing in Ray workers that never load them
(vLLM engines). KL-in-reward, ``--reward.clip_range`` and OpenRLHF's length penalties are applied
by the original method after (on top of) the transformed rewards.

Tested here only against a stand-in of the 0.11.2 classes (OpenRLHF needs flash-attn and CUDA);
see docs/integrations.md.
"""

from __future__ import annotations

import functools
import logging
import os

from ._common import PKPOOptions, StepClock, consecutive_advantages, parse_options, when_imported

logger = logging.getLogger("pkpo.integrations.openrlhf")

EXPERIENCE_MODULE = "openrlhf.trainer.ppo_utils.experience_maker"
TRAINER_MODULE = "openrlhf.trainer.ppo_trainer"
ENV_K, ENV_SCHEDULE, ENV_BASELINE = "PKPO_K", "PKPO_SCHEDULE", "PKPO_BASELINE"
REQUIRED_ESTIMATOR = "reinforce"

#: the global step published by the patched ``train_step``
clock = StepClock()
_state: dict = {"options": None}


def options_from_env(environ=None) -> PKPOOptions:
    """PKPO options from ``PKPO_K`` / ``PKPO_SCHEDULE`` / ``PKPO_BASELINE``."""
    environ = os.environ if environ is None else environ
    return parse_options(
        k=environ.get(ENV_K) or None,
        schedule=environ.get(ENV_SCHEDULE) or None,
        baseline=environ.get(ENV_BASELINE) or None,
        source=f"OpenRLHF PKPO options ({ENV_K}/{ENV_SCHEDULE}/{ENV_BASELINE})",
    )


def transform_experience_rewards(
    rewards, indices, n_samples_per_prompt: int, k: int, options: PKPOOptions
):
    """PKPO rewards for OpenRLHF's experience layout; returns the new rewards per experience.

    Args:
        rewards: list of (B_e,) reward tensors, one per experience (micro-batch).
        indices: list of lists of ints, ``experience.index``: the position of each row in prompt
            order (an identity map unless dynamic batching reordered the rows).
        n_samples_per_prompt: group size; rows ``g*n .. g*n+n-1`` in prompt order share a prompt.

    Returns:
        ``(list of (B_e,) tensors in each experience's row order, mean pass@k/maxg@k estimate)``.
    """
    import torch

    if len(rewards) != len(indices):
        raise ValueError(f"OpenRLHF: {len(rewards)} reward tensors but {len(indices)} index lists.")
    lengths = [len(index) for index in indices]
    for length, reward in zip(lengths, rewards):
        if reward.shape != (length,):
            raise ValueError(
                f"OpenRLHF: an experience has rewards of shape {tuple(reward.shape)} but {length} "
                "indices; expected one scalar reward per row."
            )
    order = torch.tensor([i for index in indices for i in index], dtype=torch.long)
    flat = torch.cat(list(rewards))
    if not torch.equal(torch.sort(order).values, torch.arange(flat.shape[0])):
        raise ValueError(
            "OpenRLHF: experience.index values are not a permutation of the rollout rows."
        )
    in_prompt_order = torch.empty_like(flat)
    in_prompt_order[order] = flat
    advantages, estimate = consecutive_advantages(
        in_prompt_order, n_samples_per_prompt, k, options, engine="OpenRLHF"
    )
    return list(advantages[order].to(flat.dtype).split(lengths)), estimate


def _args_of(maker):
    args = getattr(maker, "args", None)
    return args if args is not None else maker.strategy.args


def _n_samples_per_prompt(args) -> int:
    rollout = getattr(args, "rollout", None)
    if rollout is not None and getattr(rollout, "n_samples_per_prompt", None) is not None:
        return int(rollout.n_samples_per_prompt)  # 0.11.x nested arguments
    return int(args.n_samples_per_prompt)  # older flat arguments


def _estimator_of(maker, args) -> str | None:
    estimator = getattr(maker, "advantage_estimator", None)
    if estimator is None:
        algo = getattr(args, "algo", None)
        estimator = getattr(getattr(algo, "advantage", None), "estimator", None)
    return estimator


def _wrap_compute_advantages(original):
    @functools.wraps(original)
    def compute_advantages_and_returns(self, experiences, *args, **kwargs):
        options = _state["options"]
        maker_args = _args_of(self)
        estimator = _estimator_of(self, maker_args)
        if estimator != REQUIRED_ESTIMATOR:
            raise ValueError(
                f"pkpo: OpenRLHF --algo.advantage.estimator is {estimator!r}; PKPO needs "
                "'reinforce' (with --algo.advantage.no_std_norm) so that OpenRLHF does not "
                "reshape the PKPO rewards again."
            )
        k = options.k_at(clock.step)
        new_rewards, estimate = transform_experience_rewards(
            [experience.rewards for experience in experiences],
            [experience.index for experience in experiences],
            _n_samples_per_prompt(maker_args),
            k,
            options,
        )
        for experience, reward in zip(experiences, new_rewards):
            experience.rewards = reward.to(experience.rewards.device)
            info = getattr(experience, "info", None)
            if isinstance(info, dict):
                info["pkpo_k"] = _full_like(reward, k)
                info["pkpo_estimate"] = _full_like(reward, estimate)
        return original(self, experiences, *args, **kwargs)

    compute_advantages_and_returns.__pkpo_original__ = original
    return compute_advantages_and_returns


def _full_like(reference, value):
    import torch

    return torch.full(reference.shape, float(value), dtype=torch.float32)


def _wrap_train_step(original):
    @functools.wraps(original)
    def train_step(self, rollout_samples, global_step, *args, **kwargs):
        clock.publish(global_step)
        return original(self, rollout_samples, global_step, *args, **kwargs)

    train_step.__pkpo_original__ = original
    return train_step


def _patch_method(cls, name: str, wrapper) -> bool:
    current = getattr(cls, name)
    if hasattr(current, "__pkpo_original__"):
        return False
    setattr(cls, name, wrapper(current))
    logger.info("pkpo: patched %s.%s", cls.__qualname__, name)
    return True


def _patch_experience_maker(module) -> None:
    _patch_method(
        module.RemoteExperienceMaker, "compute_advantages_and_returns", _wrap_compute_advantages
    )


def _patch_trainer(module) -> None:
    _patch_method(module.BasePPOTrainer, "train_step", _wrap_train_step)


def patch(k=None, baseline=None, schedule=None) -> PKPOOptions:
    """Apply the PKPO patch to OpenRLHF in this process (now, or when OpenRLHF is imported).

    With no arguments the options come from ``PKPO_K`` / ``PKPO_SCHEDULE`` / ``PKPO_BASELINE``
    (the form a Ray ``worker_process_setup_hook`` needs). Idempotent; a later call may change the
    options. Returns the options in force.
    """
    if k is None and schedule is None and baseline is None:
        options = options_from_env()
    else:
        options = parse_options(
            k=k, baseline=baseline, schedule=schedule, source="pkpo.integrations.openrlhf.patch"
        )
    _state["options"] = options
    when_imported(EXPERIENCE_MODULE, _patch_experience_maker)
    when_imported(TRAINER_MODULE, _patch_trainer)
    return options


def unpatch() -> None:
    """Undo :func:`patch` on already imported OpenRLHF classes (for tests and notebooks)."""
    import sys

    targets = [
        (EXPERIENCE_MODULE, "RemoteExperienceMaker", "compute_advantages_and_returns"),
        (TRAINER_MODULE, "BasePPOTrainer", "train_step"),
    ]
    for module_name, class_name, method in targets:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        current = getattr(cls, method, None) if cls is not None else None
        if current is not None and hasattr(current, "__pkpo_original__"):
            setattr(cls, method, current.__pkpo_original__)
    _state["options"] = None
    clock.reset()


__all__ = ["clock", "options_from_env", "patch", "transform_experience_rewards", "unpatch"]
