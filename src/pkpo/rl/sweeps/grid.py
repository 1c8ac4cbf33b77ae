"""Running a grid of RL runs for ``pkpo sweep`` and ``pkpo demo``: one process per run, warm starts
first.

Every seed's warm start is fitted (cached on disk) and evaluated as the run ``warm_start``; then
every (run, baseline, seed) config trains in a worker process with one thread, under one progress
bar counted in steps. Finished runs (a ``final.json`` with the same config) are reused, interrupted
ones continue from their checkpoint, and a folder holding a run with other settings is refused
unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ... import advantages
from ..._output import write_json
from ..build import build
from ..config import TrainConfig, changed_fields, same_config
from ..training import rundir
from ..training.runfiles import RunFiles, SweepFiles, read_metrics
from .runs import WARM_LABEL


def run_spec(name: str, steps: int) -> dict:
    """A grid entry name -> TrainConfig overrides.

    ``k<K>`` (PKPO at k = K), ``anneal`` / ``anneal<a>-><b>`` (PKPO with k from a to b at 60 % of
    the steps), any estimator name of :func:`pkpo.advantages.names` without k (``grpo``, ``rloo``,
    ``maxrl``, ``tzsm``, ...), and two names kept from the first trainer: ``loo`` (PKPO at k = 1,
    the same runs as ``k1``) and ``entropy`` (``loo`` with entropy_coef 0.05).
    """
    if name == "loo":
        return {"method": "pkpo", "k": "1"}
    if name == "entropy":
        return {"method": "pkpo", "k": "1", "entropy_coef": 0.05}
    if name in advantages.names() and not advantages.spec(name).takes_k:
        return {"method": name, "k": "1"}
    if name.startswith("k") and name[1:].isdigit():
        return {"method": "pkpo", "k": name[1:]}
    if name.startswith("anneal"):
        rest = name[len("anneal") :] or "8->1"
        try:
            a, b = (int(x) for x in rest.split("->"))
        except ValueError:
            raise ValueError(
                f"bad anneal spec {name!r}; expected e.g. 'anneal' or 'anneal8->1'"
            ) from None
        return {"method": "pkpo", "k": f"{a}->{b}@{max(1, int(round(0.6 * steps)))}"}
    methods = ", ".join(m for m in advantages.names() if not advantages.spec(m).takes_k)
    raise ValueError(
        f"unknown run {name!r}; expected k<K>, anneal, anneal<a>-><b>, loo, entropy or an "
        f"estimator without k ({methods})"
    )


def finished_run(cfg: TrainConfig, **recorded) -> dict | None:
    """The run's final.json, marked ``cached``, if it finished with this config (and these
    ``recorded`` values); else None."""
    path = RunFiles(cfg.out_dir).final
    if not path.exists():
        return None
    done = json.loads(path.read_text())
    if not same_config(done.get("config"), cfg.to_dict()) or any(
        done.get(k) != v for k, v in recorded.items()
    ):
        return None
    return {**done, "cached": True}


def _warm_worker(job: dict, shared=None) -> dict:
    """The warm start of one seed (cached), then its evaluation on the final evaluation set, saved
    as the run ``warm_start`` (``OUT/runs/warm_start/seed<s>/``: final.json with the same keys as a
    run)."""
    from ..training.trainer import train

    cfg = TrainConfig.from_dict(job["config"])
    key = job["key"]
    on_step = (lambda done, total: shared.__setitem__(key, done)) if shared is not None else None
    policy, task, _, info = build(
        cfg, cache_dir=job["cache_dir"], progress=job.get("progress", False), on_warm_step=on_step
    )
    done = finished_run(cfg, warm_start_path=info.get("path"))
    if done is not None:
        return done
    t0, c0 = time.time(), time.process_time()
    # steps = 0: only the evaluation at step 0; a folder left by an interrupted evaluation is
    # replaced
    final = train(cfg, policy, task, overwrite=True, progress=False)
    final.update(
        {
            "name": WARM_LABEL,
            "method": WARM_LABEL,
            "k_schedule": "none (supervised warm start, no RL)",
            "cumulative_solve_rate": None,
            "hard_solve_rate": None,
            "warm_start_path": info.get("path"),
            "warm_start_wall_s": info.get("wall_s"),
            "wall_s": (info.get("wall_s") or 0.0) + time.time() - t0,
            "cpu_s": (info.get("cpu_s") or 0.0) + time.process_time() - c0,
        }
    )
    write_json(RunFiles(cfg.out_dir).final, final, indent=2)
    return final


def _worker(job: dict, shared=None) -> dict:
    """Run (or finish) one configuration in a fresh process with one thread."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if job.get("warm"):
        return _warm_worker(job, shared)
    from ..training.trainer import train

    cfg = TrainConfig.from_dict(job["config"])
    done = finished_run(cfg)
    if done is not None:
        return done
    policy, task, reference, _ = build(cfg, cache_dir=job["cache_dir"], progress=False)
    t0, c0 = time.time(), time.process_time()
    # continue from a checkpoint; a run interrupted before its first checkpoint starts again
    resume = RunFiles(cfg.out_dir).checkpoint.exists()
    final = train(
        cfg,
        policy,
        task,
        reference=reference,
        resume=resume,
        overwrite=not resume,
        progress=job.get("progress", False),
    )
    final["wall_s"], final["cpu_s"] = time.time() - t0, time.process_time() - c0
    write_json(RunFiles(cfg.out_dir).final, final, indent=2)
    return final


def _steps_logged(metrics_path: Path) -> int:
    """Training steps recorded so far in a run's metrics.jsonl (read from the end of the file)."""
    try:
        records = read_metrics(metrics_path, tail_bytes=8192)
    except (OSError, ValueError):
        return 0
    for rec in reversed(records):
        if "k" in rec and "step" in rec:
            return int(rec["step"]) + 1
    return 0


def _job_units(job: dict) -> int:
    """The size of a job in progress units: warm-start steps, or RL steps."""
    return job["config"]["warm_steps"] if job.get("warm") else job["config"]["steps"]


def _run_jobs(jobs: list[dict], n_jobs: int, desc: str, progress: bool) -> list[dict]:
    """Run ``jobs`` (in this process when ``n_jobs`` is 1, else in worker processes) with one
    progress bar in steps: RL steps read from each run's metrics.jsonl, warm-start steps from a
    shared dict."""
    from tqdm.auto import tqdm

    if n_jobs <= 1:
        return [_worker({**j, "progress": progress}) for j in jobs]
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    manager = ctx.Manager() if any(j.get("warm") for j in jobs) else None
    shared = manager.dict() if manager is not None else None
    results: list = [None] * len(jobs)
    units = [_job_units(j) for j in jobs]
    try:
        with (
            ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool,
            tqdm(
                total=sum(units), desc=desc, unit="step", disable=not progress, dynamic_ncols=True
            ) as bar,
        ):
            futures = {pool.submit(_worker, j, shared): i for i, j in enumerate(jobs)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    results[futures[fut]] = fut.result()
                progress_now = 0
                for i, j in enumerate(jobs):
                    if results[i] is not None:
                        progress_now += units[i]
                    elif j.get("warm"):
                        progress_now += min(units[i], shared.get(j["key"], 0))
                    else:
                        logged = _steps_logged(RunFiles(j["config"]["out_dir"]).metrics)
                        progress_now += min(units[i], logged)
                bar.n = progress_now
                bar.set_postfix_str(f"{sum(r is not None for r in results)}/{len(jobs)} done")
                bar.refresh()
    finally:
        if manager is not None:
            manager.shutdown()
    return results


def check_grid_runs(configs: list[TrainConfig], overwrite: bool) -> None:
    """Before any work: a run folder of the grid that holds a run with other settings is refused
    (``overwrite``: deleted). Runs with the same settings are kept: finished ones are reused and
    interrupted ones continue from their checkpoint."""
    for cfg in configs:
        if not rundir.existing_run(cfg.out_dir):
            continue
        diff = changed_fields(rundir.recorded_config(cfg.out_dir) or {}, cfg.to_dict())
        if not diff:
            continue
        if not overwrite:
            raise rundir.RunDirError(
                f"{cfg.out_dir!r} holds a run with other settings (differs in {diff}); pass "
                "--overwrite to replace such runs, or choose another --out"
            )
        rundir.clear_run(cfg.out_dir)


def warm_config(base: TrainConfig, seed: int, out: Path) -> TrainConfig:
    """The config of the warm-start evaluation of ``seed``: no RL steps, the final evaluation at
    step 0 (no KL reference either: nothing is trained, so a sweep with ``kl_coef`` > 0 evaluates it
    too)."""
    return base.replace(
        seed=seed,
        steps=0,
        method="pkpo",
        k="1",
        method_params="",
        eval_every=0,
        kl_coef=0.0,
        out_dir=str(SweepFiles(out).run(WARM_LABEL, seed).folder),
    )


def folder_label(label: str) -> str:
    """The folder name of run ``label`` ("k4/loo" -> "k4_loo", "anneal8->1" -> "anneal81")."""
    return label.replace("/", "_").replace(">", "")


def run_grid(
    base: TrainConfig,
    runs: list[str],
    seeds: list[int],
    out: Path,
    *,
    jobs: int,
    cache_dir,
    baselines: list[str] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> list[dict]:
    """Warm starts (one per seed, each evaluated as the run ``warm_start``), then every (run,
    baseline, seed) config; returns the final dicts, warm starts first."""
    configs = []
    for name in runs:
        for baseline in baselines or [base.baseline]:
            label = name if not baselines or len(baselines) == 1 else f"{name}/{baseline}"
            for seed in seeds:
                changes = {
                    **run_spec(name, base.steps),
                    "baseline": baseline,
                    "seed": seed,
                    "out_dir": str(SweepFiles(out).run(folder_label(label), seed).folder),
                }
                cfg = base.replace(**changes)
                configs.append((label, cfg))
    warm_configs = [warm_config(base, s, out) for s in seeds]
    check_grid_runs(warm_configs + [cfg for _, cfg in configs], overwrite)
    warm = [
        {"config": c.to_dict(), "cache_dir": cache_dir, "warm": True, "key": f"warm{c.seed}"}
        for c in warm_configs
    ]
    warm_finals = _run_jobs(warm, min(jobs, len(warm)), "warm start", progress)
    finals = _run_jobs(
        [{"config": c.to_dict(), "cache_dir": cache_dir} for _, c in configs],
        jobs,
        "RL runs",
        progress,
    )
    for final in warm_finals:
        final["label"] = WARM_LABEL
    for (label, _), final in zip(configs, finals):
        final["label"] = label
    return warm_finals + finals


def wall_time(out: Path, finals: list[dict], measured: float) -> tuple[float, str]:
    """The wall time to report and a note. A call that trains something records what it measured in
    ``OUT/wall.json``; a call that only reuses finished runs reports that recorded time instead."""
    path = SweepFiles(out).wall
    if finals and all(f.get("cached") for f in finals) and path.exists():
        recorded = json.loads(path.read_text())["wall_s"]
        return (
            recorded,
            f" (measured when the runs were trained; this call reused them in {measured:.0f} s)",
        )
    partly = any(f.get("cached") for f in finals)
    write_json(path, {"wall_s": measured, "partly_reused": partly})
    return measured, " (some runs were reused from an earlier call)" if partly else ""
