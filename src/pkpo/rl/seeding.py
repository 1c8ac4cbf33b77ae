"""Every random stream of an RL run, by name: the one place that says which seed each stream gets.

::

    rng = stream(cfg.seed, "data_order")        # numpy Generator: default_rng([seed, salt])
    gen = torch_stream(cfg.seed, "sampling")    # torch Generator: seed + offset

A stream's numbers depend only on the run's seed and the stream's name, so adding a stream never
shifts another. The salts and offsets below are the values each stream has been derived with since
the first trainer; they are frozen, because changing one changes the numbers of every run (a run
made before this module existed gives the same metrics after it).
"""

from __future__ import annotations

import random

import numpy as np

# numpy streams: default_rng([seed, salt])
NUMPY_SALTS = {
    "problems": 7919,  # the hidden-rule problem sets (seed: task_seed)
    "nl_problems": 104729,  # the word-problem sets of the nl: tasks (seed: their task seed)
    "warm_start": 104729,  # the warm start's demonstration batches
    "rule_accuracy": 15485863,  # the problems of the warm start's per-rule accuracy
    "data_order": 31337,  # the order in which RL draws training problems
}
# torch streams: a torch.Generator seeded with seed + offset
TORCH_OFFSETS = {
    "sampling": 1_000_003,  # RL sampling
    "rule_accuracy": 0,  # the samples of the warm start's per-rule accuracy
    "eval": 0,  # an evaluation's pass@k samples (seed: eval_seed)
    "greedy_eval": 104_729,  # an evaluation's near-greedy pass@1 samples (seed: eval_seed)
}
EVAL_STEP_FACTOR = 7919  # eval_seed(seed, step) = seed * 7919 + step


def _known(name: str, table: dict) -> int:
    if name not in table:
        raise ValueError(f"unknown random stream {name!r}; expected one of {sorted(table)}")
    return table[name]


def stream(seed: int, name: str) -> np.random.Generator:
    """The numpy Generator of stream ``name``: ``default_rng([seed, NUMPY_SALTS[name]])``."""
    return np.random.default_rng([int(seed), _known(name, NUMPY_SALTS)])


def torch_stream(seed: int, name: str, device="cpu"):
    """The torch Generator of stream ``name`` on ``device``, seeded with
    ``seed + TORCH_OFFSETS[name]``."""
    import torch

    return torch.Generator(device=device).manual_seed(int(seed) + _known(name, TORCH_OFFSETS))


def eval_seed(seed: int, step: int) -> int:
    """The seed of the evaluation at ``step`` of a run with ``seed``: ``seed * 7919 + step``."""
    return int(seed) * EVAL_STEP_FACTOR + int(step)


def seed_globals(seed: int) -> None:
    """Seed the global generators (python ``random``, numpy's legacy one, torch's default one) with
    ``seed``: model initialisation and anything that draws without an explicit stream."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
