"""Reading finished runs: the one place that knows what a run folder of a sweep holds.

A sweep (``pkpo sweep`` / ``pkpo demo``) keeps each run in ``OUT/runs/<label>/seed<s>/``: its
``final.json`` (:func:`finished_runs`), the per-problem record of its final evaluation
(``eval_detail.json``, :func:`read_detail`) and its ``metrics.jsonl`` (:func:`read_curves`). The
run ``warm_start`` (:data:`WARM_LABEL`) is the warm-started policy before RL. :func:`aggregate`
groups the final numbers by run label (mean and standard error over seeds);
:func:`per_problem_pass_at_k` turns a per-problem record into unbiased pass@k per problem. The
tables (:mod:`pkpo.rl.sweeps.report`) and figures (:mod:`pkpo.rl.sweeps.plots`) use these.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

import pkpo
from pkpo.metrics import standard_error

WARM_LABEL = "warm_start"  # the run label of the warm-started policy's evaluation (step 0, no RL)
K_EVAL = (1, 2, 4, 8, 16)  # the k_eval of the tables' and figures' pass@k columns


def finished_runs(out: Path) -> list[dict]:
    """The final.json of every finished run under ``out/runs/<label>/seed<s>/``, labelled by folder."""
    finals = []
    for path in sorted(Path(out).glob("runs/*/seed*/final.json")):
        final = json.loads(path.read_text())
        final["label"] = path.parent.parent.name
        final["run_dir"] = str(path.parent)  # the folder may have moved since the run
        finals.append(final)
    order = [WARM_LABEL, "loo", "k1", "k2", "k4", "k8", "k16", "anneal", "tzsm", "entropy", "grpo"]
    return sorted(finals, key=lambda f: (order.index(f["label"]) if f["label"] in order else len(order),
                                         f["label"], f["seed"]))


def _mean_se(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), standard_error(values)


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
        row = {"label": label, "method": fs[0]["method"], "k_schedule": fs[0]["k_schedule"],
               "baseline": fs[0]["baseline"], "seeds": sorted(f["seed"] for f in fs), "metric": metric}
        for k in K_EVAL:
            key = f"{metric}@{k}"
            vals = [f[key] for f in fs if key in f]
            if vals:
                mean, se = _mean_se(vals)
                if len(vals) == 1:
                    se = fs[0].get(f"{key}_se", float("nan"))
                row[key], row[key + "_se"] = mean, se
        for key in ("cumulative_solve_rate", "hard_solve_rate", "entropy", "reward_mean"):
            vals = [f[key] for f in fs if f.get(key) is not None]
            if vals:
                row[key], row[key + "_se"] = _mean_se(vals)
        rows.append(row)
    return rows


def read_detail(final: dict) -> dict | None:
    """The per-problem record of a run's final evaluation (``eval_detail.json``), or None."""
    path = run_dir_of(final) / "eval_detail.json"
    return json.loads(path.read_text()) if path.exists() else None


def per_problem_pass_at_k(successes, samples: int, k: int) -> np.ndarray:
    """Unbiased pass@k of each problem (paper eq. 3) from its number of successful samples out of ``samples``."""
    successes = np.asarray(successes)
    correct = np.arange(samples)[None, :] < successes[:, None]  # (P, samples): c successes, order irrelevant
    return np.asarray(pkpo.pass_at_k(correct, k), dtype=float)


def read_curves(run_dir: Path) -> dict:
    """Per-step and eval curves of one run from its metrics.jsonl."""
    steps, solve, hard, ent, evals = [], [], [], [], defaultdict(list)
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
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
    return {"step": np.array(steps), "solve": np.array(solve), "hard": np.array(hard, dtype=float),
            "entropy": np.array(ent), "eval": {k: np.array(v) for k, v in evals.items()}}
