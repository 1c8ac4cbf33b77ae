"""The maze benchmark: MaxRL's maze study at CPU scale, every method tuned, then paired seeds.

Every method is tuned on validation mazes, then reported on held-out mazes over paired seeds.

::

    python -m pkpo.rl.sweeps.maze --out runs/maze            # the full benchmark
    python -m pkpo.rl.sweeps.maze --out runs/maze --jobs 2   # two runs at a time (one thread each)
    python -m pkpo.rl.sweeps.maze --out runs/maze --methods grpo,pkpo_k16 --no-tune --steps 100

Three stages, each resumable (a finished run with the same config is reused, an interrupted one
resumes from its checkpoint), in folders named after the method:

1. **Warm starts** (supervised shortest paths, cached per seed) for the tuning seed and every report
   seed; each report seed's warm start is evaluated on the held-out mazes as the run ``warm_start``.
2. **Tuning** (``OUT/tune/<method>/<point>/seed<TUNE_SEED>``): every point of the method's grid (the
   learning rates, times its own parameter grid from :data:`PARAM_GRID`) with the tuning seed,
   evaluated on the validation mazes. The best point maximises the method's own target on the
   validation mazes at temperature 1 (:data:`TARGETS`, :func:`tuning_score`): pass@1 for the pass@1
   methods and the anneal (which ends at k = 1), pass@k for PKPO at k, and for the methods whose
   objective is no single pass@k (MaxRL's sum of pass@k / k, RS-GRPO, W-REINFORCE) the mean of
   pass@1 and pass@16, the two ends of the published table.
3. **Report** (``OUT/runs/<method>/seed<s>``): each method at its best point for every report seed
   (paired: a seed's runs share its warm start, its training mazes and the held-out mazes),
   evaluated by the trainer on the held-out mazes at ``eval_temperature`` 1 (pass@k for k up to
   ``eval_samples``) and near-greedily (``greedy_pass@1``, ``greedy_temperature`` <= 0.1).

Every method gets the same samples: ``steps`` x ``prompts_per_step`` x ``n``. A method the trainer
does not know (its config fails validation) is skipped with a message, so the benchmark runs with
whatever subset of methods the installed trainer offers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import time
from pathlib import Path

from ..._output import atomic_write
from ..config import PRESETS, TrainConfig
from .grid import _run_jobs, check_grid_runs, warm_config

# the benchmark's setting (chosen by measurement: docs/rl.md, "The maze task")
MAZE_PRESET = PRESETS["maze"]
# method name -> TrainConfig overrides (the run folder is named after the method)
METHOD_RUNS = {
    "grpo": {"method": "grpo"},
    "dr_grpo": {"method": "dr_grpo"},
    "grpo_entropy": {"method": "grpo"},  # entropy_coef from PARAM_GRID
    "pkpo_k4": {"method": "pkpo", "k": "4"},
    "pkpo_k16": {"method": "pkpo", "k": "16"},
    "pkpo_anneal": {
        "method": "pkpo",
        "k": "16->1@{anneal_step}",
    },  # k = 16 for 60 % of the steps, then 1
    "maxrl": {"method": "maxrl"},
    "rs_grpo": {"method": "rs_grpo"},
    "w_reinforce": {"method": "w_reinforce"},
    "pkpo_two_baselines": {"method": "pkpo_two_baselines", "k": "16"},
}
# 3e-4 and 1e-3 broke the warm-started policy within 30 steps, and 3e-5 barely moved it in 100
# (docs/rl.md)
LRS = (1e-4, 2e-4)
PARAM_GRID = {  # each method's own parameter, tuned with the learning rate
    "grpo_entropy": {"entropy_coef": (0.01, 0.05)},
    "rs_grpo": {"method_params": ("beta=2", "beta=4")},
    "w_reinforce": {"method_params": ("lam=0.1", "lam=0.5")},
}
TUNE_SEED = 100
REPORT_SEEDS = (0, 1, 2)


def method_overrides(name: str, steps: int) -> dict:
    """The TrainConfig overrides of a method (``{anneal_step}`` becomes 60 % of ``steps``)."""
    if name not in METHOD_RUNS:
        raise ValueError(f"unknown maze method {name!r}; expected one of {list(METHOD_RUNS)}")
    spec = dict(METHOD_RUNS[name])
    if "k" in spec:
        spec["k"] = spec["k"].format(anneal_step=max(1, round(0.6 * steps)))
    return spec


def grid_points(name: str, lrs) -> list[dict]:
    """Every tuning point of a method: each learning rate times its own parameter grid."""
    params = PARAM_GRID.get(name, {})
    keys = sorted(params)
    return [
        {"lr": lr, **dict(zip(keys, values))}
        for lr in lrs
        for values in itertools.product(*(params[k] for k in keys))
    ]


def point_label(point: dict) -> str:
    """A folder name for a tuning point: ``lr0.0001``, ``entropy_coef0.05_lr0.0001``, ..."""
    parts = []
    for key, value in sorted(point.items()):
        parts.append(value.replace("=", "") if key == "method_params" else f"{key}{value:g}")
    return "_".join(parts)


# method -> the validation metrics whose mean it is tuned by (its own target)
TARGETS = {
    "grpo": ("pass@1",),
    "dr_grpo": ("pass@1",),
    "grpo_entropy": ("pass@1",),
    "pkpo_k4": ("pass@4",),
    "pkpo_k16": ("pass@16",),
    "pkpo_anneal": ("pass@1",),
    "pkpo_two_baselines": ("pass@16",),
}
DEFAULT_TARGET = ("pass@1", "pass@16")


def tuning_score(final: dict, method: str | None = None) -> float:
    """A method's tuning criterion: the mean of its :data:`TARGETS` metrics (T = 1) on the
    evaluated mazes; pass@1 and pass@16 for a method without its own."""
    keys = TARGETS.get(method, DEFAULT_TARGET)
    return sum(final[key] for key in keys) / len(keys)


def try_config(base: TrainConfig, changes: dict) -> TrainConfig | None:
    """``base`` with ``changes``, validated; None (with a note) if the trainer lacks the method."""
    try:
        return TrainConfig.from_dict({**base.to_dict(), **changes})
    except (ValueError, TypeError) as exc:
        print(
            f"maze benchmark: skipping {changes.get('out_dir')}: {exc}", file=sys.stderr, flush=True
        )
        return None


def run_benchmark(
    out: Path,
    methods: list[str],
    *,
    lrs=LRS,
    seeds=REPORT_SEEDS,
    tune_seed: int = TUNE_SEED,
    jobs: int = 1,
    overrides: dict | None = None,
    tune: bool = True,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """The three stages (module docstring); returns {method: best tuning point}.

    A run folder holding a run with other settings is refused (``overwrite``: replaced), as in
    ``pkpo sweep``.
    """
    base = TrainConfig.from_dict({**TrainConfig().to_dict(), **MAZE_PRESET, **(overrides or {})})
    cache = str(out / "cache")
    # 1. warm starts (the tuning seed's is fitted but not evaluated on held-out mazes)
    warm = [warm_config(base, s, out) for s in seeds]
    check_grid_runs(warm, overwrite)
    jobs_warm = [
        {"config": c.to_dict(), "cache_dir": cache, "warm": True, "key": f"warm{c.seed}"}
        for c in warm
    ]
    _run_jobs(jobs_warm, min(jobs, len(jobs_warm)), "warm starts", progress)
    # 2. tuning on validation mazes
    best: dict[str, dict] = {}
    if tune and len(lrs) * max(1, len(PARAM_GRID)) > 0:
        tune_cfgs = []
        for name in methods:
            for point in grid_points(name, lrs):
                cfg = try_config(
                    base,
                    {
                        **method_overrides(name, base.steps),
                        **point,
                        "seed": tune_seed,
                        "eval_split": "validation",
                        "out_dir": str(
                            out / "tune" / name / point_label(point) / f"seed{tune_seed}"
                        ),
                    },
                )
                if cfg is not None:
                    tune_cfgs.append((name, point, cfg))
        check_grid_runs([c for _, _, c in tune_cfgs], overwrite)
        finals = _run_jobs(
            [{"config": c.to_dict(), "cache_dir": cache} for _, _, c in tune_cfgs],
            jobs,
            "tuning",
            progress,
        )
        for (name, point, _), final in zip(tune_cfgs, finals):
            score = tuning_score(final, name)
            if name not in best or score > best[name]["score"]:
                best[name] = {"point": point, "score": score}
        atomic_write(out / "tuning.json", json.dumps(best, indent=2))
    else:  # no tuning: the first grid point of each method
        best = {name: {"point": grid_points(name, lrs)[0], "score": None} for name in methods}
    # 3. report runs on held-out mazes
    report = []
    for name in methods:
        if name not in best:
            continue
        for seed in seeds:
            cfg = try_config(
                base,
                {
                    **method_overrides(name, base.steps),
                    **best[name]["point"],
                    "seed": seed,
                    "out_dir": str(out / "runs" / name / f"seed{seed}"),
                },
            )
            if cfg is not None:
                report.append(cfg)
    check_grid_runs(report, overwrite)
    _run_jobs(
        [{"config": c.to_dict(), "cache_dir": cache} for c in report], jobs, "report runs", progress
    )
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pkpo.rl.sweeps.maze", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", required=True, help="output folder (runs/, tune/, cache/, tuning.json)"
    )
    parser.add_argument(
        "--methods", default=",".join(METHOD_RUNS), help="comma-separated methods (default: all)"
    )
    parser.add_argument(
        "--lrs", type=float, nargs="+", default=list(LRS), help="learning-rate grid"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(REPORT_SEEDS), help="report seeds"
    )
    parser.add_argument(
        "--no-tune", action="store_true", help="skip tuning: the first grid point of each method"
    )
    parser.add_argument("--steps", type=int, help="RL steps per run (default: the preset's)")
    parser.add_argument(
        "--set",
        default="{}",
        metavar="JSON",
        help="other TrainConfig overrides of the preset as JSON: '{\"final_eval_problems\": 128}'",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace runs made with other settings"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHOD_RUNS]
    if unknown:
        print(
            f"maze benchmark: error: unknown methods {unknown}; expected {list(METHOD_RUNS)}",
            file=sys.stderr,
        )
        return 2
    if args.jobs < 1 or (args.steps is not None and args.steps < 1):
        print("maze benchmark: error: --jobs and --steps must be >= 1", file=sys.stderr)
        return 2
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "commands.txt", "a") as fh:  # what made the runs in this folder, for the report
        command = ["python", "-m", "pkpo.rl.sweeps.maze", *(argv or sys.argv[1:])]
        fh.write(shlex.join(command) + "\n")
    try:
        overrides = {**json.loads(args.set), **({"steps": args.steps} if args.steps else {})}
        TrainConfig.from_dict({**TrainConfig().to_dict(), **MAZE_PRESET, **overrides})
    except (ValueError, TypeError) as exc:
        print(f"maze benchmark: error: bad --set: {exc}", file=sys.stderr)
        return 2
    best = run_benchmark(
        out,
        methods,
        lrs=args.lrs,
        seeds=args.seeds,
        jobs=args.jobs,
        overrides=overrides,
        tune=not args.no_tune,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print(json.dumps({"best": best, "wall_s": round(time.time() - t0, 1)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
