"""RL on verifiable tasks with the PKPO reward transform (see docs/rl.md). Needs ``pkpo[rl]``.

* :mod:`pkpo.rl.config`: ``TrainConfig``, every setting of a run, and the named ``PRESETS``;
* :mod:`pkpo.rl.interfaces`: the ``Policy`` and ``Task`` contracts the trainer is written against;
* :mod:`pkpo.rl.policies`: the from-scratch GPT and Hugging Face models;
* :mod:`pkpo.rl.tasks`: the hidden-rule task and natural-language tasks (``TASKS``, ``make_task``);
* :mod:`pkpo.rl.training`: ``train`` (the RL step), evaluation, warm start, checkpoints, run
  folders;
* :mod:`pkpo.rl.build`: the policy and task of a config (``build``, ``build_pretrained``);
* :mod:`pkpo.rl.sweeps`: grids of runs and their reports, tables and figures;
* :mod:`pkpo.rl.cli`: ``pkpo train``, ``pkpo sweep`` and ``pkpo demo``.

``TrainConfig`` and ``train`` are importable from here; the modules behind them (and torch) are
imported on first use.
"""

from __future__ import annotations

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    if name == "train":
        from .training.trainer import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
