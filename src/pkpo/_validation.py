"""Input checks shared by the public functions. Every failure is a ValueError naming the problem.

Static checks (types, shapes, k against a dense n) cost nothing and always run. Checks on
values (NaN/inf, 0/1, ragged group sizes) read the data, which on a GPU means one host
synchronisation; they run when ``validate=True`` (the default) and can be switched off in hot
loops that already trust their input.
"""

from __future__ import annotations

import numbers
import operator
from typing import get_args

import numpy as np

from ._typing import Baseline, Scale

BASELINES: tuple[str, ...] = get_args(Baseline)  # ("none", "loo", "loo_minus_one", "centered")
SCALES: tuple[str, ...] = get_args(Scale)  # ("none", "n_over_k", "mean_abs")
# The paper's PKPO baseline (eq. 33), the default of every function and adapter that takes one.
DEFAULT_BASELINE: Baseline = "loo_minus_one"


class GroupSizeError(ValueError):
    """A group has fewer samples than k and the baseline need (:func:`min_group_size`).

    Raised by the one group-size check of the math layer, so that callers can re-word it with
    their own context. Attributes:

    - ``group``: the group's id (``transform_grouped``), its flat index, or None when every
      group of a dense batch is meant;
    - ``n``: its number of samples; ``need``: the size required; ``k``; ``baseline``.
    """

    def __init__(self, message: str, group, n: int, need: int, k: int, baseline: str):
        super().__init__(message)
        self.group, self.n, self.need, self.k, self.baseline = group, n, need, k, baseline


def check_k(k) -> int:
    """k must be a positive integer: a Python or numpy int, or a 0-d integer array or tensor.

    bool (and bool arrays) are rejected. k sets the shapes of the computation, so it must be
    concrete: a traced value inside ``jax.jit`` is rejected with advice (mark it static).
    """
    if isinstance(k, bool) or (getattr(k, "dtype", None) is not None and "bool" in str(k.dtype)):
        raise ValueError(f"k must be a positive integer; got k={k!r} of type {type(k).__name__}.")
    if not isinstance(k, numbers.Integral):
        if getattr(k, "ndim", None) != 0 or not hasattr(k, "__index__"):
            raise ValueError(
                f"k must be a positive integer; got k={k!r} of type {type(k).__name__}."
            )
        try:
            k = operator.index(k)
        except Exception as error:  # noqa: BLE001 - a 0-d float array, or a traced value under jax.jit
            if "Tracer" in type(k).__name__ or "Tracer" in type(error).__name__:
                raise ValueError(
                    "k must be a concrete integer, not a traced value: inside jax.jit pass k as a "
                    "static argument (static_argnums) or a Python int."
                ) from None
            raise ValueError(
                f"k must be a positive integer; got k={k!r} of type {type(k).__name__}."
            ) from None
    if k < 1:
        raise ValueError(f"k must be >= 1; got k={k}.")
    return int(k)


def check_baseline(baseline) -> str:
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}.")
    return baseline


def check_scale(scale) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}.")
    return scale


def min_group_size(k: int, baseline: Baseline) -> int:
    """The smallest group size n for which ``baseline`` is defined at this k.

    n >= k for "none" and "loo_minus_one"; n >= k + 1 for "loo" and "centered", which estimate
    rho_k on the n - 1 other samples; n >= 2 for "loo_minus_one" at k = 1, which is leave-one-out
    centring and needs another sample.

    Raises:
        ValueError: k not a positive integer, or an unknown baseline.

    Examples:
        >>> [min_group_size(4, baseline) for baseline in BASELINES]
        [4, 5, 4, 5]
        >>> min_group_size(1, "loo_minus_one")
        2
    """
    return _min_group_size(check_k(k), check_baseline(baseline))


def _min_group_size(k: int, baseline: str) -> int:
    """:func:`min_group_size` for a checked k and baseline."""
    if baseline in ("loo", "centered"):
        return k + 1
    if baseline == "loo_minus_one" and k == 1:
        return 2  # k = 1 is leave-one-out centring: it needs another sample
    return k


def describe_group(row: int, labels=None) -> str:
    if labels is None:
        return f"group {row}"
    label = labels[row]
    if isinstance(label, np.generic):  # np.str_('a') / np.int64(7) -> 'a' / 7
        label = label.item()
    return f"group {label!r}"


def traced_with_validate(name: str = "rewards"):
    """validate=True reads the values, which a traced JAX array (inside jax.jit) cannot give."""
    raise ValueError(
        f"validate=True reads {name} to check them, which is impossible inside jax.jit; pass "
        "validate=False inside the jitted function (and check the inputs outside it)."
    )


def check_rewards_array(backend, x, name: str = "rewards"):
    if len(backend.shape(x)) < 1:
        raise ValueError(
            f"{name} must have at least one axis (the samples of a group, last); got a scalar."
        )
    if backend.shape(x)[-1] < 1:
        raise ValueError(
            f"{name} has an empty sample axis (shape {backend.shape(x)}); each group needs n >= 1."
        )
    if not (backend.is_floating(x) or backend.is_bool(x) or backend.is_integer(x)):
        raise ValueError(f"{name} must be a real or boolean array; got dtype {x.dtype}.")


def check_mask(backend, mask, x, validate: bool = True):
    """The mask as a bool array: bool, or integers 0/1 like Hugging Face's ``attention_mask``.

    Integer masks are compared with 0; with ``validate`` their values must be 0 or 1.
    """
    if mask is None:
        return None
    from ._backend import as_array

    mask_backend, mask = as_array(mask, "mask")
    if mask_backend.name != backend.name:
        raise ValueError(
            f"mask must be the same kind of array as rewards ({backend.name}); "
            f"got {mask_backend.name}."
        )
    if backend.shape(mask) != backend.shape(x):
        raise ValueError(
            f"mask shape {backend.shape(mask)} must equal rewards shape {backend.shape(x)}."
        )
    if backend.is_bool(mask):
        return mask
    if not backend.is_integer(mask):
        raise ValueError(
            f"mask must be boolean or integer 0/1 (like attention_mask); got dtype {mask.dtype}."
        )
    if validate:
        values = backend.to_numpy(mask)
        if not np.isin(values, (0, 1)).all():
            bad = sorted(set(np.unique(values).tolist()) - {0, 1})[:3]
            raise ValueError(f"an integer mask must hold only 0 and 1; got {bad}.")
    return mask != 0


def check_finite(backend, x, mask=None, labels=None, name: str = "rewards") -> None:
    """Reject NaN/inf in the entries ``mask`` keeps (all when None), naming the first bad group."""
    bad = ~backend.xp.isfinite(x)
    if mask is not None:
        bad = bad & mask
    row = first_bad_row(backend.to_numpy(bad).reshape(-1, backend.shape(x)[-1]).any(-1))
    if row is not None:
        raise ValueError(f"{name} contain NaN or inf in {describe_group(row, labels)}.")


def first_bad_row(bad_rows: np.ndarray):
    """Index of the first True in a flattened per-group boolean array, or None."""
    flat = np.flatnonzero(np.asarray(bad_rows).reshape(-1))
    return int(flat[0]) if flat.size else None


def check_binary(backend, x, mask, labels=None, name="correct"):
    if backend.is_bool(x):
        return
    values = backend.to_numpy(x).reshape(-1, backend.shape(x)[-1])
    ok = (values == 0) | (values == 1)
    if mask is not None:
        ok |= ~backend.to_numpy(mask).reshape(ok.shape)
    row = first_bad_row(~ok.all(axis=-1))
    if row is not None:
        raise ValueError(
            f"{name} must hold only 0/1 or booleans; "
            f"{describe_group(row, labels)} has other values."
        )


def check_group_sizes(n, k: int, baseline: str, labels=None, backend=None) -> None:
    """Every group must have n >= min_group_size(k, baseline), else :class:`GroupSizeError`.

    ``n`` is an int (every group of a dense batch) or per-group sizes (an array of ``backend``,
    or numpy); ``labels`` name the groups (their ids), else they are numbered. k and baseline
    must already be checked.
    """
    need = _min_group_size(k, baseline)
    if isinstance(n, numbers.Integral):
        if n < need:
            raise GroupSizeError(
                _size_message(k, baseline, need, int(n), "every group"),
                None,
                int(n),
                need,
                k,
                baseline,
            )
        return
    small = first_small_group(n, need, backend)
    if small is not None:
        row, size = small
        group = row if labels is None else _plain(labels[row])
        raise GroupSizeError(
            _size_message(k, baseline, need, size, describe_group(row, labels)),
            group,
            size,
            need,
            k,
            baseline,
        )


def first_small_group(n, need: int, backend=None):
    """(row, size) of the first group with fewer than ``need`` samples, or None. ``n``: per-group
    sizes, an array of ``backend`` (read on the host) or numpy."""
    sizes = (backend.to_numpy(n) if backend is not None else np.asarray(n)).reshape(-1)
    row = first_bad_row(sizes < need)
    return None if row is None else (row, int(sizes[row]))


def _plain(label):
    return label.item() if isinstance(label, np.generic) else label


def _size_message(k, baseline, need, n, where):
    if need == k:
        rule = "k <= n"
    elif baseline in ("loo", "centered"):
        rule = f"n >= k + 1 with baseline={baseline!r}"
    else:
        rule = "n >= 2 with baseline='loo_minus_one' at k = 1 (leave-one-out needs another sample)"
    return f"{where} has n={n} samples but k={k}; {rule} is required."
