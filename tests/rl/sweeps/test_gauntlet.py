"""The gauntlet's statistics (Student t without scipy, Holm), its decision rules on made-up runs,
its plan."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # tools/gauntlet*.py
import gauntlet  # noqa: E402
import gauntlet_report as gr  # noqa: E402

from pkpo._output import replace_blocks  # noqa: E402
from pkpo.rl.config import TrainConfig  # noqa: E402
from pkpo.rl.sweeps.report import t975  # noqa: E402
from pkpo.rl.sweeps.runs import WARM_LABEL as WARM  # noqa: E402

from test_demo import _fake_sweep  # noqa: E402  (tests/rl is on sys.path)
from test_words import _with_greedy  # noqa: E402


@pytest.mark.parametrize("df", [1, 2, 4, 9, 30])
def test_t_quantile_matches_the_table(df):
    assert gr.t_quantile(0.95, df) == pytest.approx(t975(df), abs=2e-3)


@pytest.mark.parametrize("t", [0.1, 1.0, 3.0, 40.0])
def test_t_p_value_closed_forms(t):
    assert gr.t_two_sided_p(t, 1) == pytest.approx(
        1 - 2 / math.pi * math.atan(t), rel=1e-9
    )  # Cauchy
    assert gr.t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
    assert gr.t_two_sided_p(0.0, 4) == pytest.approx(1.0) and gr.t_two_sided_p(math.inf, 4) == 0.0


def test_holm_step_down_hand_checked():
    # m = 4: sorted p 0.001 <= 0.05/4, 0.013 <= 0.05/3, 0.03 > 0.05/2 stops, so 0.04 <= 0.05 is kept
    # too
    rejected, levels = gr.holm([0.04, 0.001, 0.013, 0.03])
    assert rejected == [False, True, True, False]
    assert levels == pytest.approx([0.05 / 1, 0.05 / 4, 0.05 / 3, 0.05 / 2])
    assert gr.holm([0.2, 0.001])[0] == [False, True]


def _runs(tmp_path, filter_successes):
    """Five seeds of 40 held-out problems, 16 samples: k1 collapsed (4/16 solved on the easy half
    only), k8 and the anneal strong; ``filter_successes`` per problem for the filter."""
    easy = [16] * 20 + [0] * 20
    spread = [8] * 40
    per = {
        WARM: [[6] * 40] * 5,
        "k1": [easy] * 5,
        "k8": [[s + (i % 3) for s in spread] for i in range(5)],
        "anneal": [[14] * 40] * 5,
        "filter": [filter_successes] * 5,
    }
    finals = _fake_sweep(tmp_path, per, samples=16)
    greedy = {
        WARM: [[1] * 40] * 5,
        "k1": [[2] * 20 + [0] * 20] * 5,
        "k8": [[2] * 39 + [0]] * 5,
        "anneal": [[2] * 39 + [s % 2 * 2 for s in range(1)]] * 5,
        "filter": [[2] * 30 + [0] * 10] * 5,
    }
    return _with_greedy(finals, greedy)


def test_rule_1_holds_when_the_filter_escapes(tmp_path):
    finals = _runs(tmp_path, [6] * 40)  # pass@8 of 6/16 correct: far above k1's 50 %
    results = gr.family_results(finals)
    r = next(x for x in results if x["a"] == "filter" and x["b"] == "k1")
    assert r["diff"] > 0.3 and r["holm_rejects"] and r["lo"] > 0
    words = gr.rule_words(results, gr.family_results(finals, gr.RULE1_FAMILY), finals)
    assert words[0].startswith("**Rule 1 holds") and "unbiased target k" in words[0]
    assert any(
        w.startswith("**Rule 2 holds: decode greedily") for w in words
    )  # k8 = anneal at greedy


def test_rule_1_fails_when_the_filter_is_trapped(tmp_path):
    finals = _runs(tmp_path, [16] * 20 + [0] * 20)  # exactly k1's numbers: no escape
    words = gr.rule_words(
        gr.family_results(finals), gr.family_results(finals, gr.RULE1_FAMILY), finals
    )
    assert words[0].startswith("Rule 1 does not hold") and "**" not in words[0]


def test_rule_1_is_tested_for_every_method_it_names_not_only_the_filter(tmp_path):
    trapped = [16] * 20 + [0] * 20  # the filter: exactly k1's numbers
    finals = _runs(tmp_path / "a", trapped)
    maxrl = _fake_sweep(tmp_path / "b", {"maxrl": [[6] * 40] * 5}, samples=16)
    finals += [{**f, "greedy_pass@1": f["pass@1"]} for f in maxrl]
    rule1 = gr.family_results(finals, gr.RULE1_FAMILY)
    assert {r["a"] for r in rule1} == {"filter", "maxrl"}  # the methods that ran
    words = gr.rule_words(
        gr.family_results(finals), gr.family_results(finals, gr.RULE1_FAMILY), finals
    )
    assert words[0].startswith("**Rule 1 holds") and "maxrl: pass@8" in words[0]
    assert "filter: pass@8" not in words[0]


def test_greedy_auc_is_the_mean_of_the_curve(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    recs = [{"config": {}}] + [
        {"step": s, "eval/greedy_pass@1": v} for s, v in ((0, 0.2), (30, 0.4), (60, 0.9))
    ]
    (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, recs)) + "\n")
    (run / "eval_detail.json").write_text(
        json.dumps(
            {
                "uid": ["a", "b", "c"],
                "samples": 4,
                "successes": [0, 0, 0],
                "greedy_samples": 2,
                "greedy_successes": [2, 0, 2],
            }
        )
    )
    final = {"config": {"eval_problems": 2, "out_dir": str(run)}, "run_dir": str(run)}
    # the final point is recomputed on the first 2 problems: (1 + 0) / 2 = 0.5
    assert gr.greedy_auc(run, final) == pytest.approx(np.mean([0.2, 0.4, 0.5]))


def test_the_plan_is_valid_and_the_report_seeds_are_fresh(tmp_path):
    jobs = gauntlet.plan(tmp_path)
    configs = [make()[0] for _, make in jobs]  # each TrainConfig is checked when made
    assert all(isinstance(cfg, TrainConfig) for cfg in configs)
    report = [c for c in configs if "/report/" in c.out_dir]
    assert {c.seed for c in report} == set(gauntlet.REPORT_SEEDS)
    assert gauntlet.TUNING_SEED not in gauntlet.REPORT_SEEDS and all(
        c.eval_split == "heldout" for c in report
    )
    tuning = [c for c in configs if "/tune/" in c.out_dir]
    assert tuning and all(
        c.eval_split == "validation" and c.seed == gauntlet.TUNING_SEED for c in tuning
    )
    assert all(c.feature == "first" for c in configs if "/first/" in c.out_dir)
    filt = gauntlet.report_config("filter", 5, tmp_path)
    assert filt.max_group_success == 0.5 and filt.method == "pkpo" and filt.k == "1"
    n64 = gauntlet.report_config("n64", 5, tmp_path)
    assert (
        n64.n * n64.prompts_per_step
        == gauntlet.demo_base().n * gauntlet.demo_base().prompts_per_step
    )


def test_untuned_grid_uses_its_first_point(tmp_path):
    point, how = gauntlet.tuned_point("entropy", tmp_path)
    assert point == {"entropy_coef": 0.2} and how.startswith("untuned")


def test_replace_blocks_of_one_name_keeps_the_other_blocks():
    text = (
        "<!-- generated:a -->\nold a\n<!-- /generated:a -->\n"
        "<!-- generated:b -->\nold b\n<!-- /generated:b -->\n"
    )
    out = replace_blocks(text, {"b": "new b"}, "doc", "b")
    assert "old a" in out and "new b" in out and "old b" not in out


def _first_run(root: Path, warm: str, label: str, seed: int, curve: list[float]):
    run = root / "first" / warm / "runs" / label / f"seed{seed}"
    run.mkdir(parents=True)
    recs = [{"config": {}}] + [
        {"step": 30 * i, "eval/greedy_pass@1": v} for i, v in enumerate(curve)
    ]
    (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, recs)) + "\n")
    (run / "eval_detail.json").write_text(
        json.dumps(
            {
                "uid": ["a", "b"],
                "samples": 2,
                "successes": [0, 0],
                "greedy_samples": 2,
                "greedy_successes": [2, 2],
            }
        )
    )
    final = {
        "name": label,
        "method": "pkpo",
        "k_schedule": label,
        "baseline": "loo_minus_one",
        "seed": seed,
        "pass@1": 0.5,
        "pass@8": 0.9,
        "greedy_pass@1": 1.0,
        "config": {"eval_problems": 2, "n": 2, "out_dir": str(run)},
    }  # what read_final checks
    (run / "final.json").write_text(json.dumps(final))


def test_rule_3_says_where_the_effect_lives(tmp_path):
    """k8 learns faster (a larger area under the near-greedy curve) only from the over-confident
    warm start."""
    for seed, jitter in ((5, 0.0), (6, 0.02)):
        for warm in ("calibrated", "overconfident"):
            fast = [0.2 + jitter, 0.8, 0.9, 1.0]
            slow = [0.2 + jitter, 0.3, 0.5, 1.0]
            _first_run(tmp_path, warm, "k8", seed, fast if warm == "overconfident" else slow)
            _first_run(tmp_path, warm, "k1", seed, [0.2 + jitter, 0.3 + jitter, 0.5, 1.0])
    table, words = gr.first_task(tmp_path)
    # seeds: mean(0.2, 0.8, 0.9, 1.0) and mean(0.22, 0.8, 0.9, 1.0) (final point: 2/2), then their
    # mean
    assert "| overconfident | k8 | 2 | 72.8 |" in table
    assert any(w.startswith("**Rule 3: the effect needs an over-confident prior") for w in words)


# ------------------------------------------------------------------------ the plan grows at its end

# The plan of the first study (tools/gauntlet.py at commit 6291acf), as rows (description, warm
# start?, the config fields that differ from TrainConfig's defaults with out_dir relative to "OUT")
# made by _plan_rows. Its runs are on disk: a later plan must make each with the same config.
FIRST_STUDY = Path(__file__).with_name("gauntlet_plan_first_study.json")


def _plan_rows(jobs, out: Path) -> list[list]:
    default = TrainConfig().to_dict()
    rows = []
    for desc, make in jobs:
        cfg, warm = make()
        d = {**cfg.to_dict(), "out_dir": cfg.out_dir.replace(str(out), "OUT")}
        d["eval_ks"] = list(d["eval_ks"])
        rows.append([desc, warm, {k: v for k, v in d.items() if v != default[k]}])
    return rows


def test_the_plan_keeps_every_job_of_the_first_study_and_appends_the_new_ones(tmp_path):
    before = json.loads(FIRST_STUDY.read_text())
    now = _plan_rows(gauntlet.plan(tmp_path), tmp_path)
    assert len(now) > len(before)
    for old, new in zip(before, now):  # the same job, with the same config, at the same place
        assert old == new, old[0]
    added = [desc for desc, _, _ in now[len(before) :]]
    anneal = [
        f"first {w} anneal seed {s}" for s in gauntlet.FIRST_SEEDS for w in gauntlet.FIRST_WARM
    ]
    assert added[:2] == ["tune filter max_group_success=0.5", "tune filter max_group_success=0.75"]
    assert added[2 : 2 + len(anneal)] == anneal
    phase = added[2 + len(anneal) :]
    cells = len(gauntlet.PHASE_SHARES) * len(gauntlet.PHASE_WARM) - 1  # (0.6, demo) is the report
    assert len(phase) == 3 * cells and all(d.startswith("phase ") for d in phase)
    assert not any("share0.6_demo" in d for d in phase)


def test_the_new_jobs_configs(tmp_path):
    jobs = dict(gauntlet.plan(tmp_path))
    cfg, warm = jobs["phase share0.4_overconfident k8 seed 5"]()
    assert not warm and cfg.majority_share == 0.4 and (cfg.demo_power, cfg.demo_uniform) == (3, 0)
    assert cfg.k == "8" and cfg.seed == gauntlet.PHASE_SEED and cfg.eval_split == "heldout"
    assert cfg.out_dir == str(tmp_path / "phase/share0.4_overconfident/runs/k8/seed5")
    # the cell differs from the report run only in its task and warm start (and its folder)
    report = gauntlet.report_config("k8", 5, tmp_path)
    assert cfg.replace(majority_share=0.6, demo_power=2.0, demo_uniform=0.1, out_dir="x") == (
        report.replace(out_dir="x")
    )
    cfg, warm = jobs["phase share0.75_demo warm start seed 5"]()
    assert warm and cfg.steps == 0 and cfg.majority_share == 0.75 and cfg.demo_uniform == 0.1
    # the (0.6, demo) cell is the report runs themselves
    for label in gauntlet.PHASE_RUNS:
        assert gauntlet.phase_config(0.6, "demo", label, 5, tmp_path) == gauntlet.report_config(
            label, 5, tmp_path
        )
    cfg, _ = jobs["first overconfident anneal seed 7"]()
    assert cfg.feature == "first" and cfg.k == "8->1@180" and cfg.demo_power == 3.0
    cfg, _ = jobs["tune filter max_group_success=0.75"]()
    assert cfg.max_group_success == 0.75 and cfg.eval_split == "validation" and cfg.k == "1"


def _tuning_final(out: Path, label: str, point: dict, value: float) -> None:
    cfg = gauntlet.tuning_config(label, point, out)
    path = Path(cfg.out_dir) / "final.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"config": cfg.to_dict(), METHODS_TARGET[label]: value}))


METHODS_TARGET = {label: target for label, (_, target, _) in gauntlet.METHODS.items()}


@pytest.mark.parametrize("winner", [0.5, 0.75])
def test_the_filter_report_follows_its_tuned_threshold(tmp_path, winner):
    assert gauntlet.report_config("filter", 5, tmp_path).max_group_success == 0.5  # untuned
    for point in (0.5, 0.75):
        _tuning_final(
            tmp_path, "filter", {"max_group_success": point}, 0.7 if point == winner else 0.6
        )
    point, how = gauntlet.tuned_point("filter", tmp_path)
    assert point == {"max_group_success": winner} and how.startswith("validation pass@1")
    assert gauntlet.report_config("filter", 5, tmp_path).max_group_success == winner


def test_a_superseded_run_is_moved_aside_and_a_resumable_one_kept(tmp_path):
    cfg = gauntlet.report_config("filter", 5, tmp_path)
    folder = Path(cfg.out_dir)
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text(json.dumps({"config": cfg.to_dict()}) + "\n")
    longer = cfg.replace(steps=cfg.steps + 10)  # a resumable change: the run stays
    assert gauntlet.set_aside(longer, tmp_path) is None and folder.exists()
    other = cfg.replace(max_group_success=0.75)
    moved = gauntlet.set_aside(other, tmp_path)
    assert moved == tmp_path / "superseded/report/runs/filter/seed5" and not folder.exists()
    assert (moved / "metrics.jsonl").exists()
    folder.mkdir(parents=True)
    (folder / "final.json").write_text(json.dumps({"config": cfg.to_dict()}))
    assert gauntlet.set_aside(other, tmp_path).name == "seed5.2"  # a second one is kept too
    assert gauntlet.set_aside(other, tmp_path) is None  # no run there: nothing to move


# ------------------------------------------------------------------------------ the phase diagram


def _phase_run(folder: Path, label: str, values: dict, config: dict | None = None) -> None:
    """A finished run of seed 5 under the sweep folder ``folder``: its final.json only."""
    run = folder / "runs" / label / f"seed{gauntlet.PHASE_SEED}"
    run.mkdir(parents=True)
    final = {
        "seed": gauntlet.PHASE_SEED,
        "method": "pkpo",
        "k_schedule": label,
        "baseline": "loo_minus_one",
        "config": {"n": 16, "out_dir": str(run), **(config or {})},
        **values,
    }
    (run / "final.json").write_text(json.dumps(final))


def _metrics(p8, greedy, p1):
    return {"pass@8": p8, "greedy_pass@1": greedy, "pass@1": p1}


def _fake_phase(out: Path, effects: dict) -> None:
    """Cells {(share, warm): k8 - k1 pass@8}: k1 at 0.5 everywhere, its warm start at 0.6."""
    for (share, warm), effect in effects.items():
        folder = gauntlet.phase_folder(share, warm, out)
        _phase_run(folder, WARM, _metrics(0.6, 0.5, 0.4))
        _phase_run(folder, "k1", _metrics(0.5, 0.5, 0.5))
        _phase_run(folder, "k8", _metrics(0.5 + effect, 0.7, 0.3))


def test_the_phase_table_reads_the_cells_and_the_report_runs(tmp_path):
    _fake_phase(tmp_path, {(0.6, "demo"): 0.30, (0.4, "overconfident"): 0.02})
    assert (tmp_path / "report/runs/k8/seed5/final.json").exists()  # the (0.6, demo) cell
    cells = gr.phase_cells(tmp_path)
    assert len(cells) == len(gauntlet.PHASE_SHARES) * len(gauntlet.PHASE_WARM)
    by = {(c["share"], c["warm"]): c for c in cells}
    assert by[(0.6, "demo")]["effect"] == pytest.approx(
        {"pass@8": 0.30, "greedy_pass@1": 0.2, "pass@1": -0.2}
    )
    assert by[(0.75, "demo")]["effect"] == {} and by[(0.75, "demo")]["missing"] == [
        WARM,
        "k1",
        "k8",
    ]
    # the warm start's over-confidence: its probability of r grows with the share and the power
    assert (
        by[(0.4, "demo")]["demo_r"]
        < by[(0.6, "demo")]["demo_r"]
        < by[(0.6, "overconfident")]["demo_r"]
    )
    table = gr.phase_table(cells)
    row = "| 0.6 | demo (79 %) | 40.0 / 50.0 / 60.0 | 50.0 | 80.0 | +30.0 | 50.0 | 70.0 | +20.0 |"
    assert row in table
    assert "| 0.75 | demo (85 %) | not run | not run | not run | - |" in table
    words = gr.phase_words(cells)
    assert "appears in 1 of 2 finished cells: (0.6, demo) (+30.0 points)" in words[0]
    assert "does not appear in (0.4, overconfident) (+2.0 points)" in words[0]
    assert words[1].startswith("Not run in the time box: (0.4, demo) (missing warm_start, k1, k8)")
    assert not any(w.startswith("**") for w in words)  # no claim from an unfinished diagram


@pytest.mark.parametrize(
    "demo, overconfident, claim",
    [
        (0.0, 0.2, "**Rule 4: the effect needs an over-confident prior**"),
        (0.2, 0.2, "**Rule 4: the effect does not need an over-confident prior**"),
        (0.05, 0.0, "**Rule 4: the effect appears in no cell"),  # 5 points is not more than 5
    ],
)
def test_rule_4_says_where_the_effect_appears(tmp_path, demo, overconfident, claim):
    effects = {(s, "demo"): demo for s in gauntlet.PHASE_SHARES}
    effects.update({(s, "overconfident"): overconfident for s in gauntlet.PHASE_SHARES})
    effects[(0.75, "overconfident")] = 0.0  # the over-confident effect fades at the largest share
    _fake_phase(tmp_path, effects)
    words = gr.phase_words(gr.phase_cells(tmp_path))
    assert words[-1].startswith(claim)
    if claim.endswith("needs an over-confident prior**"):
        assert words[-1].endswith("at majority shares 0.4, 0.6.")


def test_the_phase_figure_and_the_block(tmp_path):
    _fake_phase(tmp_path, {(0.6, "demo"): 0.3, (0.4, "demo"): -0.1})
    figure = tmp_path / "docs" / gr.PHASE_FIGURE
    assert gr.write_phase_figure(tmp_path, figure) and figure.stat().st_size > 0
    text, _ = gr.blocks(tmp_path, "x", [gr.PHASE_FIGURE])
    assert "**The phase diagram**" in text and "| 0.4 | demo (66 %) |" in text
    assert f"![gauntlet: phase diagram]({gr.PHASE_FIGURE})" in text
    assert "phase diagram was not run" not in text
    assert gr.write_phase_figure(tmp_path / "empty", tmp_path / "x.png") is False


def test_report_runs_at_a_superseded_tuned_point_are_listed_not_shown(tmp_path):
    for point, value in ((0.5, 0.6), (0.75, 0.7)):  # 0.75 wins
        _tuning_final(tmp_path, "filter", {"max_group_success": point}, value)
    report = tmp_path / "report"
    _phase_run(report, "filter", _metrics(0.8, 0.7, 0.5), {"max_group_success": 0.5})
    _phase_run(report, "k1", _metrics(0.5, 0.5, 0.5), {"max_group_success": 1.0})
    kept, superseded = gr.current_runs(gr.finished_runs(report), tmp_path)
    assert [f["label"] for f in kept] == ["k1"] and [f["label"] for f in superseded] == ["filter"]
    text, _ = gr.blocks(tmp_path)
    assert "not shown; the study reruns them): filter seed 5." in text
    how = "validation pass@1 in % (max_group_success=0.5: 60.00, max_group_success=0.75: 70.00)"
    assert (
        f"The difficulty filter's threshold (`max_group_success` in {{0.5, 0.75}}): {how}." in text
    )


def test_the_anneal_on_first_is_reported(tmp_path):
    for seed, jitter in ((5, 0.0), (6, 0.02)):
        for warm in ("calibrated", "overconfident"):
            _first_run(tmp_path, warm, "k1", seed, [0.2 + jitter, 0.3, 0.5, 1.0])
            _first_run(tmp_path, warm, "k8", seed, [0.2 + jitter, 0.8, 0.9, 1.0])
            _first_run(tmp_path, warm, "anneal", seed, [0.2 + jitter, 0.6, 0.9, 1.0])
    table, words = gr.first_task(tmp_path)
    assert "| calibrated | anneal | 2 |" in table
    # anneal - k8: (0.6 - 0.8) / 4 on both seeds = -5 points, no spread
    line = next(w for w in words if "calibrated warm start, anneal − k8" in w)
    assert "-5.0 points (95 % interval -5.0 to -5.0; 2 seeds" in line
    # anneal - k1: (0.3 + 0.4) / 4 = +17.5 points
    assert any("anneal − k1" in w and "+17.5 points" in w for w in words)


@pytest.mark.slow
def test_a_tiny_phase_cell_trains_and_is_reported(tmp_path, monkeypatch, tiny_mixed_config):
    """One cell's jobs (warm start, k1, k8) with a tiny policy and two steps, through run_plan: the
    runs record the cell's share and warm start, a second pass reruns nothing, the table reads
    them."""

    monkeypatch.setattr(gauntlet, "demo_base", tiny_mixed_config)
    jobs = [j for j in gauntlet.plan(tmp_path) if j[0].startswith("phase share0.4_overconfident")]
    assert len(jobs) == 3
    lines = []
    gauntlet.run_plan(tmp_path, jobs, None, lines.append)
    assert [line.split(":")[0] for line in lines] == [d for d, _ in jobs]
    final = json.loads(
        (tmp_path / "phase/share0.4_overconfident/runs/k8/seed5/final.json").read_text()
    )
    assert final["config"]["majority_share"] == 0.4 and final["config"]["demo_power"] == 3.0
    lines.clear()
    gauntlet.run_plan(tmp_path, jobs, None, lines.append)
    assert lines == []
    cell = next(
        c for c in gr.phase_cells(tmp_path) if (c["share"], c["warm"]) == (0.4, "overconfident")
    )
    assert set(cell["runs"]) == {WARM, "k1", "k8"} and set(cell["effect"]) == {
        "pass@8",
        "greedy_pass@1",
        "pass@1",
    }
