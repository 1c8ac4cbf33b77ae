"""PKPO on a real pretrained LM: SmolLM2-135M-Instruct (offline) on arithmetic word problems.

Three steps, each resumable (run them in the background with nohup; logs and checkpoints under
--out):

    # 1. the base model's held-out pass@k at every difficulty
    #    (pick one with some but not full signal)
    python examples/smollm_pkpo.py baseline --out runs/smollm

    # 2. the same samples budget for k = 1 (pass@1 baseline), k = 4 (PKPO) and an annealed schedule
    python examples/smollm_pkpo.py train --name k1 --k 1 --out runs/smollm
    python examples/smollm_pkpo.py train --name k4 --k 4 --out runs/smollm
    python examples/smollm_pkpo.py train --name anneal --k "4->1@15" --out runs/smollm

    # 3. tables (markdown) and curves (PNG); --docs rewrites the "smollm" block of that file
    python examples/smollm_pkpo.py report --out runs/smollm --figures docs/figures/pretrained

Seeds other than 0 train into ``OUT/seed<N>`` (``train --seed 1 --out runs/smollm/seed1``); the
report reads them from there and pairs the runs of a seed.

Every run trains LoRA adapters through :func:`pkpo.rl.training.trainer.train` (the same loop as the
from-scratch GPT), with ``pkpo.transform`` turning each group of n binary rewards into advantages.
``--preset gpu`` reads ``examples/gpu_preset.toml`` (a larger batch, longer completions and more
steps for one GPU; see docs/pretrained.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import tomllib

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from pkpo._output import markdown_table, rewrite_blocks  # noqa: E402
from pkpo.rl.policies.pretrained import load_pretrained  # noqa: E402
from pkpo.rl.tasks.nl_tasks import ArithmeticWordTask  # noqa: E402
from pkpo.rl.training.evaluation import evaluate  # noqa: E402
from pkpo.rl.training.trainer import TrainConfig, train  # noqa: E402

# CPU preset: small enough for a shared, busy 2-core machine (about a minute a step there)
CPU_PRESET = dict(
    model="smollm2-135m",
    dtype="float32",
    lora_r=8,
    difficulty=1,
    steps=30,
    prompts_per_step=2,
    n=8,
    max_new_tokens=12,
    temperature=0.7,
    lr=2e-4,
    eval_problems=32,
    eval_samples=8,
    eval_ks=(1, 2, 4, 8),
    checkpoint_every=5,
    threads=1,
    device="cpu",
    n_train=512,
    n_heldout=64,
)


def preset(name: str) -> dict:
    if name == "cpu":
        return dict(CPU_PRESET)
    path = Path(name) if name.endswith(".toml") else Path(__file__).with_name(f"{name}_preset.toml")
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}: no file {path}")
    values = dict(CPU_PRESET)
    loaded = tomllib.loads(path.read_text())
    unknown = sorted(set(loaded) - set(CPU_PRESET))
    if unknown:
        raise ValueError(
            f"unknown preset keys {unknown} in {path}; valid keys: {sorted(CPU_PRESET)}"
        )
    values.update(loaded)
    values["eval_ks"] = tuple(values["eval_ks"])
    return values


def load_policy(p: dict):
    lora = {"r": int(p["lora_r"]), "alpha": 2 * int(p["lora_r"])} if p["lora_r"] else None
    return load_pretrained(p["model"], dtype=p["dtype"], lora=lora, device=p["device"])


def cmd_baseline(args, p: dict) -> int:
    """Held-out pass@k of the untrained model at each difficulty."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "baseline.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    policy = load_policy(p)
    for d in args.difficulties:
        if str(d) in results:  # resumable: one entry per finished difficulty
            continue
        task = ArithmeticWordTask(difficulty=d, n_train=p["n_train"], n_heldout=p["n_heldout"])
        t0 = time.time()
        res = evaluate(
            policy,
            task.problems("heldout")[: p["eval_problems"]],
            task,
            samples=p["eval_samples"],
            ks=p["eval_ks"],
            max_new_tokens=p["max_new_tokens"],
            temperature=p["temperature"],
            seed=1234,
            batch_prompts=8,
        )
        res["wall_s"] = time.time() - t0
        results[str(d)] = res
        path.write_text(json.dumps(results, indent=2))
        print(
            f"difficulty {d}: "
            + ", ".join(
                f"pass@{k} {100 * res[f'pass@{k}']:.1f} +- {100 * res[f'pass@{k}_se']:.1f}"
                for k in p["eval_ks"]
            ),
            flush=True,
        )
    return 0


def make_task(p: dict) -> ArithmeticWordTask:
    return ArithmeticWordTask(
        difficulty=p["difficulty"], n_train=p["n_train"], n_heldout=p["n_heldout"]
    )


def make_config(
    p: dict,
    *,
    name: str,
    k: str,
    baseline: str = "loo_minus_one",
    seed: int = 0,
    out: str = "runs/smollm",
) -> TrainConfig:
    """The trainer config of one run of the preset ``p`` (validated)."""
    return TrainConfig(
        task=f"nl:{make_task(p).name}",
        steps=p["steps"],
        prompts_per_step=p["prompts_per_step"],
        n=p["n"],
        k=k,
        method="pkpo",
        baseline=baseline,
        lr=p["lr"],
        max_new_tokens=p["max_new_tokens"],
        temperature=p["temperature"],
        eval_every=0,
        eval_problems=p["eval_problems"],
        eval_samples=p["eval_samples"],
        eval_ks=p["eval_ks"],
        seed=seed,
        out_dir=str(Path(out) / name),
        device=p["device"],
        threads=p["threads"],
        checkpoint_every=p["checkpoint_every"],
        tensorboard=False,
    )


def cmd_train(args, p: dict) -> int:
    task = make_task(p)
    cfg = make_config(
        p, name=args.name, k=args.k, baseline=args.baseline, seed=args.seed, out=args.out
    )
    torch.set_num_threads(cfg.threads)
    policy = load_policy(p)
    resume = (
        Path(cfg.out_dir) / "checkpoint.pt"
    ).exists()  # continue an interrupted run, else start afresh
    final = train(cfg, policy, task, resume=resume, overwrite=not resume, progress=True)
    print(json.dumps({k: v for k, v in final.items() if k != "config"}, indent=2))
    return 0


def seed_folders(out: Path) -> list[Path]:
    """``out`` (seed 0) and its ``seed<N>`` sub-folders (the other seeds)."""
    return [out, *sorted(d for d in out.glob("seed*") if d.is_dir())]


def finished_runs(out: Path, runs: list[str]) -> list[dict]:
    """The final.json of every finished run named in ``runs``, in ``out`` and in ``out/seed*``,
    each with its ``run`` name and ``step_min`` (the minutes of its training steps, from
    metrics.jsonl), ordered by run name (as in ``runs``) then seed."""
    finals = []
    for folder in seed_folders(out):
        for run in runs:
            path = folder / run / "final.json"
            if not path.exists():
                continue
            final = json.loads(path.read_text())
            metrics = (folder / run / "metrics.jsonl").read_text().splitlines()
            step_s = [json.loads(line).get("perf/step_s", 0.0) for line in metrics]
            finals.append(final | {"run": run, "step_min": sum(step_s) / 60})
    return sorted(finals, key=lambda f: (runs.index(f["run"]), f["seed"]))


def _cells(res: dict, ks) -> list[str]:
    return [f"{100 * res[f'pass@{k}']:.1f} ± {100 * res[f'pass@{k}_se']:.1f}" for k in ks]


def base_table(base: dict, ks) -> str:
    """The untrained model's held-out pass@k at each measured difficulty."""
    rows = [
        [d, *_cells(r, ks), f"{r['wall_s']:.0f} s"]
        for d, r in sorted(base.items(), key=lambda kv: int(kv[0]))
    ]
    return markdown_table(["difficulty", *[f"pass@{k}" for k in ks], "wall"], rows)


def runs_table(finals: list[dict], base: dict | None, ks) -> str:
    """Held-out pass@k and -log p of the base and of every run, then each run's mean over seeds
    (when it has more than one)."""
    rows = [["base (before training)", "-", "-", *_cells(base, ks), "-", "-"]] if base else []
    for f in finals:
        rows.append(
            [f["run"], f["k_schedule"], f["seed"], *_cells(f, ks), f"{f['entropy']:.1f}",
             f"{f['step_min']:.0f} min"]
        )  # fmt: skip
    for run in dict.fromkeys(f["run"] for f in finals):
        group = [f for f in finals if f["run"] == run]
        if len(group) > 1:
            mean = [f"{100 * sum(f[f'pass@{k}'] for f in group) / len(group):.1f}" for k in ks]
            entropy = sum(f["entropy"] for f in group) / len(group)
            rows.append(
                [f"**mean of {len(group)} seeds**: {run}", "", "", *mean, f"{entropy:.1f}", ""]
            )
    header = ["run", "k schedule", "seed", *[f"pass@{k}" for k in ks], "-log p", "training"]
    return markdown_table(header, rows)


def paired_table(finals: list[dict], ks, reference: str = "k1") -> str:
    """Each run minus ``reference`` of the same seed, in points, at pass@1 and the largest k, and
    in -log p (nats)."""
    by = {(f["run"], f["seed"]): f for f in finals}
    top = max(ks)
    rows = [
        [f"{f['run']} − {reference}", f["seed"],
         f"{100 * (f['pass@1'] - by[reference, f['seed']]['pass@1']):+.1f}",
         f"{100 * (f[f'pass@{top}'] - by[reference, f['seed']][f'pass@{top}']):+.1f}",
         f"{f['entropy'] - by[reference, f['seed']]['entropy']:+.1f}"]
        for f in finals
        if f["run"] != reference and (reference, f["seed"]) in by
    ]  # fmt: skip
    return markdown_table(["difference", "seed", "pass@1", f"pass@{top}", "-log p"], rows)


def report_block(out: Path, p: dict, runs: list[str]) -> str:
    """The "smollm" block of docs/results_pretrained.md: the base at each difficulty, the runs and
    their differences from k1 by seed."""
    ks = p["eval_ks"]
    path = out / "baseline.json"
    base = json.loads(path.read_text()) if path.exists() else {}
    finals = finished_runs(out, runs)
    lines = [
        f"**Base model before training** ({p['eval_problems']} held-out problems x "
        f"{p['eval_samples']} samples at T = {p['temperature']}):",
        "",
        base_table(base, ks) if base else "No baseline measured yet.",
        "",
    ]
    if finals:
        cfg = finals[0]["config"]
        lines += [
            f"**RL at difficulty {p['difficulty']}** ({cfg['steps']} steps x "
            f"{cfg['prompts_per_step']} prompts x {cfg['n']} samples, lr {cfg['lr']:g}; "
            '"training" is the minutes of the training steps, without loading and evaluation):',
            "",
            runs_table(finals, base.get(str(p["difficulty"])), ks),
            "",
            "**Paired by seed** (points; -log p in nats):",
            "",
            paired_table(finals, ks),
        ]
    return "\n".join(lines)


def plot_curves(folder: Path, runs: list[str], path: Path) -> None:
    """Training reward, training pass@k and -log p of the runs in ``folder`` (5-step averages)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for run in runs:
        metrics = folder / run / "metrics.jsonl"
        recs = (
            [json.loads(line) for line in metrics.read_text().splitlines()]
            if metrics.exists()
            else []
        )
        steps = [r for r in recs if "reward/mean" in r]
        if not steps:
            continue
        x = np.array([r["step"] for r in steps])
        for ax, key in zip(axes, ("reward/mean", "reward/pass_at_k", "policy/entropy")):
            y = np.array([r[key] for r in steps])
            w = min(5, len(y))
            ax.plot(
                x[w - 1 :],
                np.convolve(y, np.ones(w) / w, mode="valid"),
                label=run,
                linestyle="--" if "anneal" in run else "-",
            )
    axes[0].set(title="training reward (mean of n samples, 5-step average)", xlabel="step")
    axes[1].set(title="training pass@k at the run's own k (5-step average)", xlabel="step")
    axes[2].set(title="-log p(sample) per completion, nats (5-step average)", xlabel="step")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pass_at_k(curves: list[tuple[str, dict]], ks, title: str, path: Path) -> None:
    """Held-out pass@k against k (log axis) with its standard error, a line per (label, result)."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, res in curves:
        ax.errorbar(
            ks,
            [100 * res[f"pass@{k}"] for k in ks],
            yerr=[100 * res[f"pass@{k}_se"] for k in ks],
            marker="o",
            capsize=3,
            label=label,
            linestyle="--" if "anneal" in label else "-",
        )
    ax.set(xscale="log", xticks=ks, xticklabels=[str(k) for k in ks], xlabel="k",
           ylabel="held-out pass@k (%)", title=title)  # fmt: skip
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_report(args, p: dict) -> int:
    import matplotlib

    matplotlib.use("Agg")

    out, figs = Path(args.out), Path(args.figures)
    if args.docs and not Path(args.docs).is_file():
        raise ValueError(f"--docs {args.docs!r} is not a file")
    figs.mkdir(parents=True, exist_ok=True)
    base = (
        json.loads((out / "baseline.json").read_text()) if (out / "baseline.json").exists() else {}
    )
    ks = p["eval_ks"]
    for folder in seed_folders(out):
        name = args.curves.replace(".png", f"_{folder.name}.png") if folder != out else args.curves
        plot_curves(folder, args.runs, figs / name)
    if base:
        curves = [(f"difficulty {d}", r) for d, r in sorted(base.items())]
        title = "SmolLM2-135M-Instruct before training"
        plot_pass_at_k(curves, ks, title, figs / "base_pass_at_k.png")
    finals = [f for f in finished_runs(out, args.runs) if f["seed"] == 0]
    if finals:
        start = [("base", base[str(p["difficulty"])])] if str(p["difficulty"]) in base else []
        curves = start + [(f["run"], f) for f in finals]
        title = f"before and after RL (difficulty {p['difficulty']})"
        name = args.curves.replace("training_curves", "heldout_pass_at_k")
        plot_pass_at_k(curves, ks, title, figs / name)
    block = report_block(out, p, args.runs)
    print(block)
    if args.docs:
        rewrite_blocks(args.docs, {"smollm": block}, "smollm")
        print(f"rewrote the smollm block of {args.docs}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("baseline", "train", "report"))
    parser.add_argument(
        "--preset",
        default="cpu",
        help='"cpu" (default), "gpu" (examples/gpu_preset.toml) or a TOML path',
    )
    parser.add_argument("--out", default="runs/smollm")
    parser.add_argument("--name", default="k4", help="run name (a folder under --out)")
    parser.add_argument("--k", default="4", help='k schedule spec: "1", "4", "4->1@30", ...')
    parser.add_argument("--baseline", default="loo_minus_one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--steps", type=int, default=None, help="override the preset's number of RL steps"
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="override the preset's learning rate"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="override the preset's model: a built-in name, a .gguf file "
        "or a local Hugging Face checkpoint directory",
    )
    parser.add_argument("--difficulties", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--runs", nargs="+", default=["k1", "k4", "anneal"])
    parser.add_argument("--figures", default="docs/figures/pretrained")
    parser.add_argument(
        "--docs", help='report: rewrite the "smollm" block of this file (results_pretrained.md)'
    )
    parser.add_argument(
        "--curves", default="training_curves.png", help="file name of the training-curve figure"
    )
    args = parser.parse_args(argv)
    try:
        p = preset(args.preset)
        if args.steps is not None:
            p["steps"] = args.steps
        if args.model is not None:
            p["model"] = args.model
        if args.lr is not None:
            p["lr"] = args.lr
        torch.set_num_threads(int(p["threads"]))
        return {"baseline": cmd_baseline, "train": cmd_train, "report": cmd_report}[args.command](
            args, p
        )
    except (ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
