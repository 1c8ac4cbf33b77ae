"""SkyRL adapter: any :mod:`pkpo.advantages` estimator in SkyRL's advantage-estimator registry.

Tested against the real ``skyrl`` 0.3.0 (its registry, estimator call and trainer step are the
same in 0.4.0). Register the estimator in your entry script, name it in the config, and train
with the experiment below, whose trainer gives the estimator SkyRL's training step::

    from pkpo.integrations import skyrl as pkpo_skyrl

    pkpo_skyrl.register(k=8)                  # or schedule="8->1@200", method="maxrl", ...
    # trainer.algorithm.advantage_estimator="pkpo"

    @ray.remote(num_cpus=1)
    def skyrl_entrypoint(cfg):
        pkpo_skyrl.PKPOExp(cfg).run()         # BasePPOExp with the trainer below

How it plugs in: SkyRL looks estimators up by name in
``skyrl.backends.skyrl_train.utils.ppo_utils.AdvantageEstimatorRegistry`` and calls them with
verl's signature, ``fn(token_level_rewards=, response_mask=, index=, config=, ...)`` returning
``(advantages, returns)``, both (batch, response length). :func:`register` puts a
:class:`PKPOEstimator` there. It sums each response's token rewards into one score, groups the
rows by ``index`` (the prompt's uid; ragged groups allowed), runs the estimator on each group
and puts a response's advantage on its response tokens. When Ray is up, SkyRL syncs the registry
to a named Ray actor (cloudpickle), so register before ``initialize_ray`` (as SkyRL's own
custom-estimator example does) or inside the Ray task.

The training step: SkyRL calls estimators without it. :class:`PKPOTrainer` (a subclass of
``RayPPOTrainer``; :func:`make_trainer_class` wraps another, e.g. the fully async trainer) runs
``compute_advantages_and_returns`` with its ``global_step`` (1 at the first training step)
published for the k schedule, logs ``pkpo/k``, and passes on the batch's ``pad_size``: SkyRL
pads a batch for data parallelism with copies of row 0 under the uids ``pad0``, ``pad1``, ...,
which the estimator leaves out of every group (advantage 0; their loss mask is 0 anyway).
Without the trainer, a constant k works as is; publish the step of a custom loop with
``clock.publish(step)``.

Python 3.11: skyrl 0.3.0 declares it, but its registry's package does not import there
(pydantic refuses its ``typing.TypedDict`` models before 3.12); the adapter imports SkyRL's
modules through :func:`import_skyrl`, which lends them ``typing_extensions.TypedDict`` while
they load. Import SkyRL's modules the same way before the adapter on 3.11.

Scale: ``scale="mean_abs"`` (the default) divides by the mean |A| over the whole batch of the
call (the trainer's training batch). Loss: SkyRL's ``loss_reduction="token_mean"`` weights each
sequence by its length over the batch's token count; ``"sequence_mean"`` gives every sequence
the same weight, the estimator's own expected update.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import sys
import typing
from typing import Any

import numpy as np

from ..transforms import GroupSizeError
from ._common import StepClock
from ._method import MethodOptions, pad_groups, parse_method

logger = logging.getLogger("pkpo.integrations.skyrl")

ESTIMATOR_NAME = "pkpo"
ENGINE = "skyrl advantage_estimator"
PPO_UTILS = "skyrl.backends.skyrl_train.utils.ppo_utils"

#: a training step published by hand (custom loops); PKPOTrainer publishes its own per call
clock = StepClock()
#: (step, pad_size) of the trainer's advantage step running in this thread / task
_batch: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "pkpo_skyrl_batch", default=None
)


def import_skyrl(name: str):
    """Import SkyRL's module ``name`` (e.g. ``skyrl.train.trainer``), also on Python 3.11.

    skyrl 0.3.0 declares Python >= 3.11, but ``skyrl.backends`` (which holds the registry) and
    the trainer build pydantic models on ``typing.TypedDict``, which pydantic accepts only from
    Python 3.12. On 3.11 this lends ``typing_extensions.TypedDict`` to ``typing`` while SkyRL's
    modules load, then puts ``typing.TypedDict`` back; nothing else is changed.
    """
    if sys.version_info >= (3, 12) or name in sys.modules:
        return importlib.import_module(name)
    import typing_extensions

    saved = typing.TypedDict
    typing.TypedDict = typing_extensions.TypedDict
    try:
        return importlib.import_module(name)
    finally:
        typing.TypedDict = saved


def _registry():
    return import_skyrl(PPO_UTILS).AdvantageEstimatorRegistry


class PKPOEstimator:
    """SkyRL advantage estimator: a :mod:`pkpo.advantages` estimator over each uid's responses.

    ``last_stats`` holds ``{"k", "step", "method"}`` of the latest call (in this process).
    """

    def __init__(self, options: MethodOptions, name: str = ESTIMATOR_NAME):
        self.options = options
        self.name = name
        self.last_stats: dict[str, Any] = {}

    def __call__(self, token_level_rewards, response_mask, index=None, **kwargs):
        """``(A[:, None] * response_mask, same)`` with A the estimator's advantage per response.

        Args:
            token_level_rewards: (bs, T) tensor; a response's score is its sum over tokens.
            response_mask: (bs, T) 0/1 tensor of response tokens.
            index: (bs,) group ids (SkyRL's uids); required.
            **kwargs: SkyRL's other arguments (config, values, gamma, ...), unused.
        """
        import torch

        engine = f"{ENGINE}={self.name!r}"
        if index is None:
            raise ValueError(f"{engine} needs the uid group index of each row; none was passed.")
        batch = _batch.get()
        step, pad_size = batch if batch is not None else (clock.step, 0)
        ids = list(index)
        real = len(ids) - pad_size
        with torch.no_grad():
            scores = token_level_rewards.sum(dim=-1)
            values = scores[:real].detach().double().cpu().numpy()
            padded, mask, position, labels = pad_groups(values, ids[:real])
            try:
                advantages, k = self.options.advantages(
                    padded, mask, step, engine=engine, labels=labels
                )
            except ValueError as error:
                raise _with_padding_hint(error, labels) from None
            per_row = torch.zeros_like(scores)
            per_row[:real] = torch.from_numpy(np.asarray(advantages).reshape(-1)[position]).to(
                per_row
            )
            result = per_row[:, None] * response_mask
        self.last_stats = {"k": k, "step": step, "method": self.options.method}
        return result, result


def _with_padding_hint(error: ValueError, labels) -> ValueError:
    """``error``, with a hint when SkyRL's padding rows are among the groups (same type)."""
    if not any(str(label).startswith("pad") for label in labels):
        return error
    message = str(error) + (
        " (SkyRL pads a batch with rows 'pad0', 'pad1', ... for data parallelism: train with "
        "pkpo.integrations.skyrl.PKPOTrainer / PKPOExp, which leaves them out.)"
    )
    if isinstance(error, GroupSizeError):
        return GroupSizeError(message, error.group, error.n, error.need, error.k, error.baseline)
    return ValueError(message)


def register(method=None, *, k=None, schedule=None, scale=None, name: str = ESTIMATOR_NAME,
             **params) -> PKPOEstimator:
    """Register ``method`` of :mod:`pkpo.advantages` as SkyRL advantage estimator ``name``.

    Args:
        method: an estimator name (default "pkpo"; :func:`pkpo.advantages.names`).
        k, schedule: for estimators that take k (PKPO), a constant k or a k schedule
            ("8->1@200") evaluated at the trainer's ``global_step`` (needs :class:`PKPOTrainer`).
        scale: "mean_abs" (default), "none" or "n_over_k".
        name: the registry name to set in ``trainer.algorithm.advantage_estimator``.
        **params: the estimator's other parameters, e.g. ``baseline="loo"`` for PKPO.

    Returns the registered estimator. Registering under a name that holds a PKPO estimator
    replaces it; a name that holds another function (SkyRL's "grpo", ...) is refused.
    """
    options = parse_method(
        method, k=k, schedule=schedule, scale=scale, source="pkpo.integrations.skyrl.register",
        **params,
    )
    AdvantageEstimatorRegistry = _registry()
    if name in AdvantageEstimatorRegistry.list_available():
        existing = AdvantageEstimatorRegistry.get(name)
        if type(existing).__qualname__ != PKPOEstimator.__qualname__:
            raise ValueError(
                f"pkpo.integrations.skyrl.register: SkyRL advantage estimator {name!r} is "
                f"already registered ({existing!r}); choose another name."
            )
        AdvantageEstimatorRegistry.unregister(name)
    estimator = PKPOEstimator(options, name)
    AdvantageEstimatorRegistry.register(name, estimator)
    logger.info("pkpo: registered SkyRL advantage estimator %r: %s", name, options.describe())
    return estimator


def make_trainer_class(base):
    """A subclass of SkyRL trainer ``base`` whose advantage step gets the training step."""

    class PKPOTrainer(base):
        """SkyRL's trainer; the advantage step publishes ``global_step`` and the padding."""

        def compute_advantages_and_returns(self, data):
            pad_size = int((data.metadata or {}).get("pad_size", 0))
            token = _batch.set((int(self.global_step), pad_size))
            try:
                result = super().compute_advantages_and_returns(data)
            finally:
                _batch.reset(token)
            estimator = _registered_estimator(self.cfg.trainer.algorithm.advantage_estimator)
            if estimator is not None and estimator.last_stats.get("k") is not None:
                self.all_metrics["pkpo/k"] = estimator.last_stats["k"]
            return result

    PKPOTrainer.__module__ = __name__
    PKPOTrainer.__qualname__ = "PKPOTrainer"
    return PKPOTrainer


def _registered_estimator(name) -> PKPOEstimator | None:
    estimator = _registry().get(name)
    return estimator if isinstance(estimator, PKPOEstimator) else None


def _experiment_class(trainer_class):
    BasePPOExp = import_skyrl("skyrl.train.entrypoints.main_base").BasePPOExp

    class PKPOExp(BasePPOExp):
        """SkyRL's ``BasePPOExp`` training with :class:`PKPOTrainer`."""

        def get_trainer(self, cfg, tracker, tokenizer, train_dataset, eval_dataset,
                        inference_engine_client, generator, colocate_pg):
            return trainer_class(
                cfg=cfg,
                tracker=tracker,
                tokenizer=tokenizer,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                inference_engine_client=inference_engine_client,
                generator=generator,
                colocate_pg=colocate_pg,
            )

    PKPOExp.__module__ = __name__
    PKPOExp.__qualname__ = "PKPOExp"
    return PKPOExp


_lazy: dict[str, Any] = {}


def __getattr__(name: str):
    """``PKPOTrainer`` and ``PKPOExp``, built on first use (importing SkyRL's trainer is slow)."""
    if name not in ("PKPOTrainer", "PKPOExp"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if "PKPOTrainer" not in _lazy:
        _lazy["PKPOTrainer"] = make_trainer_class(import_skyrl("skyrl.train.trainer").RayPPOTrainer)
    if name == "PKPOExp" and "PKPOExp" not in _lazy:
        _lazy["PKPOExp"] = _experiment_class(_lazy["PKPOTrainer"])
    return _lazy[name]


__all__ = [
    "PKPOEstimator",
    "PKPOExp",
    "PKPOTrainer",
    "clock",
    "import_skyrl",
    "make_trainer_class",
    "register",
]
