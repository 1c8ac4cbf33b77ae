"""Tables and plots for a set of RL runs (``pkpo sweep`` and ``pkpo demo``).

The table follows the paper's Tables 1-8: one row per method, columns held-out pass@k_eval for
k_eval in {1, 2, 4, 8, 16} in %, mean ± standard error over seeds (ddof = 1). With a single seed the
± is the standard error over held-out problems of that run instead (marked in the header).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

K_EVAL = (1, 2, 4, 8, 16)


def _mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")


def aggregate(finals: list[dict]) -> list[dict]:
    """Group final metrics by run label; mean and SE over seeds for each column."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for f in finals:
        groups[f["label"]].append(f)
    rows = []
    for label, fs in groups.items():
        metric = "pass" if any(f"pass@1" in f for f in fs) else "maxg"
        row = {"label": label, "method": fs[0]["method"], "k_schedule": fs[0]["k_schedule"],
               "baseline": fs[0]["baseline"], "seeds": sorted(f["seed"] for f in fs), "metric": metric}
        for k in K_EVAL:
            key = f"{metric}@{k}"
            vals = [f[key] for f in fs if key in f]
            if vals:
                mean, se = _mean_se(vals)
                if len(vals) == 1:
                    se = fs[0].get(f"{key}_se", float("nan"))
                row[key], row[key + "_se"] = mean, se
        for key in ("cumulative_solve_rate", "entropy", "reward_mean"):
            vals = [f[key] for f in fs if key in f]
            if vals:
                row[key], row[key + "_se"] = _mean_se(vals)
        rows.append(row)
    return rows


def warm_start_row(finals: list[dict]) -> dict | None:
    """The held-out metrics at step 0 (the warm-started policy), one value per seed, as a table row.

    Every run of a seed starts from the same cached warm start and evaluates step 0 with the same
    sampling seed, so the first run of each seed is used.
    """
    per_seed: dict[int, dict] = {}
    for f in finals:
        if f["seed"] in per_seed:
            continue
        curves = read_curves(Path(f.get("run_dir") or f["config"]["out_dir"]))
        ev = curves.get("eval", {}) if curves else {}
        if len(ev.get("step", [])) and ev["step"][0] == 0:
            per_seed[f["seed"]] = {key: float(v[0]) for key, v in ev.items() if key != "step"}
    if not per_seed:
        return None
    fs = [{"label": "warm start (step 0)", "method": "-", "k_schedule": "-", "baseline": "-", "seed": s,
           "cumulative_solve_rate": float("nan"), **vals} for s, vals in per_seed.items()]
    row = aggregate(fs)[0]
    row.pop("cumulative_solve_rate", None)
    return row


def table_markdown(rows: list[dict]) -> str:
    metric = rows[0]["metric"] if rows else "pass"
    seeds = max((len(r["seeds"]) for r in rows), default=1)
    pm = "mean ± SE over seeds" if seeds > 1 else "± SE over held-out problems (1 seed)"
    head = ["method", "k schedule", "seeds"] + [f"{metric}@{k}" for k in K_EVAL] + ["cum. solve rate",
                                                                                   "entropy (nats)"]
    lines = [f"Held-out {metric}@k_eval in %, {pm}; best trained run of each column in bold.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    trained = [r for r in rows if r["method"] != "-"]  # the warm-start row is a reference, not a contender
    best = {k: max((r.get(f"{metric}@{k}", -1) for r in trained), default=-1) for k in K_EVAL}

    def cell(r, key, scale=100.0, bold_at=None):
        if key not in r:
            return "-"
        se = r.get(key + "_se", float("nan"))
        text = f"{scale * r[key]:.1f}" + ("" if math.isnan(se) else f" ± {scale * se:.1f}")
        return f"**{text}**" if bold_at is not None and abs(r[key] - bold_at) < 1e-12 else text

    for r in rows:
        cells = [r["label"], r["k_schedule"], str(len(r["seeds"]))]
        cells += [cell(r, f"{metric}@{k}", bold_at=best[k]) for k in K_EVAL]
        cells += [cell(r, "cumulative_solve_rate"), cell(r, "entropy", scale=1.0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_curves(run_dir: Path) -> dict:
    """Per-step and eval curves of one run from its metrics.jsonl."""
    steps, solve, ent, evals = [], [], [], defaultdict(list)
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "k" in rec and "train/cumulative_solve_rate" in rec:
            steps.append(rec["step"])
            solve.append(rec["train/cumulative_solve_rate"])
            ent.append(rec["policy/entropy"])
        elif any(key.startswith("eval/") for key in rec):
            evals["step"].append(rec["step"])
            for key, value in rec.items():
                if key.startswith("eval/"):
                    evals[key[5:]].append(value)
    return {"step": np.array(steps), "solve": np.array(solve), "entropy": np.array(ent),
            "eval": {k: np.array(v) for k, v in evals.items()}}


def _smooth(x: np.ndarray, w: int = 10) -> np.ndarray:
    if len(x) < w:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    head = c[1:w] / np.arange(1, w)
    return np.concatenate([head, (c[w:] - c[:-w]) / w])


def plot_runs(out: Path, finals: list[dict], prefix: str = "") -> list[str]:
    """Curves (mean over seeds): held-out pass@k_eval, cumulative solve rate, entropy; final pass@k vs k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_label: dict[str, list[dict]] = defaultdict(list)
    for f in finals:
        curves = read_curves(Path(f.get("run_dir") or f["config"]["out_dir"]))
        if curves:
            by_label[f["label"]].append(curves)
    rows = aggregate(finals)
    metric = rows[0]["metric"] if rows else "pass"
    figures = []

    def mean_curve(curve_list, getter):
        arrays = [getter(c) for c in curve_list]
        arrays = [a for a in arrays if a is not None and len(a)]
        if not arrays:
            return None
        m = min(len(a) for a in arrays)
        return np.mean([a[:m] for a in arrays], axis=0)

    fig, axes = plt.subplots(1, len(K_EVAL), figsize=(4 * len(K_EVAL), 3.4), sharex=True)
    for label, cl in by_label.items():
        x = mean_curve(cl, lambda c: c["eval"].get("step"))
        for ax, k in zip(axes, K_EVAL):
            y = mean_curve(cl, lambda c, k=k: c["eval"].get(f"{metric}@{k}"))
            if x is not None and y is not None:
                m = min(len(x), len(y))
                ax.plot(x[:m], 100 * y[:m], marker="o", ms=3, label=label)
    for ax, k in zip(axes, K_EVAL):
        ax.set_title(f"held-out {metric}@{k} (%)")
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    figures.append(_save(fig, out / f"{prefix}pass_at_k_curves.png"))

    for key, title, fname, smooth in (("solve", "cumulative solve rate (train problems)", "cumulative_solve_rate.png",
                                       False),
                                      ("entropy", "policy entropy: mean -log p(y|x) of samples (nats)", "entropy.png",
                                       True)):
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, cl in by_label.items():
            x = mean_curve(cl, lambda c: c["step"])
            y = mean_curve(cl, lambda c, key=key: c[key])
            if x is not None and y is not None:
                m = min(len(x), len(y))
                ax.plot(x[:m], _smooth(y[:m]) if smooth else y[:m], label=label)
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        figures.append(_save(fig, out / f"{prefix}{fname}"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ks = [k for k in K_EVAL if f"{metric}@{k}" in r]
        ax.errorbar(ks, [100 * r[f"{metric}@{k}"] for k in ks],
                    yerr=[100 * np.nan_to_num(r[f"{metric}@{k}_se"]) for k in ks], marker="o", ms=3, capsize=2,
                    label=r["label"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k_eval")
    ax.set_ylabel(f"held-out {metric}@k_eval (%)")
    ax.set_title("final held-out pass@k_eval")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    figures.append(_save(fig, out / f"{prefix}final_pass_at_k.png"))
    return figures


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def write_sweep_report(out: Path, finals: list[dict], *, title: str, command: str, wall_s: float,
                       report_name: str = "report.md") -> dict:
    """Write ``table.md``, ``table.json``, the PNGs and a short ``report.md`` into ``out``."""
    out = Path(out)
    rows = aggregate(finals)
    start = warm_start_row(finals)
    table = table_markdown(rows + ([start] if start else []))
    figures = plot_runs(out, finals)
    (out / "table.md").write_text(table + "\n")
    (out / "table.json").write_text(json.dumps({"rows": rows, "command": command, "wall_s": wall_s}, indent=2))
    cfg = finals[0]["config"] if finals else {}
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Wall time: {wall_s:.0f} s  ",
             f"Task: {cfg.get('task')} (tier {cfg.get('tier')}, feature {cfg.get('feature')}); "
             f"{cfg.get('steps')} RL steps of {cfg.get('prompts_per_step')} prompts x {cfg.get('n')} samples; "
             f"held-out: {cfg.get('eval_problems')} problems x {cfg.get('eval_samples')} samples.", "", table, ""]
    lines += [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    (out / report_name).write_text("\n".join(lines) + "\n")
    return {"table_md": table, "rows": rows, "figures": figures}
