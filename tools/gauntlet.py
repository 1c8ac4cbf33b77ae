"""The baseline gauntlet on the demo task: every method tuned on validation, then scored on fresh
seeds.

::

    python tools/gauntlet.py run --out runs/gauntlet  # train what is missing (resumable)
    python tools/gauntlet.py run --out runs/gauntlet --until 14:30  # start no run after 14:30 UTC
    python tools/gauntlet.py docs --out runs/gauntlet  # rewrite the docs' gauntlet blocks

The study has four parts, in the order of :func:`plan` (a priority order: an interrupted or
time-boxed study has finished a prefix of it, and the docs report exactly what finished):

1. **Tuning** on the validation split, seed :data:`TUNING_SEED` (one of the seeds the demo setting
   was chosen on): each method's grid (:data:`METHODS`), scored by the method's own target (its
   ``target``: pass@1 for the pass@1 methods, pass@k for PKPO at k, ...). The winner of each grid is
   the setting used in step 2; a grid that has not finished uses its first point (reported as
   untuned).
2. **Report runs** on the held-out split, seeds :data:`REPORT_SEEDS` (never used for tuning or for
   choosing the demo setting), every method at its tuned setting, paired by seed and problem.
3. **The ``first`` task** (every rule a function of the first digit: pass@1 and pass@k share one
   optimum) at a calibrated and an over-confident warm start, scored by the area under the greedy
   pass@1 curve (:data:`FIRST_WARM`).

4. **Added later, at the end** (so that a study that finished the parts above keeps every run):
   the difficulty filter's threshold grid, the anneal on the ``first`` task (:data:`FIRST_ANNEAL`)
   and the phase diagram of the PKPO effect (k8 - k1, seed :data:`PHASE_SEED`) against the trap's
   strength: the majority rule's share of the ambiguous problems (:data:`PHASE_SHARES`) x the warm
   start's over-confidence (:data:`PHASE_WARM`); its cell (0.6, demo) is the report runs of that
   seed.

Run folders: ``OUT/tune/<method>/<point>/seed<s>``, ``OUT/report/runs/<method>/seed<s>``,
``OUT/first/<warm>/runs/<method>/seed<s>``, ``OUT/phase/<cell>/runs/<method>/seed<s>``; warm
starts in ``OUT/cache``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from pkpo._output import write_json
from pkpo.rl.config import PRESETS, TrainConfig, changed_fields
from pkpo.rl.sweeps.grid import _worker, finished_run, warm_config
from pkpo.rl.sweeps.runs import WARM_LABEL
from pkpo.rl.tasks.hidden_rule import MAJORITY_SHARE
from pkpo.rl.training.runfiles import RunFiles, SweepFiles

TUNING_SEED = 0
REPORT_SEEDS = (5, 6, 7, 8, 9)
# label -> (TrainConfig overrides on the demo preset, own target metric, tuning grid {field:
# values})
METHODS = {
    "k1": ({"method": "pkpo", "k": "1"}, "pass@1", {"lr": [3e-4, 1e-3]}),
    "k4": ({"method": "pkpo", "k": "4"}, "pass@4", {}),
    "k8": ({"method": "pkpo", "k": "8"}, "pass@8", {}),
    "anneal": ({"method": "pkpo", "k": "8->1@180"}, "pass@1", {}),
    # 0.5 first: the threshold of issue 18's audit (groups with more than 8 of 16 correct get no
    # update), the one the report ran at before the grid was tuned (at the end of the plan)
    "filter": ({"method": "pkpo", "k": "1"}, "pass@1", {"max_group_success": [0.5, 0.75]}),
    "grpo": ({"method": "grpo", "k": "1"}, "pass@1", {"lr": [3e-4, 1e-3]}),
    "maxrl": ({"method": "maxrl", "k": "1"}, "pass@1", {}),
    "entropy": ({"method": "pkpo", "k": "1"}, "pass@1", {"entropy_coef": [0.2, 0.5]}),
    "positive": ({"method": "pkpo", "k": "1", "positive_only": True}, "pass@1", {}),
    "hot": ({"method": "pkpo", "k": "1"}, "pass@1", {"temperature": [1.5, 2.0]}),
    "n64": ({"method": "pkpo", "k": "1", "n": 64, "prompts_per_step": 4}, "pass@1", {}),
    "tzsm": ({"method": "tzsm", "k": "1"}, "pass@16", {}),
    "k4_centered": ({"method": "pkpo", "k": "4", "baseline": "centered"}, "pass@4", {}),
    "k8_centered": ({"method": "pkpo", "k": "8", "baseline": "centered"}, "pass@8", {}),
}
# the runs of the report, in priority order (the decision rules need the first group)
PRIORITY = [
    ["k1", "k8", "anneal", "filter"],
    ["grpo", "maxrl", "entropy", "k4"],
    ["positive", "hot", "n64", "tzsm", "k4_centered", "k8_centered"],
]
# the first task: warm start -> overrides (calibrated: demonstrations follow the prior;
# over-confident: the prior cubed), and its runs
FIRST_BASE = {
    "feature": "first",
    "eval_every": 30,
    "eval_problems": 128,
    "final_eval_problems": 256,
}
FIRST_WARM = {
    "calibrated": {"demo_power": 1.0, "demo_uniform": 0.0},
    "overconfident": {"demo_power": 3.0, "demo_uniform": 0.0},
}
FIRST_RUNS = {
    "k1": {"method": "pkpo", "k": "1"},
    "k8": {"method": "pkpo", "k": "8"},
    "anneal": METHODS["anneal"][0],
}
FIRST_ANNEAL = "anneal"  # its runs come after everything else but the phase diagram
FIRST_SEEDS = (5, 6, 7)
# the phase diagram: majority shares x warm starts (the demo preset's, and the over-confident one
# of the first task: the marginal prior cubed, no uniform mixture), PKPO at k = 1 and 8, one seed.
# 0.75, not 0.8: at 0.8 the 512 validation problems of 5-digit strings cannot follow the law
# exactly (cell (5, "i") would need 2 strings, 1 exists), and the task refuses to build.
PHASE_SHARES = (0.4, MAJORITY_SHARE, 0.75)
PHASE_WARM = {"demo": {}, "overconfident": FIRST_WARM["overconfident"]}
PHASE_RUNS = ("k1", "k8")
PHASE_SEED = REPORT_SEEDS[0]
PHASE_DEFAULT = (MAJORITY_SHARE, "demo")  # the report's own setting: its runs are this cell's


def demo_base() -> TrainConfig:
    return TrainConfig().replace(**PRESETS["demo"], tensorboard=False)


def grid_points(grid: dict) -> list[dict]:
    """The points of a one-knob grid ({field: [v1, v2]} -> [{field: v1}, {field: v2}]); [{}] without
    one."""
    if not grid:
        return [{}]
    ((field, values),) = grid.items()
    return [{field: v} for v in values]


def point_name(point: dict) -> str:
    return "default" if not point else ",".join(f"{k}={v}" for k, v in point.items())


def tuning_config(label: str, point: dict, out: Path) -> TrainConfig:
    overrides, _, _ = METHODS[label]
    return demo_base().replace(
        **overrides,
        **point,
        seed=TUNING_SEED,
        eval_split="validation",
        out_dir=str(out / "tune" / label / point_name(point) / f"seed{TUNING_SEED}"),
    )


def tuned_point(label: str, out: Path) -> tuple[dict, str]:
    """The grid point with the best validation value of the method's target, and how it was
    chosen."""
    _, target, grid = METHODS[label]
    points = grid_points(grid)
    if len(points) == 1:
        return points[0], "no knob tuned"
    scores = {
        point_name(p): (finished_run(tuning_config(label, p, out)) or {}).get(target)
        for p in points
    }
    if any(v is None for v in scores.values()):
        return points[
            0
        ], f"untuned: tuning grid unfinished, its first point {point_name(points[0])}"
    best = max(points, key=lambda p: scores[point_name(p)])
    shown = ", ".join(f"{name}: {100 * v:.2f}" for name, v in scores.items())
    return best, f"validation {target} in % ({shown})"


def report_config(label: str, seed: int, out: Path) -> TrainConfig:
    overrides, _, _ = METHODS[label]
    point, _ = tuned_point(label, out)
    return demo_base().replace(
        **overrides,
        **point,
        seed=seed,
        out_dir=str(SweepFiles(out / "report").run(label, seed).folder),
    )


def phase_cell(share: float, warm: str) -> str:
    """The folder name of a phase-diagram cell ("share0.4_overconfident")."""
    return f"share{share}_{warm}"


def phase_folder(share: float, warm: str, out: Path) -> Path:
    """The sweep folder of a cell: ``OUT/report`` for :data:`PHASE_DEFAULT` (its runs are the report
    runs), else ``OUT/phase/<cell>``."""
    if (share, warm) == PHASE_DEFAULT:
        return out / "report"
    return out / "phase" / phase_cell(share, warm)


def phase_base(share: float, warm: str) -> TrainConfig:
    """The demo setting with a cell's majority share and warm start."""
    return demo_base().replace(majority_share=share, **PHASE_WARM[warm])


def phase_config(share: float, warm: str, label: str, seed: int, out: Path) -> TrainConfig:
    """A cell's run of ``label``: the report run (tuned setting included) with the cell's task and
    warm start; at :data:`PHASE_DEFAULT` it is the report run itself."""
    folder = SweepFiles(phase_folder(share, warm, out)).run(label, seed).folder
    return report_config(label, seed, out).replace(
        majority_share=share, **PHASE_WARM[warm], out_dir=str(folder)
    )


def first_config(warm: str, label: str, seed: int, out: Path) -> TrainConfig:
    folder = SweepFiles(out / "first" / warm).run(label, seed).folder
    return demo_base().replace(
        **FIRST_BASE, **FIRST_WARM[warm], **FIRST_RUNS[label], seed=seed, out_dir=str(folder)
    )


def plan(out: Path) -> list[tuple[str, callable]]:
    """The jobs in priority order: (description, a function returning the job's TrainConfig and
    whether it is a warm-start evaluation). Configs are made when a job starts, so tuned settings
    are read then."""
    jobs = []

    def tune(label):
        for point in grid_points(METHODS[label][2]):
            if len(grid_points(METHODS[label][2])) > 1:
                jobs.append(
                    (
                        f"tune {label} {point_name(point)}",
                        lambda label=label, point=point: (tuning_config(label, point, out), False),
                    )
                )

    def warm(seed):
        jobs.append(
            (
                f"warm start seed {seed}",
                lambda seed=seed: (warm_config(demo_base(), seed, out / "report"), True),
            )
        )

    def report(label, seeds):
        for seed in seeds:
            jobs.append(
                (
                    f"report {label} seed {seed}",
                    lambda label=label, seed=seed: (report_config(label, seed, out), False),
                )
            )

    def first(seed, labels=tuple(label for label in FIRST_RUNS if label != FIRST_ANNEAL)):
        for name in FIRST_WARM:
            base = demo_base().replace(**FIRST_BASE, **FIRST_WARM[name])
            jobs.append(
                (
                    f"first {name} warm start seed {seed}",
                    lambda base=base, name=name, seed=seed: (
                        warm_config(base, seed, out / "first" / name),
                        True,
                    ),
                )
            )
            for label in labels:
                jobs.append(
                    (
                        f"first {name} {label} seed {seed}",
                        lambda name=name, label=label, seed=seed: (
                            first_config(name, label, seed, out),
                            False,
                        ),
                    )
                )

    def phase(share, warm_name):
        cell = phase_cell(share, warm_name)
        jobs.append(
            (
                f"phase {cell} warm start seed {PHASE_SEED}",
                lambda share=share, warm_name=warm_name: (
                    warm_config(
                        phase_base(share, warm_name),
                        PHASE_SEED,
                        phase_folder(share, warm_name, out),
                    ),
                    True,
                ),
            )
        )
        for label in PHASE_RUNS:
            jobs.append(
                (
                    f"phase {cell} {label} seed {PHASE_SEED}",
                    lambda share=share, warm_name=warm_name, label=label: (
                        phase_config(share, warm_name, label, PHASE_SEED, out),
                        False,
                    ),
                )
            )

    for seed in REPORT_SEEDS:
        warm(seed)
        for label in PRIORITY[0]:
            report(label, [seed])
    for seed in FIRST_SEEDS[:2]:  # rule 3 needs two seeds at both warm starts
        first(seed)
    for label in PRIORITY[1]:
        tune(label)
        report(label, REPORT_SEEDS)
    first(FIRST_SEEDS[2])
    for label in PRIORITY[2]:
        tune(label)
        report(label, REPORT_SEEDS)
    tune("k1")
    # added after the study above had started: appended, so that its finished prefix stays valid
    tune("filter")
    for seed in FIRST_SEEDS:
        for name in FIRST_WARM:
            jobs.append(
                (
                    f"first {name} {FIRST_ANNEAL} seed {seed}",
                    lambda name=name, seed=seed: (
                        first_config(name, FIRST_ANNEAL, seed, out),
                        False,
                    ),
                )
            )
    for warm_name in PHASE_WARM:
        for share in PHASE_SHARES:
            if (share, warm_name) != PHASE_DEFAULT:
                phase(share, warm_name)
    return jobs


def run(out: Path, until: dt.datetime | None, log) -> None:
    """Run the jobs of :func:`plan` in order (finished ones are reused), starting none after
    ``until``; ``OUT/plan.json`` lists the plan (the docs say which planned runs did not run)."""
    run_plan(out, plan(out), until, log)


def run_plan(
    out: Path, jobs: list, until: dt.datetime | None, log, cache: Path | None = None
) -> None:
    """Run ``jobs`` ((description, make) pairs in priority order, ``make()`` giving the job's
    TrainConfig and whether it is a warm-start evaluation) one after the other in this process,
    reusing the finished ones and starting none after ``until``. ``OUT/plan.json`` lists the
    descriptions; warm starts are cached in ``cache`` (default ``OUT/cache``)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "plan.json", [d for d, _ in jobs], indent=1)
    cache = str(cache or out / "cache")
    for desc, make in jobs:
        if until is not None and dt.datetime.now(dt.timezone.utc) >= until:
            log(f"stopped before {desc!r}: past --until {until:%H:%M} UTC")
            return
        cfg, is_warm = make()
        if finished_run(cfg) is not None:
            continue
        moved = set_aside(cfg, out)
        if moved is not None:
            log(f"{desc}: the run in its folder has another config; moved to {moved}")
        t0 = time.time()
        job = {"config": cfg.to_dict(), "cache_dir": cache}
        if is_warm:
            job.update(warm=True, key=desc)
        final = _worker(job)
        if is_warm:
            final["label"] = WARM_LABEL
        log(progress_line(desc, final, time.time() - t0))


def recorded_config(folder: Path) -> dict | None:
    """The config a run folder holds a run of (its final.json, else the first record of its
    metrics.jsonl); None for an empty folder."""
    files = RunFiles(folder)
    try:
        if files.final.exists():
            return json.loads(files.final.read_text()).get("config")
        if files.metrics.exists():
            with files.metrics.open() as lines:
                return json.loads(lines.readline()).get("config")
    except (OSError, ValueError):
        return None
    return None


def set_aside(cfg: TrainConfig, out: Path) -> Path | None:
    """Move the run in ``cfg``'s folder to ``OUT/superseded/...`` when it is a run of another config
    (say a report run made before its method's tuning chose another point), so that the job starts
    afresh there instead of failing to resume; the moved folder, or None when nothing was moved."""
    folder = Path(cfg.out_dir)
    recorded = recorded_config(folder)
    if recorded is None or not changed_fields(recorded, cfg.to_dict()):
        return None
    try:
        relative = folder.resolve().relative_to(out.resolve())
    except ValueError:
        relative = Path(folder.name)
    target = out / "superseded" / relative
    n = 1
    while target.exists():
        n += 1
        target = out / "superseded" / f"{relative}.{n}"
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(target)
    return target


def progress_line(desc: str, final: dict, seconds: float) -> str:
    """One log line of a finished job: its time and held-out numbers (pass@k, or maxg@k for a task
    with continuous rewards)."""
    m = "pass" if "pass@1" in final else "maxg"
    nan = float("nan")
    return (
        f"{desc}: {seconds:.0f} s; {m}@1 {final.get(f'{m}@1', nan):.3f} "
        f"greedy {final.get(f'greedy_{m}@1', nan):.3f} {m}@8 {final.get(f'{m}@8', nan):.3f}"
    )


def log(msg: str) -> None:
    """A study's log line: the UTC time, then ``msg``."""
    print(f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} {msg}", flush=True)


def parse_until(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``HH:MM`` as that time (UTC) today; a ValueError naming the value otherwise."""
    hh, sep, mm = text.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ValueError(f"--until must be HH:MM (UTC, 24-hour clock), got {text!r}")
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.replace(hour=int(hh), minute=int(mm), second=0, microsecond=0)


def study_arguments(prog: str, doc: str, default_out: str) -> argparse.ArgumentParser:
    """The command line a study of tools/ shares (gauntlet.py, continuous.py): ``run``, ``docs`` or
    ``plan``, ``--out``, ``--until``, ``--docs`` and ``--command``."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument("command", choices=["run", "docs", "plan"])
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--until", help="run: HH:MM (UTC): start no run after this time today")
    parser.add_argument("--docs", default="docs", help="docs: the folder holding results.md")
    parser.add_argument(
        "--command",
        dest="shown_command",
        metavar="TEXT",
        help="docs: the command that trained the runs, as the docs should show it",
    )
    return parser


def study_main(parser: argparse.ArgumentParser, args, plan_of, run_jobs, write_docs) -> int:
    """``plan`` (print the jobs), ``run`` (``run_jobs(out, until)``) or ``docs``
    (``write_docs(out, args)``) for a study's parsed ``args``."""
    out = Path(args.out)
    if args.command == "plan":
        for desc, _ in plan_of(out):
            print(desc)
        return 0
    if args.command == "run":
        try:
            until = parse_until(args.until) if args.until else None
        except ValueError as error:
            parser.error(str(error))
        run_jobs(out, until)
        log("done")
        return 0
    write_docs(out, args)
    return 0


def main(argv=None) -> int:
    parser = study_arguments("python tools/gauntlet.py", __doc__, "runs/gauntlet")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)

    def docs(out: Path, args) -> None:
        from gauntlet_report import write_docs  # tools/gauntlet_report.py, next to this file

        write_docs(out, Path(args.docs), Path(args.readme), args.shown_command)

    return study_main(parser, args, plan, lambda out, until: run(out, until, log), docs)


if __name__ == "__main__":
    sys.exit(main())
