"""Shared test set-up: the brute-force oracle on the path, hypothesis profiles, optional
backends."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))  # `import oracle` from any test module

# Property tests compare against brute force, whose cost varies a lot with n: no deadline (a
# shared 2-core machine makes per-example timings meaningless). HYPOTHESIS_PROFILE=thorough runs
# ten times as many examples.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng():
    return np.random.default_rng(20250521)


def optional_import(name):
    """The module, or a skip of the test when that optional backend is not installed."""
    return pytest.importorskip(name)
