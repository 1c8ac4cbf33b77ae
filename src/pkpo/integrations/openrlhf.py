"""OpenRLHF 0.11.x patch: train on PKPO transformed rewards (tested against the real 0.11.2).

OpenRLHF's ``--algo.advantage.estimator`` is a closed argparse choice, so PKPO goes in by a
monkeypatch, :func:`patch`, of the module ``openrlhf.trainer.ppo_utils.experience_maker``:

* ``RemoteExperienceMaker.compute_advantages_and_returns`` is wrapped. The wrapper checks the
  estimator (it must be ``reinforce``, which leaves the rewards unshaped), finds k for the current
  training step, and runs the original method.
* The original method first widens the rewards to at least float32, then calls the module's
  ``apply_length_penalties`` (DAPO overlong / ProRL stop-properly penalties; it also copies the
  rewards into ``info["reward"]``, the value OpenRLHF logs). The patch replaces that name in the
  module with a function that runs the real one and then replaces every ``experience.rewards`` by
  its PKPO transformed reward (:func:`pkpo.transform`; s^(loo-1), paper eq. 33, by default). So
  PKPO sees the penalised task reward, in float32 or wider, exactly where OpenRLHF's group
  estimators (``rloo``, ``group_norm``, ...) would shape it, and the logs keep the task reward.
  The groups are formed as the original forms them: rows put back into prompt order through
  ``experience.index``, then ``n_samples_per_prompt`` consecutive rows per prompt.
* The rest of the original runs unchanged on the PKPO rewards: ``--reward.clip_range`` (a
  warning is logged when it would clip a PKPO value), the per-token KL penalty if KL-in-reward is
  on, cumulative returns, and, for ``reinforce``, the subtraction of the global token mean of the
  advantages (an O(1/B) centring; pair it with ``--algo.advantage.no_std_norm`` so that the
  advantages are not also divided by their std). ``info["group_reward_std"]`` is recomputed from
  the task rewards, and per-row ``pkpo_k`` and ``pkpo_estimate`` are added to ``experience.info``
  (OpenRLHF logs every ``info`` entry).

The training step for a k schedule: OpenRLHF calls ``compute_advantages_and_returns`` from
``BasePPOTrainer.train_step(self, rollout_samples, global_step)`` (sync ``PPOTrainer`` and async
``TrainingActor`` alike), so the wrapper reads ``global_step`` from that call on the stack, the
one whose ``self.experience_maker`` is the maker being run. Wrapping ``train_step`` instead does
not work: ``@ray.remote class PPOTrainer`` copies the methods (Ray's tracing wrapper) while its
module loads, before any post-import patch can run, so the actor would keep the unwrapped one.
That step is set on :data:`clock` for the call (``clock.at``), as the other adapters' trainers
do; outside ``train_step`` (a custom loop) publish the step with ``clock.publish(step)``.

Options come from the arguments of :func:`patch` or, when it runs as a Ray
``worker_process_setup_hook`` (no arguments), from the environment: ``PKPO_METHOD`` (any name
of :func:`pkpo.advantages.names`, default ``pkpo``), ``PKPO_K`` or ``PKPO_SCHEDULE`` (methods
that take k), ``PKPO_BASELINE``, ``PKPO_SCALE`` and ``PKPO_PARAMS`` ("beta=2.0"). The launcher
(``python -m pkpo.integrations.openrlhf_launch``) sets both up. With ``scale="mean_abs"`` the mean
|A| is taken over all rows of one ``compute_advantages_and_returns`` call (one rollout batch).

The patch is idempotent and lazy: if OpenRLHF is not imported yet, it is applied right after the
module is first imported, so the hook costs nothing in Ray workers that never load it (vLLM
engines).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from dataclasses import dataclass, field

from ._common import PKPOOptions, StepClock, consecutive_advantages, parse_options, when_imported

logger = logging.getLogger("pkpo.integrations.openrlhf")

EXPERIENCE_MODULE = "openrlhf.trainer.ppo_utils.experience_maker"
#: the environment variable of each option of :func:`pkpo.integrations._common.parse_options`
ENV_VARS = {
    "method": "PKPO_METHOD",
    "k": "PKPO_K",
    "schedule": "PKPO_SCHEDULE",
    "baseline": "PKPO_BASELINE",
    "scale": "PKPO_SCALE",
    "params": "PKPO_PARAMS",
}
REQUIRED_ESTIMATOR = "reinforce"

#: the training step: the running train_step's, or one published by hand (custom loops)
clock = StepClock()
_state: dict = {"options": None}
_active = threading.local()  # the compute_advantages_and_returns call running in this thread


def options_from_env(environ=None, *, rollout_n=None, source=None) -> PKPOOptions:
    """PKPO options from ``PKPO_METHOD`` / ``PKPO_K`` / ``PKPO_SCHEDULE`` / ``PKPO_BASELINE`` /
    ``PKPO_SCALE`` / ``PKPO_PARAMS`` (:data:`ENV_VARS`); unset or empty variables take the
    defaults.

    ``rollout_n`` (optional): samples per prompt, checked to be enough for the largest k.
    ``source`` names the options in error messages.
    """
    environ = os.environ if environ is None else environ
    values = {option: environ.get(name) or None for option, name in ENV_VARS.items()}
    source = source or f"OpenRLHF PKPO options ({'/'.join(ENV_VARS.values())})"
    return parse_options(**values, rollout_n=rollout_n, source=source)


def transform_experience_rewards(
    rewards, indices, n_samples_per_prompt: int, k: int, options: PKPOOptions
):
    """PKPO rewards for OpenRLHF's experience layout; returns the new rewards per experience.

    Args:
        rewards: list of (B_e,) reward tensors, one per experience (micro-batch), of any real or
            integer dtype.
        indices: list of lists of ints, ``experience.index``: the position of each row in prompt
            order (an identity map unless dynamic batching reordered the rows).
        n_samples_per_prompt: group size; rows ``g*n .. g*n+n-1`` in prompt order share a prompt.

    Returns:
        ``(list of (B_e,) tensors in each experience's row order, mean pass@k/maxg@k estimate)``.
        The tensors are float32, or float64 for float64 rewards (OpenRLHF's own widening rule),
        so that integer 0/1 rewards are not truncated.
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
    flat = torch.cat([reward.cpu() for reward in rewards])
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))
    if not torch.equal(torch.sort(order).values, torch.arange(flat.shape[0])):
        raise ValueError(
            "OpenRLHF: experience.index values are not a permutation of the rollout rows."
        )
    in_prompt_order = torch.empty_like(flat)
    in_prompt_order[order] = flat
    advantages, estimate = consecutive_advantages(
        in_prompt_order, n_samples_per_prompt, k, options, engine="OpenRLHF"
    )
    return list(advantages.to(flat.dtype)[order].split(lengths)), estimate


# --- the step of the running train_step --------------------------------------------------------


def training_step_of(maker) -> int | None:
    """``global_step`` of the ``train_step`` call on this thread's stack that runs ``maker``.

    ``BasePPOTrainer.train_step(self, rollout_samples, global_step)`` calls
    ``self.experience_maker.make_experience_batch``, which calls
    ``compute_advantages_and_returns``; None when there is no such call (a custom loop).
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "train_step" and "global_step" in code.co_varnames:
            trainer = frame.f_locals.get("self")
            if getattr(trainer, "experience_maker", None) is maker:
                return frame.f_locals.get("global_step")
        frame = frame.f_back
    return None


# --- the patch -----------------------------------------------------------------------------------


@dataclass
class _Call:
    """One running compute_advantages_and_returns: what the length-penalty hook needs."""

    k: int | None
    options: PKPOOptions
    done: bool = False
    group_reward_stds: list = field(default_factory=list)


def _args_of(maker):
    args = getattr(maker, "args", None)
    return args if args is not None else maker.strategy.args


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
        estimator = _estimator_of(self, _args_of(self))
        if estimator != REQUIRED_ESTIMATOR:
            raise ValueError(
                f"pkpo: OpenRLHF --algo.advantage.estimator is {estimator!r}; PKPO needs "
                "'reinforce' (with --algo.advantage.no_std_norm) so that OpenRLHF does not "
                "reshape the PKPO rewards again."
            )
        with clock.at(training_step_of(self)):
            call = _Call(options.k_at(clock.step), options)
        outer, _active.call = getattr(_active, "call", None), call
        try:
            result = original(self, experiences, *args, **kwargs)
        finally:
            _active.call = outer
        if not call.done:
            raise RuntimeError(
                "pkpo: OpenRLHF's compute_advantages_and_returns did not call "
                "apply_length_penalties, where the PKPO rewards are put in; this OpenRLHF version "
                "is not supported (written for 0.11.x)."
            )
        for experience, std in zip(experiences, call.group_reward_stds):
            if "group_reward_std" in experience.info:
                experience.info["group_reward_std"] = std
        return result

    compute_advantages_and_returns.__pkpo_original__ = original
    return compute_advantages_and_returns


def _wrap_length_penalties(original):
    @functools.wraps(original)
    def apply_length_penalties(experiences, args, *more, **kwargs):
        result = original(experiences, args, *more, **kwargs)
        call = getattr(_active, "call", None)
        if call is not None and not call.done:
            _put_pkpo_rewards(experiences, args, call)
        return result

    apply_length_penalties.__pkpo_original__ = original
    return apply_length_penalties


def _put_pkpo_rewards(experiences, args, call: _Call) -> None:
    import torch

    n = int(args.rollout.n_samples_per_prompt)
    rewards = [experience.rewards for experience in experiences]
    indices = [experience.index for experience in experiences]
    new_rewards, estimate = transform_experience_rewards(rewards, indices, n, call.k, call.options)
    # the group std of the task rewards, for info["group_reward_std"] (the original computes it
    # after this hook, from the PKPO rewards)
    lengths = [len(index) for index in indices]
    order = torch.tensor([i for index in indices for i in index], dtype=torch.long)
    flat = torch.cat([reward.cpu().float() for reward in rewards])
    in_prompt_order = torch.empty_like(flat)
    in_prompt_order[order] = flat
    stds = in_prompt_order.reshape(-1, n).std(-1, keepdim=True).expand(-1, n).reshape(-1)
    call.group_reward_stds = list(stds[order].split(lengths)) if n > 1 else []

    for experience, reward in zip(experiences, new_rewards):
        experience.rewards = reward.to(experience.rewards.device)
        if call.k is not None:  # None: a method without k (and without a pass@k estimate)
            experience.info["pkpo_k"] = torch.full(reward.shape, float(call.k))
        if estimate is not None:
            experience.info["pkpo_estimate"] = torch.full(reward.shape, float(estimate))
    _warn_if_clipped(torch.cat(new_rewards), getattr(args.reward, "clip_range", None))
    call.done = True


def _warn_if_clipped(values, clip_range) -> None:
    if not clip_range:
        return
    low, high = float(clip_range[0]), float(clip_range[1])
    outside = int(((values < low) | (values > high)).sum())
    if outside:
        logger.warning(
            "pkpo: %d PKPO reward(s) lie outside --reward.clip_range (%g, %g) (largest |value| "
            "%.3g); OpenRLHF clips them, which biases the gradient. Widen --reward.clip_range or "
            "use --pkpo.scale none / n_over_k (their values stay within the reward range).",
            outside,
            low,
            high,
            float(values.abs().max()),
        )


def _patch_attribute(owner, name: str, wrapper) -> bool:
    current = getattr(owner, name)
    if hasattr(current, "__pkpo_original__"):
        return False
    setattr(owner, name, wrapper(current))
    logger.info("pkpo: patched %s.%s", getattr(owner, "__qualname__", owner.__name__), name)
    return True


def _patch_experience_maker(module) -> None:
    _patch_attribute(
        module.RemoteExperienceMaker, "compute_advantages_and_returns", _wrap_compute_advantages
    )
    _patch_attribute(module, "apply_length_penalties", _wrap_length_penalties)


def patch(
    k=None, baseline=None, schedule=None, scale=None, method=None, params=None
) -> PKPOOptions:
    """Apply the PKPO patch to OpenRLHF in this process (now, or when OpenRLHF is imported).

    With no arguments the options come from the environment (:func:`options_from_env`, the form
    a Ray ``worker_process_setup_hook`` needs). ``method`` selects any estimator of
    :mod:`pkpo.advantages` (default "pkpo"). Idempotent; a later call may change the options.
    Returns the options in force.
    """
    given = dict(
        k=k, baseline=baseline, schedule=schedule, scale=scale, method=method, params=params
    )
    if all(value is None for value in given.values()):
        options = options_from_env()
    else:
        options = parse_options(**given, source="pkpo.integrations.openrlhf.patch")
    _state["options"] = options
    when_imported(EXPERIENCE_MODULE, _patch_experience_maker)
    return options


def unpatch() -> None:
    """Undo :func:`patch` on already imported OpenRLHF (for tests and notebooks)."""
    module = sys.modules.get(EXPERIENCE_MODULE)
    if module is not None:
        for owner, name in [
            (module.RemoteExperienceMaker, "compute_advantages_and_returns"),
            (module, "apply_length_penalties"),
        ]:
            current = getattr(owner, name, None)
            if current is not None and hasattr(current, "__pkpo_original__"):
                setattr(owner, name, current.__pkpo_original__)
    _state["options"] = None
    clock.reset()


__all__ = [
    "clock",
    "options_from_env",
    "patch",
    "training_step_of",
    "transform_experience_rewards",
    "unpatch",
]
