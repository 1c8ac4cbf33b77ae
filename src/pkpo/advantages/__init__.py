"""The pass@k estimator family behind one interface: PKPO and the group advantages it meets.

Every estimator is a pure function ``fn(rewards, *, mask=None, validate=True, **params)`` on an
array of shape (..., n), the n samples of one prompt on the last axis. It returns advantages of
the same shape and kind (numpy; torch on the same device; JAX), in the input's float dtype
(bool/int input gives the library's default float), with 0 on masked entries; each ragged row
uses its own n. The loss is the usual -sum_i A_i log pi(y_i | prompt).

====================  ===================================  =======  ==========================
name                  A_i                                  rewards  E[sum_i A_i grad log pi_i]
====================  ===================================  =======  ==========================
"pkpo"                pkpo.transform(r, k, baseline)       any      grad maxg@k (pass@k)
"grpo"                (r_i - mean) / (std + eps)           any      biased (1/std reweights)
"dr_grpo"             r_i - mean                           any      (n - 1) grad E[r]
"rloo"                r_i - mean_{j != i} r_j              any      n grad E[r]
"maxrl"               (r_i - mean) / mean; 0 if mean = 0   0/1      n grad sum_{k<n} pass@k/k
"tailrl"              sorted gaps / survivors, centred     any      n grad sum_{k<n} maxg@k/k
"rs_grpo"             (e^{b r_i} / mean e^{b r} - 1) / b   any      biased (self-normalised)
"w_reinforce"         lam if correct, -1 if wrong          0/1      n (1 + lam) grad pass@1
"tzsm"                r_max - r_2nd for the best, else 0   any      grad maxg@n
"passk_training"      analytic, / sqrt(rho (1 - rho))      0/1      biased (the sigma)
"pkpo_two_baselines"  s^(loo-1) minus a 2nd LOO mean       0/1      biased: a mix of grad
                                                                    pass@k and pass@(k-1)
====================  ===================================  =======  ==========================

Each function's docstring gives the formula, the paper, what happens to singleton groups,
all-equal and negative rewards. docs/advantages.md compares them by exact enumeration.

:func:`compute` is the entry point for trainers and adapters: it selects an estimator by name,
checks its parameters against :func:`spec`, and applies ``scale``
(:func:`pkpo.transforms.scale_advantages`):
"none" (the estimator's own values), "mean_abs" (divided by the call's mean |A|; any estimator)
or "n_over_k" (times n/k; only estimators that take k: for the others n/k has no meaning, so it
is refused). Binary-only estimators refuse other rewards with a ValueError ("binary rewards only
(0/1)"). ``validate=False`` skips every check that reads the data, so the estimators trace under
``jax.jit`` (k and the other parameters static) and ``torch.compile``.

Examples:
    >>> r = np.array([[1.0, 0.0, 0.0, 1.0]])
    >>> compute("maxrl", r).tolist()
    [[1.0, -1.0, -1.0, 1.0]]
    >>> compute("pkpo", r, k=2).round(4).tolist()
    [[0.3333, 0.0, 0.0, 0.3333]]
    >>> spec("passk_training").takes_k, spec("passk_training").rewards
    (True, 'binary')
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, NamedTuple

from .. import _validation
from .._backend import as_array
from .._typing import Array, Scale
from ..transforms import scale_advantages
from ._likelihood import maxrl, tailrl
from ._pass_at_1 import dr_grpo, grpo, rloo, rs_grpo, w_reinforce
from ._pass_at_k import passk_training, pkpo, pkpo_two_baselines, tzsm

__all__ = [
    "compute",
    "names",
    "get",
    "spec",
    "Method",
    "pkpo",
    "grpo",
    "dr_grpo",
    "rloo",
    "maxrl",
    "tailrl",
    "rs_grpo",
    "w_reinforce",
    "tzsm",
    "passk_training",
    "pkpo_two_baselines",
]


class Method(NamedTuple):
    """What a trainer needs to know about an estimator (:func:`spec`)."""

    name: str
    fn: Callable[..., Any]  # fn(rewards, *, mask=None, validate=True, **params)
    defaults: Mapping[str, Any]  # every parameter and its default (k: None, it is required)
    takes_k: bool  # a k schedule applies to it
    rewards: str  # "binary" (0/1 only, else ValueError) or "any"
    unbiased_for: str  # what E[sum_i A_i grad log pi(y_i)] equals, or "biased: ..."
    arxiv: str


_REQUIRED = inspect.Parameter.empty


def _method(fn, rewards: str, unbiased_for: str, arxiv: str) -> Method:
    """The record of ``fn``; its parameters: its keyword-only ones but mask and validate."""
    params = {
        name: p.default if p.default is not _REQUIRED else None
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("mask", "validate")
    }
    return Method(fn.__name__, fn, params, "k" in params, rewards, unbiased_for, arxiv)


_METHODS = {
    method.name: method
    for method in (
        _method(pkpo, "any", "grad maxg@k (pass@k for 0/1 rewards)", "2505.15201"),
        _method(grpo, "any", "biased: the std of the same group reweights it", "2402.03300"),
        _method(dr_grpo, "any", "(n - 1) grad E[r]", "2503.20783"),
        _method(rloo, "any", "n grad E[r]", "2402.14740"),
        _method(maxrl, "binary", "n grad sum_{k=1}^{n-1} pass@k / k", "2602.02710"),
        _method(tailrl, "any", "n grad sum_{k=1}^{n-1} maxg@k / k", "2609.02987"),
        _method(
            rs_grpo,
            "any",
            "biased: self-normalised; E/n -> grad log E[e^{beta r}]/beta as n grows",
            "2509.24261",
        ),
        _method(w_reinforce, "binary", "n (1 + lam) grad pass@1", "2506.01347"),
        _method(tzsm, "any", "grad maxg@n (pass@n for 0/1 rewards)", "2503.19595"),
        _method(
            passk_training,
            "binary",
            "biased: (n/k - 1) grad pass@k before the division by sigma",
            "2508.10751",
        ),
        _method(
            pkpo_two_baselines,
            "binary",
            "biased: ((n - k) grad pass@k + k grad pass@(k-1)) / (n - 1)",
            "2602.02710",
        ),
    )
}


def names() -> tuple[str, ...]:
    """The estimator names, in a fixed order ("pkpo" first)."""
    return tuple(_METHODS)


def spec(name: str) -> Method:
    """The :class:`Method` record of ``name``; an unknown name is a ValueError listing the names."""
    method = _METHODS.get(name) if isinstance(name, str) else None
    if method is None:
        expected = ", ".join(_METHODS)
        raise ValueError(f"unknown advantage estimator {name!r}; expected one of {expected}.")
    return method


def get(name: str) -> Callable[..., Any]:
    """The estimator function ``name`` (see :func:`names`)."""
    return spec(name).fn


def compute(
    name: str,
    rewards: Array,
    *,
    mask: Array | None = None,
    scale: Scale = "none",
    validate: bool = True,
    **params,
) -> Array:
    """Advantages of estimator ``name`` for groups of rewards (..., n), optionally rescaled.

    Args:
        name: one of :func:`names`.
        rewards: (..., n) array (numpy, torch or JAX); binary estimators need 0/1 or bool.
        mask: optional bool (or 0/1 integer) array of the same shape; False marks padding.
        scale: "none", "mean_abs" or "n_over_k" (estimators that take k only); see the module
            docstring and :func:`pkpo.transforms.scale_advantages`.
        validate: check the values (NaN/inf, 0/1, ragged group sizes); False for jit/compile.
        **params: the estimator's parameters (``spec(name).defaults``); k is required where taken.

    Returns:
        The advantages, same shape, kind, device and float dtype as ``rewards``.

    Raises:
        ValueError: unknown name, unknown or missing parameter, a bad parameter value, a scale
            the estimator cannot take, or bad rewards (see the estimator).
    """
    method = spec(name)
    unknown = sorted(set(params) - set(method.defaults))
    if unknown:
        accepted = ", ".join(method.defaults) or "none"
        unknown = ", ".join(map(repr, unknown))
        raise ValueError(f"{name!r} takes no parameter {unknown}; its parameters: {accepted}.")
    if method.takes_k and "k" not in params:
        raise ValueError(f"{name!r} needs k (the pass@k size).")
    scale = _validation.check_scale(scale)
    if scale == "n_over_k" and not method.takes_k:
        raise ValueError(
            f"scale='n_over_k' multiplies by n/k, but {name!r} takes no k; "
            "use 'none' or 'mean_abs'."
        )
    advantages = method.fn(rewards, mask=mask, validate=validate, **params)
    if scale == "none":
        return advantages
    k = _validation.check_k(params["k"]) if method.takes_k else 1
    return scale_advantages(advantages, k, scale, _group_sizes(advantages, mask))


def _group_sizes(advantages, mask):
    """n for :func:`scale_advantages`: the row length, or each row's count of valid entries."""
    backend, _ = as_array(advantages)
    if mask is None:
        return backend.shape(advantages)[-1]
    mask = _validation.check_mask(backend, mask, advantages, validate=False)
    return backend.xp.sum(backend.astype(mask, advantages.dtype), axis=-1, keepdims=True)
