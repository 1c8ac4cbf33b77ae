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

from ._common import PKPOOptions, StepClock, grouped_advantages, parse_options

logger = logging.getLogger("pkpo.integrations.skyrl")

ESTIMATOR_NAME = "pkpo"
ENGINE = "skyrl advantage_estimator"
PPO_UTILS = "skyrl.backends.skyrl_train.utils.ppo_utils"

#: the training step: PKPOTrainer sets it around its advantage step (``clock.at``); a custom
#: loop publishes it (``clock.publish``)
clock = StepClock()
#: rows SkyRL appended to the batch of the advantage step running in this thread / task
_pad_size: contextvars.ContextVar[int] = contextvars.ContextVar("pkpo_skyrl_pad_size", default=0)


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

    ``last_stats`` holds ``{"k", "step", "method", "estimate"}`` of the latest call (in this
    process; ``estimate``: the mean per-group unbiased pass@k / maxg@k for PKPO, else None).
    """

    def __init__(self, options: PKPOOptions, name: str = ESTIMATOR_NAME):
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
        step = clock.step
        ids = list(index)
        real = len(ids) - _pad_size.get()
        k = self.options.k_at(step)
        with torch.no_grad():
            scores = token_level_rewards.sum(dim=-1)
            try:
                advantages, estimate = grouped_advantages(
                    scores[:real], ids[:real], k, self.options, engine=engine
                )
            except ValueError as error:
                raise _with_padding_hint(error, ids[:real]) from None
            per_row = torch.zeros_like(scores)
            per_row[:real] = advantages.to(per_row.dtype)
            result = per_row[:, None] * response_mask
        self.last_stats = {
            "k": k,
            "step": step,
            "method": self.options.method,
            "estimate": estimate,
        }
        return result, result


def _with_padding_hint(error: ValueError, ids) -> ValueError:
    """``error``, with a hint when SkyRL's padding rows are among the groups."""
    if not any(str(uid).startswith("pad") for uid in ids):
        return error
    return ValueError(
        f"{error} (SkyRL pads a batch with rows 'pad0', 'pad1', ... for data parallelism: train "
        "with pkpo.integrations.skyrl.PKPOTrainer / PKPOExp, which leaves them out.)"
    )


def register(
    k=None,
    schedule=None,
    baseline=None,
    scale=None,
    *,
    method=None,
    params=None,
    name: str = ESTIMATOR_NAME,
) -> PKPOEstimator:
    """Register an estimator of :mod:`pkpo.advantages` as SkyRL advantage estimator ``name``.

    Options as in the other adapters (``pkpo.integrations._common.parse_options``): ``method``
    (default "pkpo"; any name of :func:`pkpo.advantages.names`), ``k`` or a k ``schedule``
    ("8->1@200", evaluated at the trainer's ``global_step``: needs :class:`PKPOTrainer`) for the
    methods that take k, ``baseline`` (PKPO's), ``params`` (the method's other parameters, e.g.
    ``{"beta": 2.0}``) and ``scale`` (default "mean_abs"). ``name`` is what to set in
    ``trainer.algorithm.advantage_estimator``.

    Returns the registered estimator. Registering under a name that holds a PKPO estimator
    replaces it; a name that holds another function (SkyRL's "grpo", ...) is refused.
    """
    options = parse_options(
        k=k,
        baseline=baseline,
        schedule=schedule,
        scale=scale,
        method=method,
        params=params,
        source="pkpo.integrations.skyrl.register",
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
            token = _pad_size.set(int((data.metadata or {}).get("pad_size", 0)))
            try:
                with clock.at(self.global_step):
                    result = super().compute_advantages_and_returns(data)
            finally:
                _pad_size.reset(token)
            estimator = _registered_estimator(self.cfg.trainer.algorithm.advantage_estimator)
            stats = estimator.last_stats if estimator is not None else {}
            for stat in ("k", "estimate"):
                if stats.get(stat) is not None:
                    self.all_metrics[f"pkpo/{stat}"] = stats[stat]
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

        def get_trainer(
            self,
            cfg,
            tracker,
            tokenizer,
            train_dataset,
            eval_dataset,
            inference_engine_client,
            generator,
            colocate_pg,
        ):
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
    "clock",
    "import_skyrl",
    "make_trainer_class",
    "register",
]
