"""A powered SmolLM2 training run (issue 19, item 3): does PKPO at k = 8 keep the pass@16 that the
leave-one-out pass@1 baseline (k = 1) loses?

::

    python tools/powered.py run --out runs/powered                # what is missing, in order
    python tools/powered.py run --out runs/powered --until 18:30  # start no job after 18:30 UTC
    python tools/powered.py run --out runs/powered --job k8:0     # that job only (a 2nd process)
    python tools/powered.py plan --out runs/powered               # the jobs and their state
    python tools/powered.py docs --out runs/powered               # rewrite the docs block
    python tools/powered.py smoke --out runs/powered --steps 3    # time 3 steps (OUT/smoke)

The rules are stated in docs/results_pretrained.md ("A powered run") before any run; this module
runs the jobs of :func:`plan` in that priority order (an interrupted or time-boxed study has
finished a prefix of it; running it again goes on where it stopped), and
``tools/powered_report.py`` applies the rules and writes the docs block.

1. **Screen** (``OUT/screen.json``): the base model's pass@1 on the first :data:`SCREEN_PROBLEMS`
   training problems x :data:`SCREEN_SAMPLES` samples of each difficulty, easiest first, stopping
   after the first difficulty at or below :data:`TARGET_PASS1`. The study's difficulty is the
   screened one whose pass@1 is closest to the target in ratio (:func:`chosen_difficulty`).
2. **Base** (``OUT/runs/base/seed0``): the untrained model, evaluated like every run (a 0-step
   run: the same evaluation code and the same problems).
3. **k1 seed 0**, then the stop rule (``powered_report.stop_rule``): unless k1 lost pass@16 against
   the base, the study stops here.
4. **k8 seed 0, k1 seed 1, k8 seed 1, k1 seed 2, k8 seed 2.**

Every run is ``pkpo.rl.training.trainer.train`` on SmolLM2-135M-Instruct with LoRA r = 8
(:data:`STUDY` holds the settings) on ``nl:arithmetic-d<d>-exemplar``: the arithmetic word problems
with a one-shot answer-format exemplar in every prompt
(:class:`pkpo.rl.tasks.nl_tasks.ExemplarTask`), so RL is not mainly learning the format. A run
checkpoints every :data:`STUDY` ``checkpoint_every`` steps and continues from its last checkpoint
when the study is run again. One process, one torch thread.

A study driver beside tools/gauntlet.py (a plan in priority order, a time box, a generated docs
block), not a subcommand of examples/smollm_pkpo.py, which stays the short user-facing example.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

from gauntlet import log, parse_until  # tools/gauntlet.py, next to this file

from pkpo._output import write_json
from pkpo.rl.config import TrainConfig
from pkpo.rl.sweeps.grid import finished_run
from pkpo.rl.training.runfiles import RunFiles, SweepFiles

MODEL = "smollm2-135m"
LORA_R = 8
SCREEN_DIFFICULTIES = (1, 2, 3, 4)
SCREEN_PROBLEMS, SCREEN_SAMPLES = 16, 16
SCREEN_SEED = 4242  # the screen's sampling seed (its own stream: no run's evaluation uses it)
# the base pass@1 the study's difficulty should have (many prompts with no correct sample)
TARGET_PASS1 = 0.05
BASE = "base"
LABELS = {"k1": "1", "k8": "8"}  # run label -> k (PKPO s^(loo-1); k = 1 is the LOO pass@1 baseline)
SEEDS = (0, 1, 2)
# runs outside the plan, added after seed 0 had been seen (docs: "Amendment 2"): run only with
# --job, never gated, never part of the primary measure. label -> (k, settings changed from STUDY)
EXPLORATORY = {"k8-half-lr": ("8", {"lr": 2.5e-5})}
# every run's TrainConfig fields besides task, k, seed and out_dir
STUDY = {
    "method": "pkpo",
    "baseline": "loo_minus_one",
    "steps": 150,
    "prompts_per_step": 4,
    "n": 16,
    "lr": 5e-5,
    "lr_schedule": "constant",
    "max_new_tokens": 12,
    "temperature": 0.7,
    "eval_every": 0,
    "eval_problems": 64,
    "eval_samples": 16,
    "eval_temperature": 0.7,
    "eval_ks": (1, 2, 4, 8, 16),
    "greedy_temperature": 0.05,
    "greedy_samples": 2,
    "n_train": 512,
    "n_heldout": 64,
    "warm_steps": 0,
    "checkpoint_every": 10,
    "threads": 1,
    "device": "cpu",
    "tensorboard": False,
}

# the settings that the base's evaluation depends on (the rest only matter to training)
BASE_FIELDS = (
    "max_new_tokens",
    "eval_every",
    "eval_problems",
    "eval_samples",
    "eval_temperature",
    "eval_ks",
    "greedy_temperature",
    "greedy_samples",
    "n_train",
    "n_heldout",
    "warm_steps",
    "checkpoint_every",
    "threads",
    "device",
    "tensorboard",
)


class Study(NamedTuple):
    """Where the study lives and what it runs (tests shrink ``settings`` and use a tiny model)."""

    out: Path
    model: str = MODEL
    settings: dict = STUDY
    screen_problems: int = SCREEN_PROBLEMS
    screen_samples: int = SCREEN_SAMPLES


class Job(NamedTuple):
    """One job of the plan: the screen (``label`` "screen", no seed), the base or a training run."""

    label: str
    seed: int | None

    def describe(self) -> str:
        return "screen difficulties" if self.label == "screen" else f"{self.label} seed {self.seed}"


GATE = Job("k1", 0)  # the jobs after this one run only if the stop rule lets the study go on


def plan() -> list[Job]:
    """The jobs in priority order: screen, base, k1 seed 0 (the stop rule's stage), then k8 seed 0
    and both runs of seeds 1 and 2."""
    jobs = [Job("screen", None), Job(BASE, 0), GATE]
    jobs += [Job(label, seed) for seed in SEEDS for label in LABELS if Job(label, seed) != GATE]
    return jobs


def gated(job: Job) -> bool:
    """Whether ``job`` comes after the stop rule's stage."""
    jobs = plan()
    return jobs.index(job) > jobs.index(GATE)


# ---------------------------------------------------------------------------------- difficulty


def chosen_difficulty(screen: dict) -> int | None:
    """The study's difficulty from the screen's {difficulty: {"pass@1": ...}}: the screened one
    whose pass@1 p minimises |log(p / TARGET_PASS1)| (closest in ratio; p = 0 is infinitely far;
    ties go to the easier). None while the screen is unfinished: it finishes at the first
    difficulty (easiest first) with p <= TARGET_PASS1, or when every difficulty is screened."""
    rates = {int(d): r["pass@1"] for d, r in screen.items()}
    done = any(p <= TARGET_PASS1 for p in rates.values()) or set(rates) >= set(SCREEN_DIFFICULTIES)
    if not rates or not done:
        return None

    def distance(d: int) -> float:
        p = rates[d]
        return abs(math.log(p / TARGET_PASS1)) if p > 0 else math.inf

    return min(sorted(rates), key=distance)


def task_name(difficulty: int) -> str:
    return f"nl:arithmetic-d{difficulty}-exemplar"


def read_screen(out: Path) -> dict:
    path = Path(out) / "screen.json"
    return json.loads(path.read_text()) if path.exists() else {}


def difficulty_of(out: Path) -> int:
    """The study's difficulty; a ValueError while the screen has not chosen one."""
    d = chosen_difficulty(read_screen(out))
    if d is None:
        raise ValueError(f"the screen in {out} has not finished: run the study first")
    return d


# ---------------------------------------------------------------------------------- configs


def run_config(study: Study, job: Job) -> TrainConfig:
    """The TrainConfig of a run, or of the base: 0 steps (the untrained model's evaluation) with
    only the :data:`BASE_FIELDS` of the settings, so that a change of a training setting (lr,
    prompts per step, ...) does not make the base's evaluation stale."""
    k, changed = EXPLORATORY.get(job.label, (LABELS.get(job.label, "1"), {}))
    if job.label == BASE:
        settings = {key: study.settings[key] for key in BASE_FIELDS} | {"steps": 0}
    else:
        settings = study.settings | changed
    return TrainConfig(
        **settings,
        task=task_name(difficulty_of(study.out)),
        k=k,
        seed=job.seed,
        out_dir=str(SweepFiles(study.out).run(job.label, job.seed).folder),
    )


def finished(study: Study, job: Job) -> bool:
    """Whether ``job`` has finished with the study's settings (a run: its final.json records the
    same config)."""
    if job.label == "screen":
        return chosen_difficulty(read_screen(study.out)) is not None
    if chosen_difficulty(read_screen(study.out)) is None:
        return False
    return finished_run(run_config(study, job)) is not None


def check_study(study: Study) -> None:
    """Record the model in ``OUT/study.json``; refuse a folder whose runs used another model."""
    path = study.out / "study.json"
    want = {"model": study.model, "lora_r": LORA_R}
    if path.exists():
        have = json.loads(path.read_text())
        if have != want:
            raise ValueError(
                f"{study.out} holds a study of {have}, not {want}: use another --out folder"
            )
    else:
        write_json(path, want, indent=1)


# ---------------------------------------------------------------------------------- the jobs


def load_policy(study: Study, seed: int):
    """SmolLM2 (or ``study.model``) with fresh LoRA adapters, their initialisation seeded."""
    from pkpo.rl import seeding
    from pkpo.rl.policies.pretrained import load_pretrained

    seeding.seed_globals(seed)
    return load_pretrained(study.model, lora={"r": LORA_R, "alpha": 2 * LORA_R})


def screen(study: Study, log) -> dict:
    """Screen the difficulties (module docstring, step 1); one entry per difficulty in
    ``OUT/screen.json``, so an interrupted screen keeps what it measured."""
    import torch

    from pkpo.rl.tasks.nl_tasks import nl_task_from_name
    from pkpo.rl.training.evaluation import evaluate

    torch.set_num_threads(study.settings["threads"])
    results, policy = read_screen(study.out), None
    for d in SCREEN_DIFFICULTIES:
        if chosen_difficulty(results) is not None:
            break
        if str(d) in results:
            continue
        policy = policy or load_policy(study, SCREEN_SEED)
        s = study.settings
        task = nl_task_from_name(task_name(d), n_train=s["n_train"], n_heldout=s["n_heldout"])
        t0 = time.time()
        res = evaluate(
            policy,
            task.problems("train")[: study.screen_problems],
            task,
            samples=study.screen_samples,
            ks=(1,),
            max_new_tokens=s["max_new_tokens"],
            temperature=s["eval_temperature"],
            seed=SCREEN_SEED,
            detail=True,
        )
        successes = res["detail"]["successes"]
        results[str(d)] = {
            "pass@1": res["pass@1"],
            "pass@1_se": res["pass@1_se"],
            "problems": len(successes),
            "samples": study.screen_samples,
            "no_correct": sum(c == 0 for c in successes),
            "successes": successes,
            "wall_s": time.time() - t0,
        }
        write_json(study.out / "screen.json", results, indent=1)
        log(
            f"screen difficulty {d}: pass@1 {100 * res['pass@1']:.1f} % "
            f"± {100 * res['pass@1_se']:.1f}, {results[str(d)]['no_correct']} of "
            f"{len(successes)} problems with no correct sample, {time.time() - t0:.0f} s"
        )
    return results


def train_run(study: Study, job: Job) -> dict:
    """Train (or evaluate, for the base) one run; continues from its checkpoint when it has one."""
    return train_config(run_config(study, job), study.model)


def train_config(cfg: TrainConfig, model: str) -> dict:
    """Train the run of ``cfg``, continuing from its checkpoint when it has one."""
    from pkpo.rl import seeding
    from pkpo.rl.build import build_pretrained
    from pkpo.rl.training.trainer import train

    seeding.seed_globals(cfg.seed)  # the LoRA initialisation (a resumed run loads its adapters)
    policy, task, _, _ = build_pretrained(cfg, model, lora_r=LORA_R)
    resume = RunFiles(cfg.out_dir).checkpoint.exists()
    return train(cfg, policy, task, resume=resume, overwrite=not resume, progress=True)


def smoke(study: Study, steps: int, log) -> list[float]:
    """Time ``steps`` training steps of k1 seed 0 in ``OUT/smoke`` (a fresh run each time, with a
    one-problem final evaluation): the seconds of each step, from its metrics.jsonl."""
    from pkpo.rl.training.rundir import clear_run
    from pkpo.rl.training.runfiles import read_metrics

    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    cfg = run_config(study, GATE).replace(
        steps=steps, eval_problems=1, out_dir=str(study.out / "smoke")
    )
    clear_run(cfg.out_dir)
    t0 = time.time()
    train_config(cfg, study.model)
    records = [r for r in read_metrics(RunFiles(cfg.out_dir).metrics) if "perf/step_s" in r]
    for r in records:
        log(
            f"step {r['step']}: {r['perf/step_s']:.1f} s (sampling {r['perf/sample_s']:.1f} s), "
            f"reward {r['reward/mean']:.3f}, -log p {r['policy/entropy']:.1f}"
        )
    log(f"{steps} steps in {time.time() - t0:.0f} s with loading and a 1-problem evaluation")
    return [r["perf/step_s"] for r in records]


def execute(study: Study, job: Job, log) -> None:
    """Run one job of the plan: the screen, or a run (its final numbers go to the log)."""
    if job.label == "screen":
        screen(study, log)
    else:
        final = train_run(study, job)
        shown = ("pass@1", "pass@16", "greedy_pass@1")
        log(
            f"{job.describe()}: "
            + ", ".join(f"{key} {final.get(key, math.nan):.3f}" for key in shown)
        )


# ---------------------------------------------------------------------------------- the loop


def parse_job(text: str) -> Job:
    """``LABEL:SEED`` (for example ``k8:0``) as a training job of the plan or an
    :data:`EXPLORATORY` run, else a ValueError."""
    label, _, seed = text.partition(":")
    jobs = [j for j in plan() if j.label in LABELS]
    jobs += [Job(label, seed) for label in EXPLORATORY for seed in SEEDS]
    job = Job(label, int(seed)) if seed.isdigit() else None
    if job not in jobs:
        runs = ", ".join(f"{j.label}:{j.seed}" for j in jobs)
        raise ValueError(f"--job must be one of {runs}, got {text!r}")
    return job


def run(
    study: Study,
    until: dt.datetime | None,
    log: Callable[[str], None],
    do: Callable[[Study, Job, Callable], None] = execute,
    only: Job | None = None,
) -> str:
    """Run the jobs of :func:`plan` in order, skipping finished ones and starting none after
    ``until``; before the first job after the stop rule's stage, apply the rule
    (``powered_report.stop_rule``). Returns why it ended: "done", "time" or "stop rule".

    ``only`` runs that one training job and nothing else, without the stop rule: a second
    process's job while the first runs the plan (the screen and the base must have finished, and
    two processes must not be given the same job)."""
    from powered_report import stop_rule  # tools/powered_report.py, next to this file

    study.out.mkdir(parents=True, exist_ok=True)
    check_study(study)
    write_json(study.out / "plan.json", [j.describe() for j in plan()], indent=1)
    if only is not None and not all(finished(study, j) for j in plan()[:2]):
        raise ValueError("--job needs the screen and the base to have finished: run the plan first")
    for job in plan() if only is None else [only]:
        if finished(study, job):
            continue
        if until is not None and dt.datetime.now(dt.timezone.utc) >= until:
            log(f"stopped before {job.describe()!r}: past --until {until:%H:%M} UTC")
            return "time"
        if only is not None:
            log(f"{job.describe()} named with --job: the stop rule is not applied to it")
        elif gated(job):
            rule = stop_rule(study.out)
            if rule["stop"]:
                log(f"stopped before {job.describe()!r} by the stop rule: {rule['why']}")
                return "stop rule"
        t0 = time.time()
        log(f"start {job.describe()}")
        do(study, job, log)
        log(f"{job.describe()} finished in {time.time() - t0:.0f} s")
    return "done"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/powered.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["run", "plan", "docs", "smoke"])
    parser.add_argument("--out", default="runs/powered")
    parser.add_argument("--until", help="HH:MM (UTC): start no job after this time today")
    parser.add_argument("--docs", default="docs/results_pretrained.md")
    parser.add_argument("--job", help="run: this job only, LABEL:SEED (for example k8:0)")
    parser.add_argument("--model", default=MODEL, help="a built-in name, .gguf file or checkpoint")
    parser.add_argument("--steps", type=int, default=3, help="smoke: training steps to time")
    args = parser.parse_args(argv)
    study = Study(Path(args.out), model=args.model)

    try:
        if args.command == "plan":
            for job in plan():
                state = "finished" if finished(study, job) else "to run"
                print(f"{job.describe()}: {state}{' (after the stop rule)' if gated(job) else ''}")
            return 0
        if args.command == "smoke":
            smoke(study, args.steps, log)
            return 0
        if args.command == "run":
            until = parse_until(args.until) if args.until else None
            only = parse_job(args.job) if args.job else None
            log(f"done: {run(study, until, log, only=only)}")
            return 0
        from powered_report import write_docs

        write_docs(study.out, Path(args.docs))
        return 0
    except (ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
