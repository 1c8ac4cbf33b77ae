"""``pkpo demo``, ``pkpo train`` and ``pkpo sweep``: argv -> exit code.

::

    pkpo demo --out runs/demo                # <= 5 min on 2 idle CPU cores: pass@1 baseline
                                             # vs PKPO, report.md
    pkpo demo --out runs/demo-quick --quick  # ~1 min smoke version
    pkpo train --k 8->1@180 --steps 300 --out runs/anneal
    pkpo train --config my_run.toml --resume
    pkpo sweep --out runs/sweep --runs k1,k4,k8,anneal,tzsm,grpo,entropy --seeds 0 1 2 --jobs 2

Errors in arguments or configs print one line (``pkpo <cmd>: error: ...``) and exit with status 2.

The flags of ``pkpo train``/``sweep`` are made from :class:`~pkpo.rl.config.TrainConfig` by a small
builder (``dataclasses.fields`` + ``typing.get_type_hints`` + each field's ``help`` metadata, 20
lines, nothing new imported). tyro 1.0.17 was measured and not adopted: its import takes about 90
ms, its errors are multi-line boxed panels, not one ``pkpo <cmd>: error:`` line, and its booleans
are ``--flag/--no-flag`` switches (``--tensorboard flase`` becomes an "unrecognized option").
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
import typing
from pathlib import Path

from .._cli import Parser, fail, k_list, non_negative_int, positive_int, strict_bool
from .._output import json_text, write_json
from .build import build, build_pretrained
from .config import DEMO_RUNS, PRESETS, TrainConfig
from .sweeps.grid import run_grid, run_spec, wall_time
from .sweeps.runs import finished_runs
from .training import rundir
from .training.runfiles import RunFiles, SweepFiles

# one warm-start cache for train, sweep and demo: a warm start is keyed by its config and seed, so
# every command that needs the same one reuses it
CACHE_HELP = "warm-start cache (default: $PKPO_CACHE, else ~/.cache/pkpo; keyed by config and seed)"


def _fail(cmd: str, exc: Exception) -> int:
    return fail(f"pkpo {cmd}", exc)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig field, typed by its annotation, with the field's ``help``
    metadata.

    ``out_dir`` is the command's own ``--out``; a tuple of ints is one comma-separated argument
    (``--eval-ks 1,2,4``, as in ``pkpo eval --k``); booleans take true/false (or 1/0, yes/no,
    on/off). The defaults shown are those of the default preset (``DEFAULT_PRESET``).
    """
    hints, defaults = (
        typing.get_type_hints(TrainConfig),
        TrainConfig().replace(**PRESETS[DEFAULT_PRESET]),
    )
    for f in dataclasses.fields(TrainConfig):
        if f.name == "out_dir":
            continue
        kind, default = hints[f.name], getattr(defaults, f.name)
        if kind is bool:
            parse, metavar, shown = strict_bool, "{true,false}", str(default).lower()
        elif typing.get_origin(kind) is tuple:
            parse, metavar, shown = k_list, "K1,K2,...", ",".join(map(str, default))
        else:
            parse, metavar, shown = kind, f.name.upper(), repr(default)
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=parse,
            default=None,
            metavar=metavar,
            help=f"{f.metadata['help']} (default: {shown})".replace("%", "%%"),
        )


DEFAULT_PRESET = "demo"  # of pkpo train and pkpo sweep: the demo's learnable setting


def _add_out_flag(parser: argparse.ArgumentParser, help_: str, required: bool = False) -> None:
    """``--out DIR`` (``--out-dir`` is accepted as an old spelling and not shown in --help)."""
    parser.add_argument("--out", dest="out", metavar="DIR", required=required, help=help_)
    parser.add_argument("--out-dir", dest="out", help=argparse.SUPPRESS)


def check_device(device: str) -> None:
    """Refuse a CUDA device that this torch cannot use (before any work, with the reason)."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        why = (
            "this torch build has no CUDA support"
            if torch.version.cuda is None
            else "no CUDA device is visible"
        )
        raise ValueError(
            f"device {device!r} is not available: {why} (torch {torch.__version__}); use --device "
            "cpu"
        )
    index = device.partition(":")[2]
    count = torch.cuda.device_count()
    if device != "cuda" and not (
        device.startswith("cuda:") and index.isdigit() and int(index) < count
    ):
        raise ValueError(
            f"device {device!r} is not available; this machine has cuda:0 to cuda:{count - 1}"
        )


def _stopped(cmd: str, note: str) -> int:
    """Ctrl-C: one line on stderr saying what is kept and how to go on; exit status 130."""
    print(f"pkpo {cmd}: interrupted; {note}", file=sys.stderr)
    return 130


def _grid_note(out: Path) -> str:
    """What an interrupted ``pkpo sweep`` / ``pkpo demo`` keeps."""
    where = str(SweepFiles(out).runs)
    return (
        f"finished runs and checkpoints are kept in {where!r}; "
        "run the same command again to continue"
    )


def _train_note(out_dir: str, argv: list[str]) -> str:
    """What an interrupted ``pkpo train`` says: where its last checkpoint is and how to go on."""
    kept = [a for a in argv if a not in ("--overwrite", "--resume")]
    if RunFiles(out_dir).checkpoint.exists():
        command = shlex.join(["pkpo", "train", *kept, "--resume"])
        return f"{rundir.checkpoint_note(out_dir)}; continue with: {command}"
    command = shlex.join(["pkpo", "train", *kept, "--overwrite"])
    return f"{rundir.checkpoint_note(out_dir)}; start again with: {command}"


def _overrides(args) -> dict:
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }


# -------------------------------------------------------------------------------------------- train


def train_main(argv: list[str]) -> int:
    parser = Parser(
        prog="pkpo train",
        description="One RL run: the from-scratch GPT on a synthetic task, or a "
        "pretrained model (--model) on a natural-language task (--task nl:arithmetic-d1).",
    )
    parser.add_argument("--config", help="TOML file of TrainConfig fields (flags override it)")
    parser.add_argument(
        "--model",
        help="pretrained policy: 'smollm2-135m', a local HF checkpoint dir or a .gguf file",
    )
    parser.add_argument(
        "--lora-r", type=int, default=8, help="LoRA rank with --model (0: full fine-tuning)"
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="named settings that flags override (default: demo, the setting of pkpo demo; with "
        "--model: cpu, the TrainConfig defaults, sized for the nl: tasks)",
    )
    _add_out_flag(parser, "output folder of the run (default: the config's out_dir, runs/train)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in OUT from OUT/checkpoint.pt"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in OUT (deletes its metrics, checkpoint, final.json and tb/)",
    )
    parser.add_argument("--cache-dir", help=CACHE_HELP)
    parser.add_argument("--no-progress", action="store_true")
    _add_config_flags(parser)
    try:
        args = parser.parse_args(argv)
        preset = args.preset or ("cpu" if args.model else DEFAULT_PRESET)
        base = (
            TrainConfig.from_toml(args.config)
            if args.config
            else TrainConfig().replace(**PRESETS[preset])
        )
        changes = _overrides(args)
        if args.out:
            changes["out_dir"] = args.out
        cfg = TrainConfig.from_dict({**base.to_dict(), **changes})
        check_device(cfg.device)
        rundir.check_run(cfg.out_dir, resume=args.resume, overwrite=args.overwrite)
    except (ValueError, TypeError) as exc:
        return _fail("train", exc)
    from .training.trainer import train

    try:
        if args.model:
            policy, task, reference, _ = build_pretrained(cfg, args.model, args.lora_r)
        else:
            policy, task, reference, _ = build(
                cfg, cache_dir=args.cache_dir, progress=not args.no_progress
            )
        final = train(
            cfg,
            policy,
            task,
            reference=reference,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        return _stopped("train", _train_note(cfg.out_dir, argv))
    except (ValueError, ImportError, OSError) as exc:
        return _fail("train", exc)
    print(json_text({k: v for k, v in final.items() if k != "config"}, indent=2))
    return 0


# -------------------------------------------------------------------------------------------- sweep


def sweep_main(argv: list[str]) -> int:
    parser = Parser(
        prog="pkpo sweep", description="A grid of RL runs, then a paper-style table and plots."
    )
    _add_out_flag(parser, "output folder; the runs go to OUT/runs/<name>/seed<s>/", required=True)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace runs under OUT that were made with other settings (default: refuse)",
    )
    parser.add_argument(
        "--runs",
        default="k1,k2,k4,k8,anneal,tzsm,grpo,maxrl,entropy",
        help="comma-separated grid entries: k<K>, anneal, anneal<a>-><b>, an estimator without k "
        "(grpo, rloo, maxrl, tzsm, ...), loo (= k1) or entropy (k1 + entropy_coef 0.05)",
    )
    parser.add_argument(
        "--baselines", default=None, help="comma-separated PKPO baselines (default: the config's)"
    )
    parser.add_argument(
        "--seeds",
        type=non_negative_int,
        nargs="+",
        default=[0, 1, 2],
        metavar="SEED",
        help="training seeds, separated by spaces (default: 0 1 2)",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=1, help="parallel processes (1 thread each)"
    )
    parser.add_argument("--config", help="TOML base config")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="named settings that flags override (default: demo, the setting of pkpo demo)",
    )
    parser.add_argument("--cache-dir", help=CACHE_HELP)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only rebuild the table and plots from the runs that have finished",
    )
    _add_config_flags(parser)
    try:
        args = parser.parse_args(argv)
        base = (
            TrainConfig.from_toml(args.config)
            if args.config
            else TrainConfig().replace(**PRESETS[args.preset])
        )
        base = TrainConfig.from_dict({**base.to_dict(), **_overrides(args)})
        runs = [r.strip() for r in args.runs.split(",") if r.strip()]
        baselines = [b.strip() for b in args.baselines.split(",")] if args.baselines else None
        for r in runs:  # make (and so check) every grid point before any work
            for b in baselines or [base.baseline]:
                base.replace(**run_spec(r, base.steps), baseline=b)
        check_device(base.device)
        out = Path(args.out)
        if args.report_only and not out.is_dir():
            raise ValueError(f"no finished runs under {str(SweepFiles(out).runs)!r}")
        lock = rundir.RunLock(out, "pkpo sweep")  # one sweep per folder at a time
    except (ValueError, TypeError) as exc:
        return _fail("sweep", exc)
    from .sweeps.report import write_sweep_report

    t0 = time.time()
    if args.report_only:
        try:
            finals = finished_runs(out)
        except ValueError as exc:
            return _fail("sweep", exc)
        if not finals:
            where = str(SweepFiles(out).runs)
            return _fail("sweep", ValueError(f"no finished runs under {where!r}"))
    else:
        try:
            finals = run_grid(
                base,
                runs,
                args.seeds,
                out,
                jobs=args.jobs,
                cache_dir=args.cache_dir,
                baselines=baselines,
                progress=not args.no_progress,
                overwrite=args.overwrite,
            )
        except KeyboardInterrupt:
            return _stopped("sweep", _grid_note(out))
        except (ValueError, OSError) as exc:
            return _fail("sweep", exc)
    if args.report_only:
        wall, note = (
            sum(f.get("wall_s") or 0.0 for f in finals),
            " (sum of the runs' own wall times)",
        )
    else:
        wall, note = wall_time(out, finals, time.time() - t0)
    info = write_sweep_report(
        out,
        finals,
        title="PKPO sweep",
        command="pkpo sweep " + " ".join(argv),
        wall_s=wall,
        wall_note=note,
    )
    print(info["table_md"])
    lock.release()
    return 0


# --------------------------------------------------------------------------------------------- demo


def summary_rows(finals: list[dict]) -> list[dict]:
    """One entry per run of ``summary.json`` (the warm start too, as the run ``warm_start``), same
    keys."""
    keys = ["pass@1", "pass@2", "pass@4", "pass@8", "pass@16", "greedy_pass@1"]
    return [
        {
            "name": f["label"],
            "seed": f["seed"],
            "k_schedule": f["k_schedule"],
            "method": f["method"],
            **{k: f.get(k) for k in keys},
            **{f"{k}_se": f.get(f"{k}_se") for k in keys},
            "cumulative_solve_rate": f.get("cumulative_solve_rate"),
            "hard_solve_rate": f.get("hard_solve_rate"),
            "entropy": f.get("entropy"),
            "wall_s": f.get("wall_s"),
            "cpu_s": f.get("cpu_s"),
        }
        for f in finals
    ]


def demo_main(argv: list[str]) -> int:
    parser = Parser(
        prog="pkpo demo", description="Train a small policy from scratch: pass@1 baseline vs PKPO."
    )
    _add_out_flag(parser, "output folder (report.md, summary.json, PNGs)", required=True)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace runs under OUT that were made with other settings (default: refuse)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test (about a minute): too small to learn, so its report states no finding",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=2, help="parallel processes (1 thread each)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="training seed (default: 0)"
    )
    parser.add_argument("--cache-dir", help=CACHE_HELP)
    parser.add_argument("--no-progress", action="store_true")
    try:
        args = parser.parse_args(argv)
    except (ValueError, TypeError) as exc:
        return _fail("demo", exc)
    from .sweeps.report import write_sweep_report

    base = TrainConfig().replace(**PRESETS["quick" if args.quick else "demo"], tensorboard=False)
    out = Path(args.out)
    progress = not args.no_progress
    try:
        lock = rundir.RunLock(out, "pkpo demo")  # creates OUT; one demo per folder at a time
        t0 = time.time()
        finals = run_grid(
            base,
            DEMO_RUNS,
            [args.seed],
            out,
            jobs=args.jobs,
            cache_dir=args.cache_dir,
            progress=progress,
            overwrite=args.overwrite,
        )
    except KeyboardInterrupt:
        return _stopped("demo", _grid_note(out))
    except (ValueError, OSError) as exc:
        return _fail("demo", exc)
    if progress:
        print("writing report.md and figures ...", flush=True)
    wall, note = wall_time(out, finals, time.time() - t0)
    info = write_sweep_report(
        out,
        finals,
        title="pkpo demo",
        command="pkpo demo " + " ".join(argv),
        wall_s=wall,
        wall_note=note,
        report_name=SweepFiles.REPORT,
        smoke=args.quick,
    )
    summary = {
        "runs": summary_rows(finals),
        "wall_s": wall,
        "findings": info["findings"],
        "config": base.to_dict(),
    }
    if args.quick:
        from .sweeps.report import SMOKE_NOTE

        summary = {"smoke_test": True, "note": SMOKE_NOTE, **summary}
    files = SweepFiles(out)
    write_json(files.summary, summary, indent=2)
    print(info["table_md"])
    for claim in info["findings"]:
        print("-", claim["text"])
    print(
        f"wrote {files.report}, {files.summary} and {len(info['figures'])} figures "
        f"in {time.time() - t0:.0f} s"
    )
    lock.release()
    return 0
