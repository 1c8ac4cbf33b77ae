"""The whole toy study as a list of small, independently seeded work items, with resume.

Each item (the landscape, the Figure-2 weights, one n of Figure 4, one k of Figure 5, one
toy-training run) draws from its own generator, seeded by (seed, item name), so results do not
depend on the order items run in or on whether a run was resumed. Finished items are written to
a checkpoint file after each one; a rerun with the same settings picks up where it stopped.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import optimize, special
from tqdm.auto import tqdm

import pkpo

from .._output import json_text, write_json
from .estimators import ESTIMATORS, is_defined
from .fig4_variance import variance_at_n
from .fig5_transformed import binned_transform
from .landscape import SIGMA, maxg_at_k_exact, maxg_at_k_gradient_exact, theta_star
from .training import (
    AscentConfig,
    ascend,
    curvature_at_optimum,
    median_samples,
    samples_to_converge,
    settle_step,
)

__all__ = ["StudyConfig", "work_items", "run_study", "PAPER_THETA_STAR"]

# theta*(k) from an independent quadrature made for this project (the paper only plots Figure 1)
PAPER_THETA_STAR = {1: 0.862, 2: 0.902, 4: 0.939, 8: 0.969, 16: 0.986}
# Figure-4 variances from an independent re-run made for this project (10,000 estimates per n, k =
# 4, theta = 1; the paper only plots Figure 4)
PAPER_VARIANCE = {
    "s": {4: 264.4, 8: 113.4, 16: 57.0, 32: 27.5, 64: 13.8},
    "s_loo": {8: 13.1, 16: 3.45, 32: 1.24, 64: 0.53},
    "s_loo_minus_one": {4: 10.0, 8: 2.08, 16: 0.81, 32: 0.38, 64: 0.18},
    "centered": {8: 4.74, 16: 1.89, 32: 0.91, 64: 0.45},
    "naive_partitioned": {4: 264.4, 8: 129.3, 16: 66.6, 32: 32.5, 64: 16.5},
    "naive_partitioned_baselined": {8: 37.6, 16: 15.2, 32: 6.73, 64: 3.35},
    "loo_minus_one_partitioned": {4: 10.0, 8: 5.04, 16: 2.44, 32: 1.23, 64: 0.62},
}


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of every part of the study; ``full()`` is the paper's setup, ``quick()`` a smoke
    test."""

    theta_points: int = 801
    theta_range: tuple = (-0.2, 1.4)
    landscape_ks: tuple = (1, 2, 4, 8, 16)
    weights_n: int = 8
    weights_ks: tuple = (1, 2, 4, 8)
    variance_k: int = 4
    variance_theta: float = 1.0
    variance_ns: tuple = (4, 8, 16, 32, 64)
    variance_estimates: int = 10_000
    transformed_n: int = 32
    transformed_ks: tuple = (1, 2, 4, 8, 16)
    transformed_batches: int = 4000
    transformed_bins: int = 20
    training: AscentConfig = field(default_factory=AscentConfig)
    training_ks: tuple = (1, 4, 16)
    anneal_ks: tuple = (16, 1)
    anneal_estimator: str = "s_loo_minus_one"
    trajectory_points: int = 201

    @classmethod
    def full(cls) -> "StudyConfig":
        return cls()

    @classmethod
    def quick(cls) -> "StudyConfig":
        return cls(
            theta_points=161,
            variance_ns=(4, 8, 16),
            variance_estimates=2000,
            transformed_batches=300,
            training=replace(AscentConfig(), steps=200, seeds=8),
            trajectory_points=51,
        )


def _rng(seed: int, item: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(item.encode())]))


# --- the work items ----------------------------------------------------------------------------


def landscape(config: StudyConfig) -> dict:
    """Figure 1: maxg@k(theta) and its derivative on a grid, theta*(k), and facts at theta*."""
    theta = np.linspace(*config.theta_range, config.theta_points)
    out = {
        "theta": theta.tolist(),
        "maxg": {},
        "gradient": {},
        "theta_star": {},
        "maxg_at_theta_star": {},
        "p_beyond_cliff_at_theta_star": {},
        "curvature_at_theta_star": {},
        "min_gradient": {},
    }
    for k in config.landscape_ks:
        star = theta_star(k)
        key = str(k)
        out["maxg"][key] = maxg_at_k_exact(theta, k).tolist()
        out["gradient"][key] = maxg_at_k_gradient_exact(theta, k).tolist()
        out["theta_star"][key] = star
        out["maxg_at_theta_star"][key] = float(maxg_at_k_exact(star, k))
        out["p_beyond_cliff_at_theta_star"][key] = float(special.ndtr((star - 1.0) / SIGMA))
        out["curvature_at_theta_star"][key] = curvature_at_optimum(k)
        out["min_gradient"][key] = _min_gradient(theta, k)
    return out


def _min_gradient(grid: np.ndarray, k: int) -> float:
    """min over theta of d maxg@k / d theta: the grid minimum, refined by a bounded 1-D search."""
    values = maxg_at_k_gradient_exact(grid, k)
    i = int(np.argmin(values))
    low, high = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    best = optimize.minimize_scalar(
        lambda t: float(maxg_at_k_gradient_exact(t, k)),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(min(best.fun, values[i]))


def weights(config: StudyConfig) -> dict:
    """Figure 2: rank weights C(i-1, k-1)/C(n, k) of the maxg@k estimator (eq. 13)."""
    return {str(k): pkpo.maxg_at_k_weights(config.weights_n, k).tolist() for k in config.weights_ks}


def training_run(config: StudyConfig, k: int, estimator: str, seed: int) -> dict:
    """One toy training run (all seeds at once), summarised for the figure and the tables."""
    ascent = config.training
    path = ascend(estimator, [k] * ascent.steps, ascent, _rng(seed, f"training/k={k}"))
    star = theta_star(k)
    error = path[-1] - star
    return {
        **_trajectory(path, config),
        "convergence": samples_to_converge(path, k, ascent),
        "final_rmse": float(np.sqrt(np.mean(error**2))),
        "final_median_abs_error": float(np.median(np.abs(error))),
    }


def annealed_run(config: StudyConfig, seed: int) -> dict:
    """k = 16 for the first half, then k = 1: theta should move from theta*(16) to theta*(1)."""
    first, second = config.anneal_ks
    ascent = replace(config.training, steps=2 * config.training.steps)
    half = config.training.steps
    path = ascend(
        config.anneal_estimator, [first] * half + [second] * half, ascent, _rng(seed, "annealed")
    )
    settle = settle_step(path[half:], theta_star(second), ascent.tolerance)
    return {
        **_trajectory(path, config, spacing="linear"),
        "estimator": config.anneal_estimator,
        "ks": [first, second],
        "switch_samples": half * ascent.n,
        "median_theta_at_switch": float(np.median(path[half])),
        "median_theta_final": float(np.median(path[-1])),
        "samples_to_resettle_median": median_samples(settle, ascent.n),
        "fraction_resettled": float(np.mean(settle >= 0)),
    }


def _trajectory(path: np.ndarray, config: StudyConfig, spacing: str = "log") -> dict:
    """Quantiles over seeds of theta at up to ``trajectory_points`` steps, log- or evenly spaced."""
    last = path.shape[0] - 1
    if spacing == "log":
        grid = np.concatenate([[0], np.geomspace(1, last, config.trajectory_points - 1)])
    else:
        grid = np.linspace(0, last, config.trajectory_points)
    index = np.unique(grid.round().astype(int))
    q10, median, q90 = np.quantile(path[index], [0.1, 0.5, 0.9], axis=1)
    return {
        "samples": (index * config.training.n).tolist(),
        "theta_median": median.tolist(),
        "theta_q10": q10.tolist(),
        "theta_q90": q90.tolist(),
    }


def work_items(config: StudyConfig, seed: int) -> list:
    """(name, thunk) for every item of the study, cheapest first."""
    items = [("landscape", lambda: landscape(config)), ("weights", lambda: weights(config))]
    for n in config.variance_ns:
        items.append(
            (
                f"variance/n={n}",
                lambda n=n: variance_at_n(
                    n,
                    config.variance_k,
                    config.variance_theta,
                    config.variance_estimates,
                    _rng(seed, f"variance/n={n}"),
                ),
            )
        )
    for k in config.transformed_ks:
        items.append(
            (
                f"transformed/k={k}",
                lambda k=k: binned_transform(
                    config.transformed_n,
                    k,
                    config.transformed_batches,
                    config.transformed_bins,
                    _rng(seed, f"transformed/k={k}"),
                ),
            )
        )
    for k in config.training_ks:
        for name in ESTIMATORS:
            if is_defined(name, config.training.n, k):
                items.append(
                    (
                        f"training/k={k}/{name}",
                        lambda k=k, name=name: training_run(config, k, name, seed),
                    )
                )
    items.append(("annealed", lambda: annealed_run(config, seed)))
    return items


# --- running, checkpointing, assembling --------------------------------------------------------


def _settings(config: StudyConfig, seed: int) -> dict:
    return json.loads(json.dumps({"seed": seed, "config": asdict(config)}))


def _load_checkpoint(path, settings: dict) -> dict:
    """The finished work items of an interrupted run with the same settings, else {}.

    A checkpoint that cannot be read, or is not the object this module writes (a JSON list, items
    that are not an object), is recomputed, not trusted: one line on stderr says so.
    """
    if path is None or not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError, RecursionError) as error:
        return _ignored(path, f"unreadable ({type(error).__name__})")
    if not isinstance(saved, dict):
        return _ignored(path, f"not a checkpoint of pkpo toy (a JSON {type(saved).__name__})")
    if not isinstance(saved.get("items", {}), dict):
        return _ignored(
            path,
            f"not a checkpoint of pkpo toy (its items are a JSON {type(saved['items']).__name__})",
        )
    return saved.get("items", {}) if saved.get("settings") == settings else {}


def _ignored(path, why: str) -> dict:
    print(f"pkpo toy: note: ignoring {path}: {why}; recomputing", file=sys.stderr)
    return {}


def _save_checkpoint(path, settings: dict, items: dict) -> None:
    if path is not None:
        write_json(path, {"settings": settings, "items": items})


def run_study(config: StudyConfig, seed: int, checkpoint=None, progress: bool = True) -> dict:
    """Run (or resume) every work item and assemble the toy.json dictionary."""
    settings = _settings(config, seed)
    done = _load_checkpoint(checkpoint, settings)
    items = work_items(config, seed)
    with tqdm(
        total=len(items), desc="pkpo toy", unit="item", disable=not progress, initial=0
    ) as bar:
        for name, compute in items:
            bar.set_postfix_str(name)
            if name not in done:
                done[name] = json.loads(json_text(compute()))  # plain JSON types, same as on resume
                _save_checkpoint(checkpoint, settings, done)
            bar.update(1)
    return assemble(config, seed, done)


def assemble(config: StudyConfig, seed: int, items: dict) -> dict:
    """Arrange the per-item results into the documented toy.json layout."""
    land = items["landscape"]
    variance, means, errors = {}, {}, {}
    for n in config.variance_ns:
        result = items[f"variance/n={n}"]
        for name in ESTIMATORS:
            if name in result:
                variance.setdefault(name, {})[str(n)] = result[name]["variance"]
                means.setdefault(name, {})[str(n)] = result[name]["mean"]
                errors.setdefault(name, {})[str(n)] = result[name]["standard_error"]
    runs, converge, rmse = {}, {}, {}
    for k in config.training_ks:
        for name in ESTIMATORS:
            key = f"training/k={k}/{name}"
            if key in items:
                runs.setdefault(str(k), {})[name] = items[key]
                converge.setdefault(name, {})[str(k)] = items[key]["convergence"]["median"]
                rmse.setdefault(name, {})[str(k)] = items[key]["final_rmse"]
    return {
        "seed": seed,
        "settings": _settings(config, seed)["config"],
        "sigma": SIGMA,
        "theta_star": {k: round(v, 3) for k, v in land["theta_star"].items()},
        "paper_theta_star": {str(k): v for k, v in PAPER_THETA_STAR.items()},
        "landscape": land,
        "weights": {"n": config.weights_n, "w": items["weights"]},
        "variance": variance,
        "variance_mean": means,
        "variance_standard_error": errors,
        "variance_exact_derivative": items[f"variance/n={config.variance_ns[0]}"]["exact"],
        "variance_setup": {
            "k": config.variance_k,
            "theta": config.variance_theta,
            "estimates": config.variance_estimates,
        },
        "paper_variance": {
            name: {str(n): v for n, v in row.items()} for name, row in PAPER_VARIANCE.items()
        },
        "transformed": {
            "n": config.transformed_n,
            "batches": config.transformed_batches,
            "k": {str(k): items[f"transformed/k={k}"] for k in config.transformed_ks},
        },
        "training": {
            "theta_star": {
                str(k): land["theta_star"].get(str(k), theta_star(k))
                for k in sorted(set(config.training_ks) | set(config.anneal_ks))
            },
            "runs": runs,
            "samples_to_converge": converge,
            "final_rmse": rmse,
            "annealed": items["annealed"],
        },
    }
