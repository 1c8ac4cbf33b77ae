"""Tables, paired comparisons, generated findings and plots for a set of RL runs (``pkpo
sweep``/``demo``).

The table follows the paper's Tables 1-8: one row per method, columns held-out pass@k_eval for
k_eval in {1, 2, 4, 8, 16} in %, mean ± standard error over seeds (ddof = 1). With a single seed the
± is the standard error over held-out problems of that run instead (marked in the header). The row
``warm_start`` is the warm-started policy before RL (every run of a seed starts from it); it is a
reference, drawn in every figure.

Paired comparisons (:func:`paired_difference`) use the per-problem success counts every run saves
(``eval_detail.json``): all runs and the warm start are evaluated on the same held-out problems, so
the difference of two runs is taken problem by problem within a seed, then averaged over problems.
With S >= 2 seeds the interval is mean ± t(0.975, S - 1) · sd / sqrt(S) over the S per-seed
differences (the seed is the unit: it redraws the warm start, the training samples and the
evaluation samples); with one seed it is ± 1.96 · SE over problems (evaluation noise only).

The sentences of ``report.md`` (:func:`findings`) are generated from these numbers; none is written
by hand, so they cannot disagree with the table. The figures are drawn by
:mod:`pkpo.rl.sweeps.plots`; the runs are read by :mod:`pkpo.rl.sweeps.runs`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from pkpo.metrics import standard_error

from ..._output import atomic_write, markdown_table, write_json
from ..training.runfiles import SweepFiles
from .runs import (
    K_EVAL,
    aggregate,
    per_problem_estimate,
    per_problem_greedy,
    per_problem_pass_at_k,
    read_detail,
)
from .runs import WARM_LABEL as WARM  # the run label of the warm start

# two-sided 95 % Student t quantiles t(0.975, df) for df = 1..30 (beyond: the normal 1.96)
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (1.96 beyond 30)."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def table_markdown(rows: list[dict], greedy_temperature: float | None = None) -> str:
    """The markdown table; the best value of each pass@k column (warm start included) in bold. The
    column "greedy pass@1" is pass@1 decoded near-greedily (temperature ``greedy_temperature``)."""
    metric = rows[0]["metric"] if rows else "pass"
    seeds = max((len(r["seeds"]) for r in rows), default=1)
    pm = "mean ± SE over seeds" if seeds > 1 else "± SE over held-out problems (1 seed)"
    greedy = f"greedy_{metric}@1"
    head = (
        ["run", "k schedule", "seeds"]
        + [f"{metric}@{k}" for k in K_EVAL]
        + [f"greedy {metric}@1", "solve rate", "hard solve rate", "entropy (nats)"]
    )
    at = f" at temperature {greedy_temperature:g}" if greedy_temperature else ""
    intro = (
        f"Held-out {metric}@k_eval in % (sampled at the evaluation temperature), {pm}; greedy "
        f"{metric}@1: {metric}@1 decoded near-greedily{at}; the best value of each column in bold. "
        "Solve rates: fraction of the training problems drawn (all; hard only) that some sample "
        "solved."
    )
    best = {k: max((r.get(f"{metric}@{k}", -1) for r in rows), default=-1) for k in K_EVAL}
    best_greedy = max((r.get(greedy, -1) for r in rows), default=-1)

    def cell(r, key, scale=100.0, bold_at=None):
        if key not in r:
            return "-"
        se = r.get(key + "_se", float("nan"))
        text = f"{scale * r[key]:.1f}" + ("" if math.isnan(se) else f" ± {scale * se:.1f}")
        return f"**{text}**" if bold_at is not None and abs(r[key] - bold_at) < 1e-12 else text

    body = [
        [r["label"], r["k_schedule"], len(r["seeds"])]
        + [cell(r, f"{metric}@{k}", bold_at=best[k]) for k in K_EVAL]
        + [
            cell(r, greedy, bold_at=best_greedy),
            cell(r, "cumulative_solve_rate"),
            cell(r, "hard_solve_rate"),
            cell(r, "entropy", scale=1.0),
        ]
        for r in rows
    ]
    return f"{intro}\n\n{markdown_table(head, body)}"


# -------------------------------------------------------------------------------------- per problem


def _details_by_seed(finals: list[dict], label: str) -> dict[int, dict]:
    out = {}
    for f in finals:
        if f["label"] == label:
            detail = read_detail(f)
            if detail is not None:
                out[f["seed"]] = detail
    return out


def _per_problem(detail: dict, k: int, greedy: bool) -> np.ndarray | None:
    if greedy:
        return per_problem_greedy(detail)
    return per_problem_estimate(detail, k)


def paired_difference(
    finals: list[dict], a: str, b: str, k: int, greedy: bool = False
) -> dict | None:
    """Held-out pass@k of run ``a`` minus run ``b``, paired by seed and problem (module docstring);
    maxg@k for runs of a task with continuous rewards (:func:`~.runs.per_problem_estimate`);
    ``greedy=True``: near-greedy pass@1 (maxg@1; k must be 1).

    Returns ``{"a", "b", "k", "diff", "lo", "hi", "seeds", "basis", "per_seed", "a_mean",
    "b_mean"}`` (fractions, not %), or None when either run lacks per-problem records or was
    evaluated with fewer than k samples per problem (pass@k is then not estimable).
    """
    if greedy and k != 1:
        raise ValueError(f"near-greedy decoding gives pass@1 only, got k={k}")
    da, db = _details_by_seed(finals, a), _details_by_seed(finals, b)
    seeds = sorted(set(da) & set(db))
    if not seeds or any(d[s]["samples"] < k for d in (da, db) for s in seeds):
        return None
    per_seed, a_means, b_means, last = [], [], [], None
    for s in seeds:
        if da[s]["uid"] != db[s]["uid"]:
            raise ValueError(
                f"runs {a!r} and {b!r} (seed {s}) were evaluated on different problems"
            )
        pa, pb = _per_problem(da[s], k, greedy), _per_problem(db[s], k, greedy)
        if pa is None or pb is None:
            return None
        per_seed.append(float((pa - pb).mean()))
        a_means.append(float(pa.mean()))
        b_means.append(float(pb.mean()))
        last = pa - pb
    diff = float(np.mean(per_seed))
    if len(seeds) > 1:
        half = t975(len(seeds) - 1) * standard_error(per_seed)
        basis = f"{len(seeds)} seeds"
    else:
        half = 1.96 * standard_error(last)
        basis = f"{len(last)} problems, 1 seed"
    return {
        "a": a,
        "b": b,
        "k": k,
        "greedy": greedy,
        "diff": diff,
        "lo": diff - half,
        "hi": diff + half,
        "seeds": len(seeds),
        "basis": basis,
        "per_seed": per_seed,
        "a_mean": float(np.mean(a_means)),
        "b_mean": float(np.mean(b_means)),
    }


def format_diff(d: dict) -> str:
    """``+12.3 points (95% CI +8.1 to +16.5; 3 seeds)``."""
    return (
        f"{100 * d['diff']:+.1f} points (95% CI {100 * d['lo']:+.1f} to {100 * d['hi']:+.1f}; "
        f"{d['basis']})"
    )


def evaluation_samples(finals: list[dict]) -> int | None:
    """The fewest samples per held-out problem among the runs' final evaluations (None without
    records)."""
    counts = [
        d["samples"]
        for label in dict.fromkeys(f["label"] for f in finals)
        for d in _details_by_seed(finals, label).values()
    ]
    return min(counts) if counts else None


def category_table(finals: list[dict], ks=(1, 8)) -> str:
    """Held-out pass@k by problem category (majority / minority / ambiguous rule), mean over seeds;
    the k above the evaluation's samples per problem are left out."""
    samples = evaluation_samples(finals)
    ks = [k for k in ks if samples is None or k <= samples]
    labels = list(dict.fromkeys(f["label"] for f in finals))
    cats, rows = None, []
    for label in labels:
        details = _details_by_seed(finals, label)
        if not details or "category" not in next(iter(details.values())):
            continue
        first = next(iter(details.values()))
        cats = cats or sorted(
            set(first["category"]),
            key=lambda c: (
                ("majority", "minority", "ambiguous").index(c)
                if c in ("majority", "minority", "ambiguous")
                else 9
            ),
        )
        cells = []
        for c in cats:
            for k in ks:
                vals = []
                for d in details.values():
                    mask = np.asarray(d["category"]) == c
                    vals.append(
                        per_problem_pass_at_k(
                            np.asarray(d["successes"])[mask], d["samples"], k
                        ).mean()
                    )
                cells.append(f"{100 * np.mean(vals):.1f}")
        rows.append([label, *cells])
    if not rows:
        return ""
    first = next(iter(_details_by_seed(finals, labels[0]).values()))
    share = {c: 100 * np.mean(np.asarray(first["category"]) == c) for c in cats}
    return markdown_table(
        ["run"] + [f"{c} ({share[c]:.0f} %) pass@{k}" for c in cats for k in ks], rows
    )


def behaviour_table(finals: list[dict]) -> str:
    """What the held-out samples did: % of samples per class (rule executed, ``error``,
    ``invalid``)."""
    labels = list(dict.fromkeys(f["label"] for f in finals))
    per_label, classes = {}, set()
    for label in labels:
        details = _details_by_seed(finals, label)
        if not details or "classes" not in next(iter(details.values())):
            continue
        acc: dict[str, list[float]] = defaultdict(list)
        for d in details.values():
            total = len(d["successes"]) * d["samples"]
            for c in set(d["classes"]) | set(acc):
                acc[c].append(100 * sum(d["classes"].get(c, [])) / total)
        per_label[label] = {
            c: float(np.mean(v + [0.0] * (len(details) - len(v)))) for c, v in acc.items()
        }
        classes |= set(acc)
    if not per_label:
        return ""
    order = sorted(c for c in classes if len(c) == 1) + [
        c for c in ("error", "invalid") if c in classes
    ]
    return markdown_table(
        ["run", *order],
        [[label] + [f"{vals.get(c, 0.0):.1f}" for c in order] for label, vals in per_label.items()],
    )


# ----------------------------------------------------------------------------------------- findings


def _rows_by_label(finals):
    return {r["label"]: r for r in aggregate(finals)}


CLAIM_IDS = ("a", "b", "c1", "c4", "c8", "d", "e")


def degenerate(finals: list[dict]) -> str | None:
    """Why no claim can be judged from these runs, or None: every run (warm start included) scored 0
    at every k, or every trained run has the same held-out numbers (nothing distinguishes the
    methods)."""
    rows = aggregate(finals)
    if not rows:
        return "there are no finished runs"
    metric = rows[0]["metric"]
    keys = [f"{metric}@{k}" for k in K_EVAL]
    values = [tuple(round(r.get(key, 0.0), 12) for key in keys) for r in rows]
    if all(v == 0.0 for row in values for v in row):
        return f"every run, the warm start included, scored {metric}@k = 0 at every k"
    trained = [v for r, v in zip(rows, values) if r["label"] != WARM]
    if len(trained) >= 2 and len(set(trained)) == 1:
        return "every trained run has the same held-out numbers"
    return None


def findings(finals: list[dict]) -> list[dict]:
    """The demo's claims checked against the numbers: one dict per claim with ``id``, ``holds`` and
    a ``text`` sentence generated from the measured values (no sentence is fixed in advance).

    Claims (they need the runs ``warm_start``, ``k1``, ``k4``, ``k8`` and ``anneal``; those present
    are checked):
    (a) k_opt = 8 raises held-out pass@8 by >= 10 points over the warm start;
    (b) k_opt = 1 raises held-out pass@1 over the warm start;
    (c) for k_eval in {1, 4, 8}, the run with k_opt = k_eval has the best pass@k_eval among the
        constant-k runs (at k_eval = 1 a higher k_opt may win by exploration; then the sentence says
        so);
    (d) higher k_opt solves more of the hard training problems (hard solve rate increases with
        k_opt);
    (e) annealing 8 -> 1 ends with pass@1 no more than 2 points below k_opt = 1 and pass@8 >= 10
        points above it.

    On degenerate data (:func:`degenerate`) every claim is ``"holds": None`` with a sentence saying
    why it is not evaluable, and nothing else is written.
    """
    labels = {f["label"] for f in finals}
    why = degenerate(finals)
    if why is not None:
        return [{"id": c, "holds": None, "text": f"({c}) not evaluable: {why}."} for c in CLAIM_IDS]
    rows = _rows_by_label(finals)
    out = []

    def diff(a, b, k):
        return paired_difference(finals, a, b, k) if {a, b} <= labels else None

    d = diff("k8", WARM, 8)
    if d:
        holds = d["diff"] >= 0.10
        out.append(
            {
                "id": "a",
                "holds": holds,
                "text": (
                    f"(a) PKPO with k_opt = 8 took held-out pass@8 from {100 * d['b_mean']:.1f} % "
                    f"(warm start) to {100 * d['a_mean']:.1f} %: {format_diff(d)}; the target of "
                    f"+10 points {'holds' if holds else 'does not hold'}."
                ),
            }
        )
    d = diff("k1", WARM, 1)
    if d:
        holds = d["diff"] > 0 and d["lo"] > 0
        out.append(
            {
                "id": "b",
                "holds": holds,
                "text": (
                    f"(b) k_opt = 1 took held-out pass@1 from {100 * d['b_mean']:.1f} % (warm "
                    f"start) to {100 * d['a_mean']:.1f} %: {format_diff(d)}; "
                    + (
                        "a gain whose interval excludes 0"
                        if holds
                        else "not a gain that the interval separates from 0"
                    )
                    + "."
                ),
            }
        )
    constant = [x for x in ("k1", "k4", "k8") if x in labels]
    for k in (1, 4, 8):
        own = f"k{k}"
        if own not in constant or len(constant) < 2:
            continue
        metric = f"pass@{k}"
        best = max(constant, key=lambda x: rows[x].get(metric, -1))
        others = [x for x in constant if x != own]
        diffs = [diff(own, o, k) for o in others]
        if None in diffs:  # no per-problem records, or fewer than k evaluation samples
            continue
        parts = [f"{own} − {o}: {format_diff(d)}" for o, d in zip(others, diffs)]
        if best == own:
            text = (
                f"(c) at k_eval = {k} the run trained for it (k_opt = {k}) has the best held-out "
                f"pass@{k} of the constant-k runs ({100 * rows[own][metric]:.1f} "
                "%); " + "; ".join(parts) + "."
            )
            holds = True
        else:
            text = (
                f"(c) at k_eval = {k} the best held-out pass@{k} of the constant-k runs is {best} "
                f"({100 * rows[best][metric]:.1f} %), not k_opt = {k} "
                f"({100 * rows[own][metric]:.1f} %); " + "; ".join(parts) + "."
            )
            holds = False
            if k == 1 and "k1" in rows and best != "k1":
                h1, hb = rows["k1"].get("hard_solve_rate"), rows[best].get("hard_solve_rate")
                if h1 is not None and hb is not None:
                    text += (
                        f" This is the exploration effect the claim allows: {best} solved "
                        f"{100 * hb:.1f} % of the hard training problems it drew, k_opt = 1 only "
                        f"{100 * h1:.1f} %, so pass@1 training never learned the minority rules "
                        "that pass@k training found."
                    )
                    holds = hb > h1
        out.append({"id": f"c{k}", "holds": holds, "text": text})
    ordered = [x for x in ("k1", "k4", "k8") if x in rows and "hard_solve_rate" in rows[x]]
    if len(ordered) >= 2:
        vals = [rows[x]["hard_solve_rate"] for x in ordered]
        holds = all(a < b for a, b in zip(vals, vals[1:]))
        seq = " < " if holds else ", "
        out.append(
            {
                "id": "d",
                "holds": holds,
                "text": (
                    "(d) hard training problems solved (fraction of those drawn that some sample "
                    "solved): "
                    + seq.join(f"{x} {100 * v:.1f} %" for x, v in zip(ordered, vals))
                    + (": higher k_opt solves more." if holds else ": not increasing in k_opt.")
                ),
            }
        )
    d1, d8 = diff("anneal", "k1", 1), diff("anneal", "k1", 8)
    if d1 and d8:
        holds = d1["diff"] >= -0.02 and d8["diff"] >= 0.10
        out.append(
            {
                "id": "e",
                "holds": holds,
                "text": (
                    f"(e) annealing k_opt 8 -> 1 ends with pass@1 {100 * d1['a_mean']:.1f} % "
                    f"against k_opt = 1's {100 * d1['b_mean']:.1f} % ({format_diff(d1)}) and "
                    f"pass@8 {100 * d8['a_mean']:.1f} % against {100 * d8['b_mean']:.1f} % "
                    f"({format_diff(d8)}); the target (pass@1 at most 2 points below, pass@8 at "
                    f"least 10 points above) {'holds' if holds else 'does not hold'}."
                ),
            }
        )
    greedy = [r for r in rows.values() if "greedy_pass@1" in r]
    if greedy:
        listed = ", ".join(f"{r['label']} {100 * r['greedy_pass@1']:.1f} %" for r in greedy)
        text = f"Decoded near-greedily, held-out pass@1 is: {listed}."
        g = diff("k8", "anneal", 1) and paired_difference(finals, "k8", "anneal", 1, greedy=True)
        holds = None
        if g:
            holds = g["lo"] > -0.02
            text += f" k8 − anneal at greedy pass@1: {format_diff(g)}; k8 decoded greedily " + (
                "matches the anneal (the interval's lower end is above −2 points)."
                if holds
                else "does not match the anneal (the interval reaches below −2 points)."
            )
        out.append({"id": "greedy", "holds": holds, "text": text})
    if {"k1", "k8"} <= labels:  # where pass@1 and pass@k conflict
        c1, c8 = diff("k8", "k1", 1), diff("k8", "k1", 8)
        if c1 and c8 and c1["diff"] < 0 < c8["diff"]:
            out.append(
                {
                    "id": "conflict",
                    "holds": True,
                    "text": (
                        f"pass@1 and pass@8 conflict: k_opt = 8 is {100 * -c1['diff']:.1f} points "
                        f"below k_opt = 1 at pass@1 and {100 * c8['diff']:.1f} points above it at "
                        "pass@8."
                    ),
                }
            )
        elif c1 and c8 and c1["diff"] >= 0 and c8["diff"] > 0:
            out.append(
                {
                    "id": "conflict",
                    "holds": False,
                    "text": (
                        "pass@1 and pass@8 do not conflict between k_opt = 1 and 8 here: k_opt = "
                        f"8 is ahead at both ({format_diff(c1)} at pass@1, {format_diff(c8)} at "
                        "pass@8)."
                    ),
                }
            )
    return out


def _setting_line(cfg: dict) -> str:
    return (
        f"Task: {cfg.get('task')} (tier {cfg.get('tier')}, feature {cfg.get('feature')}); "
        f"{cfg.get('steps')} RL steps of {cfg.get('prompts_per_step')} prompts x {cfg.get('n')} "
        f"samples from a pool of {cfg.get('n_train')} training problems; evaluation on the "
        f"{cfg.get('eval_split')} split: "
        f"{cfg.get('final_eval_problems') or cfg.get('eval_problems')} problems x "
        f"{cfg.get('eval_samples')} samples at the end, the first {cfg.get('eval_problems')} every "
        f"{cfg.get('eval_every')} steps."
    )


SMOKE_NOTE = (
    "SMOKE TEST: these settings are too small to learn anything; the numbers check that the "
    "pipeline runs and support no finding."
)


def write_sweep_report(
    out: Path,
    finals: list[dict],
    *,
    title: str,
    command: str,
    wall_s: float,
    report_name: str = SweepFiles.REPORT,
    wall_note: str = "",
    smoke: bool = False,
) -> dict:
    """Write ``table.md``, ``table.json``, the PNGs and ``report.md`` (table, generated findings,
    per-category and per-rule tables, figures) into ``out``.

    ``smoke=True`` (``pkpo demo --quick``): every page says it is a smoke test (:data:`SMOKE_NOTE`:
    the title, the table, table.json and the figures' titles) and no finding is written."""
    out = Path(out)
    rows = aggregate(finals)
    rows.sort(key=lambda r: r["label"] != WARM)  # the warm start first: where every run starts
    trained = [f for f in finals if f["label"] != WARM]
    cfg = (trained or finals)[0]["config"] if finals else {}
    table = table_markdown(rows, cfg.get("greedy_temperature"))
    if smoke:
        title, table = f"{title} (smoke test, no findings)", f"**{SMOKE_NOTE}**\n\n{table}"
    from .plots import plot_runs  # matplotlib, only when figures are drawn

    figures = plot_runs(out, finals, note="smoke test, no findings" if smoke else None)
    claims = [] if smoke else findings(finals)
    files = SweepFiles(out)
    atomic_write(files.table_md, table + "\n")
    write_json(
        files.table_json,
        {
            "rows": rows,
            "findings": claims,
            "command": command,
            "wall_s": wall_s,
            "smoke_test": smoke,
        },
        indent=2,
    )
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Wall time: {wall_s:.0f} s{wall_note}  "]
    cpu_warm = sum(f.get("cpu_s") or 0.0 for f in finals if f["label"] == WARM)
    cpu_runs = sum(f.get("cpu_s") or 0.0 for f in trained)
    if cpu_runs:  # one warm start runs alone; several, and the runs, two at a time
        idle = (
            cpu_warm if sum(f["label"] == WARM for f in finals) == 1 else cpu_warm / 2
        ) + cpu_runs / 2
        lines.append(
            f"CPU time: warm start {cpu_warm:.0f} s, RL runs {cpu_runs:.0f} s in all (with two "
            f"worker processes, about {idle:.0f} s of wall time when nothing else runs, plus "
            "start-up and this report)  "
        )
    lines += [_setting_line(cfg), "", table, ""]
    samples = evaluation_samples(finals)
    if claims or (samples is not None and samples < 8):
        lines += [
            "## What the numbers show",
            "",
            "Generated from the numbers above (paired over the same "
            "held-out problems; the interval is over "
            + ("seeds" if len({f["seed"] for f in finals}) > 1 else "problems, one seed")
            + ").",
            "",
        ]
        if samples is not None and samples < 8:
            lines += [
                f"The final evaluation drew {samples} samples per problem, so the claims at k_eval "
                "= 8 (pass@8 needs at least 8) are not checked.",
                "",
            ]
        lines += [f"- {c['text']}" for c in claims] + [""]
    cats = category_table(finals)
    if cats:
        lines += [
            "## By kind of problem",
            "",
            "Held-out pass@k in % by the kind of hidden rule (share of the "
            "held-out problems in brackets).",
            "",
            cats,
            "",
        ]
    behaviour = behaviour_table(finals)
    if behaviour:
        lines += [
            "## What the samples did",
            "",
            "% of held-out samples by the rule whose output they wrote "
            "(`error`: a plan letter but no rule's output; `invalid`: no plan letter).",
            "",
            behaviour,
            "",
        ]
    lines += [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    atomic_write(out / report_name, "\n".join(lines) + "\n")
    return {"table_md": table, "rows": rows, "figures": figures, "findings": claims}
