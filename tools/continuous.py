"""Continuous rewards in training (issue 19, item 2): PKPO and its relatives trained on partial
credit, scored by held-out maxg@k.

::

    python tools/continuous.py plan                          # the runs, in priority order
    python tools/continuous.py run --out runs/continuous     # train what is missing (resumable)
    python tools/continuous.py run --out runs/continuous --until 14:30  # start none after 14:30 UTC
    python tools/continuous.py docs --out runs/continuous    # rewrite the docs' continuous blocks

The task is ``hidden-rule-partial``: the demo's hidden-rule task (``--preset demo``, feature
``mixed``) whose reward is the fraction of the answer's positions that are right, so held-out
numbers are maxg@k (the expected best reward of k samples, paper eq. 12). Every run is the demo
setting (300 steps of 16 prompts x 16 samples, lr 3e-4 with cosine decay, advantages scaled to mean
|A| = 1 per batch) with the overrides of :data:`RUNS`:

- ``k1``, ``k4``, ``k8``: PKPO at k_opt = 1, 4, 8 with s^(loo-1) (the diagonal: does the run trained
  for maxg@k_eval win at k_eval?);
- ``tzsm`` (the max-of-n estimator: it targets maxg@16) and ``anneal`` (k = 8 until step 180, then
  1, as in the gauntlet);
- ``k8_none``, ``k8_loo``, ``k8_centered``: PKPO at k = 8 with the other three baselines;
- ``tailrl``: TailRL (n grad sum_k maxg@k / k).

The learning rate is the demo's 3e-4 for every run: PKPO was run at it in the demo, and with the
advantage scale ``mean_abs`` every estimator's advantages are divided by their batch mean |A|, so
TailRL's different raw scale does not reach the step size and no method gets a grid of its own.

Seeds :data:`SEEDS` (5-9, as the gauntlet's report seeds: never used to choose or tune the demo
setting); a seed's runs share its warm start (the warm start is evaluated as the run
``warm_start``), and every run is evaluated on the same 512 held-out problems with 16 samples, so
every comparison is paired by seed and problem. :func:`plan` is a priority order (an interrupted or
time-boxed study has finished a prefix of it, and the docs say what did not run): for each seed the
warm start and the diagonal k1, k4, k8; then tzsm and the anneal; then the k = 8 baselines; then
TailRL. Run folders ``OUT/runs/<label>/seed<s>/``, warm starts cached in ``OUT/cache`` (or
``--cache``: the warm start does not depend on the reward, so a cache of the binary demo's warm
starts serves).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gauntlet import (  # tools/gauntlet.py, next to this file
    demo_base,
    log,
    run_plan,
    study_arguments,
    study_main,
)

from pkpo.rl.config import TrainConfig
from pkpo.rl.sweeps.grid import warm_config
from pkpo.rl.training.runfiles import SweepFiles

TASK = "hidden-rule-partial"
SEEDS = (5, 6, 7, 8, 9)
# label -> TrainConfig overrides on the demo setting
RUNS = {
    "k1": {"method": "pkpo", "k": "1"},
    "k4": {"method": "pkpo", "k": "4"},
    "k8": {"method": "pkpo", "k": "8"},
    "tzsm": {"method": "tzsm", "k": "1"},
    "anneal": {"method": "pkpo", "k": "8->1@180"},
    "k8_none": {"method": "pkpo", "k": "8", "baseline": "none"},
    "k8_loo": {"method": "pkpo", "k": "8", "baseline": "loo"},
    "k8_centered": {"method": "pkpo", "k": "8", "baseline": "centered"},
    "tailrl": {"method": "tailrl", "k": "1"},
}
# the groups of RUNS in priority order: the first for each seed in turn, then the others run by run
PRIORITY = [
    ["k1", "k4", "k8"],
    ["tzsm", "anneal"],
    ["k8_none", "k8_loo", "k8_centered"],
    ["tailrl"],
]


def base_config() -> TrainConfig:
    """The demo setting on the partial-credit task, with the paper's baseline s^(loo-1)."""
    return demo_base().replace(task=TASK, baseline="loo_minus_one")


def run_config(label: str, seed: int, out: Path) -> TrainConfig:
    """The config of run ``label`` (:data:`RUNS`) at ``seed``, in ``OUT/runs/<label>/seed<s>``."""
    if label not in RUNS:
        raise ValueError(f"unknown run {label!r}; expected one of {', '.join(RUNS)}")
    folder = SweepFiles(out).run(label, seed).folder
    return base_config().replace(**RUNS[label], seed=seed, out_dir=str(folder))


def plan(out: Path) -> list[tuple[str, callable]]:
    """The jobs in priority order: (description, a function returning the job's TrainConfig and
    whether it is a warm-start evaluation)."""
    jobs = []
    for seed in SEEDS:
        jobs.append(
            (f"warm start seed {seed}", lambda s=seed: (warm_config(base_config(), s, out), True))
        )
        jobs += [
            (f"{label} seed {seed}", lambda a=label, s=seed: (run_config(a, s, out), False))
            for label in PRIORITY[0]
        ]
    for group in PRIORITY[1:]:
        for label in group:
            jobs += [
                (f"{label} seed {seed}", lambda a=label, s=seed: (run_config(a, s, out), False))
                for seed in SEEDS
            ]
    return jobs


def main(argv=None) -> int:
    parser = study_arguments("python tools/continuous.py", __doc__, "runs/continuous")
    parser.add_argument("--cache", help="run: the warm-start cache folder (default OUT/cache)")
    args = parser.parse_args(argv)
    cache = Path(args.cache) if args.cache else None

    def docs(out: Path, args) -> None:
        from continuous_report import write_docs  # tools/continuous_report.py, next to this file

        write_docs(out, Path(args.docs), args.shown_command)

    return study_main(
        parser, args, plan, lambda out, until: run_plan(out, plan(out), until, log, cache), docs
    )


if __name__ == "__main__":
    sys.exit(main())
