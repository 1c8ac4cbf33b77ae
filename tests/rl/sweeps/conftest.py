"""What the study tests share: the demo task at a size that trains in seconds."""

from __future__ import annotations

import pytest

from pkpo.rl.config import TrainConfig


def _tiny_mixed_config(**changes) -> TrainConfig:
    """The ``mixed`` hidden-rule task of the demo with a 1-layer, width-16 policy, a 4-step warm
    start and 2 RL steps of 2 prompts x 16 samples, evaluated on 8 problems; ``changes`` on top."""
    return TrainConfig(
        feature="mixed",
        length=5,
        max_new_tokens=7,
        n_train=200,
        n_heldout=8,
        n_validation=8,
        d_model=16,
        n_layer=1,
        n_head=2,
        warm_steps=4,
        warm_batch=8,
        steps=2,
        prompts_per_step=2,
        n=16,
        eval_every=0,
        eval_problems=8,
        eval_samples=16,
        checkpoint_every=0,
        tensorboard=False,
    ).replace(**changes)


@pytest.fixture
def tiny_mixed_config():
    """:func:`_tiny_mixed_config`, the function (a test calls it with its own changes)."""
    return _tiny_mixed_config
