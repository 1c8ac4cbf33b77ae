"""The continuous-reward study (tools/continuous.py, tools/continuous_report.py): its plan and run
configs, resumability, the ceiling, paired maxg@k, and the docs blocks from made-up run folders."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # tools/continuous*.py
import continuous  # noqa: E402
import continuous_report as cr  # noqa: E402
import gauntlet  # noqa: E402
from diagnose import optimal_rule_distribution, pass_at_k_of  # noqa: E402

import pkpo  # noqa: E402
from pkpo.rl.config import PRESETS, TrainConfig  # noqa: E402
from pkpo.rl.sweeps.report import paired_difference  # noqa: E402
from pkpo.rl.sweeps.runs import WARM_LABEL as WARM  # noqa: E402
from pkpo.rl.tasks.hidden_rule import RULES, apply_rule, partial_credit  # noqa: E402

# the fields in which a run may differ from its seed's warm-start evaluation (the warm start's
# policy is the same: it is fitted from fields outside this set)
RUN_FIELDS = {
    "method",
    "k",
    "baseline",
    "method_params",
    "steps",
    "eval_every",
    "kl_coef",
    "out_dir",
}


# ------------------------------------------------------------------------------------ the plan


def test_the_plan_names_every_run_in_priority_order(tmp_path):
    descs = [d for d, _ in continuous.plan(tmp_path)]
    seeds = continuous.SEEDS
    expected = [f"{x} seed {s}" for s in seeds for x in ("warm start", "k1", "k4", "k8")] + [
        f"{label} seed {s}"
        for label in ("tzsm", "anneal", "k8_none", "k8_loo", "k8_centered", "tailrl")
        for s in seeds
    ]
    assert descs == expected
    assert len(seeds) >= 5 and set(seeds) == set(gauntlet.REPORT_SEEDS)  # never tuned on


def test_each_run_has_its_method_k_baseline_and_task(tmp_path):
    jobs = continuous.plan(tmp_path)
    made = {desc: make() for desc, make in jobs}
    for desc, (cfg, is_warm) in made.items():
        assert isinstance(cfg, TrainConfig) and is_warm == desc.startswith("warm")
        assert cfg.task == "hidden-rule-partial" and cfg.feature == "mixed"
        assert cfg.eval_split == "heldout" and cfg.eval_samples >= 16
        assert {1, 4, 8, 16} <= set(cfg.eval_ks)
        assert cfg.lr == PRESETS["demo"]["lr"] and cfg.steps in (0, PRESETS["demo"]["steps"])
    want = {
        "k1": ("pkpo", "1", "loo_minus_one"),
        "k4": ("pkpo", "4", "loo_minus_one"),
        "k8": ("pkpo", "8", "loo_minus_one"),
        "anneal": ("pkpo", "8->1@180", "loo_minus_one"),
        "k8_none": ("pkpo", "8", "none"),
        "k8_loo": ("pkpo", "8", "loo"),
        "k8_centered": ("pkpo", "8", "centered"),
    }
    for label, (method, k, baseline) in want.items():
        cfg = made[f"{label} seed 7"][0]
        assert (cfg.method, cfg.k, cfg.baseline, cfg.seed) == (method, k, baseline, 7)
        assert Path(cfg.out_dir) == tmp_path / "runs" / label / "seed7"
    assert made["tzsm seed 5"][0].method == "tzsm" and made["tailrl seed 5"][0].method == "tailrl"
    assert made["tzsm seed 5"][0].schedule().max_k == 16  # TZSM targets maxg@n
    with pytest.raises(ValueError, match="unknown run 'k2'"):
        continuous.run_config("k2", 5, tmp_path)


def test_a_seeds_runs_share_its_warm_start(tmp_path):
    made = [make()[0] for _, make in continuous.plan(tmp_path)]
    for seed in continuous.SEEDS:
        warm = next(c for c in made if c.seed == seed and c.steps == 0).to_dict()
        runs = [c.to_dict() for c in made if c.seed == seed and c.steps > 0]
        assert len(runs) == len(continuous.RUNS)
        for run in runs:
            differ = {key for key in run if run[key] != warm[key]}
            assert differ <= RUN_FIELDS, differ
    assert len({c.out_dir for c in made}) == len(made)


# ------------------------------------------------------------------------------ running it


def _fake_worker(calls):
    def worker(job):
        calls.append(job["config"]["out_dir"])
        return {"maxg@1": 0.5, "maxg@8": 0.9}

    return worker


def test_a_finished_run_is_not_run_again(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(gauntlet, "_worker", _fake_worker(calls))
    jobs = continuous.plan(tmp_path)[:4]  # seed 5: the warm start, k1, k4, k8
    k1 = continuous.run_config("k1", 5, tmp_path)
    Path(k1.out_dir).mkdir(parents=True)
    Path(k1.out_dir, "final.json").write_text(json.dumps({"config": k1.to_dict()}))
    k4 = continuous.run_config("k4", 5, tmp_path)  # finished, but with other settings: rerun
    Path(k4.out_dir).mkdir(parents=True)
    changed = k4.replace(lr=1e-3).to_dict()
    Path(k4.out_dir, "final.json").write_text(json.dumps({"config": changed}))
    lines = []
    gauntlet.run_plan(tmp_path, jobs, None, lines.append)
    ran = [Path(p).relative_to(tmp_path).as_posix() for p in calls]
    assert ran == ["runs/warm_start/seed5", "runs/k4/seed5", "runs/k8/seed5"]
    assert lines[0].startswith("warm start seed 5:") and "maxg@1 0.500" in lines[0]
    assert json.loads((tmp_path / "plan.json").read_text()) == [d for d, _ in jobs]


def test_until_stops_before_the_next_run(tmp_path, monkeypatch):
    calls, lines = [], []
    monkeypatch.setattr(gauntlet, "_worker", _fake_worker(calls))
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    gauntlet.run_plan(tmp_path, continuous.plan(tmp_path), past, lines.append)
    assert calls == [] and lines[0].startswith("stopped before 'warm start seed 5'")


def test_until_is_checked(capsys):
    now = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)
    assert gauntlet.parse_until("14:30", now) == now.replace(hour=14, minute=30)
    for bad in ("25:00", "14", "1430", "ab:cd", "14:60"):
        with pytest.raises(ValueError, match="--until must be HH:MM"):
            gauntlet.parse_until(bad, now)
    with pytest.raises(SystemExit) as exit_info:
        continuous.main(["run", "--out", "unused", "--until", "25:00"])
    assert exit_info.value.code == 2 and "--until must be HH:MM" in capsys.readouterr().err


# ------------------------------------------------------------------------------- the ceiling


def test_spread_maxg_is_the_expected_best_of_k_draws(rng):
    """Against enumeration of every k-tuple of outputs."""
    credit = rng.uniform(size=(3, 4, 5)).round(1)  # ties too
    q = rng.dirichlet(np.ones(4), size=3)
    prior = rng.dirichlet(np.ones(5))
    for k in (1, 2, 3):
        value, _ = cr.spread_maxg(q, credit, prior, k)
        for p in range(3):
            brute = sum(
                np.prod(q[p, list(t)]) * (credit[p, list(t), :].max(axis=0) @ prior)
                for t in itertools.product(range(4), repeat=k)
            )
            assert value[p] == pytest.approx(brute, abs=1e-12)


def test_spread_maxg_gradient_matches_finite_differences(rng):
    credit = rng.uniform(size=(2, 6, 6))
    q = rng.dirichlet(np.ones(6), size=2)
    prior = rng.dirichlet(np.ones(6))
    _, grad = cr.spread_maxg(q, credit, prior, 4)
    eps = 1e-6
    for o in range(6):
        step = np.zeros_like(q)
        step[:, o] = eps
        up, _ = cr.spread_maxg(q + step, credit, prior, 4)
        down, _ = cr.spread_maxg(q - step, credit, prior, 4)
        assert grad[:, o] == pytest.approx((up - down) / (2 * eps), rel=1e-5)


@pytest.mark.parametrize("k", [1, 4, 8])
def test_with_binary_credit_the_ceiling_is_the_pass_at_k_optimum(k):
    """Credit 1 for the right rule only: the optimum of tools/diagnose.py (closed-form KKT)."""
    prior = np.array([0.6, 0.2, 0.05, 0.05, 0.05, 0.05])
    best = cr.best_spread(np.eye(6)[None], prior, k)
    closed = pass_at_k_of(prior, optimal_rule_distribution(prior, k), k)
    assert best[0] == pytest.approx(closed, abs=1e-4)


def test_the_best_string_for_maxg1_beats_every_other_string():
    """Brute force over every 3-digit answer; with a uniform prior no rule is a majority, so the
    position-wise best string need not be any rule's output."""
    prior = np.full(len(RULES), 1 / len(RULES))
    for digits in ("381", "907", "112"):
        outputs = [apply_rule(r, digits) for r in RULES]
        brute = max(
            sum(p * partial_credit(out, "".join(s)) for out, p in zip(outputs, prior))
            for s in itertools.product("0123456789", repeat=3)
        )
        assert cr.best_string_maxg1(digits, prior) == pytest.approx(brute, abs=1e-12)
        assert brute >= cr.best_spread(cr.credit_matrix(digits)[None], prior, 1)[0] - 1e-9


def test_credit_matrix_is_partial_credit_between_rule_outputs():
    c = cr.credit_matrix("38192")
    assert np.allclose(np.diag(c), 1.0)
    r, s = RULES.index("r"), RULES.index("s")
    assert c[r, s] == partial_credit(apply_rule("s", "38192"), apply_rule("r", "38192"))


# ------------------------------------------------------------------------------ paired maxg@k


def _fake_runs(root: Path, per: dict, samples: int = 16, problems: int = 40) -> list[dict]:
    """Run folders of a continuous task: per[label][i] = the rewards of one sample group, used for
    every problem at the i-th seed of (5, 6, 7)."""
    cfg = continuous.base_config().replace(n_train=300, n_heldout=problems, n_validation=40)
    for label, groups in per.items():
        for seed, rewards in zip((5, 6, 7), groups):
            run = root / "runs" / label / f"seed{seed}"
            run.mkdir(parents=True)
            table = np.tile(np.asarray(rewards, float), (problems, 1))
            detail = {
                "uid": [f"heldout-{i}" for i in range(problems)],
                "samples": samples,
                "successes": [int(c) for c in (table >= 1).sum(1)],
                "rewards": table.tolist(),
                "greedy_samples": 2,
                "greedy_rewards": np.tile(table[:, :1], (1, 2)).tolist(),
            }
            (run / "eval_detail.json").write_text(json.dumps(detail))
            final = {
                "method": label,
                "k_schedule": label,
                "baseline": "loo_minus_one",
                "seed": seed,
                "cpu_s": 60.0,
                "greedy_maxg@1": float(table[:, 0].mean()),
                "config": cfg.replace(seed=seed, out_dir=str(run)).to_dict(),
            }
            for k in (1, 2, 4, 8, 16):
                final[f"maxg@{k}"] = float(pkpo.maxg_at_k(table, k).mean())
            (run / "final.json").write_text(json.dumps(final))
    from pkpo.rl.sweeps.runs import finished_runs

    return finished_runs(root)


def _group(top: int, high: float, low: float, jitter: float = 0.0) -> list[float]:
    """16 rewards: ``top`` of them ``high``, the rest ``low`` (the first one moved by jitter)."""
    g = [high] * top + [low] * (16 - top)
    g[-1] += jitter
    return g


def test_paired_difference_is_maxg_when_rewards_are_recorded(tmp_path):
    finals = _fake_runs(
        tmp_path,
        {"a": [_group(4, 1.0, 0.5)] * 2, "b": [_group(0, 1.0, 0.5)] * 2},
        problems=3,
    )
    d = paired_difference(finals, "a", "b", 4)
    # maxg@4 of a: 1 - 0.5 C(12, 4) / C(16, 4) = 1 - 0.5 * 495 / 1820; b: 0.5
    assert d["diff"] == pytest.approx(0.5 - 0.5 * 495 / 1820)
    g = paired_difference(finals, "a", "b", 1, greedy=True)  # greedy rewards: the first sample
    assert g["a_mean"] == 1.0 and g["b_mean"] == 0.5


# ----------------------------------------------------------------------------------- the docs


def test_the_docs_blocks_follow_the_rules(tmp_path):
    """k1 sharp (0.8 everywhere) wins at maxg@1; k8 (6 of 16 right, the rest 0.2) wins at maxg@8;
    at maxg@4 k8 (90.8) beats k4 (3 of 16 right, the rest 0.7: 88.2), so the diagonal fails there;
    TZSM did not run. s^(loo-1) beats `none` at maxg@8, ties `loo`; `centered` and TailRL did not
    run."""
    jit = (0.0, 0.01, -0.01)
    per = {
        WARM: [_group(0, 1.0, 0.6, j) for j in jit],
        "k1": [_group(0, 1.0, 0.8, j) for j in jit],
        "k4": [_group(3, 1.0, 0.7, j) for j in jit],
        "k8": [_group(6, 1.0, 0.2, j) for j in jit],
        "k8_none": [_group(2, 1.0, 0.2, j) for j in jit],
        "k8_loo": [_group(6, 1.0, 0.2, -j) for j in jit],
    }
    finals = _fake_runs(tmp_path, per)
    results = cr._family_results(finals)
    assert [(r["a"], r["b"], r["k"]) for r in results] == [
        ("k1", "k4", 1),
        ("k4", "k1", 4),
        ("k4", "k8", 4),
        ("k8", "k4", 8),
    ]
    words = cr.diagonal_words(results)
    assert words[0].startswith("**The diagonal holds at k_eval = 1**")
    assert (
        words[1].startswith("The diagonal does not hold at k_eval = 4")
        and "k8 is ahead" in words[1]
    )
    assert words[2].startswith("**The diagonal holds at k_eval = 8**")
    assert words[3].startswith("At k_eval = 16 the diagonal is not evaluable")
    blocks = cr.blocks(tmp_path, "python tools/continuous.py run --out X")
    assert set(blocks) == {
        "continuous-runs",
        "continuous-table",
        "continuous-diagonal",
        "continuous-baselines",
        "continuous-other",
    }
    runs = blocks["continuous-runs"]
    assert "15 RL runs and 3 warm-start evaluations on seeds 5, 6, 7" in runs
    assert "tailrl seeds 5, 6, 7, 8, 9" in runs and "k1 seeds 8, 9" in runs
    table = blocks["continuous-table"]
    lines = table.splitlines()
    assert lines[4].startswith("| warm_start |") and lines[-1].startswith("| ceiling |")
    # k8's maxg@8: 1 - 0.8 C(10, 8) / C(16, 8), the same at every seed up to the jitter's 0.01/16
    k8 = next(line for line in lines if line.startswith("| k8 |"))
    assert f"{100 * (1 - 0.8 * 45 / 12870):.1f} ± 0.0" in k8
    base = blocks["continuous-baselines"]
    assert "Against `none` at maxg@8" in base and "s^(loo-1) beats it" in base
    assert "Against `loo` at maxg@8" in base and "no difference the interval separates" in base
    assert "Against `centered`: not evaluable (did not run)." in base
    assert "is not evaluable yet (`centered` missing)" in base and "**" not in base
    assert "k1 − warm_start (maxg@1)" in blocks["continuous-other"]


def test_empty_study_says_nothing_ran(tmp_path):
    blocks = cr.blocks(tmp_path)
    assert "No run of the continuous-reward study has finished yet." in blocks["continuous-table"]
    assert "Planned but not run: 50" in blocks["continuous-runs"]


def test_write_docs_replaces_only_the_continuous_blocks(tmp_path):
    names = list(cr.blocks(tmp_path)) + ["demo-table"]
    doc = "".join(f"<!-- generated:{n} -->\nold\n<!-- /generated:{n} -->\n" for n in names)
    (tmp_path / "results.md").write_text(doc)
    cr.write_docs(tmp_path / "none", tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert text.count("old") == 1 and "No run of the continuous-reward study" in text


# --------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_tiny_study_trains_resumes_and_reports(tmp_path, monkeypatch, tiny_mixed_config):
    """Seed 5's warm start, k1, k4 and k8 with a tiny policy and two steps; run again: nothing
    reruns; the docs blocks render from the run folders."""

    def tiny():
        return tiny_mixed_config(
            task="hidden-rule-partial", eval_every=1, eval_problems=4, final_eval_problems=8
        )

    monkeypatch.setattr(continuous, "base_config", tiny)
    jobs = continuous.plan(tmp_path)[:4]
    lines = []
    gauntlet.run_plan(tmp_path, jobs, None, lines.append)
    assert [line.split(":")[0] for line in lines] == [d for d, _ in jobs]
    detail = json.loads((tmp_path / "runs" / "k8" / "seed5" / "eval_detail.json").read_text())
    assert np.asarray(detail["rewards"]).shape == (8, 16)
    final = json.loads((tmp_path / "runs" / "k8" / "seed5" / "final.json").read_text())
    per_problem = pkpo.maxg_at_k(np.asarray(detail["rewards"]), 8)
    assert final["maxg@8"] == pytest.approx(float(np.mean(per_problem)))
    lines.clear()
    gauntlet.run_plan(tmp_path, jobs, None, lines.append)
    assert lines == []  # every job was finished
    blocks = cr.blocks(tmp_path)
    assert "3 RL runs and 1 warm-start evaluations on seeds 5" in blocks["continuous-runs"]
    assert "| k4 | PKPO, k 4, baseline loo_minus_one | 1 |" in blocks["continuous-table"]


def test_the_docs_command_shows_how_the_runs_were_trained(tmp_path):
    names = list(cr.blocks(tmp_path))
    doc = "".join(f"<!-- generated:{n} -->\nold\n<!-- /generated:{n} -->\n" for n in names)
    (tmp_path / "results.md").write_text(doc)
    out = str(tmp_path / "study")
    assert continuous.main(["docs", "--out", out, "--docs", str(tmp_path)]) == 0
    text = (tmp_path / "results.md").read_text()
    assert f"Nothing has run yet (`python tools/continuous.py run --out {out}`)." in text
    continuous.main(["docs", "--out", out, "--docs", str(tmp_path), "--command", "make results"])
    assert "Nothing has run yet (`make results`)." in (tmp_path / "results.md").read_text()
