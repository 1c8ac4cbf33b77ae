"""Reading finished runs: the one place that knows what a run folder of a sweep holds.

A sweep (``pkpo sweep`` / ``pkpo demo``) keeps each run in ``OUT/runs/<label>/seed<s>/``: its
``final.json`` (:func:`finished_runs`), the per-problem record of its final evaluation
(``eval_detail.json``, :func:`read_detail`) and its ``metrics.jsonl`` (:func:`read_curves`). The
run ``warm_start`` (:data:`WARM_LABEL`) is the warm-started policy before RL. :func:`aggregate`
groups the final numbers by run label (mean and standard error over seeds);
:func:`per_problem_pass_at_k` turns a per-problem record into unbiased pass@k per problem
(:func:`per_problem_estimate`: maxg@k instead when the record holds every sample's reward, as it
does for a task with continuous rewards). The tables (:mod:`pkpo.rl.sweeps.report`) and figures
(:mod:`pkpo.rl.sweeps.plots`) use these.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

import pkpo
from pkpo.metrics import standard_error

from ..training.runfiles import RunFiles, SweepFiles, read_metrics

WARM_LABEL = "warm_start"  # the run label of the warm-started policy's evaluation (step 0, no RL)
K_EVAL = (1, 2, 4, 8, 16)  # the k_eval of the tables' and figures' pass@k columns


def finished_runs(out: Path) -> list[dict]:
    """The final.json of every finished run under ``out/runs/<label>/seed<s>/``, labelled by folder.

    Raises:
        ValueError: a final.json that is not a finished run's record (damaged, cut short, edited),
            naming the file.
    """
    finals = []
    for path in SweepFiles(out).finals():
        final = read_final(path)
        final["label"] = path.parent.parent.name
        final["run_dir"] = str(path.parent)  # the folder may have moved since the run
        finals.append(final)
    order = [
        WARM_LABEL,
        "loo",
        "k1",
        "grpo",
        "maxrl",
        "entropy",
        "k2",
        "k4",
        "k8",
        "k16",
        "anneal",
        "tzsm",
    ]
    return sorted(
        finals,
        key=lambda f: (
            order.index(f["label"]) if f["label"] in order else len(order),
            f["label"],
            f["seed"],
        ),
    )


def _nan_if_none(value) -> float:
    """A number read from JSON, where pkpo writes NaN as null (pkpo._output.write_json)."""
    return float("nan") if value is None else value


def _mean_se(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), standard_error(values)


# what the tables and figures read from every final.json: field -> (type, how a message names it)
_FINAL_FIELDS = {
    "seed": (int, "an integer"),
    "config": (dict, "an object"),
    "method": (str, "a string"),
    "k_schedule": (str, "a string"),
    "baseline": (str, "a string"),
}
_ESTIMATE = re.compile(r"(pass|maxg)@\d+")


def read_final(path: Path) -> dict:
    """One run's final.json, checked for the fields the report reads; else a one-line ValueError."""

    def refuse(why: str) -> ValueError:
        return ValueError(
            f"{str(path)!r} is not a finished run's final.json ({why}); re-run that run "
            "or remove its folder"
        )

    try:
        final = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise refuse("not UTF-8 text") from None
    except (ValueError, RecursionError) as error:
        raise refuse(f"invalid JSON: {' '.join(str(error).split())[:120]}") from None
    if not isinstance(final, dict):
        raise refuse(f"a JSON {type(final).__name__}, not an object")
    for key, (kind, name) in _FINAL_FIELDS.items():
        if not isinstance(final.get(key), kind) or isinstance(final.get(key), bool):
            raise refuse(f"{key!r} is missing or not {name}")
    if isinstance(final["config"].get("n"), bool) or not isinstance(final["config"].get("n"), int):
        raise refuse("its config has no group size 'n'")
    for key, value in final.items():
        if _ESTIMATE.fullmatch(key) and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise refuse(f"{key!r} is {json.dumps(value)[:40]}, not a number")
    return final


def run_dir_of(final: dict) -> Path:
    """The folder of a finished run (where it is now, or where it was trained)."""
    return Path(final.get("run_dir") or final["config"]["out_dir"])


def aggregate(finals: list[dict]) -> list[dict]:
    """Group final metrics by run label; mean and SE over seeds for each column."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for f in finals:
        groups[f["label"]].append(f)
    rows = []
    for label, fs in groups.items():
        metric = "pass" if any("pass@1" in f for f in fs) else "maxg"
        row = {
            "label": label,
            "method": fs[0]["method"],
            "k_schedule": fs[0]["k_schedule"],
            "baseline": fs[0]["baseline"],
            "seeds": sorted(f["seed"] for f in fs),
            "metric": metric,
        }
        for k in K_EVAL:
            key = f"{metric}@{k}"
            vals = [f[key] for f in fs if key in f]
            if vals:
                mean, se = _mean_se(vals)
                if len(vals) == 1:
                    se = _nan_if_none(fs[0].get(f"{key}_se"))
                row[key], row[key + "_se"] = mean, se
        for key in (
            f"greedy_{metric}@1",
            "cumulative_solve_rate",
            "hard_solve_rate",
            "entropy",
            "reward_mean",
        ):
            vals = [f[key] for f in fs if f.get(key) is not None]
            if vals:
                row[key], row[key + "_se"] = _mean_se(vals)
                if len(vals) == 1 and key.startswith("greedy_"):  # one seed: the SE over problems
                    row[key + "_se"] = _nan_if_none(fs[0].get(f"{key}_se"))
        rows.append(row)
    return rows


def read_detail(final: dict) -> dict | None:
    """The per-problem record of a run's final evaluation (``eval_detail.json``), or None."""
    path = RunFiles(run_dir_of(final)).eval_detail
    return json.loads(path.read_text()) if path.exists() else None


def per_problem_pass_at_k(successes, samples: int, k: int) -> np.ndarray:
    """Unbiased pass@k of each problem (paper eq. 3) from its number of successful samples out of
    ``samples``."""
    successes = np.asarray(successes)
    correct = (
        np.arange(samples)[None, :] < successes[:, None]
    )  # (P, samples): c successes, order irrelevant
    return np.asarray(pkpo.pass_at_k(correct, k), dtype=float)


def per_problem_maxg_at_k(rewards, k: int) -> np.ndarray:
    """Unbiased maxg@k of each problem (paper eqs. 12-14) from its samples' rewards (P, samples)."""
    return np.asarray(pkpo.maxg_at_k(np.asarray(rewards, dtype=float), k), dtype=float)


def per_problem_estimate(detail: dict, k: int) -> np.ndarray:
    """Held-out pass@k of each problem, or maxg@k when the record holds every sample's reward (a
    task with continuous rewards)."""
    if "rewards" in detail:
        return per_problem_maxg_at_k(detail["rewards"], k)
    return per_problem_pass_at_k(detail["successes"], detail["samples"], k)


def per_problem_greedy(detail: dict) -> np.ndarray | None:
    """Near-greedy pass@1 of each problem (the fraction of its near-greedy samples that succeeded;
    with continuous rewards their mean reward, near-greedy maxg@1), or None for a run evaluated
    before near-greedy decoding was measured."""
    if "greedy_rewards" in detail:
        return np.asarray(detail["greedy_rewards"], dtype=float).mean(axis=1)
    if "greedy_successes" not in detail:
        return None
    return np.asarray(detail["greedy_successes"], dtype=float) / detail["greedy_samples"]


def read_curves(run_dir: Path) -> dict:
    """Per-step and eval curves of one run from its metrics.jsonl."""
    steps, solve, hard, ent, evals = [], [], [], [], defaultdict(list)
    path = RunFiles(run_dir).metrics
    if not path.exists():
        return {}
    for rec in read_metrics(path):
        if "k" in rec and "train/cumulative_solve_rate" in rec:
            steps.append(rec["step"])
            solve.append(rec["train/cumulative_solve_rate"])
            hard.append(rec.get("train/hard_solve_rate", np.nan))
            ent.append(rec["policy/entropy"])
        elif any(key.startswith("eval/") for key in rec):
            evals["step"].append(rec["step"])
            for key, value in rec.items():
                if key.startswith("eval/"):
                    evals[key[5:]].append(value)
    return {
        "step": np.array(steps),
        "solve": _array(solve),
        "hard": np.array(hard, dtype=float),
        "entropy": _array(ent),
        "eval": {k: _array(v) for k, v in evals.items()},
    }


def _array(values: list) -> np.ndarray:
    """The values as an array; a None (a NaN, as pkpo writes it in JSON) makes it float with NaN."""
    return np.array(values, dtype=float) if any(v is None for v in values) else np.array(values)
