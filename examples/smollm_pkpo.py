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

    # 3. table (markdown) and curves (PNG)
    python examples/smollm_pkpo.py report --out runs/smollm --figures docs/figures/pretrained

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


def cmd_report(args, p: dict) -> int:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out, figs = Path(args.out), Path(args.figures)
    figs.mkdir(parents=True, exist_ok=True)
    base = (
        json.loads((out / "baseline.json").read_text()) if (out / "baseline.json").exists() else {}
    )
    ks = p["eval_ks"]
    lines = [
        "| model | " + " | ".join(f"pass@{k}" for k in ks) + " | wall |",
        "|---" * (len(ks) + 2) + "|",
    ]
    if str(p["difficulty"]) in base:
        b = base[str(p["difficulty"])]
        lines.append(
            "| base (before training) | "
            + " | ".join(f"{100 * b[f'pass@{k}']:.1f} ± {100 * b[f'pass@{k}_se']:.1f}" for k in ks)
            + " | - |"
        )
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for run in args.runs:
        metrics = out / run / "metrics.jsonl"
        if not metrics.exists():
            continue
        recs = [json.loads(line) for line in metrics.read_text().splitlines()]
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
        final_path = out / run / "final.json"
        if final_path.exists():
            f = json.loads(final_path.read_text())
            wall = sum(r["perf/step_s"] for r in steps)
            lines.append(
                f"| {run} ({f['k_schedule']}, {f['steps']} steps) | "
                + " | ".join(
                    f"{100 * f[f'pass@{k}']:.1f} ± {100 * f[f'pass@{k}_se']:.1f}" for k in ks
                )
                + f" | {wall / 60:.0f} min |"
            )
    axes[0].set(title="training reward (mean of n samples, 5-step average)", xlabel="step")
    axes[1].set(title="training pass@k at the run's own k (5-step average)", xlabel="step")
    axes[2].set(title="-log p(sample) per completion, nats (5-step average)", xlabel="step")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(figs / args.curves, dpi=120)
    if base:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for d, res in sorted(base.items()):
            ax.errorbar(
                ks,
                [100 * res[f"pass@{k}"] for k in ks],
                yerr=[100 * res[f"pass@{k}_se"] for k in ks],
                marker="o",
                capsize=3,
                label=f"difficulty {d}",
            )
        ax.set(
            xscale="log",
            xticks=ks,
            xticklabels=[str(k) for k in ks],
            xlabel="k",
            ylabel="held-out pass@k (%)",
            title="SmolLM2-135M-Instruct before training",
        )
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend()
        fig.tight_layout()
        fig.savefig(figs / "base_pass_at_k.png", dpi=120)
    finals = {
        run: json.loads((out / run / "final.json").read_text())
        for run in args.runs
        if (out / run / "final.json").exists()
    }
    if finals:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        curves = (
            [("base", base[str(p["difficulty"])])] if str(p["difficulty"]) in base else []
        ) + list(finals.items())
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
        ax.set(
            xscale="log",
            xticks=ks,
            xticklabels=[str(k) for k in ks],
            xlabel="k",
            ylabel="held-out pass@k (%)",
            title=f"before and after RL (difficulty {p['difficulty']})",
        )
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend()
        fig.tight_layout()
        fig.savefig(figs / args.curves.replace("training_curves", "heldout_pass_at_k"), dpi=120)
    print("\n".join(lines))
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
