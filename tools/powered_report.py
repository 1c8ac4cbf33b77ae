"""The powered run's statistics, its stop rule and its docs block (docs/results_pretrained.md,
block ``powered``), from the run folders of ``python tools/powered.py run``.

The rules are stated in docs/results_pretrained.md ("A powered run") above the block; this module
applies them to the numbers:

- :func:`paired_delta`: a difference of held-out pass@k paired by seed and problem, its 95 %
  interval and its minimum detectable effect;
- :func:`stop_rule`: after k1 seed 0, go on only if k1 lost pass@16 against the base;
- :func:`block`: the screen, the base, every run, the primary measure (k8 − k1 at pass@16), the
  stop rule's verdict, and what did not run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pkpo._output import markdown_table
from pkpo.metrics import standard_error
from pkpo.rl.sweeps.runs import (
    finished_runs,
    per_problem_greedy,
    per_problem_pass_at_k,
    read_detail,
    run_dir_of,
)
from pkpo.rl.training.runfiles import RunFiles, read_metrics

LEVEL, POWER = 0.95, 0.80
PRIMARY_K = 16


# ------------------------------------------------------------------------------ the statistics


def paired_delta(a, b, level: float = LEVEL, power: float = POWER) -> dict:
    """mean(a − b) of per-problem values a, b of shape (S seeds, P problems), paired by seed and
    problem, with its standard error, a ``level`` interval and the minimum detectable effect.

    With d_sp = a_sp − b_sp modelled as Δ + seed effect + problem effect + residual (seeds and
    problems both drawn at random), the two-way mean squares
    MS_seed = P Σ_s (d̄_s − d̄)² / (S − 1), MS_prob = S Σ_p (d̄_p − d̄)² / (P − 1) and
    MS_res = Σ (d_sp − d̄_s − d̄_p + d̄)² / ((S − 1)(P − 1)) give the unbiased
    Var(d̄) = (MS_seed + MS_prob − MS_res) / (S P), with Satterthwaite's degrees of freedom. With
    one seed this is the SE over problems, sd(d_p) / sqrt(P), with P − 1 degrees of freedom. (An
    estimate at or below MS_res / (S P), which happens only by chance, is replaced by that floor,
    and ``floored`` says so.)

    The interval is d̄ ± t(df) SE; the minimum detectable effect (two-sided test at 1 − ``level``,
    power ``power``) is (t_{(1+level)/2, df} + t_{power, df}) SE: 2.80 SE for many degrees of
    freedom.
    """
    from gauntlet_report import t_quantile  # tools/gauntlet_report.py: Student t without scipy

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(
            f"paired values need the same (seeds, problems >= 2) shape, got {a.shape} and {b.shape}"
        )
    d = a - b
    S, P = d.shape
    mean, floored = float(d.mean()), False
    if S == 1:
        se, df = standard_error(d[0]), P - 1
    else:
        seed_m, prob_m = d.mean(axis=1), d.mean(axis=0)
        ms_seed = P * ((seed_m - mean) ** 2).sum() / (S - 1)
        ms_prob = S * ((prob_m - mean) ** 2).sum() / (P - 1)
        resid = d - seed_m[:, None] - prob_m[None, :] + mean
        ms_res = (resid**2).sum() / ((S - 1) * (P - 1))
        var_sum = ms_seed + ms_prob - ms_res
        parts = [(ms_seed, S - 1), (ms_prob, P - 1), (-ms_res, (S - 1) * (P - 1))]
        if var_sum <= ms_res:
            var_sum, parts, floored = ms_res, [(ms_res, (S - 1) * (P - 1))], True
        se = math.sqrt(var_sum / (S * P))
        denominator = sum(v * v / f for v, f in parts)
        df = var_sum**2 / denominator if denominator > 0 else math.inf
    if se == 0:
        half = mde = 0.0
    else:
        df_t = min(df, 1e6)
        half = t_quantile(level, df_t) * se
        mde = (t_quantile(level, df_t) + t_quantile(2 * power - 1, df_t)) * se
    return {
        "diff": mean,
        "se": se,
        "df": df,
        "lo": mean - half,
        "hi": mean + half,
        "mde": mde,
        "seeds": S,
        "problems": P,
        "floored": floored,
    }


# ------------------------------------------------------------------------------ the runs


def study_runs(out: Path) -> list[dict]:
    """The finished runs of the study folder ``out``: the base first, then by label and seed."""
    order = ["base", "k1", "k8"]
    return sorted(
        finished_runs(Path(out)),
        key=lambda f: (order.index(f["label"]) if f["label"] in order else 9, f["seed"]),
    )


def _final(finals: list[dict], label: str, seed: int) -> dict | None:
    return next((f for f in finals if f["label"] == label and f["seed"] == seed), None)


def per_problem(final: dict | None, k: int = PRIMARY_K, greedy: bool = False):
    """(uids, per-problem held-out pass@k or near-greedy pass@1) of a finished run, or None."""
    detail = read_detail(final) if final is not None else None
    if detail is None or detail["samples"] < k:
        return None
    values = (
        per_problem_greedy(detail)
        if greedy
        else per_problem_pass_at_k(detail["successes"], detail["samples"], k)
    )
    return None if values is None else (detail["uid"], values)


def compare(finals: list[dict], a: str, b: str, k: int = PRIMARY_K, greedy: bool = False):
    """:func:`paired_delta` of run ``a`` minus run ``b`` over the seeds both finished (the base,
    which has one evaluation, pairs with every seed), or None without a shared seed."""
    pairs = []
    for seed in sorted({f["seed"] for f in finals if f["label"] == a}):
        pa = per_problem(_final(finals, a, seed), k, greedy)
        pb = per_problem(_final(finals, b, 0 if b == "base" else seed), k, greedy)
        if pa is None or pb is None:
            continue
        if pa[0] != pb[0]:
            raise ValueError(f"runs {a!r} and {b!r} (seed {seed}) were evaluated on other problems")
        pairs.append((pa[1], pb[1]))
    if not pairs:
        return None
    return {
        **paired_delta([p[0] for p in pairs], [p[1] for p in pairs]),
        "a_mean": float(np.mean([p[0] for p in pairs])),
        "b_mean": float(np.mean([p[1] for p in pairs])),
    }


def _interval(d: dict) -> str:
    return (
        f"{100 * d['diff']:+.1f} points (95 % interval {100 * d['lo']:+.1f} to {100 * d['hi']:+.1f}"
        f"; SE {100 * d['se']:.1f}, {d['seeds']} seed{'s' if d['seeds'] > 1 else ''} x "
        f"{d['problems']} problems)"
    )


def stop_rule(out: Path) -> dict:
    """The stop rule after k1 seed 0: ``stop`` unless the paired 95 % interval of k1 − base at
    pass@16 lies below 0 (k1 lost pass@16: there is sharpening for k8 to guard against). Also
    ``stop`` (``decided`` False) while the base or k1 seed 0 has not finished."""
    finals = study_runs(out)
    d = compare([f for f in finals if f["seed"] == 0], "k1", "base")
    if d is None:
        return {"decided": False, "stop": True, "why": "the base or k1 seed 0 has not finished"}
    if d["hi"] < 0:
        why = (
            f"k1 lost pass@16 against the base: {_interval(d)}, the whole interval below 0; "
            "there is sharpening to guard against, so the study goes on"
        )
        return {"decided": True, "stop": False, "why": why, "delta": d}
    why = (
        f"k1 did not lose pass@16 against the base: {_interval(d)}, the interval does not lie "
        f"below 0 (a loss of {100 * d['mde']:.1f} points, the minimum detectable effect, would "
        "have been found with 80 % power); no sharpening to guard against, so the study does "
        "not start the runs after this stage"
    )
    return {"decided": True, "stop": True, "why": why, "delta": d}


# ------------------------------------------------------------------------------ the block


def _pct(final: dict, key: str) -> str:
    value = final.get(key)
    if value is None:
        return "-"
    se = final.get(key + "_se")
    return f"{100 * value:.1f}" + ("" if se is None or math.isnan(se) else f" ± {100 * se:.1f}")


def _training(final: dict) -> tuple[str, str]:
    """(-log p of the first 10 / last 10 training steps, seconds per step) from metrics.jsonl."""
    path = RunFiles(run_dir_of(final)).metrics
    steps = [r for r in read_metrics(path) if "policy/entropy" in r] if path.exists() else []
    if not steps:
        return "-", "-"
    ent = [r["policy/entropy"] for r in steps]
    step_s = float(np.mean([r["perf/step_s"] for r in steps]))
    return f"{np.mean(ent[:10]):.1f} → {np.mean(ent[-10:]):.1f}", f"{step_s:.0f}"


def screen_table(screen: dict, chosen: int | None) -> str:
    rows = [
        [
            d + (" (chosen)" if chosen is not None and int(d) == chosen else ""),
            f"{r['problems']} x {r['samples']}",
            f"{100 * r['pass@1']:.1f} ± {100 * r['pass@1_se']:.1f}",
            f"{r['no_correct']} of {r['problems']}",
            f"{r['wall_s']:.0f} s",
        ]
        for d, r in sorted(screen.items(), key=lambda kv: int(kv[0]))
    ]
    return markdown_table(
        ["difficulty", "problems x samples", "pass@1 (%)", "no correct sample", "wall"], rows
    )


def runs_table(finals: list[dict]) -> str:
    ks = (1, 2, 4, 8, 16)
    rows = []
    for f in finals:
        detail = read_detail(f)
        none = (
            f"{sum(c == 0 for c in detail['successes'])} of {len(detail['successes'])}"
            if detail
            else "-"
        )
        train_ent, step_s = _training(f) if f["label"] != "base" else ("-", "-")
        rows.append(
            [
                "base (before training)" if f["label"] == "base" else f["label"],
                "-" if f["label"] == "base" else f["seed"],
                *[_pct(f, f"pass@{k}") for k in ks],
                _pct(f, "greedy_pass@1"),
                none,
                f"{f['entropy']:.1f}" if f.get("entropy") is not None else "-",
                train_ent,
                step_s,
            ]
        )
    return markdown_table(
        ["run", "seed"]
        + [f"pass@{k}" for k in ks]
        + [
            "near-greedy pass@1",
            "no correct sample",
            "held-out -log p",
            "training -log p (first → last 10 steps)",
            "s / step",
        ],
        rows,
    )


def block(out: Path) -> str:
    """The generated block: what ran, the tables, the stop rule, the primary measure, what did
    not run."""
    import powered  # tools/powered.py: the plan and the screen rule

    out = Path(out)
    screen = powered.read_screen(out)
    chosen = powered.chosen_difficulty(screen)
    finals = study_runs(out)
    lines = []
    if not screen:
        return "Nothing has run yet: `python tools/powered.py run` starts with the screen."
    lines += [
        f"**Screen** (the base model with the exemplar prompt, T = "
        f"{powered.STUDY['eval_temperature']}, the first training problems):",
        "",
        screen_table(screen, chosen),
        "",
        (
            f"Chosen difficulty: **{chosen}** (pass@1 closest to {100 * powered.TARGET_PASS1:.0f} "
            "% in ratio)."
            if chosen is not None
            else "The screen has not finished, so no difficulty is chosen yet."
        ),
        "",
    ]
    if finals:
        cfg = finals[0]["config"]
        lines += [
            f"**Held-out evaluation** (in %; {cfg['eval_problems']} problems x "
            f"{cfg['eval_samples']} "
            f"samples at T = {cfg['eval_temperature']}; near-greedy pass@1: "
            f"{cfg['greedy_samples']} samples at T = {cfg['greedy_temperature']}; ± is the SE over "
            "problems of one run; task `" + cfg["task"] + "`):",
            "",
            runs_table(finals),
            "",
        ]
    rule = stop_rule(out)
    if rule["decided"]:
        verdict = "**stop after seed 0**" if rule["stop"] else "**go on**"
        lines += [f"**Stop rule**: {verdict}: {rule['why']}.", ""]
    else:
        lines += ["**Stop rule**: not evaluated yet (" + rule["why"] + ").", ""]
    primary = compare(finals, "k8", "k1")
    if primary is None:
        lines.append("**Primary measure** (k8 − k1 at pass@16): not measured, no k8 run finished.")
    else:
        significant = primary["lo"] > 0 or primary["hi"] < 0
        lines.append(
            f"**Primary measure**, k8 − k1 at held-out pass@16, paired by seed and problem: "
            f"{_interval(primary)}; k8 {100 * primary['a_mean']:.1f} %, k1 "
            f"{100 * primary['b_mean']:.1f} %. "
            + (
                "The interval excludes 0."
                if significant
                else "A null: the interval contains 0. The minimum detectable effect (80 % power, "
                f"two-sided 5 %) is {100 * primary['mde']:.1f} points: an effect of that size "
                "would have been found with 80 % power; smaller ones are not ruled out."
            )
        )
        for k, greedy, name in ((1, False, "pass@1"), (1, True, "near-greedy pass@1")):
            d = compare(finals, "k8", "k1", k, greedy)
            if d is not None:
                lines.append(f"Secondary, k8 − k1 at {name}: {_interval(d)}.")
        lines.append(
            f"Secondary, k8 − base at pass@16: {_interval(compare(finals, 'k8', 'base'))}."
        )
    for label, (k, changed) in powered.EXPLORATORY.items():
        setting = ", ".join(f"{key} {value:g}" for key, value in changed.items())
        for other in ("k1", "k8", "base"):
            d = compare(finals, label, other)
            if d is not None:
                lines.append(
                    f"Exploratory (outside the plan: k = {k}, {setting}), {label} − {other} at "
                    f"pass@16: {_interval(d)}."
                )
    lines += step_size_rule(finals)
    lines.append("")
    done = {f"{f['label']} seed {f['seed']}" for f in finals}
    missing = [
        j.describe() for j in powered.plan() if j.label != "screen" and j.describe() not in done
    ]
    if not missing:
        lines.append("Every planned run finished.")
    elif rule["decided"] and rule["stop"]:
        lines.append("**Not run, by the stop rule**: " + ", ".join(missing) + ".")
        past = sorted(done & {j.describe() for j in powered.plan() if powered.gated(j)})
        if past:
            lines.append(
                "Run although the rule stops the study (named with `--job` in a second process, "
                "which the rule does not gate): " + ", ".join(past) + ". Their comparisons "
                "above are exploratory, not a test the study was sized for."
            )
    else:
        lines.append("**Not run yet** (time box or not started): " + ", ".join(missing) + ".")
    return "\n".join(lines)


def step_size_rule(finals: list[dict]) -> list[str]:
    """Amendment 2's rule (docs/results_pretrained.md), once k8-half-lr and k1 have a shared seed:
    the step size accounts for k8's pass@16 loss at the study's lr unless the paired interval of
    k8-half-lr − k1 at pass@16 lies below 0."""
    d = compare(finals, "k8-half-lr", "k1")
    if d is None:
        return []
    if d["hi"] < 0:
        return ["**Amendment 2's rule**: k8-half-lr − k1 lies below 0, so the step size does not "
                "account for k8's loss at pass@16."]  # fmt: skip
    k8 = compare(finals, "k8", "k1")
    also = (
        f" The interval also holds k8's own loss ({100 * k8['diff']:+.1f}): this one seed cannot "
        "tell the two apart."
        if k8 is not None and d["lo"] <= k8["diff"]
        else ""
    )
    return [
        "**Amendment 2's rule**: k8-half-lr − k1 does not lie below 0, so by the rule the step "
        "size accounts for k8's loss at pass@16." + also
    ]


def write_docs(out: Path, docs: Path) -> None:
    """Replace the ``powered`` block of ``docs`` (docs/results_pretrained.md)."""
    from pkpo._output import rewrite_blocks

    rewrite_blocks(docs, {"powered": block(out)}, "powered")
    print(f"rewrote the powered block of {docs}")
