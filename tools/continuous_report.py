"""The continuous-reward study's tables and generated words (the ``continuous-*`` blocks of
docs/results.md), from the finished runs of ``python tools/continuous.py run``.

The decision rules are stated in docs/results.md ("Continuous rewards: maxg@k in training"); this
module applies them to the numbers. Every comparison is paired by seed and problem
(:func:`pkpo.rl.sweeps.report.paired_difference`, maxg@k per problem from every sample's reward).
The diagonal family (:data:`DIAGONAL`) is Holm-corrected (:func:`gauntlet_report.family_results`);
the baseline comparisons (:data:`BASELINES`) and the descriptive ones (:data:`OTHER`) carry the
plain 95 % t-interval over seeds.

The ceiling row (:func:`ceiling`) is the best maxg@k_eval of a policy that has learned everything
learnable (the first digit's rule) and, on an ambiguous problem, writes some rule's output, spread
over the six rules by the distribution that is best for maxg@k_eval on that string. A policy that
writes other strings can do better; at k_eval = 1 the exact optimum over all strings (the most
probable digit at every position) is computed too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from gauntlet_report import (  # tools/gauntlet_report.py, next to this file
    comparison_name,
    family_table,
)

from pkpo._output import markdown_table
from pkpo.rl.sweeps.report import _setting_line, format_diff, paired_difference
from pkpo.rl.sweeps.runs import WARM_LABEL as WARM
from pkpo.rl.sweeps.runs import aggregate, finished_runs, read_detail

K_EVAL = (1, 4, 8, 16)
# the diagonal: (run trained at k_opt = k_eval, its neighbouring k_opt, k_eval, near-greedy?);
# TZSM's target is maxg@n = maxg@16, so it is the run trained for k_eval = 16
DIAGONAL = [
    ("k1", "k4", 1, False),
    ("k4", "k1", 4, False),
    ("k4", "k8", 4, False),
    ("k8", "k4", 8, False),
    ("tzsm", "k8", 16, False),
]
# s^(loo-1) against the other baselines, PKPO at k = 8, at maxg@8
BASELINES = [("k8", "k8_none", 8), ("k8", "k8_loo", 8), ("k8", "k8_centered", 8)]
BASELINE_NAMES = {"k8_none": "none", "k8_loo": "loo", "k8_centered": "centered"}
# descriptive comparisons, no rule: (a, b, k, near-greedy?)
OTHER = [
    ("k1", WARM, 1, False),
    ("k8", WARM, 8, False),
    ("anneal", "k1", 1, False),
    ("anneal", "k8", 8, False),
    ("tailrl", "k1", 1, False),
    ("tailrl", "k8", 8, False),
    ("k8", "k1", 1, True),
    ("anneal", "k1", 1, True),
]


# ------------------------------------------------------------------------------------ the ceiling


def credit_matrix(digits: str) -> np.ndarray:
    """C[o, r]: the partial credit of writing rule o's output when the answer is rule r's output,
    over the six rules (:data:`pkpo.rl.tasks.hidden_rule.RULES`)."""
    from pkpo.rl.tasks.hidden_rule import RULES, apply_rule, partial_credit

    outputs = [apply_rule(r, digits) for r in RULES]
    return np.array([[partial_credit(a, o) for a in outputs] for o in outputs])


def spread_maxg(q: np.ndarray, credit: np.ndarray, prior: np.ndarray, k: int):
    """maxg@k of writing rule o's output with probability q[p, o] on problem p, whose answer is
    rule r's with probability prior[r], and its gradient in q.

    With the outputs sorted by credit v_1 >= v_2 >= ... for answer r and Q_j the mass of the first
    j: E[max of k] = sum_j (v_j - v_{j+1}) (1 - (1 - Q_j)^k) (v_{O+1} = 0); ``q`` (P, O), ``credit``
    (P, O, R), ``prior`` (R,). Returns ((P,), (P, O)).
    """
    order = np.argsort(-credit, axis=1, kind="stable")
    v = np.take_along_axis(credit, order, axis=1)
    gaps = v - np.concatenate([v[:, 1:], np.zeros_like(v[:, :1])], axis=1)
    mass = np.cumsum(np.take_along_axis(np.repeat(q[:, :, None], v.shape[2], 2), order, 1), 1)
    miss = np.clip(1.0 - mass, 0.0, 1.0)
    value = ((gaps * (1.0 - miss**k)).sum(axis=1) * prior).sum(axis=1)
    # d/dq of the output at sorted place i: the gaps of every j >= i times k (1 - Q_j)^(k - 1)
    slope = np.cumsum((gaps * k * miss ** (k - 1))[:, ::-1], axis=1)[:, ::-1]
    grad = np.take_along_axis(slope, np.argsort(order, axis=1), axis=1)
    return value, (grad * prior).sum(axis=2)


def best_spread(credit: np.ndarray, prior: np.ndarray, k: int, steps: int = 3000) -> np.ndarray:
    """The largest maxg@k over distributions q of each problem (:func:`spread_maxg` is concave in q:
    exponentiated-gradient ascent from the uniform q); returns (P,)."""
    q = np.full(credit.shape[:2], 1.0 / credit.shape[1])
    best = np.zeros(credit.shape[0])
    for _ in range(steps):
        value, grad = spread_maxg(q, credit, prior, k)
        best = np.maximum(best, value)
        q = q * np.exp((grad - grad.max(axis=1, keepdims=True)) / k)  # |grad| <= k
        q /= q.sum(axis=1, keepdims=True)
    return np.maximum(best, spread_maxg(q, credit, prior, k)[0])


def best_string_maxg1(digits: str, prior: np.ndarray) -> float:
    """The largest maxg@1 of any answer string on an ambiguous problem: at every position the digit
    most probably right, sum_pos max_d P(answer[pos] = d) / length."""
    from pkpo.rl.tasks.hidden_rule import RULES, apply_rule

    outputs = [apply_rule(r, digits) for r in RULES]
    total = 0.0
    for pos in range(len(digits)):
        mass: dict[str, float] = {}
        for out, p in zip(outputs, prior):
            mass[out[pos]] = mass.get(out[pos], 0.0) + p
        total += max(mass.values())
    return total / len(digits)


def ceiling(cfg: dict, uids: list[str], ks=K_EVAL) -> dict:
    """The ceiling row on the evaluated problems ``uids`` of the run config ``cfg``: {k: best
    rule-spreading maxg@k} and ``"exact@1"`` (the best maxg@1 of any strings). Problems whose rule
    the first digit decides count 1."""
    from pkpo.rl.build import task_options
    from pkpo.rl.config import TrainConfig
    from pkpo.rl.tasks import make_task
    from pkpo.rl.tasks.hidden_rule import AMBIGUOUS_PRIOR, RULES

    config = TrainConfig.from_dict(cfg)
    task = make_task(config.task, **task_options(config))
    problems = {p.uid: p for p in task.problems(config.eval_split)}
    prior = np.array([AMBIGUOUS_PRIOR.get(r, 0.0) for r in RULES])
    ambiguous = [
        task.digits(problems[u]) for u in uids if task.category(problems[u]) == "ambiguous"
    ]
    share = len(ambiguous) / len(uids)
    out = {}
    if ambiguous:
        credit = np.stack([credit_matrix(d) for d in ambiguous])
        for k in ks:
            out[k] = (1 - share) + share * float(best_spread(credit, prior, k).mean())
        exact = np.mean([best_string_maxg1(d, prior) for d in ambiguous])
        out["exact@1"] = (1 - share) + share * float(exact)
    else:
        out = {**dict.fromkeys(ks, 1.0), "exact@1": 1.0}
    return out


# ---------------------------------------------------------------------------------- the tables


def describe(label: str) -> str:
    """What run ``label`` trains (from continuous.RUNS)."""
    import continuous  # tools/continuous.py

    if label == WARM:
        return "the warm start (no RL)"
    spec = {**continuous.base_config().to_dict(), **continuous.RUNS[label]}
    if spec["method"] == "pkpo":
        k = spec["k"].replace("->", " → ").replace("@", " at step ")
        return f"PKPO, k {k}, baseline {spec['baseline']}"
    return {"tzsm": "TZSM (maxg@n, n = 16)", "tailrl": "TailRL"}.get(label, spec["method"])


def _pct(row: dict, key: str) -> str:
    if key not in row:
        return "-"
    se = row.get(key + "_se", float("nan"))
    return f"{100 * row[key]:.1f}" + ("" if math.isnan(se) else f" ± {100 * se:.1f}")


def method_table(finals: list[dict], ceiling_row: dict | None) -> str:
    """Held-out maxg@k_eval per run (mean ± SE over seeds, %), the warm start first, the ceiling
    last."""
    import continuous

    order = [WARM, *continuous.RUNS]
    rows = sorted(aggregate(finals), key=lambda r: order.index(r["label"]))
    body = [
        [
            r["label"],
            describe(r["label"]),
            len(r["seeds"]),
            _pct(r, "maxg@1"),
            _pct(r, "greedy_maxg@1"),
            *(_pct(r, f"maxg@{k}") for k in K_EVAL[1:]),
        ]
        for r in rows
    ]
    if ceiling_row is not None:
        body.append(
            [
                "ceiling",
                "rule-spreading optimum for each k_eval (exact optimum at k_eval = 1 in brackets)",
                "-",
                f"{100 * ceiling_row[1]:.1f} ({100 * ceiling_row['exact@1']:.1f})",
                "-",
                *(f"{100 * ceiling_row[k]:.1f}" for k in K_EVAL[1:]),
            ]
        )
    head = ["run", "trains", "seeds", "maxg@1 (T = 1)", "near-greedy maxg@1"]
    return markdown_table(head + [f"maxg@{k}" for k in K_EVAL[1:]], body)


def paired_table(diffs: list[dict]) -> str:
    """Paired comparisons with their plain 95 % interval (points)."""
    rows = [
        [
            comparison_name(d),
            f"{100 * d['a_mean']:.1f}",
            f"{100 * d['b_mean']:.1f}",
            f"{100 * d['diff']:+.1f}",
            f"{100 * d['lo']:+.1f} to {100 * d['hi']:+.1f}",
            d["basis"],
            ", ".join(f"{100 * v:+.1f}" for v in d["per_seed"]),
        ]
        for d in diffs
    ]
    head = ["comparison", "a (%)", "b (%)", "a − b (points)", "95 % interval", "basis", "per seed"]
    return markdown_table(head, rows)


def _paired(finals: list[dict], comparisons) -> list[dict]:
    """The evaluable comparisons (a, b, k[, near-greedy?]) with two or more shared seeds."""
    out = []
    for a, b, k, *greedy in comparisons:
        d = paired_difference(finals, a, b, k, greedy=bool(greedy and greedy[0]))
        if d is not None and d["seeds"] >= 2:
            out.append({**d, "metric": "maxg"})
    return out


# ---------------------------------------------------------------------------------- the words


def diagonal_words(results: list[dict]) -> list[str]:
    """The diagonal rule at each k_eval: it holds when every comparison of the run trained at k_eval
    with its neighbours is positive and rejected by Holm."""
    words = []
    for k in K_EVAL:
        planned = [c for c in DIAGONAL if c[2] == k]
        found = [r for r in results if r["k"] == k and not r["greedy"]]
        own = planned[0][0]
        if len(found) < len(planned):
            words.append(
                f"At k_eval = {k} the diagonal is not evaluable: {own} and its neighbours "
                "do not share two finished seeds."
            )
            continue
        listed = "; ".join(
            f"{own} − {r['b']}: {100 * r['diff']:+.1f} points (Holm-level interval "
            f"{100 * r['lo']:+.1f} to {100 * r['hi']:+.1f})"
            for r in found
        )
        if all(r["holm_rejects"] and r["diff"] > 0 for r in found):
            words.append(
                f"**The diagonal holds at k_eval = {k}**: the run trained for it ({own}) has the "
                f"higher held-out maxg@{k} ({listed})."
            )
        else:
            ahead = [r["b"] for r in found if r["holm_rejects"] and r["diff"] < 0]
            words.append(
                f"The diagonal does not hold at k_eval = {k} ({listed})"
                + (f"; {', '.join(ahead)} is ahead of {own} there." if ahead else ".")
            )
    return words


def baseline_words(diffs: list[dict], labels: set[str]) -> list[str]:
    """Whether s^(loo-1) beats each other baseline in training: its paired maxg@8 interval against
    it excludes 0 (above 0: it beats it; below: the other beats it)."""
    words, beaten, unknown = [], [], []
    for _, b, _ in BASELINES:
        name = BASELINE_NAMES[b]
        d = next((x for x in diffs if x["b"] == b), None)
        if d is None:
            unknown.append(f"`{name}`")
            why = "fewer than two seeds shared with k8" if b in labels else "did not run"
            words.append(f"Against `{name}`: not evaluable ({why}).")
            continue
        if d["lo"] > 0:
            verdict = "s^(loo-1) beats it"
            beaten.append(f"`{name}`")
        elif d["hi"] < 0:
            verdict = f"`{name}` beats s^(loo-1)"
        else:
            verdict = "no difference the interval separates from 0"
        words.append(f"Against `{name}` at maxg@8: {format_diff(d)}: {verdict}.")
    if unknown:
        words.append(
            "Whether s^(loo-1) beats every other baseline in training is not evaluable yet "
            f"({', '.join(unknown)} missing)."
        )
    elif len(beaten) == len(BASELINES):
        words.append("**s^(loo-1) beats every other baseline in training** at maxg@8.")
    else:
        words.append(
            "s^(loo-1) does not beat every other baseline in training"
            + (f" (it beats {', '.join(beaten)} only)." if beaten else ".")
        )
    return words


# ---------------------------------------------------------------------------------- the blocks


def missing_runs(finals: list[dict]) -> dict[str, list[int]]:
    """The planned runs (:data:`continuous.RUNS` and the warm start, at every seed) that have not
    finished: {label: [seeds]}."""
    import continuous

    done = {(f["label"], f["seed"]) for f in finals}
    missing = {
        label: [s for s in continuous.SEEDS if (label, s) not in done]
        for label in [WARM, *continuous.RUNS]
    }
    return {label: seeds for label, seeds in missing.items() if seeds}


def _ceiling_of(finals: list[dict]) -> dict | None:
    """The ceiling on the problems the runs were evaluated on (those of the first run's record)."""
    for f in finals:
        detail = read_detail(f)
        if detail is not None:
            return ceiling(f["config"], detail["uid"])
    return None


def blocks(out: Path, command: str | None = None) -> dict[str, str]:
    """The ``continuous-*`` blocks of docs/results.md from the runs under ``out``."""
    finals = finished_runs(out)
    command = command or f"python tools/continuous.py run --out {out}"
    missing = missing_runs(finals)
    trained = [f for f in finals if f["label"] != WARM]
    cpu = sum(f.get("cpu_s") or 0.0 for f in trained)
    seeds = ", ".join(map(str, sorted({f["seed"] for f in finals})))
    runs = [
        f"**What ran** (`{command}`, one process, one thread): {len(trained)} RL runs and "
        f"{len(finals) - len(trained)} warm-start evaluations on seeds {seeds}"
        + (f"; {cpu / 60:.1f} CPU minutes of RL in all." if trained else ".")
        if finals
        else f"Nothing has run yet (`{command}`)."
    ]
    runs.append(
        f"Planned but not run: {sum(map(len, missing.values()))} ("
        + "; ".join(f"{label} seeds {', '.join(map(str, s))}" for label, s in missing.items())
        + ")."
        if missing
        else "Every planned run finished."
    )
    if trained:
        cfg = trained[0]["config"]
        runs += ["", f"{_setting_line(cfg)} lr {cfg['lr']:g} ({cfg['lr_schedule']})."]
    if not finals:
        empty = "No run of the continuous-reward study has finished yet."
        return {
            "continuous-runs": "\n".join(runs),
            "continuous-table": empty,
            "continuous-diagonal": empty,
            "continuous-baselines": empty,
            "continuous-other": empty,
        }
    results = [{**r, "metric": "maxg"} for r in _family_results(finals)]
    base = _paired(finals, BASELINES)
    labels = {f["label"] for f in finals}
    diag = [
        f"The diagonal family ({len(results)} of {len(DIAGONAL)} comparisons evaluable), paired by "
        "seed and problem, Holm-corrected at a family-wise 5 %:",
        "",
        family_table(results) if results else "(no comparison has two finished seeds yet)",
        "",
    ] + [f"- {w}" for w in diagonal_words(results)]
    baselines = (
        [
            "PKPO at k = 8, s^(loo-1) against the other baselines at held-out maxg@8 (95 % "
            "t-interval over seeds, not corrected):",
            "",
            paired_table(base),
            "",
        ]
        if base
        else ["(no baseline comparison has two finished seeds yet)", ""]
    ) + [f"- {w}" for w in baseline_words(base, labels)]
    other = _paired(finals, OTHER)
    return {
        "continuous-runs": "\n".join(runs),
        "continuous-table": "Held-out maxg@k_eval in % (512 problems x 16 samples at temperature "
        "1; near-greedy: 2 samples at temperature 0.05), mean ± SE over seeds:\n\n"
        + method_table(finals, _ceiling_of(finals)),
        "continuous-diagonal": "\n".join(diag),
        "continuous-baselines": "\n".join(baselines),
        "continuous-other": (
            "Other paired differences (descriptive, no decision rule; 95 % t-interval over seeds):"
            "\n\n" + paired_table(other)
            if other
            else "(no other comparison has two finished seeds yet)"
        ),
    }


def _family_results(finals: list[dict]) -> list[dict]:
    from gauntlet_report import family_results  # tools/gauntlet_report.py: paired t, Holm

    return family_results(finals, DIAGONAL)


def write_docs(out: Path, docs: Path, command: str | None = None) -> None:
    """Replace the ``continuous-*`` blocks of ``docs``/results.md (and no other block)."""
    from pkpo._output import rewrite_blocks

    path = docs / "results.md"
    rewrite_blocks(path, blocks(out, command), r"continuous-[\w-]+")
    print(f"rewrote the continuous-reward blocks of {path}")
