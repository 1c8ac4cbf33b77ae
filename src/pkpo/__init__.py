"""pkpo: Pass@K Policy Optimization.

Turn a group of n rewards per prompt into transformed rewards whose ordinary policy gradient is
an unbiased, low-variance estimate of the gradient of pass@k (binary rewards) or maxg@k
(continuous rewards), for any k <= n (Walder & Karkhanis, arXiv:2505.15201).

Conventions: the n samples of one prompt lie on the last axis; ``k`` is the pass@k size; binary
inputs are called ``correct``, real-valued ones ``rewards``. Arrays come back as the kind they
came in (numpy, torch on the same device, JAX). Bad input raises ``ValueError``.
"""

from . import advantages, metrics, schedules
from .estimators import (
    maxg_at_k,
    maxg_at_k_weights,
    pass_all_k,
    pass_all_k_from_counts,
    pass_at_k,
    pass_at_k_from_counts,
)
from .transforms import (
    BASELINES,
    DEFAULT_BASELINE,
    SCALES,
    GroupSizeError,
    TransformInfo,
    min_group_size,
    transform,
    transform_grouped,
)

__version__ = "0.1.0"

__all__ = [
    "pass_at_k",
    "pass_at_k_from_counts",
    "pass_all_k",
    "pass_all_k_from_counts",
    "maxg_at_k",
    "maxg_at_k_weights",
    "transform",
    "transform_grouped",
    "TransformInfo",
    "BASELINES",
    "DEFAULT_BASELINE",
    "GroupSizeError",
    "SCALES",
    "min_group_size",
    "schedules",
    "metrics",
    "advantages",
]
