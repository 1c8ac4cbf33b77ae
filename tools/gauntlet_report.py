"""The gauntlet's tables and generated words (docs/results.md block ``gauntlet``, README block
``readme-gauntlet``), from the finished runs of ``python tools/gauntlet.py run``.

The decision rules and the family of headline comparisons are stated in docs/results.md ("Decision
rules"); this module applies them to the numbers. Every comparison is paired by seed and problem
(:func:`pkpo.rl.sweeps.report.paired_difference`); the family is corrected with Holm's step-down
procedure (:func:`holm`), and each interval is the t-interval at its Holm level.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pkpo._output import markdown_table
from pkpo.metrics import standard_error
from pkpo.rl.sweeps.report import paired_difference
from pkpo.rl.sweeps.runs import WARM_LABEL as WARM
from pkpo.rl.sweeps.runs import (
    aggregate,
    finished_runs,
    per_problem_greedy,
    read_curves,
    read_detail,
)

ALPHA = 0.05
# the family of headline comparisons (docs/results.md): (a, b, k, near-greedy?)
FAMILY = [
    ("filter", "k1", 8, False),
    ("filter", "k8", 8, False),
    ("k8", "k1", 8, False),
    ("k8", "anneal", 1, True),
    ("anneal", "k1", 1, True),
    ("k8", "k1", 1, True),
]
NON_PASS_AT_K = ("filter", "positive", "grpo", "maxrl", "entropy", "hot", "n64")
# rule 1's own family (amendment 3 of docs/results.md): every method the rule names against k1 at
# pass@8, Holm-corrected over these comparisons
RULE1_FAMILY = [(m, "k1", 8, False) for m in NON_PASS_AT_K]
ESCAPE_POINTS = 0.10  # rule 1: pass@8 at least 10 points above k1's
MATCH_POINTS = 0.02  # rule 2: k8's near-greedy pass@1 no more than 2 points below the anneal's
EFFECT_POINTS = 0.05  # rule 4: the effect appears in a phase cell when k8 - k1 pass@8 > 5 points
PHASE_FIGURE = "figures/rl/gauntlet_phase.png"  # relative to docs/
PHASE_METRICS = (
    ("pass@8", "pass@8"),
    ("greedy_pass@1", "near-greedy pass@1"),
    ("pass@1", "pass@1 (T = 1)"),
)


# ------------------------------------------------------------------------------ Student t, no scipy


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if math.isinf(t):
        return 0.0
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(level: float, df: int) -> float:
    """The two-sided critical value c with P(|T| <= c) = ``level`` (bisection on
    :func:`t_two_sided_p`)."""
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > 1.0 - level:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_two_sided_p(mid, df) > 1.0 - level else (lo, mid)
    return (lo + hi) / 2.0


def holm(p_values: list[float], alpha: float = ALPHA) -> tuple[list[bool], list[float]]:
    """Holm's step-down procedure: (rejected?, the level alpha / (m - rank) each was tested at), in
    the input order. Sorted by p, the i-th smallest (i = 0, 1, ...) is rejected when it and every
    smaller one satisfy p <= alpha / (m - i)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rejected, levels, still = [False] * m, [alpha] * m, True
    for rank, i in enumerate(order):
        levels[i] = alpha / (m - rank)
        still = still and p_values[i] <= levels[i]
        rejected[i] = still
    return rejected, levels


# --------------------------------------------------------------------------------- the comparisons


def family_results(finals: list[dict], family: list[tuple] = FAMILY) -> list[dict]:
    """Every comparison (a, b, k, near-greedy?) of ``family`` whose runs share >= 2 seeds: the
    paired difference, its t-test p-value, the Holm verdict and the interval at its Holm level
    (fractions); Holm's correction is over the comparisons that are evaluable."""
    out = []
    for a, b, k, greedy in family:
        d = paired_difference(finals, a, b, k, greedy=greedy)
        if d is None or d["seeds"] < 2:
            continue
        se = standard_error(d["per_seed"])
        df = d["seeds"] - 1
        t = d["diff"] / se if se > 0 else (math.inf if d["diff"] != 0 else 0.0)
        out.append({**d, "se": se, "df": df, "p": t_two_sided_p(t, df)})
    rejected, levels = holm([r["p"] for r in out])
    for r, rej, level in zip(out, rejected, levels):
        half = t_quantile(1.0 - level, r["df"]) * r["se"]
        r.update(holm_rejects=rej, holm_level=level, lo=r["diff"] - half, hi=r["diff"] + half)
    return out


def comparison_name(r: dict) -> str:
    m = r.get("metric", "pass")  # "maxg" for a task with continuous rewards
    metric = f"near-greedy {m}@1" if r["greedy"] else f"{m}@{r['k']}"
    return f"{r['a']} − {r['b']} ({metric})"


def family_table(results: list[dict]) -> str:
    rows = [
        [
            comparison_name(r),
            f"{100 * r['a_mean']:.1f}",
            f"{100 * r['b_mean']:.1f}",
            f"{100 * r['diff']:+.1f}",
            f"{r['p']:.4f}",
            f"{100 * (1 - r['holm_level']):.2f} %",
            f"{100 * r['lo']:+.1f} to {100 * r['hi']:+.1f}",
            "yes" if r["holm_rejects"] else "no",
            ", ".join(f"{100 * v:+.1f}" for v in r["per_seed"]),
        ]
        for r in results
    ]
    return markdown_table(
        [
            "comparison",
            "a (%)",
            "b (%)",
            "a − b (points)",
            "p (paired t)",
            "Holm level",
            "interval at that level",
            "Holm rejects 0",
            "per seed",
        ],
        rows,
    )


def current_runs(finals: list[dict], out: Path) -> tuple[list[dict], list[dict]]:
    """(the runs made at their method's tuned setting, the others): a run whose recorded value of
    its method's tuned knob differs from the point :func:`gauntlet.tuned_point` chooses now was made
    before the tuning chose it (the study reruns it)."""
    import gauntlet  # tools/gauntlet.py

    kept, superseded = [], []
    for f in finals:
        point = gauntlet.tuned_point(f["label"], out)[0] if f["label"] in gauntlet.METHODS else {}
        config = f.get("config", {})
        stale = any(key in config and config[key] != value for key, value in point.items())
        (superseded if stale else kept).append(f)
    return kept, superseded


def _find(results, a, b, greedy):
    return next((r for r in results if r["a"] == a and r["b"] == b and r["greedy"] == greedy), None)


def method_table(finals: list[dict], tuning: dict[str, str]) -> str:
    rows = []
    for r in sorted(aggregate(finals), key=lambda r: r["label"] != WARM):

        def cell(key):
            if key not in r:
                return "-"
            se = r.get(key + "_se", float("nan"))
            return f"{100 * r[key]:.1f}" + ("" if math.isnan(se) else f" ± {100 * se:.1f}")

        rows.append(
            [
                r["label"],
                len(r["seeds"]),
                cell("pass@1"),
                cell("greedy_pass@1"),
                cell("pass@4"),
                cell("pass@8"),
                cell("hard_solve_rate"),
                tuning.get(r["label"], "-"),
            ]
        )
    return markdown_table(
        [
            "run",
            "seeds",
            "pass@1 (T = 1)",
            "near-greedy pass@1",
            "pass@4",
            "pass@8",
            "hard solve rate",
            "setting",
        ],
        rows,
    )


def rule_words(results: list[dict], rule1: list[dict], finals: list[dict]) -> list[str]:
    """The sentences of rules 1 and 2 (docs/results.md): rule 1 from its own Holm-corrected family
    ``rule1`` (:data:`RULE1_FAMILY`), the rest from the headline family ``results``."""
    words = []
    labels = {f["label"] for f in finals}
    escaped = [
        (r["a"], r)
        for r in rule1
        if r["diff"] >= ESCAPE_POINTS and r["holm_rejects"] and r["lo"] > 0
    ]
    if escaped:
        listed = "; ".join(
            f"{m}: pass@8 {100 * x['a_mean']:.1f} % against k1's {100 * x['b_mean']:.1f} % "
            f"({100 * x['diff']:+.1f} points, Holm-level interval {100 * x['lo']:+.1f} to "
            f"{100 * x['hi']:+.1f}; {x['seeds']} seeds)"
            for m, x in escaped
        )
        post_hoc = [m for m, _ in escaped if m != "filter"]
        words.append(
            "**Rule 1 holds: a non-pass@k method escapes the trap** ("
            + listed
            + "). Down-weighting solved prompts unblocks learning here, and PKPO's distinct "
            "contribution is the explicit, unbiased target k."
            + (
                f" The verdict for {', '.join(post_hoc)} rests on rule 1's own family, which was "
                "set after the runs (third amendment in docs/results.md): a finding to confirm "
                "on new seeds."
                if post_hoc
                else ""
            )
        )
    elif rule1:
        tested = ", ".join(r["a"] for r in rule1)
        words.append(
            f"Rule 1 does not hold: none of the tuned non-pass@k methods measured ({tested}) "
            "escapes the trap by the rule's margin (pass@8 at least 10 points above k1's, "
            "Holm-level interval above 0)."
        )
    else:
        words.append("Rule 1 is not evaluable: no method it names shares two seeds with k1.")
    f8 = _find(results, "filter", "k8", False)
    if f8 is not None:
        words.append(
            f"Against PKPO at k = 8, the filter's pass@8 differs by {100 * f8['diff']:+.1f} points "
            f"(Holm-level interval {100 * f8['lo']:+.1f} to {100 * f8['hi']:+.1f}; "
            + ("Holm rejects equality" if f8["holm_rejects"] else "Holm does not reject equality")
            + ")."
        )
    g = _find(results, "k8", "anneal", True)
    if g is not None:
        if g["lo"] > -MATCH_POINTS:
            words.append(
                f"**Rule 2 holds: decode greedily for pass@1.** k8 decoded near-greedily reaches "
                f"{100 * g['a_mean']:.1f} % pass@1 against the anneal's {100 * g['b_mean']:.1f} % "
                f"({100 * g['diff']:+.1f} points, Holm-level interval {100 * g['lo']:+.1f} to "
                f"{100 * g['hi']:+.1f}: its lower end is above −{100 * MATCH_POINTS:.0f} points), "
                "so "
                '"annealing wins both" is not claimed.'
            )
        else:
            words.append(
                "Rule 2 does not hold: decoded near-greedily, k8's pass@1 is "
                f"{100 * g['a_mean']:.1f} % against the anneal's {100 * g['b_mean']:.1f} % "
                f"({100 * g['diff']:+.1f} points, Holm-level interval {100 * g['lo']:+.1f} to "
                f"{100 * g['hi']:+.1f}, reaching below −{100 * MATCH_POINTS:.0f} points): "
                "annealing keeps an advantage at pass@1 even against greedy decoding."
            )
    elif {"k8", "anneal"} <= labels:
        words.append("Rule 2 is not evaluable: k8 and the anneal do not share two finished seeds.")
    return words


# --------------------------------------------------------------------------------- the first task


def greedy_auc(run_dir: Path, final: dict) -> float | None:
    """The area under the near-greedy pass@1 curve: its mean over the evaluations during training
    (steps 0, eval_every, ...) and the final one, each on the first ``eval_problems`` problems."""
    ev = read_curves(run_dir).get("eval", {})
    values = list(ev.get("greedy_pass@1", []))
    detail = read_detail(final)
    m = final["config"]["eval_problems"]
    if detail is not None and per_problem_greedy(detail) is not None and values:
        values[-1] = float(
            per_problem_greedy(detail)[:m].mean()
        )  # the final point on the same problems
    return float(np.mean(values)) if values else None


def auc_difference(auc: dict, a: str, b: str) -> tuple[float, float | None, int] | None:
    """The mean over shared seeds of ``a``'s minus ``b``'s area under the near-greedy curve, the
    half-width of its 95 % t-interval (None with one seed) and the number of seeds; None without a
    shared seed."""
    seeds = sorted(
        s
        for s in set(auc.get(a, {})) & set(auc.get(b, {}))
        if auc[a][s] is not None and auc[b][s] is not None
    )
    if not seeds:
        return None
    diffs = [auc[a][s] - auc[b][s] for s in seeds]
    half = t_quantile(1 - ALPHA, len(diffs) - 1) * standard_error(diffs) if len(diffs) > 1 else None
    return float(np.mean(diffs)), half, len(diffs)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def first_task(out: Path) -> tuple[str, list[str]]:
    """The table of the first task (AUC of near-greedy pass@1, final values) and rule 3's words."""
    rows, words, helps = [], [], {}
    for warm in ("calibrated", "overconfident"):
        finals = finished_runs(out / "first" / warm)
        if not finals:
            continue
        auc = {}
        for f in finals:
            if f["label"] != WARM:
                auc.setdefault(f["label"], {})[f["seed"]] = greedy_auc(Path(f["run_dir"]), f)
        by = {r["label"]: r for r in aggregate(finals)}

        def finals_of(r):
            return [_pct(r.get(key)) for key in ("greedy_pass@1", "pass@1", "pass@8")]

        if WARM in by:
            rows.append([warm, "warm start", len(by[WARM]["seeds"]), "-", *finals_of(by[WARM])])
        for label, per_seed in auc.items():
            vals = [v for v in per_seed.values() if v is not None]
            rows.append(
                [
                    warm,
                    label,
                    len(vals),
                    _pct(np.mean(vals) if vals else None),
                    *finals_of(by[label]),
                ]
            )
        seeds = sorted(set(auc.get("k8", {})) & set(auc.get("k1", {})))
        diffs = [auc["k8"][s] - auc["k1"][s] for s in seeds]
        if len(diffs) >= 2:
            half = t_quantile(1 - ALPHA, len(diffs) - 1) * standard_error(diffs)
            mean = float(np.mean(diffs))
            helps[warm] = mean - half > 0
            words.append(
                f"At the {warm} warm start, k8 − k1 in the area under the near-greedy pass@1 "
                f"curve: {100 * mean:+.1f} points (95 % interval {100 * (mean - half):+.1f} to "
                f"{100 * (mean + half):+.1f}; {len(diffs)} seeds)."
            )
        elif diffs:
            words.append(
                f"At the {warm} warm start, k8 − k1 in the area under the near-greedy pass@1 "
                f"curve: {100 * diffs[0]:+.1f} points on one seed (no interval: rule 3 needs two "
                "seeds)."
            )
        for a, b in (("anneal", "k1"), ("anneal", "k8")):
            d = auc_difference(auc, a, b)
            if d is not None:
                mean, half, n = d
                interval = (
                    f"95 % interval {100 * (mean - half):+.1f} to {100 * (mean + half):+.1f}; "
                    if half is not None
                    else ""
                )
                words.append(
                    f"At the {warm} warm start, {a} − {b} in the area under the near-greedy pass@1 "
                    f"curve: {100 * mean:+.1f} points ({interval}{n} seed{'s' if n > 1 else ''}; "
                    "descriptive: no rule was stated for the anneal here)."
                )
    if len(helps) == 2:
        if helps["overconfident"] and not helps["calibrated"]:
            words.append(
                "**Rule 3: the effect needs an over-confident prior**: PKPO at k = 8 learns "
                "faster than k1 only from the over-confident warm start."
            )
        elif all(helps.values()):
            words.append(
                "**Rule 3: PKPO at k = 8 learns faster than k1 from both warm starts**, so on the "
                "`first` "
                "task the effect does not need an over-confident prior."
            )
        elif not any(helps.values()):
            words.append(
                "Rule 3: PKPO at k = 8 does not learn faster than k1 from either warm start."
            )
        else:
            words.append(
                "Rule 3: PKPO at k = 8 learns faster than k1 only from the calibrated warm start."
            )
    else:
        words.append(
            "Rule 3 is not evaluable yet: it needs two finished seeds at both warm starts."
        )
    head = [
        "warm start",
        "run",
        "seeds",
        "AUC near-greedy pass@1",
        "final near-greedy pass@1",
        "final pass@1 (T = 1)",
        "final pass@8",
    ]
    return (markdown_table(head, rows) if rows else ""), words


# ---------------------------------------------------------------------------- the phase diagram


def demonstrator_majority(share: float, warm: str) -> float:
    """The probability of the majority rule ``r`` in the warm start's ``?`` demonstrations of a
    phase cell (the warm start's over-confidence; the task's own ``demonstrator``)."""
    import gauntlet

    from pkpo.rl.tasks.hidden_rule import RULES, HiddenRuleTask

    cfg = gauntlet.phase_base(share, warm)
    task = HiddenRuleTask(
        feature=cfg.feature,
        length=cfg.length,
        n_train=16,
        n_heldout=16,
        n_validation=16,
        majority_share=share,
        demo_power=cfg.demo_power,
        demo_uniform=cfg.demo_uniform,
    )
    return float(task.demonstrator()[RULES.index("r")])


def phase_cells(out: Path) -> list[dict]:
    """Every cell of the phase diagram (:data:`gauntlet.PHASE_SHARES` x :data:`gauntlet.PHASE_WARM`)
    with its finished runs of seed :data:`gauntlet.PHASE_SEED` ({label: final}: the warm start, k1,
    k8, each at its method's tuned setting) and, where both runs finished, the effect
    k8 − k1 of each of :data:`PHASE_METRICS`."""
    import gauntlet

    cells = []
    for warm in gauntlet.PHASE_WARM:
        for share in gauntlet.PHASE_SHARES:
            folder = gauntlet.phase_folder(share, warm, out)
            finals = finished_runs(folder) if (folder / "runs").exists() else []
            kept, _ = current_runs(finals, out)
            runs = {
                f["label"]: f
                for f in kept
                if f["seed"] == gauntlet.PHASE_SEED and f["label"] in (WARM, *gauntlet.PHASE_RUNS)
            }
            effect = {}
            if {"k1", "k8"} <= set(runs):
                for key, _ in PHASE_METRICS:
                    if key in runs["k1"] and key in runs["k8"]:
                        effect[key] = runs["k8"][key] - runs["k1"][key]
            cells.append(
                {
                    "share": share,
                    "warm": warm,
                    "demo_r": demonstrator_majority(share, warm),
                    "runs": runs,
                    "effect": effect,
                    "missing": [
                        label for label in (WARM, *gauntlet.PHASE_RUNS) if label not in runs
                    ],
                }
            )
    return cells


def _cell_name(cell: dict) -> str:
    return f"({cell['share']}, {cell['warm']})"


def phase_table(cells: list[dict]) -> str:
    """One row per cell: the warm start's numbers, then k1, k8 and k8 − k1 for each metric."""
    rows = []
    for c in cells:
        warm = c["runs"].get(WARM)
        row = [
            c["share"],
            f"{c['warm']} ({100 * c['demo_r']:.0f} %)",
            "not run"
            if warm is None
            else " / ".join(_pct(warm.get(key)) for key in ("pass@1", "greedy_pass@1", "pass@8")),
        ]
        for key, _ in PHASE_METRICS:
            for label in ("k1", "k8"):
                run = c["runs"].get(label)
                row.append("not run" if run is None else _pct(run.get(key)))
            row.append(f"{100 * c['effect'][key]:+.1f}" if key in c["effect"] else "-")
        rows.append(row)
    head = [
        "majority share",
        "warm start (P(r) on `?`)",
        "warm start: pass@1 / near-greedy / pass@8",
    ]
    for _, name in PHASE_METRICS:
        head += [f"{name} k1", f"{name} k8", f"{name} k8 − k1"]
    return markdown_table(head, rows)


def phase_words(cells: list[dict]) -> list[str]:
    """Rule 4's sentences (docs/results.md): in which cells the effect appears (k8 − k1 pass@8 >
    :data:`EFFECT_POINTS`), which were not run, and whether it needs the over-confident prior."""
    import gauntlet

    done = [c for c in cells if "pass@8" in c["effect"]]
    # compared as shown (points, one decimal), so "+5.0 points" never reads as more than 5
    appears = [c for c in done if round(100 * c["effect"]["pass@8"], 1) > 100 * EFFECT_POINTS]
    absent = [c for c in done if c not in appears]
    undone = [c for c in cells if "pass@8" not in c["effect"]]

    def listed(group):
        return "; ".join(
            f"{_cell_name(c)} ({100 * c['effect']['pass@8']:+.1f} points)" for c in group
        )

    words = []
    if not done:
        return [
            "Rule 4 is not evaluable: no cell of the phase diagram has both k1 and k8 finished."
        ]
    words.append(
        f"Phase diagram (seed {gauntlet.PHASE_SEED}, one seed per cell: descriptive, not a test; "
        f"cells as (majority share, warm start)): the effect (k8 − k1 held-out pass@8 > "
        f"{100 * EFFECT_POINTS:.0f} points) appears in {len(appears)} of {len(done)} finished "
        "cells"
        + (f": {listed(appears)}" if appears else "")
        + (f"; it does not appear in {listed(absent)}" if absent else "")
        + "."
    )
    if undone:
        words.append(
            "Not run in the time box: "
            + "; ".join(f"{_cell_name(c)} (missing {', '.join(c['missing'])})" for c in undone)
            + "."
        )
        return words
    default_warm = gauntlet.PHASE_DEFAULT[1]
    at_default = [c for c in appears if c["warm"] == default_warm]
    elsewhere = [c for c in appears if c["warm"] != default_warm]

    def shares(group):
        return ", ".join(str(c["share"]) for c in group)

    if not appears:
        words.append(
            "**Rule 4: the effect appears in no cell of the phase diagram** (one seed per cell)."
        )
    elif not at_default:
        words.append(
            "**Rule 4: the effect needs an over-confident prior**: in the phase diagram (one seed "
            "per cell) it appears only from the over-confident warm start, at majority shares "
            f"{shares(elsewhere)}."
        )
    else:
        words.append(
            "**Rule 4: the effect does not need an over-confident prior**: in the phase diagram "
            f"(one seed per cell) it appears from the demo preset's warm start at majority shares "
            f"{shares(at_default)}"
            + (
                f", and from the over-confident one at {shares(elsewhere)}"
                if elsewhere
                else ", and from the over-confident one at none"
            )
            + "."
        )
    return words


def write_phase_figure(out: Path, path: Path) -> bool:
    """A heatmap of k8 − k1 (points) per cell, held-out pass@8 and near-greedy pass@1 side by side;
    cells not run are grey. False (nothing written) when no cell has both runs."""
    cells = phase_cells(out)
    if not any(c["effect"] for c in cells):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = sorted({c["share"] for c in cells})
    warms = list(dict.fromkeys(c["warm"] for c in cells))
    metrics = PHASE_METRICS[:2]
    grids = {}
    for key, _ in metrics:
        grids[key] = np.full((len(warms), len(shares)), np.nan)
        for c in cells:
            if key in c["effect"]:
                grids[key][warms.index(c["warm"]), shares.index(c["share"])] = (
                    100 * c["effect"][key]
                )
    # one colour scale for both panels, at least +-10 points (a small effect stays pale)
    scale = max(10.0, max(float(np.nanmax(np.abs(g), initial=0.0)) for g in grids.values()))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="0.85")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 2.8), squeeze=False)
    for ax, (key, name) in zip(axes[0], metrics):
        grid = grids[key]
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-scale, vmax=scale, aspect="auto")
        for i in range(len(warms)):
            for j in range(len(shares)):
                v = grid[i, j]
                dark = not np.isnan(v) and abs(v) > 0.6 * scale
                label = "not run" if np.isnan(v) else f"{v:+.1f}"
                ax.text(j, i, label, ha="center", va="center", color="w" if dark else "k")
        ax.set_xticks(range(len(shares)), [str(x) for x in shares])
        ax.set_yticks(range(len(warms)), warms)
        ax.set_xlabel("majority share of the ambiguous problems")
        ax.set_ylabel("warm start")
        ax.set_title(f"k8 − k1, {name} (points)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------- the blocks


def blocks(out: Path, command: str | None = None, figures: list[str] = ()) -> tuple[str, str]:
    """(the docs/results.md block, the README block) from the runs under ``out``; ``command`` is
    the one that trained them, ``figures`` the paths (relative to docs/) of the figures to show."""
    import gauntlet  # tools/gauntlet.py: the plan, the methods and their tuning

    finals, superseded = current_runs(finished_runs(out / "report"), out)
    plan = json.loads((out / "plan.json").read_text()) if (out / "plan.json").exists() else []
    tuning = {}
    for label in {f["label"] for f in finals if f["label"] != WARM}:
        point, how = gauntlet.tuned_point(label, out)
        overrides = {**gauntlet.METHODS[label][0], **point}
        tuning[label] = ", ".join(f"{k} {v}" for k, v in overrides.items()) + f"; {how}"
    done = {f"{f['label']} seed {f['seed']}" for f in finals}
    planned_report = [d for d in plan if d.startswith("report ")]
    missing = [d[len("report ") :] for d in planned_report if d[len("report ") :] not in done]
    results = family_results(finals)
    rule1 = family_results(finals, RULE1_FAMILY)
    rules = rule_words(results, rule1, finals) if finals else []
    lines = []
    tuned = sorted(out.glob("tune/*/*/seed*/final.json"))
    if tuned:
        lines += [
            f"**Tuning runs that finished** (validation split, seed {gauntlet.TUNING_SEED}; in %):",
            "",
        ]
        for path in tuned:
            f = json.loads(path.read_text())
            lines.append(
                f"- {path.parent.parent.parent.name} {path.parent.parent.name}: pass@1 "
                f"{_pct(f.get('pass@1'))}, near-greedy pass@1 {_pct(f.get('greedy_pass@1'))}, "
                f"pass@8 {_pct(f.get('pass@8'))}"
            )
        lines.append("")
    _, how = gauntlet.tuned_point("filter", out)
    grid = ", ".join(map(str, gauntlet.METHODS["filter"][2]["max_group_success"]))
    lines += [f"The difficulty filter's threshold (`max_group_success` in {{{grid}}}): {how}.", ""]
    if superseded:
        lines += [
            "Report runs made at a setting their method's tuning did not choose (not shown; the "
            "study reruns them): "
            + ", ".join(f"{f['label']} seed {f['seed']}" for f in superseded)
            + ".",
            "",
        ]
    if not finals:
        lines.append("No report run has finished yet.")
    else:
        seeds = sorted({f["seed"] for f in finals})
        lines += [
            f"**What ran** (`{command or f'python tools/gauntlet.py run --out {out}'}`, "
            "one process, "
            "one thread; "
            f"{len([f for f in finals if f['label'] != WARM])} report runs on held-out seeds "
            f"{', '.join(map(str, seeds))}). "
            + (
                f"Planned but not run in the time box: {len(missing)} report runs ("
                + ", ".join(missing[:12])
                + (", ..." if len(missing) > 12 else "")
                + ")."
                if missing
                else "Every planned report run finished."
            ),
            "",
            "Held-out results (mean ± SE over seeds, in %):",
            "",
            method_table(finals, tuning),
            "",
            f"The headline family ({len(results)} of {len(FAMILY)} comparisons evaluable), "
            "paired by seed "
            "and problem, Holm-corrected at a family-wise 5 %:",
            "",
            family_table(results) if results else "(no comparison has two finished seeds yet)",
            "",
            "Rule 1's family (amendment 3): each method it names against k1 at pass@8, paired by "
            "seed and problem, Holm-corrected over these comparisons at a family-wise 5 %:",
            "",
            family_table(rule1) if rule1 else "(no comparison has two finished seeds yet)",
            "",
            "**What the numbers say** (generated from the rules above):",
            "",
        ]
        lines += [f"- {w}" for w in rules]
        lines += [""] + [f"![gauntlet: {Path(f).stem}]({f})" for f in figures if f != PHASE_FIGURE]
    table, words = first_task(out)
    lines += [
        "",
        "**The `first` task** (pass@1 and pass@k share one optimum; area under the near-greedy "
        "pass@1 curve, evaluations every 30 steps on 128 held-out problems):",
        "",
    ]
    lines += [table, ""] if table else ["(no run of the first task has finished)", ""]
    lines += [f"- {w}" for w in words]
    cells = phase_cells(out)
    phase = phase_words(cells)
    lines += [
        "",
        "**The phase diagram** (the PKPO effect k8 − k1 against the trap's strength: the majority "
        "rule's share of the ambiguous problems x the warm start's over-confidence, shown as its "
        f"probability of `r` on `?` prompts; seed {gauntlet.PHASE_SEED}, held-out, in %; the "
        f"cell {_cell_name(dict(zip(('share', 'warm'), gauntlet.PHASE_DEFAULT)))} is the report "
        "runs of that seed):",
        "",
        phase_table(cells),
        "",
    ]
    lines += [f"- {w}" for w in phase]
    if PHASE_FIGURE in figures:
        lines += ["", f"![gauntlet: phase diagram]({PHASE_FIGURE})"]
    claims = rules + words + phase
    readme = [f"- {w}" for w in claims if w.startswith("**")]
    readme_text = (
        "**The gauntlet** (docs/results.md: baselines on fresh seeds 5-9, Holm-corrected; what was "
        "tuned and what did not run is listed there):\n"
        + (
            "\n".join(readme)
            if readme
            else "- No decision rule of the gauntlet holds on the finished "
            "runs, so no gauntlet claim is made."
        )
    )
    return "\n".join(lines), readme_text


def write_figures(out: Path, docs: Path) -> list[str]:
    """The report runs' figures (pkpo.rl.sweeps.plots: curves with near-greedy pass@1, final
    pass@k with the near-greedy diamonds), copied to docs/figures/rl/gauntlet_*.png, and the phase
    diagram's heatmap (:data:`PHASE_FIGURE`); their paths relative to ``docs``."""
    import shutil

    from pkpo.rl.sweeps.plots import plot_runs

    target = docs / "figures" / "rl"
    shown = [PHASE_FIGURE] if write_phase_figure(out, docs / PHASE_FIGURE) else []
    finals, _ = current_runs(finished_runs(out / "report"), out)
    if not finals:
        return shown
    target.mkdir(parents=True, exist_ok=True)
    for path in plot_runs(out / "report", finals):
        if Path(path).name in ("final_pass_at_k.png", "pass_at_k_curves.png"):
            shutil.copy(path, target / f"gauntlet_{Path(path).name}")
            shown.append(f"figures/rl/gauntlet_{Path(path).name}")
    return shown


def write_docs(out: Path, docs: Path, readme: Path, command: str | None = None) -> None:
    """Replace the ``gauntlet`` block of docs/results.md and the ``readme-gauntlet`` block of
    README.md."""
    from pkpo._output import rewrite_blocks

    text, readme_text = blocks(out, command, write_figures(out, docs))
    results_md = docs / "results.md"
    rewrite_blocks(results_md, {"gauntlet": text}, "gauntlet")
    rewrite_blocks(readme, {"readme-gauntlet": readme_text}, "readme-gauntlet")
    print(f"rewrote the gauntlet blocks of {results_md} and {readme}")
