"""Toy gradient ascent converges to theta*(k); the settle-time bookkeeping is right."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy", reason="the toy extra: make test installs it")

from pkpo.toy.landscape import theta_star  # noqa: E402
from pkpo.toy.training import AscentConfig, ascend, samples_to_converge, settle_step  # noqa: E402


@pytest.mark.parametrize(
    "k,estimator",
    [
        (1, "s_loo_minus_one"),
        (4, "s_loo_minus_one"),
        (4, "s_loo"),
        (16, "loo_minus_one_partitioned"),
    ],
)
def test_gradient_ascent_reaches_theta_star(k, estimator):
    config = AscentConfig(steps=400, seeds=16)
    path = ascend(estimator, [k] * config.steps, config, np.random.default_rng(k))
    assert np.median(np.abs(path[-1] - theta_star(k))) < 0.01
    assert abs(np.median(path[0]) - theta_star(k)) > 0.3  # it really moved there


def test_annealing_moves_from_theta_star_16_to_theta_star_1():
    config = AscentConfig(steps=600, seeds=16)
    path = ascend("s_loo_minus_one", [16] * 300 + [1] * 300, config, np.random.default_rng(5))
    assert np.median(np.abs(path[300] - theta_star(16))) < 0.01
    assert np.median(np.abs(path[-1] - theta_star(1))) < 0.01


def test_settle_step_is_the_first_step_after_the_last_excursion():
    path = np.array(
        [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    )
    np.testing.assert_array_equal(settle_step(path, 1.0, 0.01), [3, 1, 4])
    np.testing.assert_array_equal(settle_step(path[:-1], 1.0, 0.01), [3, 1, -1])


def test_samples_to_converge_uses_the_lower_median_and_flags_failures():
    config = AscentConfig(n=16, steps=3, seeds=4)
    star = theta_star(1)
    path = np.full((4, 4), star)
    path[:2, 1] = 0.0  # settles at step 2
    path[:, 2:] = 0.0  # never settles
    result = samples_to_converge(path, 1, config)
    assert result["per_seed"] == [0, 32, None, None]
    assert result["fraction_converged"] == 0.5
    assert result["median"] == 32
    path[:, 1] = 0.0
    assert samples_to_converge(path, 1, config)["median"] is None


def test_ascend_rejects_undefined_estimators_and_wrong_schedules():
    config = AscentConfig(steps=2, seeds=2)
    with pytest.raises(ValueError, match="not defined for n=16, k=16"):
        ascend("s_loo", [16, 16], config, np.random.default_rng(0))
    with pytest.raises(ValueError, match="one k per step"):
        ascend("s", [4], config, np.random.default_rng(0))
