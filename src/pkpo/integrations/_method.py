"""Which group-advantage estimator an adapter runs: a :mod:`pkpo.advantages` name and its settings.

The tinker-cookbook, SkyRL and ms-swift adapters select any estimator of
:mod:`pkpo.advantages` by name ("pkpo" by default), with

* its parameters (``baseline`` for "pkpo", ``beta`` for "rs_grpo", ``lam`` for "w_reinforce", ...),
* a k schedule (:func:`pkpo.schedules.from_spec`) for the estimators that take k, evaluated at
  the engine's own training step, and
* the ``scale`` of the advantages (:data:`DEFAULT_SCALE`, as in the other adapters).

:func:`parse_method` checks all of it once, when the adapter is set up; afterwards
:meth:`MethodOptions.advantages` runs :func:`pkpo.advantages.compute` on a padded batch of
groups (G, n_max) with a mask, the layout every engine's batch is brought into
(:func:`pad_groups` for a flat batch with a group id per row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import schedules as _schedules
from ..transforms import (
    BASELINES,
    DEFAULT_BASELINE,
    SCALES,
    GroupSizeError,
    _padded_layout,
    factorize_group_ids,
    min_group_size,
)
from ._common import DEFAULT_SCALE

DEFAULT_METHOD = "pkpo"


def _advantages_module():
    from .. import advantages

    return advantages


@dataclass(frozen=True)
class MethodOptions:
    """An estimator of :mod:`pkpo.advantages` with its parameters, k schedule and scale.

    ``schedule`` is set exactly for the estimators that take k (``spec(method).takes_k``);
    ``params`` holds the other parameters given (the estimator's defaults fill the rest).
    """

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    schedule: _schedules.Schedule | None = None
    scale: str = DEFAULT_SCALE

    def k_at(self, step: int | None) -> int | None:
        """k at the training ``step`` (None for estimators without k); a schedule needs the step."""
        if self.schedule is None:
            return None
        if self.schedule.kind == "constant":
            return self.schedule.k_start
        if step is None:
            raise ValueError(
                f"the k schedule ({self.schedule.describe()}) needs the training step, but none "
                "was published; use the adapter's trainer or patch that publishes it (see "
                "docs/integrations.md) or a constant k."
            )
        return self.schedule(step)

    def describe(self) -> str:
        settings = [f"{name}={value!r}" for name, value in self.params.items()]
        if self.schedule is not None:
            settings.insert(0, self.schedule.describe())
        return f"method={self.method!r} ({', '.join(settings + [f'scale={self.scale}'])})"

    def advantages(self, rewards, mask, step: int | None, *, engine: str, labels=None):
        """``(advantages, k)`` of the groups ``rewards`` (G, n_max), ``mask`` marking real rows.

        The estimator's errors (a group too small for k, non-binary rewards for a binary-only
        estimator, NaN) come back as ``ValueError`` naming the engine; a group too small for k
        as a :class:`pkpo.GroupSizeError` naming the group by ``labels[row]`` (the engine's id).
        """
        k = self.k_at(step)
        params = dict(self.params) if k is None else {**self.params, "k": k}
        try:
            values = _advantages_module().compute(
                self.method, rewards, mask=mask, scale=self.scale, **params
            )
        except GroupSizeError as error:
            raise _reworded(error, engine, labels) from None
        except ValueError as error:
            raise ValueError(f"{engine}: {error}") from None
        return values, k

    def check_samples_per_prompt(self, n: int, *, source: str, name: str) -> None:
        """Refuse ``n`` samples per prompt (the engine's ``name`` option) if too few for the largest
        k of the schedule: n >= pkpo.min_group_size(k, baseline) for PKPO, n >= k otherwise."""
        if self.schedule is None:
            return
        k = self.schedule.max_k
        baseline = self.params.get("baseline", DEFAULT_BASELINE)
        needed = min_group_size(k, baseline) if self.method == "pkpo" else k
        if n < needed:
            raise ValueError(
                f"{source}: {name}={n} samples per prompt is too few for method "
                f"{self.method!r} at k={k} (needs at least {needed})."
            )


def _reworded(error: GroupSizeError, engine: str, labels) -> GroupSizeError:
    """The math layer's group-size error in the engine's words, the group named by its label."""
    group = error.group
    if labels is not None and group is not None:
        group = labels[group]
    where = "a group" if group is None else f"group {group!r}"
    message = (
        f"{engine}: {where} has {error.n} sample(s), fewer than the {error.need} that k={error.k} "
        f"with baseline {error.baseline!r} needs. Lower k, draw more samples per prompt, or "
        "filter such groups out before the advantage step."
    )
    return GroupSizeError(message, group, error.n, error.need, error.k, error.baseline)


def parse_method(method=None, *, k=None, schedule=None, scale=None, source: str, **params):
    """:class:`MethodOptions` from an adapter's arguments, checked once.

    Args:
        method: a name of :func:`pkpo.advantages.names` (default "pkpo").
        k, schedule: for estimators that take k, exactly one of them: a constant k, or anything
            :func:`pkpo.schedules.from_spec` reads ("8->1@1500", "linear:8->1@0+1000"); an
            estimator without k refuses both.
        scale: "mean_abs" (default, :data:`DEFAULT_SCALE`), "none" or "n_over_k" (estimators
            with k only).
        source: names the options in error messages (``"pkpo.integrations.tinker.patch"``).
        **params: the estimator's other parameters (``pkpo.advantages.spec(method).defaults``).
    """
    method = DEFAULT_METHOD if method is None else method
    spec = _spec(method, source)
    unknown = sorted(set(params) - set(spec.defaults) - {"k"})
    if unknown:
        accepted = ", ".join(name for name in spec.defaults if name != "k") or "none"
        raise ValueError(
            f"{source}: method {method!r} takes no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {accepted}."
        )
    scale = DEFAULT_SCALE if scale is None else scale
    if scale not in SCALES:
        raise ValueError(f"{source}: unknown scale {scale!r}; expected one of {', '.join(SCALES)}.")
    if spec.takes_k:
        parsed = _schedule(method, k, schedule, source)
    else:
        if k is not None or schedule is not None:
            raise ValueError(
                f"{source}: method {method!r} takes no k; leave out k and schedule (the "
                "estimators that take k: "
                f"{', '.join(name for name in _names() if _spec(name, source).takes_k)})."
            )
        if scale == "n_over_k":
            raise ValueError(
                f"{source}: scale='n_over_k' multiplies by n/k, but method {method!r} takes no "
                "k; use 'mean_abs' or 'none'."
            )
        parsed = None
    if "baseline" in params:
        _check_baseline(params["baseline"], source)
    return MethodOptions(method, dict(params), parsed, scale)


def _schedule(method, k, schedule, source):
    if k is not None and schedule is not None:
        raise ValueError(
            f"{source}: give either k or schedule, not both (got k={k!r}, schedule={schedule!r})."
        )
    if k is None and schedule is None:
        raise ValueError(
            f"{source}: method {method!r} needs k (e.g. k=8) or a k schedule "
            "(e.g. schedule='8->1@1500')."
        )
    try:
        if schedule is not None:
            return _schedules.from_spec(schedule)
        return _schedules.constant(_as_k(k))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _as_k(k):
    if isinstance(k, str):
        try:
            return int(k.strip())
        except ValueError:
            raise ValueError(f"k must be an integer; got {k!r}.") from None
    return k


def _check_baseline(baseline, source):
    if baseline not in BASELINES:
        raise ValueError(
            f"{source}: unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}."
        )


def _spec(method, source):
    try:
        return _advantages_module().spec(method)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _names():
    return _advantages_module().names()


# --- the padded layout ---------------------------------------------------------------------------


def pad_groups(values, group_ids):
    """A flat batch [N] with a group id per row as padded groups (G, n_max) and a mask.

    Returns ``(padded, mask, index, labels)``: ``padded.reshape(-1)[index]`` gives ``values``
    back, and ``labels`` are the group ids in the order of the rows of ``padded`` (sorted, as
    :func:`pkpo.transform_grouped` orders them). Groups may be interleaved and ragged.
    ``values`` is a numpy array.
    """
    values = np.asarray(values)
    labels, inverse, counts = factorize_group_ids(group_ids, values.shape[0])
    layout = _padded_layout(inverse, counts)
    padded = np.zeros(layout["mask"].size, dtype=values.dtype)
    padded[layout["flat_index"]] = values
    return padded.reshape(layout["mask"].shape), layout["mask"], layout["flat_index"], labels


def pad_lists(rows):
    """Ragged rows (a sequence of 1-D sequences, none empty) as padded (G, n_max) and a mask."""
    sizes = [len(row) for row in rows]
    ids = np.repeat(np.arange(len(rows)), sizes)
    padded, mask, _, _ = pad_groups(np.concatenate([np.asarray(row, float) for row in rows]), ids)
    return padded, mask
