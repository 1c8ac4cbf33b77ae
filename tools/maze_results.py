"""The maze section of docs/results.md, generated from the run folders of the maze benchmark.

::

    python tools/maze_results.py --out runs/results/maze          # rewrite the blocks, the figure
    python tools/maze_results.py --out runs/results/maze --print  # print the blocks instead

``--out`` is the folder of ``python -m pkpo.rl.sweeps.maze`` (``runs/<method>/seed<s>/`` with
``final.json``, ``eval_detail.json`` and ``metrics.jsonl``; ``tune/``
and ``tuning.json`` when the methods were tuned). Only the ``maze-*`` blocks of docs/results.md are
replaced (tools/results.py calls :func:`maze_blocks` for ``make results``); every number comes from
those folders.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from pkpo._output import markdown_table
from pkpo.metrics import standard_error
from pkpo.rl.sweeps.report import paired_difference, t975
from pkpo.rl.sweeps.runs import WARM_LABEL as WARM
from pkpo.rl.sweeps.runs import finished_runs, read_curves

# MaxRL (arXiv 2602.02710), maze 17x17, 3M parameters: pass@1, pass@128, pass@256 in %. Their PKPO
# (k = 16) is the two-baseline variant, so it is compared with our ``pkpo_two_baselines`` (and shown
# beside pkpo_k16).
PUBLISHED = {
    "grpo": (39.6, 42.4, 43.0),
    "grpo_entropy": (47.2, 53.4, 54.0),
    "pkpo_two_baselines": (74.5, 77.6, 77.9),
    "maxrl": (84.4, 92.0, 94.3),
}
PUBLISHED_NAMES = {
    "grpo": "GRPO",
    "grpo_entropy": "GRPO + entropy bonus",
    "pkpo_two_baselines": "PKPO (k = 16)",
    "maxrl": "MaxRL",
}
ORDER = [
    "warm_start",
    "grpo",
    "dr_grpo",
    "grpo_entropy",
    "pkpo_k4",
    "pkpo_k16",
    "pkpo_anneal",
    "pkpo_two_baselines",
    "maxrl",
    "rs_grpo",
    "w_reinforce",
]
# headline paired comparisons (a, b): a - b at pass@1 and at the largest k
HEADLINE = [
    ("pkpo_k16", "grpo"),
    ("pkpo_two_baselines", "grpo"),
    ("maxrl", "grpo"),
    ("grpo_entropy", "grpo"),
    ("pkpo_k16", "pkpo_two_baselines"),
    ("pkpo_anneal", "pkpo_k16"),
    ("pkpo_k4", "pkpo_k16"),
    ("maxrl", "pkpo_k16"),
    ("grpo", WARM),
    ("pkpo_k16", WARM),
]


def near_greedy(final: dict) -> float | None:
    """Near-greedy pass@1 of a run: the trainer's ``greedy_pass@1`` (T <= 0.1).

    For runs made before the trainer had it: ``eval_low_temperature.json`` beside the run (T = 0.1,
    4 samples, written by the benchmark driver of that time).
    """
    if final.get("greedy_pass@1") is not None:
        return final["greedy_pass@1"]
    path = Path(final["run_dir"]) / "eval_low_temperature.json"
    return json.loads(path.read_text())["pass@1"] if path.exists() else None


def runs_by_label(finals: list[dict]) -> dict[str, list[dict]]:
    by = defaultdict(list)
    for f in finals:
        by[f["label"]].append(f)
    return dict(
        sorted(by.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER))
    )


def largest_k(finals: list[dict]) -> int:
    """The largest k every run's final evaluation reports."""
    ks = [max(int(key[5:]) for key in f if re.fullmatch(r"pass@\d+", key)) for f in finals]
    return min(ks)


def mean_se(values: list[float], scale: float = 100.0) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    se = standard_error(values) if len(values) > 1 else float("nan")
    return f"{scale * np.mean(values):.1f}" + ("" if np.isnan(se) else f" ± {scale * se:.1f}")


def results_table(by: dict[str, list[dict]], kmax: int) -> str:
    """Our held-out numbers, one row per method (mean ± SE over seeds)."""
    ks = [k for k in (1, 4, 16, kmax) if k <= kmax]
    ks = sorted(set(ks))
    head = (
        ["run", "seeds", "pass@1, near-greedy"]
        + [f"pass@{k}" for k in ks]
        + ["cumulative solve rate", "entropy (nats)"]
    )
    rows = []
    for label, fs in by.items():
        low = [near_greedy(f) for f in fs]
        rows.append(
            [f"`{label}`", len(fs), mean_se(low)]
            + [mean_se([f.get(f"pass@{k}") for f in fs]) for k in ks]
            + [
                mean_se([f.get("cumulative_solve_rate") for f in fs]),
                mean_se([f.get("entropy") for f in fs], 1.0),
            ]
        )
    return markdown_table(head, rows)


def published_table(by: dict[str, list[dict]], kmax: int) -> str:
    """The published table beside ours (their k = 128 / 256 against our largest k)."""
    head = [
        "method",
        "published pass@1",
        "published pass@128",
        "published pass@256",
        "ours: run",
        "ours pass@1 (T = 1)",
        "ours pass@1 (near-greedy)",
        f"ours pass@{kmax}",
    ]
    rows = []
    for key, vals in PUBLISHED.items():
        fs = by.get(key, [])
        ours = (
            [
                f"`{key}`",
                mean_se([f["pass@1"] for f in fs]),
                mean_se([near_greedy(f) for f in fs]),
                mean_se([f.get(f"pass@{kmax}") for f in fs]),
            ]
            if fs
            else [f"`{key}`: not run", "-", "-", "-"]
        )
        rows.append([PUBLISHED_NAMES[key], *(f"{v:.1f}" for v in vals), *ours])
    return markdown_table(head, rows)


def paired_seed_difference(by, a: str, b: str, value) -> dict | None:
    """Mean over seeds of value(a) - value(b), paired by seed, with a t interval (or None)."""
    fa, fb = (
        {f["seed"]: value(f) for f in by.get(a, [])},
        {f["seed"]: value(f) for f in by.get(b, [])},
    )
    seeds = sorted(s for s in set(fa) & set(fb) if fa[s] is not None and fb[s] is not None)
    if not seeds:
        return None
    diffs = [fa[s] - fb[s] for s in seeds]
    half = t975(len(seeds) - 1) * standard_error(diffs) if len(seeds) > 1 else float("nan")
    mean = float(np.mean(diffs))
    return {
        "diff": mean,
        "lo": mean - half,
        "hi": mean + half,
        "per_seed": diffs,
        "seeds": len(seeds),
    }


def verdict(d: dict | None) -> str:
    if d is None:
        return "not run"
    if np.isnan(d["lo"]):
        return "one seed: no interval"
    return "holds" if d["lo"] > 0 else "reversed" if d["hi"] < 0 else "not resolved (CI contains 0)"


def fmt(d: dict | None) -> str:
    if d is None:
        return "-"
    ci = "" if np.isnan(d["lo"]) else f" ({100 * d['lo']:+.1f} to {100 * d['hi']:+.1f})"
    return f"{100 * d['diff']:+.1f}{ci}"


def ordering_table(finals: list[dict], by, kmax: int) -> str:
    """Every pair the published table orders, checked here: paired difference (95 % CI), verdict."""
    ranked = sorted(PUBLISHED, key=lambda m: -PUBLISHED[m][0])
    head = [
        "published order",
        "ours: pass@1 (T = 1)",
        "verdict",
        "ours: pass@1 (near-greedy)",
        "verdict",
        f"ours: pass@{kmax}",
        "verdict",
    ]
    rows = []
    for i, hi in enumerate(ranked):
        for lo in ranked[i + 1 :]:
            d1 = paired_difference(finals, hi, lo, 1) if hi in by and lo in by else None
            d0 = paired_seed_difference(by, hi, lo, lambda f: near_greedy(f))
            dk = paired_difference(finals, hi, lo, kmax) if hi in by and lo in by else None
            rows.append(
                [
                    f"`{hi}` > `{lo}`",
                    fmt(d1),
                    verdict(d1),
                    fmt(d0),
                    verdict(d0),
                    fmt(dk),
                    verdict(dk),
                ]
            )
    return markdown_table(head, rows)


def headline_table(finals: list[dict], by, kmax: int) -> str:
    head = [
        "comparison",
        "pass@1 (T = 1)",
        "pass@1 (near-greedy)",
        f"pass@{kmax}",
        "cumulative solve rate",
        "per seed, pass@1 (T = 1)",
    ]
    rows = []
    for a, b in HEADLINE:
        if a not in by or b not in by:
            continue
        d1, dk = paired_difference(finals, a, b, 1), paired_difference(finals, a, b, kmax)
        d0 = paired_seed_difference(by, a, b, lambda f: near_greedy(f))
        ds = paired_seed_difference(by, a, b, lambda f: f.get("cumulative_solve_rate"))
        rows.append(
            [
                f"`{a}` − `{b}`",
                fmt(d1),
                fmt(d0),
                fmt(dk),
                fmt(ds),
                ", ".join(f"{100 * v:+.1f}" for v in d1["per_seed"]) if d1 else "-",
            ]
        )
    return markdown_table(head, rows)


def bias_sentence(finals: list[dict], by, kmax: int) -> str:
    """Whether the biased two-baseline PKPO is measurably worse than the unbiased one."""
    if "pkpo_two_baselines" not in by or "pkpo_k16" not in by:
        missing = [m for m in ("pkpo_k16", "pkpo_two_baselines") if m not in by]
        return (
            f"Not measured: the run(s) {', '.join(f'`{m}`' for m in missing)} did not run here "
            "(the trainer "
            "this benchmark ran on did not offer the method)."
        )
    parts = []
    for k in (1, kmax):
        d = paired_difference(finals, "pkpo_k16", "pkpo_two_baselines", k)
        parts.append(f"pass@{k}: unbiased − biased = {fmt(d)} points ({verdict(d)})")
    return "; ".join(parts) + "."


def training_reward(run_dir: Path) -> np.ndarray:
    """The mean reward of each training step's batch, from the run's metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return np.array([])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return np.array([r["reward/mean"] for r in records if "reward/mean" in r])


def findings(finals: list[dict], by, kmax: int) -> str:
    """Sentences from the paired differences: what RL did to the warm start, and the headline."""

    def diff(a, b, k):
        return paired_difference(finals, a, b, k) if a in by and b in by else None

    def moved(d):
        return (
            "not resolved"
            if d is None or np.isnan(d["lo"]) or d["lo"] <= 0 <= d["hi"]
            else ("raised" if d["lo"] > 0 else "lowered")
        )

    lines = []
    for m in [m for m in by if m != WARM]:
        d1, dk = diff(m, WARM, 1), diff(m, WARM, kmax)
        if d1 and dk:
            lines.append(
                f"- `{m}` against the warm start: pass@1 {fmt(d1)} points ({moved(d1)}), "
                f"pass@{kmax} "
                f"{fmt(dk)} points ({moved(dk)}; 95 % CI over {d1['basis']})."
            )
    for a, b in (("pkpo_k16", "grpo"), ("pkpo_two_baselines", "grpo"), ("maxrl", "grpo")):
        for k in (1, kmax):
            d = diff(a, b, k)
            if d:
                said = {
                    "holds": "the published order holds",
                    "reversed": "the published order is reversed",
                }
                lines.append(
                    f"- `{a}` − `{b}` at pass@{k}: {fmt(d)} points (95 % CI over {d['basis']}); "
                    "the "
                    f"published table has PKPO (k = 16) or MaxRL above GRPO at pass@1 and at its "
                    f"largest k: {said.get(verdict(d), verdict(d))}."
                )
    return "\n".join(lines) or "No paired runs to compare."


def curves_figure(by, path: Path) -> str | None:
    """Held-out pass@1 and pass@16 during training (mean over seeds) and the training reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    drew = False
    for label, fs in by.items():
        if label == WARM:
            continue
        curves = [read_curves(Path(f["run_dir"])) for f in fs]
        curves = [c for c in curves if c and len(c["eval"].get("step", [])) > 1]
        if not curves:
            continue
        drew = True
        for ax, key in zip(axes[:2], ("pass@1", "pass@16")):
            # the evaluations during training (on the first eval_problems mazes; not the final,
            # larger set)
            n0 = [c["eval"]["num_problems"][0] for c in curves]
            pts = [
                (
                    c["eval"]["step"][c["eval"]["num_problems"] == m],
                    c["eval"][key][c["eval"]["num_problems"] == m],
                )
                for c, m in zip(curves, n0)
                if key in c["eval"]
            ]
            if pts:
                length = min(len(s) for s, _ in pts)
                ax.plot(
                    pts[0][0][:length],
                    100 * np.mean([v[:length] for _, v in pts], 0),
                    marker="o",
                    label=label,
                )
        reward = [training_reward(Path(f["run_dir"])) for f in fs]
        reward = [r for r in reward if len(r)]
        if reward:
            length = min(len(r) for r in reward)
            mean = np.mean([r[:length] for r in reward], 0)
            w = max(1, length // 20)
            axes[2].plot(np.convolve(mean, np.ones(w) / w, mode="valid"), label=label)
    if not drew:
        plt.close(fig)
        return None
    for ax, title in zip(
        axes,
        (
            "held-out pass@1 (T = 1) during training",
            "held-out pass@16 during training",
            "training reward (mean of the batch, smoothed)",
        ),
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def setting_line(cfg: dict) -> str:
    """The setting of a run config in one sentence."""
    size, d, layers, heads = cfg["maze_size"], cfg["d_model"], cfg["n_layer"], cfg["n_head"]
    samples = cfg["steps"] * cfg["prompts_per_step"] * cfg["n"]
    mazes = cfg["final_eval_problems"] or cfg["eval_problems"]
    eval_t = cfg.get("eval_temperature", cfg["temperature"])
    greedy = (
        f"T = {cfg['greedy_temperature']:g}, {cfg['greedy_samples']} samples"
        if "greedy_temperature" in cfg
        else "T = 0.1, 4 samples"
    )
    return (
        f"Setting: {size}x{size} mazes; GPT d = {d}, {layers} layers, {heads} heads; warm start "
        f"{cfg['warm_steps']} steps of {cfg['warm_batch']} shortest paths (lr {cfg['warm_lr']:g}); "
        f"{cfg['steps']} RL steps of {cfg['prompts_per_step']} fresh mazes x {cfg['n']} samples "
        "(the "
        f"same {samples} samples for every method), temperature {cfg['temperature']:g}, advantage "
        f"scale `{cfg['scale']}`; held-out evaluation on {mazes} mazes x {cfg['eval_samples']} "
        f"samples at T = {eval_t:g}, and near-greedy pass@1 ({greedy})."
    )


def tuning_line(out: Path, finals: list[dict], by, cfg: dict) -> str:
    """What was tuned and what won, or that nothing was."""
    path = out / "tuning.json"
    if not path.exists():
        lrs = sorted({f["config"]["lr"] for f in finals if f["label"] != WARM})
        entropy = (
            f" (entropy weight {cfg.get('entropy_coef', 0):g} for `grpo_entropy`)"
            if "grpo_entropy" in by
            else ""
        )
        return (
            f"**Not tuned**: every method ran at lr {', '.join(f'{lr:g}' for lr in lrs)}{entropy}; "
            "the tuning stage of the full benchmark did not run."
        )
    tuned = json.loads(path.read_text())
    seed = json.loads(next((out / "tune").glob("*/*/seed*/final.json")).read_text())["seed"]
    points = "; ".join(
        f"`{m}` " + ", ".join(f"{k} {v}" for k, v in t["point"].items()) for m, t in tuned.items()
    )
    from pkpo.rl.sweeps.maze import DEFAULT_TARGET, TARGETS

    targets = "; ".join(f"`{m}` by {' and '.join(TARGETS.get(m, DEFAULT_TARGET))}" for m in tuned)
    return (
        f"Tuning: {points} (tuning seed {seed}; each method's best point by its own target on the "
        f"validation mazes at T = 1, the mean where two are named: {targets})."
    )


def reduced_line(cfg: dict, by, tuned: bool) -> str | None:
    """How a run differs from the full benchmark (preset values, methods not run), or None."""
    from pkpo.rl.config import PRESETS
    from pkpo.rl.sweeps.maze import METHOD_RUNS

    differ = [
        f"{key} {cfg[key]} (preset {value})"
        for key, value in sorted(PRESETS["maze"].items())
        if key in cfg and cfg[key] != (list(value) if isinstance(value, tuple) else value)
    ]
    missing = [f"`{m}`" for m in METHOD_RUNS if m not in by]
    if not (differ or missing) and tuned:
        return None
    parts = [", ".join(differ)] + ([f"not run: {', '.join(missing)}"] if missing else [])
    return "**A reduced run**, not the full benchmark: " + "; ".join(p for p in parts if p) + "."


def setting_text(out: Path, finals: list[dict], by) -> str:
    cfg = next((f for f in finals if f["label"] != WARM), finals[0])["config"]
    methods = ", ".join(f"`{m}`" for m in by if m != WARM)
    seeds = sorted({f["seed"] for f in finals})
    lines = [
        (
            f"Ran: {methods}; seeds {seeds} (paired: a seed's runs share its warm start and the "
            "held-out mazes)."
        ),
        setting_line(cfg),
        tuning_line(out, finals, by, cfg),
    ]
    protocols = defaultdict(set)  # near-greedy evaluation protocol -> runs measured with it
    for f in finals:
        c = f["config"]
        key = (
            f"T = {c['greedy_temperature']:g}, {c['greedy_samples']} samples"
            if "greedy_temperature" in c
            else "T = 0.1, 4 samples"
        )
        protocols[key].add(f"`{f['label']}`")
    if len(protocols) > 1:
        lines.append(
            "Near-greedy pass@1 was measured two ways: "
            + "; ".join(f"{key} for {', '.join(sorted(runs))}" for key, runs in protocols.items())
            + " (the trainer "
            "gained its own near-greedy evaluation between these runs)."
        )
    reduced = reduced_line(cfg, by, (out / "tuning.json").exists())
    if reduced:
        lines.append(reduced)
    folders = [out, *sorted({Path(f["run_dir"]).parents[2] for f in finals} - {out})]
    text = "".join(
        (d / "commands.txt").read_text() for d in folders if (d / "commands.txt").exists()
    )
    report = ["python", "tools/maze_results.py", "--out", str(out)]
    report += ["--also", *map(str, folders[1:])] if len(folders) > 1 else []
    text += shlex.join(report) + "\n"
    if text:
        unique = list(dict.fromkeys(text.splitlines()))
        lines.append(
            "Commands that made these runs and this section:\n\n<!-- docs-test: parse-only (the "
            "commands that trained these runs: hours) -->\n```bash\n" + "\n".join(unique) + "\n```"
        )
    cpu = [f["cpu_s"] for f in finals if f["label"] != WARM and f.get("cpu_s")]
    if cpu:
        lines.append(
            f"CPU time per RL run: mean {np.mean(cpu):.0f} s (min {min(cpu):.0f}, max "
            f"{max(cpu):.0f}), one thread, on a shared 2-core machine."
        )
    return "\n\n".join(lines)


def eval_samples_done(run_dir: Path) -> int:
    """Samples drawn by the evaluations of a run (mazes x samples, from its metrics.jsonl)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return sum(
        int(r["eval/num_problems"]) * int(r["eval/samples"])
        for r in records
        if "eval/num_problems" in r
    )


def cost_estimate(finals: list[dict]) -> str:
    """The full benchmark's CPU time, extrapolated from the CPU seconds these runs measured.

    From the warm start of each report seed: its fit's CPU seconds per warm-start step (stored with
    the cached weights) and, by difference with the whole ``warm_start`` run, the CPU seconds per
    evaluation sample. From each RL run: (CPU seconds - its evaluation samples x that cost) / RL
    steps. The full benchmark (``PRESETS["maze"]`` and the grid of :mod:`pkpo.rl.sweeps.maze`) is
    then counted run by run.
    """
    import torch

    from pkpo.rl.config import PRESETS, TrainConfig
    from pkpo.rl.sweeps.maze import (
        LRS,
        METHOD_RUNS,
        REPORT_SEEDS,
        grid_points,
    )

    per_warm_step, per_sample = [], []
    for f in finals:
        if (
            f["label"] != WARM
            or not f.get("warm_start_path")
            or not Path(f["warm_start_path"]).exists()
        ):
            continue
        fit = torch.load(f["warm_start_path"], map_location="cpu", weights_only=True).get("cpu_s")
        samples = eval_samples_done(Path(f["run_dir"]))
        if fit and samples and f.get("cpu_s"):
            per_warm_step.append(fit / f["config"]["warm_steps"])
            per_sample.append((f["cpu_s"] - fit) / samples)
    if not per_sample:
        return "No estimate: no warm start with its measured CPU time is in these runs."
    e, w = float(np.mean(per_sample)), float(np.mean(per_warm_step))
    per_step = [
        (f["cpu_s"] - e * eval_samples_done(Path(f["run_dir"]))) / f["config"]["steps"]
        for f in finals
        if f["label"] != WARM and f.get("cpu_s")
    ]
    if not per_step:
        return "No estimate: no RL run with its measured CPU time is in these runs."
    c = float(np.mean(per_step))
    p = PRESETS["maze"]
    evals = len(range(0, p["steps"], p["eval_every"])) * p["eval_problems"] * p["eval_samples"]
    final = p["final_eval_problems"] * (p["eval_samples"] + TrainConfig().greedy_samples)
    run = p["steps"] * c + (evals + final) * e
    tuning = sum(len(grid_points(m, LRS)) for m in METHOD_RUNS)
    report = len(METHOD_RUNS) * len(REPORT_SEEDS)
    warm = (len(REPORT_SEEDS) + 1) * p["warm_steps"] * w + len(REPORT_SEEDS) * final * e
    total = (tuning + report) * run + warm
    return (
        f"Measured here (CPU seconds, one thread, on the loaded shared machine): {w:.2f} per "
        "warm-start step "
        f"(batch {p['warm_batch']}), {1000 * e:.1f} ms per evaluation sample, {c:.2f} per RL step "
        f"({p['prompts_per_step']} x {p['n']} samples; mean of {len(per_step)} runs). The full "
        "benchmark "
        f'(`PRESETS["maze"]`: {p["steps"]} RL steps a run; {tuning} tuning runs, {report} report '
        "runs, "
        f"{len(REPORT_SEEDS) + 1} warm starts) needs about {run:.0f} CPU seconds a run and "
        f"{total / 3600:.1f} "
        f"CPU hours in all: about {total / 2 / 3600:.1f} h of wall time on 2 cores with `--jobs "
        "2`, if the "
        "two processes are kept busy."
    )


def maze_blocks(out: Path, figure_dir: Path | None = None, also=()) -> dict[str, str]:
    """The ``maze-*`` blocks of docs/results.md from the runs under ``out``.

    ``also``: more benchmark folders whose runs (not their warm starts: ``out``'s is the reference)
    join the tables, e.g. methods run later with newer sources; every run is evaluated on the same
    held-out mazes, which the paired differences check.
    """
    finals = finished_runs(out)
    for extra in also:
        finals += [f for f in finished_runs(Path(extra)) if f["label"] != WARM]
    if not finals:
        raise ValueError(f"no finished maze runs under {str(out / 'runs')!r}")
    by = runs_by_label(finals)
    kmax = largest_k(finals)
    blocks = {
        "maze-setting": setting_text(out, finals, by),
        "maze-cost": cost_estimate(finals),
        "maze-table": results_table(by, kmax),
        "maze-published": published_table(by, kmax),
        "maze-ordering": ordering_table(finals, by, kmax),
        "maze-paired": headline_table(finals, by, kmax),
        "maze-findings": findings(finals, by, kmax),
        "maze-bias": bias_sentence(finals, by, kmax),
    }
    if figure_dir is not None:
        fig = curves_figure(by, Path(figure_dir) / "maze_curves.png")
        blocks["maze-curves"] = (
            "![maze training curves](figures/rl/maze_curves.png)"
            if fig
            else "No training curves: the runs logged no evaluation during training."
        )
    return blocks


# the blocks of docs/results.md this script writes (pkpo._output.replace_blocks leaves the
# others as they are)
MAZE_BLOCKS = r"maze-[\w-]+"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/maze_results.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default="runs/results/maze", help="the maze benchmark's folder")
    parser.add_argument("--docs", default="docs", help="the docs folder (results.md, figures/rl/)")
    parser.add_argument(
        "--also",
        nargs="*",
        default=[],
        metavar="DIR",
        help="more benchmark folders whose runs (not warm starts) join the tables",
    )
    parser.add_argument(
        "--print", action="store_true", help="print the blocks instead of writing the docs"
    )
    args = parser.parse_args(argv)
    try:
        blocks = maze_blocks(Path(args.out), Path(args.docs) / "figures" / "rl", args.also)
    except (ValueError, OSError) as exc:
        print(f"maze_results: error: {exc}", file=sys.stderr)
        return 2
    if args.print:
        for name, text in blocks.items():
            print(f"## {name}\n{text}\n")
        return 0
    results_md = Path(args.docs) / "results.md"
    from pkpo._output import rewrite_blocks

    rewrite_blocks(results_md, blocks, MAZE_BLOCKS)
    print(f"rewrote the maze blocks of {results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
