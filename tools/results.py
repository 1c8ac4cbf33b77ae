"""Regenerate every table and figure of docs/results.md, and the README's results block, from run
folders.

::

    make results  # = python tools/results.py --out runs/results
    python tools/results.py --out runs/results --sum-seeds 0 1 2 --jobs 2
    # rewrite the docs from the finished runs only:
    python tools/results.py --out runs/results --docs-only
    # train only some steps (then write the docs from every step's finished runs):
    python tools/results.py --out runs/results --parts sum,gauntlet

Four training steps, each resumable (finished runs are reused, interrupted ones resume from their
checkpoints), then the docs:

1. **The first demo's setting** (``--preset sum``: the unlearnable feature, 256 training problems)
   for the diagnosis of why it showed PKPO below the warm start, and tools/diagnose.py on its
   policies. Folder ``OUT/sum``.
2. **The baseline gauntlet** (tools/gauntlet.py): every method tuned on validation, then run on
   fresh seeds; its words follow the decision rules of docs/results.md. Folder ``OUT/gauntlet``.
   Its report runs k1, k4, k8 and anneal 8 -> 1 with their warm starts are also **the demo
   setting's** multi-seed study (``--preset demo``, the ``mixed`` hidden-rule task; paired: the
   runs of a seed share its warm start and every run is evaluated on the same held-out problems),
   on seeds used neither for tuning nor for choosing the setting; their report and figures go to
   ``OUT/demo``.
3. **Continuous rewards** (tools/continuous.py): PKPO and its relatives trained on partial credit,
   scored by held-out maxg@k, on the gauntlet's seeds and warm starts. Folder ``OUT/continuous``.
4. **The maze benchmark** (``python -m pkpo.rl.sweeps.maze``): every method tuned on validation
   mazes, then paired report seeds on held-out mazes (tools/maze_results.py writes its section).
   Folder ``OUT/maze``.
5. **The docs**: the blocks between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in
   docs/results.md and README.md are replaced by tables and sentences computed here, and the figures
   are copied to docs/figures/rl/. A marker without a block, or a block without a marker, is an
   error, so no table can be left behind unregenerated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import continuous  # tools/continuous.py, next to this file
import continuous_report
import gauntlet  # tools/gauntlet.py, next to this file
import gauntlet_report
import numpy as np
from diagnose import (  # tools/diagnose.py, next to this file
    diagnose_sweep,
    diagnosis_findings,
    diagnosis_tables,
    optimal_rule_distribution,
    pass_at_k_of,
)
from maze_results import maze_blocks  # tools/maze_results.py, next to this file

from pkpo._output import markdown_table, rewrite_blocks, write_json
from pkpo.rl.config import PRESETS, TrainConfig
from pkpo.rl.sweeps.grid import run_grid, wall_time
from pkpo.rl.sweeps.report import (
    behaviour_table,
    category_table,
    findings,
    paired_difference,
    table_markdown,
    write_sweep_report,
)
from pkpo.rl.sweeps.runs import K_EVAL, aggregate, finished_runs
from pkpo.rl.sweeps.runs import WARM_LABEL as WARM

# the demo setting's multi-seed study: these runs of the gauntlet's report (held-out seeds
# gauntlet.REPORT_SEEDS, used neither for tuning nor for choosing the demo setting)
RESULTS_RUNS = ["k1", "k4", "k8", "anneal"]
SUM_RUNS = ["k1", "k4", "k8", "anneal"]
# the headline comparisons: (run a, run b, k)
HEADLINE = [
    ("k8", WARM, 8),
    ("k1", WARM, 1),
    ("k4", "k8", 4),
    ("k8", "k4", 8),
    ("k1", "k4", 1),
    ("k1", "k8", 1),
    ("anneal", "k1", 1),
    ("anneal", "k1", 8),
]


def ceiling_table(feature: str) -> str:
    """The best pass@k any policy can reach (perfect execution; the learnable part learned), one row
    per k_opt: the policy optimal for pass@k_opt, evaluated at every k_eval."""
    from pkpo.rl.tasks.hidden_rule import AMBIGUOUS_PRIOR, MIXED_TABLE, RULE_PRIOR, RULES

    if feature == "mixed":
        amb = [AMBIGUOUS_PRIOR.get(r, 0.0) for r in RULES]
        share = MIXED_TABLE.count("*") / len(MIXED_TABLE)
    else:
        amb, share = list(RULE_PRIOR), 1.0
    rows = []
    for k_opt in (1, 4, 8):
        q = optimal_rule_distribution(amb, k_opt)
        vals = [(1 - share) + share * pass_at_k_of(amb, q, k) for k in K_EVAL]
        rows.append([f"optimum for pass@{k_opt}"] + [f"{100 * v:.1f}" for v in vals])
    return markdown_table(["policy"] + [f"pass@{k}" for k in K_EVAL], rows)


def task_table(cfg: dict) -> str:
    """The mixed task's law (from :data:`MIXED_TABLE` and :data:`AMBIGUOUS_PRIOR`) and the warm
    start's demonstrator, as markdown."""
    from pkpo.rl.tasks.hidden_rule import (
        AMBIGUOUS_PRIOR,
        MIXED_TABLE,
        RULES,
        HiddenRuleTask,
        rule_prior,
    )

    groups: dict[str, list[int]] = {}
    for d, rule in enumerate(MIXED_TABLE):
        groups.setdefault(rule, []).append(d)
    rows = []
    for rule, digits in groups.items():
        share = f"{100 * len(digits) / len(MIXED_TABLE):.0f} %"
        if rule == "*":
            amb = ", ".join(f"`{r}` {100 * p:.0f} %" for r, p in AMBIGUOUS_PRIOR.items())
            rows.append(
                [
                    ", ".join(map(str, digits)),
                    share,
                    "ambiguous",
                    f"drawn by a hash of the string: {amb}",
                ]
            )
        else:
            kind = "majority (the trap)" if rule == "r" else "minority, learnable"
            rows.append([", ".join(map(str, digits)), share, kind, f"`{rule}`"])
    lines = [markdown_table(["first digit", "share of problems", "kind", "hidden rule"], rows)]
    prior = rule_prior("mixed")
    task = HiddenRuleTask(
        feature="mixed",
        n_train=64,
        n_heldout=32,
        n_validation=32,
        length=cfg.get("length", 6),
        demo_power=cfg["demo_power"],
        demo_uniform=cfg["demo_uniform"],
    )
    demo = dict(zip(RULES, task.demonstrator()))
    lines += [
        "",
        "Marginal probability of each rule (all a policy that ignores the first digit can know): "
        + ", ".join(f"`{r}` {100 * prior[r]:.1f} %" for r in RULES)
        + ". The warm start's demonstrator on "
        "`?` prompts: " + ", ".join(f"`{r}` {100 * demo[r]:.1f} %" for r in RULES) + ".",
    ]
    return "\n".join(lines)


def headline_table(finals: list[dict]) -> str:
    """The paired differences of the headline comparisons (points, 95 % CI, per-seed values)."""
    rows = []
    for a, b, k in HEADLINE:
        d = paired_difference(finals, a, b, k)
        if d is not None:
            rows.append(
                [
                    f"{a} − {b}",
                    k,
                    f"{100 * d['diff']:+.1f}",
                    f"{100 * d['lo']:+.1f} to {100 * d['hi']:+.1f}",
                    ", ".join(f"{100 * v:+.1f}" for v in d["per_seed"]),
                ]
            )
    return markdown_table(
        ["comparison", "k_eval", "difference (points)", "95% CI", "per seed"], rows
    )


def _bullets(claims: list[dict]) -> str:
    return "\n".join(f"- {c['text']}" for c in claims)


def _setting(cfg: dict) -> str:
    return (
        f"`--preset {cfg['preset']}`: the GPT policy with d = {cfg['d_model']}, {cfg['n_layer']} "
        f"layers, {cfg['n_head']} heads; {cfg['steps']} RL steps of {cfg['prompts_per_step']} "
        f"prompts x {cfg['n']} samples (lr {cfg['lr']:g}, {cfg.get('lr_schedule', 'constant')}), "
        f"warm start {cfg['warm_steps']} steps of {cfg['warm_batch']} demonstrations; held-out "
        f"evaluation {cfg['final_eval_problems'] or cfg['eval_problems']} problems x "
        f"{cfg['eval_samples']} samples."
    )


def _walls(finals: list[dict]) -> str:
    by = {}
    for f in finals:
        by.setdefault(f["label"], []).append(f.get("wall_s") or float("nan"))
    return ", ".join(f"{label} {np.nanmean(v):.0f} s" for label, v in by.items())


def demo_runs(out: Path) -> list[dict]:
    """The demo setting's multi-seed study: the gauntlet's finished report runs of
    :data:`RESULTS_RUNS` and their warm starts (``OUT/gauntlet/report``)."""
    keep = (WARM, *RESULTS_RUNS)
    return [f for f in finished_runs(out / "gauntlet" / "report") if f["label"] in keep]


def docs_blocks(
    out: Path, command: str, wall: float | None, docs: Path = Path("docs")
) -> tuple[dict, dict]:
    """(results.md blocks, README blocks) from the finished runs under ``out``."""
    demo = demo_runs(out)
    seeds = sorted({f["seed"] for f in demo})
    blocks = {}
    cfg = next(f for f in demo if f["label"] != WARM)["config"]
    blocks["demo-setting"] = _setting({**cfg, "preset": "demo"})
    blocks["demo-task"] = task_table(cfg)
    greedy_t = cfg.get("greedy_temperature")
    blocks["demo-table"] = table_markdown(
        sorted(aggregate(demo), key=lambda r: r["label"] != WARM), greedy_t
    )
    blocks["demo-ceiling"] = ceiling_table(cfg["feature"])
    blocks["demo-findings"] = _bullets(findings(demo))
    blocks["demo-paired"] = headline_table(demo)
    blocks["demo-categories"] = category_table(demo)
    blocks["demo-behaviour"] = behaviour_table(demo)
    blocks["demo-walls"] = (
        f"Mean wall time per run ({len(seeds)} seeds, one process, the gauntlet's runs on the "
        f"shared machine): {_walls(demo)}."
    )
    first = [f for f in demo if f["seed"] == min(f["seed"] for f in demo)]
    blocks["demo-seed"] = (
        f"Seed {first[0]['seed']} alone, one seed as `make demo` trains it (± is the SE over "
        "held-out problems):\n\n"
        + table_markdown(sorted(aggregate(first), key=lambda r: r["label"] != WARM), greedy_t)
    )

    sum_runs = finished_runs(out / "sum")
    scfg = next(f for f in sum_runs if f["label"] != WARM)["config"]
    blocks["sum-setting"] = _setting({**scfg, "preset": "sum"})
    blocks["sum-table"] = table_markdown(
        sorted(aggregate(sum_runs), key=lambda r: r["label"] != WARM)
    )
    blocks["sum-ceiling"] = ceiling_table("sum")
    blocks["sum-paired"] = headline_table(sum_runs)
    diag = json.loads((out / "sum" / "diagnosis.json").read_text())
    tables = diagnosis_tables(diag)
    for name in ("splits", "memorisation", "behaviour", "categories", "training_batch"):
        blocks[f"diag-{name.replace('_', '-')}"] = tables[name]
    draws = scfg["steps"] * scfg["prompts_per_step"] / scfg["n_train"]
    blocks["diag-findings"] = "\n\n".join(diagnosis_findings(diag, draws))
    blocks["command"] = (
        "<!-- docs-test: parse-only (trains the paired multi-seed sweeps and the maze benchmark: "
        f"about two and a half hours) -->\n```bash\n{command}\n```\n"
        + (f"Wall time of this regeneration: {wall / 60:.0f} min." if wall else "")
    )

    blocks["gauntlet"], gauntlet_readme = gauntlet_report.blocks(
        out / "gauntlet", "make results", gauntlet_report.write_figures(out / "gauntlet", docs)
    )
    blocks.update(continuous_report.blocks(out / "continuous", "make results"))
    readme = {"readme-results": _readme(demo), "readme-gauntlet": gauntlet_readme}
    return blocks, readme


def _readme(demo: list[dict]) -> str:
    rows = {r["label"]: r for r in aggregate(demo)}
    seeds = len(rows[WARM]["seeds"])
    lines = [
        f"- **A small policy trained from scratch** ({seeds} seeds, paired; `make demo` runs one "
        "seed) on a hidden-rule task where a majority rule is a trap and minority rules are "
        "learnable only by trying them (pass@k sampled at temperature 1 unless said otherwise):"
    ]
    claims = {c["id"]: c for c in findings(demo)}
    greedy = claims.get("greedy")
    for key in ("a", "b", "c1", "c4", "c8", "d", "e"):  # a claim is kept only where its rule holds
        claim = claims.get(key)
        if claim and claim["holds"]:
            lines.append(f"  - {claim['text']}")
    if greedy and greedy["holds"]:  # rule 2 of docs/results.md: then no "annealing wins both"
        lines.append(
            f"  - {greedy['text']} So for pass@1, decode the k_opt = 8 policy greedily; the "
            "anneal's pass@1 gain is a gain at temperature 1."
        )
    elif greedy:
        lines.append(f"  - {greedy['text']}")
    lines += ["", "![final held-out pass@k](docs/figures/rl/demo_final_pass_at_k.png)"]
    return "\n".join(lines)


# the training steps of the module docstring, in order
PARTS = ("sum", "gauntlet", "continuous", "maze")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/results.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default="runs/results")
    parser.add_argument("--sum-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--docs", default="docs", help="the docs folder (results.md, figures/rl/)")
    parser.add_argument("--readme", default="README.md")
    parser.add_argument(
        "--docs-only",
        action="store_true",
        help="skip training: rewrite the docs from finished runs",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated training steps to run (default all: {','.join(PARTS)}); the docs "
        "are written from every part's finished runs",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown --parts {unknown}; expected some of {list(PARTS)}")
    out, progress = Path(args.out), not args.no_progress
    t0 = time.time()
    cache = str(out / "cache")
    if not args.docs_only:

        def sweep(preset: str, runs, seeds, name: str, title: str) -> None:
            """Train one preset's grid into OUT/name and write its report (resumable)."""
            start = time.time()
            base = TrainConfig().replace(**PRESETS[preset], tensorboard=False)
            finals = run_grid(
                base, runs, seeds, out / name, jobs=args.jobs, cache_dir=cache, progress=progress
            )
            wall, note = wall_time(out / name, finals, time.time() - start)
            write_sweep_report(
                out / name, finals, title=title, command="make results", wall_s=wall, wall_note=note
            )

        def log(msg):
            if progress:
                print(msg, flush=True)

        if "sum" in parts:
            sweep("sum", SUM_RUNS, args.sum_seeds, "sum", "first demo setting (feature sum)")
            diag_path = out / "sum" / "diagnosis.json"
            if not diag_path.exists():
                diagnosis = diagnose_sweep(out / "sum", cache_dir=cache, progress=progress)
                write_json(diag_path, diagnosis)
        if "gauntlet" in parts:  # tools/gauntlet.py: one process, resumable; the longest part
            gauntlet.run(out / "gauntlet", None, log)
        if "continuous" in parts:
            # tools/continuous.py: one process, resumable; the warm starts of its seeds are the
            # gauntlet's (a warm start does not depend on the reward)
            study = out / "continuous"
            gauntlet.run_plan(study, continuous.plan(study), None, log, out / "gauntlet" / "cache")
        if "maze" in parts:  # about 2 h on 2 cores
            from pkpo.rl.sweeps.maze import METHOD_RUNS, run_benchmark

            run_benchmark(out / "maze", list(METHOD_RUNS), jobs=args.jobs, progress=progress)
        if parts == list(PARTS):
            write_json(out / "regenerate_wall.json", {"wall_s": time.time() - t0})
    wall_file = out / "regenerate_wall.json"
    wall = json.loads(wall_file.read_text())["wall_s"] if wall_file.exists() else None
    command = (
        "make results   # = python tools/results.py --out runs/results (feature-sum seeds "
        + " ".join(map(str, args.sum_seeds))
        + ")"
    )
    demo = demo_runs(out)  # the demo's report and figures, from the gauntlet's runs
    (out / "demo").mkdir(parents=True, exist_ok=True)
    write_sweep_report(
        out / "demo",
        demo,
        title=f"demo setting, the gauntlet's report seeds {sorted({f['seed'] for f in demo})}",
        command=command,
        wall_s=sum(f.get("wall_s") or 0.0 for f in demo),
        wall_note=" (the sum of the runs' own wall times, one process)",
    )
    blocks, readme_blocks = docs_blocks(out, command, wall, Path(args.docs))
    figures = Path(args.docs) / "figures" / "rl"
    figures.mkdir(parents=True, exist_ok=True)
    blocks.update(maze_blocks(out / "maze", figures))
    for prefix, folder in (("demo", out / "demo"), ("sum", out / "sum")):
        for png in sorted(folder.glob("*.png")):
            shutil.copy(png, figures / f"{prefix}_{png.name}")
    results_md = Path(args.docs) / "results.md"
    rewrite_blocks(results_md, blocks)
    readme = Path(args.readme)
    rewrite_blocks(readme, readme_blocks)
    print(f"rewrote {results_md}, {readme} and the figures in {figures} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
