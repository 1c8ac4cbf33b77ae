"""What the adapters share: options, the one integer check, the step clock, the two batch layouts.

The adapters only reshape their engine's batch and call :func:`pkpo.transform` /
:func:`pkpo.transform_grouped`; all reward maths stays in the math layer. This module holds
what every adapter needs besides that, each written once:

* :class:`PKPOOptions`: ``k`` or a k ``schedule`` (:func:`pkpo.schedules.from_spec`), the
  ``baseline``, the ``scale`` of the advantages (:data:`DEFAULT_SCALE`, the one engine default),
  and an optional largest group size, parsed once by :func:`parse_options` from a mapping (a verl
  DictConfig, environment variables, trainer arguments) with errors that name the source;
* :func:`as_int`: the one integer check (options, group sizes, training steps);
* :class:`StepClock`: the one way a training step reaches an adapter whose engine calls it
  without one: the adapter's trainer or learner sets it around the advantage step
  (``with clock.at(step)``), a custom loop publishes it (``clock.publish(step)``), and the
  adapter evaluates its k schedule at ``clock.step``;
* :func:`consecutive_advantages` (TRL, OpenRLHF, Tunix: groups of consecutive rows) and
  :func:`grouped_advantages` (verl: a group id per row), which check the batch and put the
  engine's name into the math layer's errors;
* :func:`when_imported`: run a callback once a module has been imported, so that a plugin can
  patch or extend a framework module without importing it (and its heavy dependencies) itself;
* :func:`validation_metrics`: unbiased pass@k / maxg@k and their standard errors over the
  groups of an engine's validation samples (:mod:`pkpo.metrics`), for the trainers' own logs.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import numbers
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import advantages as _advantages
from .. import metrics as _metrics
from .. import schedules as _schedules
from .._backend import to_numpy
from ..transforms import (
    BASELINES,
    DEFAULT_BASELINE,
    SCALES,
    GroupSizeError,
    min_group_size,
    transform,
    transform_grouped,
)

logger = logging.getLogger("pkpo.integrations")

OPTION_KEYS = ("method", "k", "baseline", "schedule", "scale", "rollout_n", "params")

# The adapters' default scale. An engine's learning rate is tuned for GRPO's advantages (mean |A|
# 0.4-0.9, benchmarks/advantage_scale.py); the paper's values are 8-600x smaller at p <= 0.3 and
# far smaller as pass@k saturates. "mean_abs" divides by the mean |A| of the engine's call, so a
# GRPO user keeps their lr and one lr serves every k of a schedule; the price is a bias that
# shrinks as the batch grows (pkpo.transforms). "none" gives the paper's values exactly.
DEFAULT_SCALE = "mean_abs"
DEFAULT_METHOD = "pkpo"


# --- one integer check -------------------------------------------------------------------------


def as_int(value, name: str, *, source: str | None = None, minimum: int | None = None) -> int:
    """``value`` as an int: a Python or numpy integer, a 0-d integer array or tensor, or a decimal
    string (environment variables); at least ``minimum`` if given.

    bool, floats (also 2.0) and anything else raise ``ValueError`` naming ``name`` (and
    ``source``, where the value came from).
    """
    where = f"{source}: " if source else ""
    number = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    elif not isinstance(value, numbers.Integral) and getattr(value, "ndim", None) == 0:
        dtype = str(getattr(value, "dtype", ""))
        number = value.item() if "int" in dtype else None  # 0-d numpy / torch / JAX integers
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise ValueError(f"{where}{name} must be an integer; got {value!r}.")
    if minimum is not None and number < minimum:
        raise ValueError(f"{where}{name} must be >= {minimum}; got {int(number)}.")
    return int(number)


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PKPOOptions:
    """An adapter's settings: the estimator, its k schedule, baseline and scale, a group-size cap.

    ``method`` names an estimator of :mod:`pkpo.advantages` ("pkpo", the default, or "grpo",
    "rloo", "maxrl", ...; :func:`pkpo.advantages.names`). ``schedule(step)`` gives the k to optimise
    at a training step for a method that takes k (a constant k is a constant schedule); it is None
    for the others. ``baseline`` is PKPO's. ``params`` holds the method's other parameters (e.g.
    ``(("beta", 2.0),)`` for "rs_grpo"), as pairs so that the options stay hashable. ``scale``
    rescales every method's advantages (default :data:`DEFAULT_SCALE`). ``rollout_n`` (optional)
    is the number of samples the engine draws per prompt: a group larger than that means rows of
    several sessions share one id, which the adapter refuses instead of silently treating them as
    one larger group.
    """

    schedule: _schedules.Schedule | None
    baseline: str = DEFAULT_BASELINE
    rollout_n: int | None = None
    scale: str = DEFAULT_SCALE
    method: str = DEFAULT_METHOD
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def is_constant(self) -> bool:
        return self.schedule is None or self.schedule.kind == "constant"

    def k_at(self, step: int | None) -> int | None:
        """k at ``step`` (None for a method without k); ``step=None`` needs a constant k."""
        if self.schedule is None:
            return None
        if step is None:
            if not self.is_constant:
                raise ValueError(
                    f"the k schedule ({self.schedule.describe()}) needs the training step, but the "
                    "trainer published none; use the adapter's trainer/patch that publishes it "
                    "(see docs/integrations.md) or a constant k."
                )
            return self.schedule.k_start
        return self.schedule(step)

    def min_group_size(self, k: int | None) -> int:
        """The fewest samples a group needs at ``k``: :func:`pkpo.min_group_size` for PKPO, k for
        the other methods that take k, 1 for the rest."""
        if k is None:
            return 1
        return min_group_size(k, self.baseline) if self.method == DEFAULT_METHOD else k

    def method_params(self, k: int | None) -> dict[str, Any]:
        """The keyword arguments of :func:`pkpo.advantages.compute` for ``self.method`` at ``k``."""
        params = dict(self.params)
        if self.schedule is not None:
            params["k"] = k
        if self.method == DEFAULT_METHOD:
            params["baseline"] = self.baseline
        return params

    def describe(self) -> str:
        parts = [f"method={self.method}"]
        if self.schedule is not None:
            parts.append(self.schedule.describe())
        if self.method == DEFAULT_METHOD:
            parts.append(f"baseline={self.baseline}")
        parts += [f"{name}={value}" for name, value in self.params]
        parts.append(f"scale={self.scale}")
        if self.rollout_n:
            parts.append(f"rollout_n={self.rollout_n}")
        return ", ".join(parts)


def parse_options(
    k=None,
    baseline=None,
    schedule=None,
    rollout_n=None,
    scale=None,
    method=None,
    params=None,
    *,
    source: str = "pkpo options",
) -> PKPOOptions:
    """Build :class:`PKPOOptions`, checked here, once; the adapters trust them afterwards.

    ``method`` (default "pkpo") is any name of :func:`pkpo.advantages.names`. A method that takes
    k (``pkpo.advantages.spec(method).takes_k``) needs exactly one of ``k`` and ``schedule``; the
    others take neither. ``k`` may be an int or a numeric string (environment variables);
    ``schedule`` anything :func:`pkpo.schedules.from_spec` reads ("8->1@1500",
    "linear:8->1@0+1000", a dict). ``baseline`` (PKPO's only) defaults to
    :data:`DEFAULT_BASELINE`, ``scale`` to :data:`DEFAULT_SCALE`. ``params``: the method's other
    parameters, a mapping or a string "beta=2,eps=1e-6". ``source`` names where the options came
    from, for the error messages.
    """
    method = DEFAULT_METHOD if method is None else method
    try:
        spec = _advantages.spec(method)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    parsed = _parse_k(k, schedule, method, spec.takes_k, source)
    if baseline is not None and "baseline" not in spec.defaults:
        raise ValueError(
            f"{source}: baseline applies to method 'pkpo' only; got method={method!r}."
        )
    baseline = DEFAULT_BASELINE if baseline is None else baseline
    scale = DEFAULT_SCALE if scale is None else scale
    for name, value, allowed in (("baseline", baseline, BASELINES), ("scale", scale, SCALES)):
        if value not in allowed:
            raise ValueError(
                f"{source}: unknown {name} {value!r}; expected one of {', '.join(allowed)}."
            )
    if scale == "n_over_k" and not spec.takes_k:
        raise ValueError(
            f"{source}: scale 'n_over_k' multiplies by n/k, but method {method!r} takes no k; "
            "use 'mean_abs' or 'none'."
        )
    if rollout_n is not None:
        rollout_n = as_int(rollout_n, "rollout_n", source=source, minimum=1)
    method_params = _parse_params(params, method, spec.defaults, source)
    options = PKPOOptions(parsed, baseline, rollout_n, scale, method, method_params)
    if rollout_n is not None:
        check_samples_per_prompt(rollout_n, options, source=source)
    return options


def _parse_k(k, schedule, method: str, takes_k: bool, source: str):
    """The k schedule of a method that takes k (exactly one of k and schedule), else None."""
    if not takes_k:
        if k is not None or schedule is not None:
            raise ValueError(
                f"{source}: method {method!r} takes no k; leave out k and schedule (got "
                f"k={k!r}, schedule={schedule!r})."
            )
        return None
    if k is not None and schedule is not None:
        raise ValueError(
            f"{source}: give either k or schedule, not both (got k={k!r}, schedule={schedule!r})."
        )
    if k is None and schedule is None:
        raise ValueError(f"{source}: set k (e.g. k=8) or a k schedule (e.g. schedule='8->1@1500').")
    try:
        if schedule is not None:
            return _schedules.from_spec(_plain(schedule))
        return _schedules.constant(as_int(k, "k"))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _parse_params(params, method: str, defaults: Mapping[str, Any], source: str):
    """The method's own parameters (not k or baseline) as sorted (name, float) pairs."""
    if params is None or params == "":
        return ()
    if isinstance(params, str):
        pairs = [item.partition("=") for item in params.split(",") if item.strip()]
        if any(not equals for _, equals, _ in pairs):
            raise ValueError(f"{source}: params must read 'name=value,...'; got {params!r}.")
        params = {name.strip(): value.strip() for name, _, value in pairs}
    if not hasattr(params, "items"):
        raise ValueError(f"{source}: params must be a mapping or 'name=value,...'; got {params!r}.")
    allowed = [name for name in defaults if name not in ("k", "baseline")]
    parsed = []
    for name, value in sorted(_plain(params).items()):
        if name not in allowed:
            raise ValueError(
                f"{source}: method {method!r} has no parameter {name!r}; its parameters: "
                f"{', '.join(allowed) or 'none'}."
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or not np.isfinite(number):
            raise ValueError(f"{source}: {name} must be a finite number; got {value!r}.")
        parsed.append((name, number))
    return tuple(parsed)


def check_samples_per_prompt(
    n: int, options: PKPOOptions, *, source: str, name: str = "rollout_n"
) -> None:
    """The engine's samples per prompt (``name``: rollout_n, num_generations, ...) must be at
    least what the method needs at the largest k of the schedule (:func:`pkpo.min_group_size`
    for PKPO, k for the other methods that take k)."""
    if options.schedule is None:
        return
    k = options.schedule.max_k
    needed = options.min_group_size(k)
    if n < needed:
        what = (
            f"baseline {options.baseline!r}"
            if options.method == DEFAULT_METHOD
            else (f"method {options.method!r}")
        )
        raise ValueError(
            f"{source}: {name}={n} samples per prompt is too few for k={k} with {what} (needs at "
            f"least {needed})."
        )


def options_from_mapping(
    mapping: Mapping[str, Any] | None, *, source: str, other_keys: tuple[str, ...] = ()
) -> PKPOOptions:
    """:func:`parse_options` from a mapping (verl's ``algorithm.pkpo``); unknown keys raise.

    ``other_keys`` are keys of the same section that the caller reads itself (verl's
    ``val_ks``): accepted here, not parsed.
    """
    if mapping is None:
        mapping = {}
    allowed = OPTION_KEYS + tuple(other_keys)
    if not hasattr(mapping, "keys"):
        raise ValueError(
            f"{source} must be a mapping with keys {', '.join(allowed)}; got {mapping!r}."
        )
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(allowed)}."
        )
    return parse_options(**{key: mapping.get(key) for key in OPTION_KEYS}, source=source)


def _plain(value):
    """OmegaConf containers -> plain Python (dict schedules in a verl config)."""
    if hasattr(value, "items") and not isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


# --- the training step -------------------------------------------------------------------------


class StepClock:
    """The training step an adapter evaluates its k schedule at: ``clock.step``.

    Two ways in, the first found wins:

    1. ``with clock.at(step):`` around the engine's advantage step, by the adapter's trainer or
       learner (per thread and asyncio task, so concurrent steps do not mix);
    2. ``clock.publish(step)``: the latest step a custom training loop announced (all threads).

    ``clock.step`` is None when neither gave one; a constant k needs no step.
    """

    def __init__(self) -> None:
        self._scoped: contextvars.ContextVar[int | None] = contextvars.ContextVar(
            "pkpo_step", default=None
        )
        self._published: int | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def at(self, step) -> Iterator[None]:
        """Within this block (this thread / asyncio task), ``clock.step`` is ``step``.

        ``step=None`` sets nothing (the published step, if any, stays in force).
        """
        if step is None:
            yield
            return
        token = self._scoped.set(as_int(step, "the training step", minimum=0))
        try:
            yield
        finally:
            self._scoped.reset(token)

    def publish(self, step) -> None:
        step = as_int(step, "the training step", minimum=0)
        with self._lock:
            self._published = step

    @property
    def step(self) -> int | None:
        scoped = self._scoped.get()
        if scoped is not None:
            return scoped
        with self._lock:
            return self._published

    def reset(self) -> None:
        """Forget the published step (a scoped step ends with its block)."""
        with self._lock:
            self._published = None


# --- the two batch layouts -------------------------------------------------------------------


@contextlib.contextmanager
def engine_errors(engine: str, group_label: Callable[[int], str] | None = None) -> Iterator[None]:
    """Put the engine's name into the math layer's ``ValueError``s raised in this block.

    A :class:`pkpo.GroupSizeError` is re-worded with what an engine user can do about it;
    ``group_label(group)`` names a group of the engine's layout (e.g. "rows 8..15" for groups of
    consecutive rows) in place of the math layer's group index.
    """
    try:
        yield
    except GroupSizeError as error:
        raise ValueError(f"{engine}: {_group_size_message(error, group_label)}") from None
    except ValueError as error:
        raise ValueError(f"{engine}: {error}") from None


def _group_size_message(error: GroupSizeError, group_label) -> str:
    if error.group is None:
        where = "every group"
    elif group_label is not None and isinstance(error.group, numbers.Integral):
        where = f"the group of {group_label(int(error.group))}"
    else:
        where = f"group {error.group!r}"
    return (
        f"{where} has {error.n} sample(s), fewer than the {error.need} that k={error.k} with "
        f"baseline {error.baseline!r} needs. Lower k, draw more samples per prompt, or filter "
        "such groups out before the advantage step."
    )


def check_rollout_n(label, size: int, options: PKPOOptions, *, engine: str) -> None:
    """With ``rollout_n`` set, no group may hold more rows than the engine samples per prompt."""
    if options.rollout_n is not None and size > options.rollout_n:
        raise ValueError(
            f"{engine}: group {label!r} has {size} rows but rollout_n={options.rollout_n}: rows "
            "of several sessions or turns share one group id. PKPO needs one row per sampled "
            "attempt; give each session its own id or fold sessions into one row per attempt "
            "before the advantage step."
        )


def grouped_advantages(scores, group_ids, k, options: PKPOOptions, *, engine: str):
    """Advantages for a flat batch with a group id per row (verl's uid layout).

    Returns ``(advantages [N], mean per-group pass@k / maxg@k estimate, or None for a method
    other than PKPO)``. Groups may be ragged and interleaved. PKPO goes through
    :func:`pkpo.transform_grouped`, which gets the ids as they are, so its rules hold here too
    (mixed ids such as ``1`` and ``"1"`` are refused, not merged); the other methods get the same
    groups padded into rows (:func:`_padded_groups`).
    """
    _check_scores(scores, engine)
    if options.method == DEFAULT_METHOD:
        with engine_errors(engine):
            advantages, _, info = transform_grouped(
                scores, group_ids, k, options.baseline, scale=options.scale, return_info=True
            )
        estimate = _mean_estimate(info)
    else:
        layout = _padded_groups(group_ids, scores.shape[0], engine)
        padded, mask = _scatter_rows(scores, layout)
        with engine_errors(engine):
            advantages = _method_advantages(padded, mask, k, options)[0]
        advantages, estimate = advantages.reshape(-1)[_like(scores, layout.slots)], None
    if options.rollout_n is not None:
        ids = group_ids.tolist() if hasattr(group_ids, "tolist") else list(group_ids)
        label, size = collections.Counter(ids).most_common(1)[0]  # the largest group
        check_rollout_n(label, size, options, engine=engine)
    return advantages, estimate


@dataclass(frozen=True)
class _Layout:
    """Groups of a flat batch as rows of a (G, width) array: row g holds group ``labels[g]``."""

    labels: np.ndarray  # the distinct ids, sorted
    sizes: np.ndarray  # rows per group
    width: int  # the largest group
    slots: np.ndarray  # where each row of the batch goes in the flattened (G, width) array


def _padded_groups(group_ids, n_rows: int, engine: str) -> _Layout:
    """The padded layout of ``group_ids``; ids of mixed types (1 and "1") are refused."""
    ids = _as_id_array(group_ids)
    if ids.ndim != 1 or ids.shape[0] != n_rows:
        raise ValueError(
            f"{engine}: need one group id per row ({n_rows}); got ids of shape {ids.shape}."
        )
    if ids.dtype == object:
        kinds = {type(value.item() if isinstance(value, np.generic) else value) for value in ids}
        if len(kinds) > 1:
            names = ", ".join(sorted(kind.__name__ for kind in kinds))
            raise ValueError(f"{engine}: group ids mix types ({names}); give every row one type.")
    labels, inverse, sizes = np.unique(ids, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")  # the rows group by group
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.empty_like(inverse)
    position[order] = np.arange(n_rows) - starts[inverse[order]]
    width = int(sizes.max()) if sizes.size else 0
    return _Layout(labels, sizes, width, inverse * width + position)


def _as_id_array(group_ids) -> np.ndarray:
    """The ids as a 1-D numpy array, each keeping its type (no [1, "1"] -> ["1", "1"])."""
    if isinstance(group_ids, (list, tuple)):
        ids = np.empty(len(group_ids), dtype=object)
        ids[:] = group_ids
        return ids
    if hasattr(group_ids, "detach"):
        return group_ids.detach().cpu().numpy()
    return np.asarray(group_ids)


def _scatter_rows(scores, layout: _Layout):
    """(padded (G, width) scores, bool mask of the filled slots), the kind of ``scores``."""
    size = len(layout.labels) * layout.width
    slots = _like(scores, layout.slots)
    if hasattr(scores, "detach"):
        padded = scores.new_zeros(size).index_put((slots,), scores)
        filled = scores.new_ones((), dtype=bool)
        mask = scores.new_zeros(size, dtype=bool).index_put((slots,), filled)
    else:
        padded, mask = np.zeros(size, dtype=scores.dtype), np.zeros(size, dtype=bool)
        padded[slots], mask[slots] = scores, True
    shape = (len(layout.labels), layout.width)
    return padded.reshape(shape), mask.reshape(shape)


def _like(values, array: np.ndarray):
    """``array`` as the kind of ``values`` (a torch tensor on its device, or numpy)."""
    if hasattr(values, "detach"):
        import torch

        return torch.as_tensor(array, device=values.device)
    return array


def _method_advantages(rewards, mask, k, options: PKPOOptions):
    """(advantages of the groups on the last axis, mean pass@k / maxg@k estimate or None).

    PKPO through :func:`pkpo.transform` (whose per-group estimates come for free), every other
    method through :func:`pkpo.advantages.compute`; ``options.scale`` for all.
    """
    if options.method == DEFAULT_METHOD:
        advantages, info = transform(
            rewards, k, options.baseline, mask, scale=options.scale, return_info=True
        )
        return advantages, _mean_estimate(info)
    advantages = _advantages.compute(
        options.method, rewards, mask=mask, scale=options.scale, **options.method_params(k)
    )
    return advantages, None


def consecutive_advantages(
    scores, group_size: int, k, options: PKPOOptions, *, valid=None, engine: str
):
    """Advantages for groups of ``group_size`` consecutive rows (TRL / OpenRLHF layout).

    ``scores``: a 1-D torch tensor or numpy array, one score per row. ``valid`` (bool [N],
    optional, the same kind) marks rows that have a reward; the others are left out of their
    group (its n shrinks) and get advantage 0. ``k`` is None for a method without k. Returns
    ``(advantages [N], mean pass@k / maxg@k estimate, or None for a method other than PKPO)``.
    """
    n_rows = _check_scores(scores, engine)
    group_size = as_int(group_size, "the group size", source=engine, minimum=1)
    if n_rows % group_size:
        raise ValueError(
            f"{engine}: {n_rows} rows do not split into groups of {group_size} consecutive rows."
        )
    check_rollout_n(rows_of_group(group_size)(0), group_size, options, engine=engine)
    rewards = scores.reshape(-1, group_size)
    mask = None
    if valid is not None:
        _check_valid(valid, scores, engine)
        mask = valid.reshape(-1, group_size)
        rewards = _where_zero(rewards, mask)
    with engine_errors(engine, rows_of_group(group_size)):
        advantages, estimate = _method_advantages(rewards, mask, k, options)
    return advantages.reshape(-1), estimate


def rows_of_group(group_size: int) -> Callable[[int], str]:
    """Group i of ``group_size`` consecutive rows, named by its rows: "rows 8..15"."""
    return lambda i: f"rows {i * group_size}..{(i + 1) * group_size - 1}"


def _check_scores(scores, engine: str) -> int:
    """Scores must be a 1-D torch tensor or numpy array; returns the number of rows."""
    if not (hasattr(scores, "detach") or isinstance(scores, np.ndarray)):
        raise ValueError(
            f"{engine}: scores must be a 1-D torch tensor or numpy array (one score per row); "
            f"got {type(scores).__name__}."
        )
    if scores.ndim != 1:
        raise ValueError(
            f"{engine}: scores must be 1-D (one score per row); got shape {tuple(scores.shape)}."
        )
    return int(scores.shape[0])


def _check_valid(valid, scores, engine: str) -> None:
    """The mask of scorable rows: bool, the same kind and length as the scores."""
    same_kind = hasattr(valid, "detach") == hasattr(scores, "detach")
    is_bool = str(getattr(valid, "dtype", "")) in ("torch.bool", "bool")
    if not (same_kind and is_bool and hasattr(valid, "shape")):
        raise ValueError(
            f"{engine}: valid must be a boolean {type(scores).__name__} like the scores; got "
            f"{type(valid).__name__} of dtype {getattr(valid, 'dtype', None)}."
        )
    if tuple(valid.shape) != tuple(scores.shape):
        raise ValueError(
            f"{engine}: valid has shape {tuple(valid.shape)} but the scores have shape "
            f"{tuple(scores.shape)}; give one flag per row."
        )


def _mean_estimate(info) -> float:
    return float(np.mean(to_numpy(info.estimate).astype(np.float64)))


def _where_zero(values, mask):
    """values with the entries outside ``mask`` set to 0 (NaN-safe), for torch or numpy."""
    if hasattr(values, "masked_fill"):
        return values.masked_fill(~mask, 0.0)
    return np.where(mask, values, 0.0)


# --- validation metrics ----------------------------------------------------------------------


def parse_val_ks(value, *, source: str, largest_n: int | None = None, n_name: str = "n"):
    """The ks of the validation metrics: an int or a list of ints >= 1, each <= ``largest_n``.

    Returns a sorted tuple without duplicates; ``None`` or an empty list gives ``()`` (off).
    ``largest_n`` is the number of samples drawn per validation prompt (named ``n_name`` in
    errors), when the caller knows it.
    """
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        value = [value]
    ks = sorted({as_int(k, "every k", source=source, minimum=1) for k in value})
    for k in ks:
        if largest_n is not None and k > largest_n:
            raise ValueError(
                f"{source}: k={k} exceeds the {largest_n} samples drawn per validation prompt "
                f"({n_name}={largest_n}); draw more samples or drop that k."
            )
    return tuple(ks)


def validation_metrics(rewards_per_prompt, ks, *, correct_per_prompt=None) -> dict[str, float]:
    """Unbiased maxg@k and pass@k over validation prompts, and their standard errors.

    Returns ``{"maxg@k": mean, "maxg@k/se": SE, "pass@k": mean, "pass@k/se": SE}`` for every k
    in ``ks``: the mean over prompts of the per-prompt unbiased estimate (paper eqs. 3 and 12)
    and its standard error over prompts, both from :mod:`pkpo.metrics`. pass@k comes from
    ``correct_per_prompt`` (0/1 per sample) when given, else from the rewards when they are all
    0 or 1, else it is left out. A prompt with fewer than k samples is left out at that k; a k
    that no prompt reaches, and an SE of a single prompt, are left out.

    Args:
        rewards_per_prompt: one 1-D sequence of rewards per prompt (ragged allowed).
        ks: the ks to report (see :func:`parse_val_ks`).
        correct_per_prompt: optional, one 1-D 0/1 sequence per prompt.
    """
    rewards = [np.asarray(row, dtype=np.float64) for row in rewards_per_prompt]
    rewards = [row for row in rewards if row.size]
    results: dict[str, float] = {}
    if not rewards or not ks:
        return results
    if correct_per_prompt is not None:
        correct = [np.asarray(row, dtype=np.float64) for row in correct_per_prompt]
        correct = [row for row in correct if row.size]
    elif all(np.isin(row, (0.0, 1.0)).all() for row in rewards):
        correct = rewards
    else:
        correct = None
    reports = [("maxg@", _metrics.maxg_at_k_report, rewards)]
    if correct:
        reports.append(("pass@", _metrics.pass_at_k_report, correct))
    for name, report_fn, rows in reports:
        reachable = [k for k in ks if k <= max(row.size for row in rows)]
        if not reachable:
            continue
        report = report_fn(rows, reachable, n_bootstrap=0, skip_insufficient=True)
        for row in report:
            results[f"{name}{row.k}"] = row.estimate
            if np.isfinite(row.se):
                results[f"{name}{row.k}/se"] = row.se
    return results


# --- run a callback once a module is imported --------------------------------------------------


def when_imported(name: str, callback: Callable[[Any], None]) -> bool:
    """Call ``callback(module)`` now if ``name`` is imported, else right after it is first imported.

    Returns True if it ran now. Used by the plugins so that loading them (in every process that
    imports verl, or every Ray worker of an OpenRLHF job) does not import heavy modules. The
    deferred call is ``wrapt``'s post-import hook, with one difference: a failing callback is
    logged, not raised, so it cannot break the host framework's import.
    """
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return True
    import wrapt

    def logged(module) -> None:
        try:
            callback(module)
        except Exception:  # a failing hook must not break the host framework's import
            logger.exception("pkpo: post-import hook %r for %s failed", callback, name)

    wrapt.register_post_import_hook(logged, name)
    return False


__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_SCALE",
    "PKPOOptions",
    "StepClock",
    "as_int",
    "check_rollout_n",
    "check_samples_per_prompt",
    "consecutive_advantages",
    "engine_errors",
    "grouped_advantages",
    "options_from_mapping",
    "parse_options",
    "parse_val_ks",
    "rows_of_group",
    "validation_metrics",
    "when_imported",
]
