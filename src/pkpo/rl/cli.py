"""``pkpo demo``, ``pkpo train`` and ``pkpo sweep``: argv -> exit code.

::

    pkpo demo --out runs/demo                 # <= 5 min on 2 idle CPU cores: pass@1 baseline vs PKPO, report.md
    pkpo demo --out runs/demo-quick --quick   # ~1 min smoke version
    pkpo train --k 8->1@180 --steps 300 --out runs/anneal
    pkpo train --config my_run.toml --resume
    pkpo sweep --out runs/sweep --runs k1,k4,k8,anneal,tzsm,grpo,entropy --seeds 0 1 2 --jobs 2

Errors in arguments or configs print one line (``pkpo <cmd>: error: ...``) and exit with status 2.

The flags of ``pkpo train``/``sweep`` are made from :class:`~pkpo.rl.config.TrainConfig` by a small builder
(``dataclasses.fields`` + ``typing.get_type_hints`` + each field's ``help`` metadata, 20 lines, nothing new
imported). tyro 1.0.17 was measured and not adopted: its import takes about 90 ms, its errors are multi-line
boxed panels, not one ``pkpo <cmd>: error:`` line, and its booleans are ``--flag/--no-flag`` switches
(``--tensorboard flase`` becomes an "unrecognized option").
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shlex
import sys
import time
import typing
from pathlib import Path

from .._cli import Parser, fail, k_list, non_negative_int, positive_int, strict_bool
from .._output import atomic_write
from . import rundir
from .config import TrainConfig
from .grid import finished_runs, run_grid, run_spec, wall_time

# Presets: a dict of TrainConfig overrides.
PRESETS = {
    # the d=96, 3-layer GPT on the hidden-rule task; 16 prompts x 16 samples, 300 steps
    "cpu": {},
    # the first demo's setting (unlearnable feature, 256 training problems, 100 steps of 8 prompts x 16 samples):
    # kept for the diagnosis in docs/results.md of why it could not show PKPO raising pass@k
    "sum": {"steps": 100, "prompts_per_step": 8, "n_train": 256, "eval_every": 50, "eval_samples": 16,
            "checkpoint_every": 50},
    # the demo (docs/results.md): a d=64 GPT (0.16 M parameters) on the "mixed" task (5-digit strings), fresh
    # training problems, stratified validation and held-out sets; 300 steps of 16 prompts x 16 samples at lr 3e-4
    # with cosine decay; evaluation of 128 held-out problems every 60 steps and of all 512 at the end
    "demo": {"feature": "mixed", "length": 5, "max_new_tokens": 7, "n_train": 20000, "n_validation": 512,
             "n_heldout": 512, "d_model": 64, "warm_steps": 1200, "demo_uniform": 0.1, "steps": 300,
             "prompts_per_step": 16, "n": 16, "lr": 3e-4, "lr_schedule": "cosine", "eval_every": 60,
             "eval_problems": 128, "final_eval_problems": 512, "eval_samples": 16, "checkpoint_every": 60},
    # ~1 minute smoke test
    "quick": {"feature": "mixed", "length": 5, "max_new_tokens": 7, "d_model": 64, "demo_uniform": 0.1,
              "warm_steps": 80, "steps": 12, "prompts_per_step": 8, "n": 8, "eval_every": 4, "eval_problems": 16,
              "final_eval_problems": 32, "eval_samples": 16, "checkpoint_every": 0, "n_train": 256, "n_heldout": 32,
              "n_validation": 32},
    # sized for about 10 minutes per run on one H100 (not runnable on the CPU machines; see docs/rl.md)
    "gpu": {"device": "cuda", "d_model": 256, "n_layer": 6, "n_head": 8, "warm_steps": 3000, "warm_batch": 256,
            "steps": 1500, "prompts_per_step": 64, "n": 16, "n_train": 4096, "n_heldout": 512,
            "eval_problems": 512, "eval_every": 100, "checkpoint_every": 100, "threads": 4},
}


def _fail(cmd: str, exc: Exception) -> int:
    return fail(f"pkpo {cmd}", exc)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig field, typed by its annotation, with the field's ``help`` metadata.

    ``out_dir`` is the command's own ``--out``; a tuple of ints is one comma-separated argument
    (``--eval-ks 1,2,4``, as in ``pkpo eval --k``); booleans take true/false (or 1/0, yes/no, on/off).
    """
    hints, defaults = typing.get_type_hints(TrainConfig), TrainConfig()
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
        parser.add_argument("--" + f.name.replace("_", "-"), type=parse, default=None, metavar=metavar,
                            help=f"{f.metadata['help']} (default: {shown})".replace("%", "%%"))


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
        why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA device is visible"
        raise ValueError(f"device {device!r} is not available: {why} (torch {torch.__version__}); use --device cpu")
    index = device.partition(":")[2]
    count = torch.cuda.device_count()
    if device != "cuda" and not (device.startswith("cuda:") and index.isdigit() and int(index) < count):
        raise ValueError(f"device {device!r} is not available; this machine has cuda:0 to cuda:{count - 1}")


def _stopped(cmd: str, note: str) -> int:
    """Ctrl-C: one line on stderr saying what is kept and how to go on; exit status 130."""
    print(f"pkpo {cmd}: interrupted; {note}", file=sys.stderr)
    return 130


def _grid_note(out: Path) -> str:
    """What an interrupted ``pkpo sweep`` / ``pkpo demo`` keeps."""
    return f"finished runs and checkpoints are kept in {str(out / 'runs')!r}; run the same command again to continue"


def _train_note(out_dir: str, argv: list[str]) -> str:
    """What an interrupted ``pkpo train`` says: where its last checkpoint is and how to go on."""
    kept = [a for a in argv if a not in ("--overwrite", "--resume")]
    if (Path(out_dir) / "checkpoint.pt").exists():
        return f"{rundir.checkpoint_note(out_dir)}; continue with: {shlex.join(['pkpo', 'train', *kept, '--resume'])}"
    return f"{rundir.checkpoint_note(out_dir)}; start again with: {shlex.join(['pkpo', 'train', *kept, '--overwrite'])}"


def _overrides(args) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(args, f.name, None) is not None}


def build_pretrained(cfg: TrainConfig, model: str, lora_r: int):
    """A pretrained Hugging Face policy (optionally LoRA) and the ``nl:`` task of ``cfg``."""
    import torch

    from .nl_tasks import nl_task_from_name
    from .pretrained import load_pretrained

    if not cfg.task.startswith("nl:"):
        raise ValueError(f"--model trains on natural-language tasks: use --task nl:arithmetic-d1 (got {cfg.task!r})")
    torch.set_num_threads(cfg.threads)
    task = nl_task_from_name(cfg.task, n_train=cfg.n_train, n_heldout=cfg.n_heldout, seed=cfg.task_seed)
    lora = {"r": lora_r, "alpha": 2 * lora_r} if lora_r else None
    policy = load_pretrained(model, lora=lora, device=cfg.device)
    reference = copy.deepcopy(policy) if cfg.kl_coef > 0 else None
    return policy, task, reference, {}


def task_options(cfg: TrainConfig) -> dict:
    """The keyword arguments of ``make_task(cfg.task, ...)``: the config fields that task reads."""
    common = {"seed": cfg.task_seed, "n_train": cfg.n_train, "n_heldout": cfg.n_heldout,
              "n_validation": cfg.n_validation}
    if cfg.task.startswith("maze"):
        return {**common, "size": cfg.maze_size}
    return {**common, "tier": cfg.tier, "feature": cfg.feature, "length": cfg.length, "demo_power": cfg.demo_power,
            "demo_uniform": cfg.demo_uniform}


def build(cfg: TrainConfig, *, cache_dir=None, progress: bool = True, on_warm_step=None):
    """The GPT policy (warm-started, cached), the task and the optional KL reference for ``cfg``."""
    import torch

    from .gpt import GPT, GPTConfig
    from .tasks import make_task
    from .warmstart import rule_accuracy, warm_start

    if cfg.task.startswith("nl:"):
        raise ValueError(f"task {cfg.task!r} needs a pretrained policy: add --model smollm2-135m (or a local path)")
    torch.set_num_threads(cfg.threads)
    task = make_task(cfg.task, **task_options(cfg))
    torch.manual_seed(cfg.seed)
    shape = {"d_model": cfg.d_model, "n_layer": cfg.n_layer, "n_head": cfg.n_head}
    if hasattr(task, "prompt_length"):  # a task with long prompts and answers says how long (the maze)
        shape["block_size"] = task.prompt_length() + 1 + max(cfg.max_new_tokens, task.max_new_tokens())
    policy = GPT(GPTConfig(**shape)).to(cfg.device)
    info = warm_start(policy, task, steps=cfg.warm_steps, batch=cfg.warm_batch, lr=cfg.warm_lr, seed=cfg.seed,
                      cache_dir=cache_dir, progress=progress, on_step=on_warm_step)
    if not info["cached"] and cfg.warm_steps and hasattr(task, "rule_accuracy_problems"):
        info["rule_accuracy"] = rule_accuracy(policy, task, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        atomic_write(Path(info["path"]).with_suffix(".json"), json.dumps(info, indent=2))
    elif info["cached"] and Path(info["path"]).with_suffix(".json").exists():  # what the fit measured
        stored = json.loads(Path(info["path"]).with_suffix(".json").read_text())
        info = {**stored, **{k: v for k, v in info.items() if v is not None}}
    reference = copy.deepcopy(policy) if cfg.kl_coef > 0 else None
    return policy, task, reference, info


# --------------------------------------------------------------------------------------------- train


def train_main(argv: list[str]) -> int:
    parser = Parser(prog="pkpo train", description="One RL run: the from-scratch GPT on a synthetic task, or a "
                     "pretrained model (--model) on a natural-language task (--task nl:arithmetic-d1).")
    parser.add_argument("--config", help="TOML file of TrainConfig fields (flags override it)")
    parser.add_argument("--model", help="pretrained policy: 'smollm2-135m', a local HF checkpoint dir or a .gguf file")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA rank with --model (0: full fine-tuning)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    _add_out_flag(parser, "output folder of the run (default: the config's out_dir, runs/train)")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT from OUT/checkpoint.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run already in OUT (deletes its metrics, checkpoint, final.json and tb/)")
    parser.add_argument("--cache-dir", help="warm-start cache (default $PKPO_CACHE or ~/.cache/pkpo)")
    parser.add_argument("--no-progress", action="store_true")
    _add_config_flags(parser)
    try:
        args = parser.parse_args(argv)
        base = TrainConfig.from_toml(args.config) if args.config else TrainConfig().replace(**PRESETS[args.preset])
        changes = _overrides(args)
        if args.out:
            changes["out_dir"] = args.out
        cfg = TrainConfig.from_dict({**base.to_dict(), **changes}).validate()
        check_device(cfg.device)
        rundir.check_run(cfg.out_dir, resume=args.resume, overwrite=args.overwrite)
    except (ValueError, TypeError) as exc:
        return _fail("train", exc)
    from .trainer import train

    try:
        if args.model:
            policy, task, reference, _ = build_pretrained(cfg, args.model, args.lora_r)
        else:
            policy, task, reference, _ = build(cfg, cache_dir=args.cache_dir, progress=not args.no_progress)
        final = train(cfg, policy, task, reference=reference, resume=args.resume, overwrite=args.overwrite,
                      progress=not args.no_progress)
    except KeyboardInterrupt:
        return _stopped("train", _train_note(cfg.out_dir, argv))
    except (ValueError, ImportError, OSError) as exc:
        return _fail("train", exc)
    print(json.dumps({k: v for k, v in final.items() if k != "config"}, indent=2))
    return 0


# --------------------------------------------------------------------------------------------- sweep

def sweep_main(argv: list[str]) -> int:
    parser = Parser(prog="pkpo sweep", description="A grid of RL runs, then a paper-style table and plots.")
    _add_out_flag(parser, "output folder; the runs go to OUT/runs/<name>/seed<s>/", required=True)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace runs under OUT that were made with other settings (default: refuse)")
    parser.add_argument("--runs", default="k1,k2,k4,k8,anneal,tzsm,grpo,entropy",
                        help="comma-separated grid entries: k<K>, anneal, anneal<a>-><b>, loo, grpo, tzsm, entropy")
    parser.add_argument("--baselines", default=None, help="comma-separated PKPO baselines (default: the config's)")
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2], metavar="SEED",
                        help="training seeds, separated by spaces (default: 0 1 2)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="parallel processes (1 thread each)")
    parser.add_argument("--config", help="TOML base config")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--cache-dir", help="warm-start cache (default OUT/cache)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild the table and plots from the runs that have finished")
    _add_config_flags(parser)
    try:
        args = parser.parse_args(argv)
        base = TrainConfig.from_toml(args.config) if args.config else TrainConfig().replace(**PRESETS[args.preset])
        base = TrainConfig.from_dict({**base.to_dict(), **_overrides(args)}).validate()
        runs = [r.strip() for r in args.runs.split(",") if r.strip()]
        baselines = [b.strip() for b in args.baselines.split(",")] if args.baselines else None
        for r in runs:  # validate every grid point before any work
            for b in baselines or [base.baseline]:
                base.replace(**run_spec(r, base.steps), baseline=b).validate()
        check_device(base.device)
        out = Path(args.out)
        if args.report_only and not out.is_dir():
            raise ValueError(f"no finished runs under {str(out / 'runs')!r}")
        lock = rundir.RunLock(out, "pkpo sweep")  # one sweep per folder at a time
    except (ValueError, TypeError) as exc:
        return _fail("sweep", exc)
    from .report import write_sweep_report

    t0 = time.time()
    if args.report_only:
        finals = finished_runs(out)
        if not finals:
            return _fail("sweep", ValueError(f"no finished runs under {str(out / 'runs')!r}"))
    else:
        try:
            finals = run_grid(base, runs, args.seeds, out, jobs=args.jobs,
                              cache_dir=args.cache_dir or str(out / "cache"), baselines=baselines,
                              progress=not args.no_progress, overwrite=args.overwrite)
        except KeyboardInterrupt:
            return _stopped("sweep", _grid_note(out))
        except (ValueError, OSError) as exc:
            return _fail("sweep", exc)
    if args.report_only:
        wall, note = sum(f.get("wall_s") or 0.0 for f in finals), " (sum of the runs' own wall times)"
    else:
        wall, note = wall_time(out, finals, time.time() - t0)
    info = write_sweep_report(out, finals, title="PKPO sweep", command="pkpo sweep " + " ".join(argv),
                              wall_s=wall, wall_note=note)
    print(info["table_md"])
    lock.release()
    return 0


# --------------------------------------------------------------------------------------------- demo

DEMO_RUNS = ["k1", "k4", "k8", "anneal"]


def summary_rows(finals: list[dict]) -> list[dict]:
    """One entry per run of ``summary.json`` (the warm start too, as the run ``warm_start``), same keys."""
    keys = ["pass@1", "pass@2", "pass@4", "pass@8", "pass@16"]
    return [{"name": f["label"], "seed": f["seed"], "k_schedule": f["k_schedule"], "method": f["method"],
             **{k: f.get(k) for k in keys}, **{f"{k}_se": f.get(f"{k}_se") for k in keys},
             "cumulative_solve_rate": f.get("cumulative_solve_rate"), "hard_solve_rate": f.get("hard_solve_rate"),
             "entropy": f.get("entropy"), "wall_s": f.get("wall_s"), "cpu_s": f.get("cpu_s")} for f in finals]


def demo_main(argv: list[str]) -> int:
    parser = Parser(prog="pkpo demo", description="Train a small policy from scratch: pass@1 baseline vs PKPO.")
    _add_out_flag(parser, "output folder (report.md, summary.json, PNGs)", required=True)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace runs under OUT that were made with other settings (default: refuse)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (about a minute)")
    parser.add_argument("--jobs", type=positive_int, default=2, help="parallel processes (1 thread each)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="training seed (default: 0)")
    parser.add_argument("--cache-dir", help="warm-start cache (default OUT/cache)")
    parser.add_argument("--no-progress", action="store_true")
    try:
        args = parser.parse_args(argv)
    except (ValueError, TypeError) as exc:
        return _fail("demo", exc)
    from .report import write_sweep_report

    base = TrainConfig().replace(**PRESETS["quick" if args.quick else "demo"], tensorboard=False)
    out = Path(args.out)
    progress = not args.no_progress
    try:
        lock = rundir.RunLock(out, "pkpo demo")  # creates OUT; one demo per folder at a time
        t0 = time.time()
        finals = run_grid(base, DEMO_RUNS, [args.seed], out, jobs=args.jobs,
                          cache_dir=args.cache_dir or str(out / "cache"), progress=progress, overwrite=args.overwrite)
    except KeyboardInterrupt:
        return _stopped("demo", _grid_note(out))
    except (ValueError, OSError) as exc:
        return _fail("demo", exc)
    if progress:
        print("writing report.md and figures ...", flush=True)
    wall, note = wall_time(out, finals, time.time() - t0)
    info = write_sweep_report(out, finals, title="pkpo demo", command="pkpo demo " + " ".join(argv),
                              wall_s=wall, wall_note=note, report_name="report.md")
    atomic_write(out / "summary.json", json.dumps({"runs": summary_rows(finals), "wall_s": wall,
                                                   "findings": info["findings"], "config": base.to_dict()}, indent=2))
    print(info["table_md"])
    for claim in info["findings"]:
        print("-", claim["text"])
    print(f"wrote {out / 'report.md'}, {out / 'summary.json'} and {len(info['figures'])} figures "
          f"in {time.time() - t0:.0f} s")
    lock.release()
    return 0
