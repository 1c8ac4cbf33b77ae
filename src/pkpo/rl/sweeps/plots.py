"""The figures of a set of RL runs (``pkpo sweep``/``demo`` reports): curves from each run's
metrics.jsonl.

Every figure is a mean over seeds and draws the warm start (dashed black) as the reference every run
starts from: held-out pass@k_eval during training, solve rates, policy entropy, and final pass@k vs
k.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .runs import K_EVAL, aggregate, per_problem_pass_at_k, read_curves, read_detail, run_dir_of
from .runs import WARM_LABEL as WARM


def _smooth(x: np.ndarray, w: int = 10) -> np.ndarray:
    if len(x) < w:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    head = c[1:w] / np.arange(1, w)
    return np.concatenate([head, (c[w:] - c[:-w]) / w])


def _final_point_on_subset(curves: dict, final: dict) -> None:
    """Make the last point of a run's eval curve use the same problems as the points before it.

    Evaluations during training use the first ``eval_problems`` problems; the final one may use more
    (``final_eval_problems``). Its per-problem record gives the value on the first
    ``eval_problems``, so every point of a curve is measured on the same problems (the table uses
    all of them)."""
    cfg, ev = final.get("config", {}), curves.get("eval", {})
    m = cfg.get("eval_problems")
    detail = read_detail(final)
    if detail is None or not m or len(detail["successes"]) <= m or not len(ev.get("step", [])):
        return
    for key in list(ev):
        if key.startswith("pass@") and not key.endswith("_se"):
            k = int(key[5:])
            ev[key] = ev[key].astype(float).copy()
            ev[key][-1] = per_problem_pass_at_k(
                detail["successes"][:m], detail["samples"], k
            ).mean()


def warm_reference(finals: list[dict], n: int | None = None) -> dict:
    """The warm start's values that the figures draw as reference lines (means over its seeds):
    held-out pass@k, entropy, and its pass@n on all / hard held-out problems (the solve rate an
    untrained policy would have on fresh problems with n samples each)."""
    warm = [f for f in finals if f["label"] == WARM]
    if not warm:
        return {}
    ref = {
        key: float(np.mean([f[key] for f in warm if key in f]))
        for key in [f"pass@{k}" for k in K_EVAL] + ["entropy"]
        if any(key in f for f in warm)
    }
    details = [read_detail(f) for f in warm]
    details = [d for d in details if d is not None]
    if n and details and n <= details[0]["samples"]:
        solve, hard = [], []
        for d in details:
            p = per_problem_pass_at_k(d["successes"], d["samples"], n)
            solve.append(p.mean())
            if "rule_of" in d:
                from ..tasks.hidden_rule import MAJORITY_RULE

                mask = (
                    np.asarray(d["rule_of"]) != MAJORITY_RULE
                )  # the hard problems (tasks.HiddenRuleTask.is_hard)
                hard.append(p[mask].mean() if mask.any() else np.nan)
        ref["solve"] = float(np.mean(solve))
        if hard:
            ref["hard"] = float(np.nanmean(hard))
    return ref


def plot_runs(
    out: Path, finals: list[dict], prefix: str = "", note: str | None = None
) -> list[str]:
    """Curves (mean over seeds): held-out pass@k_eval and near-greedy pass@1, solve rates, entropy;
    final pass@k vs k with the near-greedy pass@1 beside it. Every figure draws the warm start
    (dashed black) as the reference the runs start from; ``note`` (e.g. "smoke test, no findings")
    titles every figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_label: dict[str, list[dict]] = defaultdict(list)
    for f in finals:
        if f["label"] == WARM:
            continue
        curves = read_curves(run_dir_of(f))
        if curves:
            _final_point_on_subset(curves, f)
            by_label[f["label"]].append(curves)
    rows = aggregate(finals)
    metric = rows[0]["metric"] if rows else "pass"
    trained = [f for f in finals if f["label"] != WARM]
    ref = warm_reference(finals, n=trained[0]["config"]["n"] if trained else None)
    figures = []
    warm_style = dict(color="black", ls="--", lw=1.2)

    panels = [f"{metric}@{k}" for k in K_EVAL] + [f"greedy_{metric}@1"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), sharex=True)
    start = {}  # the curves' common first point: the warm start on the curves' problems
    for label, cl in by_label.items():
        x = _mean_curve(cl, lambda c: c["eval"].get("step"))
        for ax, k in zip(axes, panels):
            y = _mean_curve(cl, lambda c, k=k: c["eval"].get(k))
            if x is not None and y is not None:
                m = min(len(x), len(y))
                ax.plot(x[:m], 100 * y[:m], marker="o", ms=3, label=label)
                if x[0] == 0:
                    start.setdefault(k, y[0])
    n_curve = trained[0]["config"].get("eval_problems") if trained else None
    for ax, k in zip(axes, panels):
        if k in start:
            ax.axhline(100 * start[k], label="warm start", **warm_style)
        shown = k.replace("greedy_", "near-greedy ")
        ax.set_title(
            f"held-out {shown} (%)" + (f", {n_curve} problems" if n_curve else ""), fontsize=10
        )
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _note(fig, note)
    figures.append(_save(fig, out / f"{prefix}pass_at_k_curves.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in (
        (axes[0], "solve", "solve rate: training problems drawn so far"),
        (axes[1], "hard", "hard solve rate: hard training problems drawn so far"),
    ):
        _step_curves(ax, by_label, key, lambda y: 100 * y)
        if key in ref:
            ax.axhline(
                100 * ref[key], label="warm start (its pass@n on held-out problems)", **warm_style
            )
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("%")
        _finish(ax)
    _note(fig, note)
    figures.append(_save(fig, out / f"{prefix}solve_rate.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    _step_curves(ax, by_label, "entropy", _smooth)
    if "entropy" in ref:
        ax.axhline(ref["entropy"], label="warm start", **warm_style)
    ax.set_title("policy entropy: mean -log p(y|x) of samples (nats)")
    _finish(ax)
    _note(fig, note)
    figures.append(_save(fig, out / f"{prefix}entropy.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ks = [k for k in K_EVAL if f"{metric}@{k}" in r]
        style = dict(warm_style, marker="s") if r["label"] == WARM else dict(marker="o")
        ax.errorbar(
            ks,
            [100 * r[f"{metric}@{k}"] for k in ks],
            yerr=[100 * np.nan_to_num(r[f"{metric}@{k}_se"]) for k in ks],
            ms=3,
            capsize=2,
            label="warm start" if r["label"] == WARM else r["label"],
            **style,
        )
    colours = iter(
        f"C{i}" for i in range(len(rows))
    )  # the cycle the lines above took (the warm start is black)
    first = True
    for i, r in enumerate(
        rows
    ):  # near-greedy pass@1: hollow diamonds left of k = 1, side by side, in the run's colour
        colour = "black" if r["label"] == WARM else next(colours)
        if f"greedy_{metric}@1" in r:
            ax.errorbar(
                [0.6 * 1.06**i],
                [100 * r[f"greedy_{metric}@1"]],
                yerr=[100 * np.nan_to_num(r[f"greedy_{metric}@1_se"])],
                marker="D",
                mfc="none",
                ms=5,
                capsize=2,
                ls="none",
                color=colour,
                label="near-greedy pass@1" if first else None,
            )
            first = False
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k_eval (diamonds: near-greedy pass@1)")
    ax.set_ylabel(f"held-out {metric}@k_eval (%)")
    ax.set_title("final held-out pass@k_eval")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _note(fig, note)
    figures.append(_save(fig, out / f"{prefix}final_pass_at_k.png"))
    return figures


def _mean_curve(curve_list, getter):
    """The mean over seeds of one curve, cut to the shortest seed's length (None when no seed has
    it)."""
    arrays = [getter(c) for c in curve_list]
    arrays = [a for a in arrays if a is not None and len(a)]
    if not arrays:
        return None
    m = min(len(a) for a in arrays)
    return np.mean([a[:m] for a in arrays], axis=0)


def _step_curves(ax, by_label: dict, key: str, show) -> None:
    """One line per run label: ``show(mean over seeds of the per-step curve key)`` against the RL
    step."""
    for label, cl in by_label.items():
        x = _mean_curve(cl, lambda c: c["step"])
        y = _mean_curve(cl, lambda c: c[key])
        if x is not None and y is not None and not np.isnan(y).all():
            m = min(len(x), len(y))
            ax.plot(x[:m], show(y[:m]), label=label)


def _finish(ax) -> None:
    ax.set_xlabel("RL step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _note(fig, note: str | None) -> None:
    """Lay the figure out, under a suptitle ``note`` when there is one."""
    if note:
        fig.suptitle(note.upper(), color="red", fontsize=12)
    fig.tight_layout()


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
