"""The five PNGs of the toy study, drawn from the toy.json dictionary (nothing is recomputed
here)."""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from .._output import atomic_write  # noqa: E402
from .estimators import ESTIMATORS, LABELS  # noqa: E402

__all__ = ["FIGURES", "write_figures"]

FIGURES = (
    "fig1_landscape.png",
    "fig2_weights.png",
    "fig4_variance.png",
    "fig5_transformed.png",
    "toy_training.png",
)
COLORS = dict(
    zip(
        ESTIMATORS,
        ("tab:gray", "tab:orange", "tab:red", "tab:purple", "tab:olive", "tab:cyan", "tab:blue"),
    )
)
BASELINE_TITLES = {
    "none": "s (no baseline)",
    "loo": "s^(loo)",
    "loo_minus_one": "s^(loo-1) (PKPO)",
    "centered": "centered rho(g) - rho(g_-i)",
}
DPI = 90


def _k_colors(ks):
    cmap = plt.get_cmap("viridis")
    return {k: cmap(i / max(len(ks) - 1, 1)) for i, k in enumerate(ks)}


def _save(fig, out_dir: str, name: str) -> str:
    """Write the figure as ``out_dir/name`` (PNG) through :func:`pkpo._output.atomic_write`."""
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path


def landscape_figure(result: dict, out_dir: str) -> str:
    """Figure 1: (a) maxg@k(theta) with g for reference, (b) d maxg@k / d theta."""
    land = result["landscape"]
    theta = np.array(land["theta"])
    ks = list(land["maxg"])
    colors = _k_colors(ks)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(
        theta,
        np.where((theta >= 0) & (theta <= 1), theta**2, 0.0),
        "k--",
        lw=1,
        label="g(x) (x = theta)",
    )
    for k in ks:
        left.plot(theta, land["maxg"][k], color=colors[k], label=f"k={k}")
        star = land["theta_star"][k]
        left.plot([star], [land["maxg_at_theta_star"][k]], "o", color=colors[k], ms=4)
        right.plot(theta, land["gradient"][k], color=colors[k], label=f"k={k}")
    left.set(xlabel="theta", ylabel="maxg@k(theta)", title="(a) objective (dots: theta*(k))")
    right.axhline(0, color="k", lw=0.5)
    right.set(xlabel="theta", ylabel="d maxg@k / d theta", title="(b) exact derivative")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    return _save(fig, out_dir, "fig1_landscape.png")


def weights_figure(result: dict, out_dir: str) -> str:
    """Figure 2: rank weights C(i-1, k-1)/C(n, k)."""
    weights = result["weights"]
    ks = list(weights["w"])
    colors = _k_colors(ks)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ranks = np.arange(1, weights["n"] + 1)
    for k in ks:
        ax.plot(ranks, weights["w"][k], "o-", color=colors[k], label=f"k={k}")
    ax.set(
        xlabel="rank i (ascending)",
        ylabel="weight C(i-1,k-1)/C(n,k)",
        title=f"rank weights, n={weights['n']}",
    )
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "fig2_weights.png")


def variance_figure(result: dict, out_dir: str) -> str:
    """Figure 4: variance against n (log-log), and the sample means against the exact derivative."""
    exact = result["variance_exact_derivative"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    offsets = np.linspace(-0.12, 0.12, len(ESTIMATORS))
    for offset, name in zip(offsets, ESTIMATORS):
        if name not in result["variance"]:
            continue
        ns = np.array([int(n) for n in result["variance"][name]])
        left.plot(
            ns,
            list(result["variance"][name].values()),
            "o-",
            color=COLORS[name],
            label=LABELS[name],
        )
        means = np.array(list(result["variance_mean"][name].values()))
        errors = np.array(list(result["variance_standard_error"][name].values()))
        right.errorbar(
            ns * 2**offset, means, yerr=2 * errors, fmt="o", color=COLORS[name], ms=3, capsize=2
        )
    left.set_xscale("log")
    right.set_xscale("log")
    setup = result["variance_setup"]
    left.set(
        yscale="log",
        xlabel="n",
        ylabel="variance",
        title=f"variance of d maxg@{setup['k']}/d theta at theta={setup['theta']:g}",
    )
    ns = [int(n) for n in result["variance"]["s"]]
    for ax in (left, right):
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    right.axhline(exact, color="k", lw=1, label=f"exact {exact:.4f}")
    right.set(
        xlabel="n",
        ylabel="sample mean +- 2 s.e.",
        title="unbiasedness: means vs the exact derivative",
    )
    left.legend(fontsize=7, loc="upper right")
    right.legend(fontsize=8)
    return _save(fig, out_dir, "fig4_variance.png")


def transformed_figure(result: dict, out_dir: str) -> str:
    """Figure 5: binned mean transformed reward against the raw reward, one panel per baseline."""
    data = result["transformed"]
    ks = list(data["k"])
    colors = _k_colors(ks)
    fig, axes = plt.subplots(1, len(BASELINE_TITLES), figsize=(14, 3.6), sharex=True)
    for ax, (baseline, title) in zip(axes, BASELINE_TITLES.items()):
        for k in ks:
            ax.plot(
                data["k"][k]["bin_centers"],
                data["k"][k][baseline]["mean"],
                ".-",
                color=colors[k],
                label=f"k={k}",
            )
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xlabel="raw reward", title=title)
    axes[0].set_ylabel(f"mean transformed reward (n={data['n']})")
    axes[0].legend(fontsize=8)
    return _save(fig, out_dir, "fig5_transformed.png")


def training_figure(result: dict, out_dir: str) -> str:
    """Toy training: median theta over seeds (10-90% band) per estimator, with theta*(k)."""
    training = result["training"]
    panels = list(training["runs"]) + ["annealed"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, panel in zip(axes, panels):
        if panel == "annealed":
            run = training["annealed"]
            runs = {run["estimator"]: run}
            first, second = run["ks"]
            for k in (first, second):
                ax.axhline(training["theta_star"][str(k)], color="k", ls=":", lw=1)
                ax.text(0, training["theta_star"][str(k)], f" theta*({k})", va="bottom", fontsize=7)
            ax.axvline(run["switch_samples"], color="k", lw=0.5)
            ax.set_title(f"annealed: k={first}, then k={second} (s^(loo-1))", fontsize=9)
            ax.set_xlabel("samples")
        else:
            runs = training["runs"][panel]
            ax.axhline(training["theta_star"][panel], color="k", ls=":", lw=1, label="theta*(k)")
            ax.set_title(f"k={panel}, n={result['settings']['training']['n']}", fontsize=9)
            ax.set(xscale="log", xlabel="samples (log scale)")
        for name, run in runs.items():
            x = np.array(run["samples"])
            keep = x > 0 if panel != "annealed" else x >= 0  # log axis: drop the start
            ax.plot(
                x[keep],
                np.array(run["theta_median"])[keep],
                color=COLORS[name],
                lw=1.2,
                label=LABELS[name],
            )
            ax.fill_between(
                x[keep],
                np.array(run["theta_q10"])[keep],
                np.array(run["theta_q90"])[keep],
                color=COLORS[name],
                alpha=0.15,
            )
        ax.set_ylim(0.45, 1.1)
    axes[0].set_ylabel("theta (median over seeds, 10-90% band)")
    axes[1 if len(axes) > 1 else 0].legend(fontsize=6, loc="lower right")
    return _save(fig, out_dir, "toy_training.png")


def write_figures(result: dict, out_dir: str) -> list:
    """Draw every figure into ``out_dir``; returns the paths in :data:`FIGURES` order."""
    return [
        landscape_figure(result, out_dir),
        weights_figure(result, out_dir),
        variance_figure(result, out_dir),
        transformed_figure(result, out_dir),
        training_figure(result, out_dir),
    ]
