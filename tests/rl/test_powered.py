"""tools/powered.py and tools/powered_report.py: the paired delta and its minimum detectable effect,
the difficulty rule, the plan's order, the stop rule, resumption and the docs block (made-up run
folders; one end-to-end run with a tiny local Llama)."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))  # tools/powered*.py
import powered  # noqa: E402
import powered_report as pr  # noqa: E402

from pkpo.metrics import standard_error  # noqa: E402
from pkpo.rl.sweeps.runs import per_problem_pass_at_k  # noqa: E402

PROBLEMS = 20
SCREEN = {
    "1": {"pass@1": 0.2, "pass@1_se": 0.05, "problems": 16, "samples": 16, "no_correct": 3,
          "successes": [3] * 16, "wall_s": 60.0},
    "2": {"pass@1": 0.03, "pass@1_se": 0.01, "problems": 16, "samples": 16, "no_correct": 9,
          "successes": [0] * 16, "wall_s": 70.0},
}  # fmt: skip


# ------------------------------------------------------------------------------ paired delta


def test_one_seed_is_the_t_interval_over_problems(rng):
    a, b = rng.random((1, 30)), rng.random((1, 30))
    d = pr.paired_delta(a, b)
    diff = a[0] - b[0]
    se = np.std(diff, ddof=1) / np.sqrt(30)
    assert d["diff"] == pytest.approx(diff.mean()) and d["se"] == pytest.approx(se)
    assert d["df"] == 29 and d["seeds"] == 1 and d["problems"] == 30
    assert d["hi"] - d["diff"] == pytest.approx(2.045 * se, rel=1e-3)  # t(0.975, 29)
    assert d["mde"] == pytest.approx((2.045 + 0.854) * se, rel=1e-3)  # t(0.80, 29) = 0.854


def test_mde_is_2_8_se_for_many_problems(rng):
    d = pr.paired_delta(rng.random((1, 5000)), rng.random((1, 5000)))
    assert d["mde"] / d["se"] == pytest.approx(2.80, abs=0.01)


def test_two_way_variance_without_residual_is_seed_plus_problem_variance():
    # d = 0.1 + seed effect + problem effect exactly: MS_res = 0, so
    # Var = var(seed effects) / S + var(problem effects) / P (sample variances)
    seed_eff, prob_eff = np.array([-0.1, 0.0, 0.1]), np.array([0.2, -0.2, 0.0, 0.1, -0.1])
    d = 0.1 + seed_eff[:, None] + prob_eff[None, :]
    r = pr.paired_delta(d, np.zeros_like(d))
    want = np.var(seed_eff, ddof=1) / 3 + np.var(prob_eff, ddof=1) / 5
    assert r["diff"] == pytest.approx(0.1) and r["se"] ** 2 == pytest.approx(want)
    assert not r["floored"]


def test_two_way_variance_is_unbiased_and_the_interval_covers():
    # seeds and problems random: Var(mean) = sa^2 / S + sb^2 / P + se^2 / (S P)
    rng = np.random.default_rng(3)
    S, P, sa, sb, se, reps = 3, 40, 0.05, 0.2, 0.3, 600
    true_var = sa**2 / S + sb**2 / P + se**2 / (S * P)
    est, covered = [], 0
    for _ in range(reps):
        d = (
            0.02
            + sa * rng.standard_normal((S, 1))
            + sb * rng.standard_normal((1, P))
            + se * rng.standard_normal((S, P))
        )
        r = pr.paired_delta(d, np.zeros_like(d))
        est.append(r["se"] ** 2)
        covered += r["lo"] <= 0.02 <= r["hi"]
    assert np.mean(est) == pytest.approx(true_var, rel=0.05)
    assert 0.92 <= covered / reps <= 0.98


def test_a_chance_negative_variance_is_floored_and_said():
    # problem and seed means identical: MS_seed = MS_prob = 0, only the interaction varies
    d = np.array([[1.0, -1.0], [-1.0, 1.0]])
    r = pr.paired_delta(d, np.zeros_like(d))
    assert r["floored"] and r["se"] == pytest.approx(math.sqrt(4.0 / 4))  # MS_res / (S P)


def test_paired_delta_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same"):
        pr.paired_delta(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="problems >= 2"):
        pr.paired_delta(np.zeros((2, 1)), np.zeros((2, 1)))


def test_identical_runs_give_a_zero_interval():
    d = pr.paired_delta(np.ones((2, 4)), np.ones((2, 4)))
    assert d["diff"] == 0 and d["lo"] == d["hi"] == 0 and d["mde"] == 0


# ------------------------------------------------------------------------------ difficulty


@pytest.mark.parametrize(
    "rates, chosen",
    [
        ({"1": 0.2}, None),  # above the target and not everything screened: unfinished
        ({"1": 0.2, "2": 0.03}, 2),  # |log 4| > |log 0.6|
        ({"1": 0.08, "2": 0.01}, 1),  # |log 1.6| < |log 0.2|
        ({"1": 0.1, "2": 0.025}, 1),  # the same ratio: the easier one
        ({"1": 0.2, "2": 0.0}, 1),  # no correct sample is infinitely far
        ({"1": 0.5, "2": 0.3, "3": 0.2, "4": 0.1}, 4),  # all screened, none at the target
        ({}, None),
    ],
)
def test_chosen_difficulty(rates, chosen):
    assert powered.chosen_difficulty({d: {"pass@1": p} for d, p in rates.items()}) == chosen


def test_the_plan_is_the_priority_order():
    assert [j.describe() for j in powered.plan()] == [
        "screen difficulties",
        "base seed 0",
        "k1 seed 0",
        "k8 seed 0",
        "k1 seed 1",
        "k8 seed 1",
        "k1 seed 2",
        "k8 seed 2",
    ]
    assert [powered.gated(j) for j in powered.plan()] == [False] * 3 + [True] * 5


def _write_run(study, job, successes, samples=16):
    """A finished run folder for ``job``: final.json with its real config, eval_detail.json and a
    metrics.jsonl of 20 steps."""
    cfg = powered.run_config(study, job)
    folder = Path(cfg.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    detail = {"uid": [f"heldout-{i}" for i in range(len(successes))], "samples": samples,
              "successes": list(successes), "greedy_samples": 2,
              "greedy_successes": [min(2, c) for c in successes]}  # fmt: skip
    (folder / "eval_detail.json").write_text(json.dumps(detail))
    final = {"seed": job.seed, "method": "pkpo", "k_schedule": cfg.k, "baseline": cfg.baseline,
             "steps": cfg.steps, "config": cfg.to_dict(), "entropy": 3.0,
             "greedy_pass@1": float(np.mean(detail["greedy_successes"]) / 2),
             "greedy_pass@1_se": 0.01}  # fmt: skip
    for k in cfg.eval_ks:
        values = per_problem_pass_at_k(successes, samples, k)
        final[f"pass@{k}"], final[f"pass@{k}_se"] = float(values.mean()), standard_error(values)
    (folder / "final.json").write_text(json.dumps(final))
    steps = [{"step": s, "policy/entropy": 5.0 - (s >= 10), "perf/step_s": 30.0} for s in range(20)]
    (folder / "metrics.jsonl").write_text(
        "\n".join(json.dumps(r) for r in [{"config": cfg.to_dict()}] + steps) + "\n"
    )


def fake_executor(successes: dict, calls: list, interrupt_at: str | None = None):
    """Runs jobs by writing made-up results: successes[label] = per-problem successes of 16."""

    def do(study, job, log):
        calls.append(job.describe())
        if job.describe() == interrupt_at:
            raise KeyboardInterrupt
        if job.label == "screen":
            (study.out / "screen.json").write_text(json.dumps(SCREEN))
        else:
            _write_run(study, job, successes[job.label])

    return do


BASE_WIDE = [2] * 12 + [0] * 8  # 12 of 20 problems solved at least once in 16
SHARPENED = [16] * 6 + [0] * 14  # k1 after sharpening: 6 problems, always right
KEPT = [8] * 16 + [0] * 4  # k8: 16 problems, half the time


def test_the_stop_rule_stops_when_k1_does_not_lose_pass_at_16(tmp_path):
    calls = []
    study = powered.Study(tmp_path)
    do = fake_executor({"base": BASE_WIDE, "k1": BASE_WIDE, "k8": KEPT}, calls)
    assert powered.run(study, None, lambda m: None, do) == "stop rule"
    assert calls == ["screen difficulties", "base seed 0", "k1 seed 0"]
    rule = pr.stop_rule(tmp_path)
    assert rule["decided"] and rule["stop"] and "no sharpening" in rule["why"]
    assert rule["delta"]["diff"] == 0
    # a second call runs nothing and stops at the rule again
    assert powered.run(study, None, lambda m: None, do) == "stop rule" and len(calls) == 3


def test_the_stop_rule_goes_on_when_k1_loses_pass_at_16(tmp_path):
    calls = []
    study = powered.Study(tmp_path)
    do = fake_executor({"base": BASE_WIDE, "k1": SHARPENED, "k8": KEPT}, calls)
    assert powered.run(study, None, lambda m: None, do) == "done"
    assert calls == [j.describe() for j in powered.plan()]
    rule = pr.stop_rule(tmp_path)
    assert rule["decided"] and not rule["stop"] and rule["delta"]["hi"] < 0
    assert rule["delta"]["diff"] == pytest.approx((6 - 12) / PROBLEMS)


def test_the_stop_rule_is_undecided_without_k1(tmp_path):
    rule = pr.stop_rule(tmp_path)
    assert not rule["decided"] and rule["stop"]


def test_an_interrupted_study_continues_where_it_stopped(tmp_path):
    study, calls = powered.Study(tmp_path), []
    values = {"base": BASE_WIDE, "k1": SHARPENED, "k8": KEPT}
    with pytest.raises(KeyboardInterrupt):
        powered.run(study, None, lambda m: None, fake_executor(values, calls, "k1 seed 1"))
    calls.clear()
    assert powered.run(study, None, lambda m: None, fake_executor(values, calls)) == "done"
    assert calls == ["k1 seed 1", "k8 seed 1", "k1 seed 2", "k8 seed 2"]


def test_the_time_box_starts_no_job_after_it(tmp_path):
    study, calls, logged = powered.Study(tmp_path), [], []
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    do = fake_executor({"base": BASE_WIDE}, calls)
    assert powered.run(study, past, logged.append, do) == "time"
    assert calls == [] and "stopped before 'screen difficulties'" in logged[-1]


def test_a_named_job_runs_alone_and_skips_the_stop_rule(tmp_path):
    study, calls, logged = powered.Study(tmp_path), [], []
    values = {"base": BASE_WIDE, "k1": BASE_WIDE, "k8": KEPT}
    with pytest.raises(ValueError, match="screen and the base"):
        powered.run(study, None, logged.append, fake_executor(values, calls), powered.Job("k8", 0))
    assert powered.run(study, None, logged.append, fake_executor(values, calls)) == "stop rule"
    calls.clear()
    only = powered.parse_job("k8:0")
    assert powered.run(study, None, logged.append, fake_executor(values, calls), only) == "done"
    assert calls == ["k8 seed 0"] and "not applied" in logged[-3]
    # a finished job is not run again
    assert powered.run(study, None, logged.append, fake_executor(values, calls), only) == "done"
    assert calls == ["k8 seed 0"]


def test_an_exploratory_job_changes_only_its_settings(tmp_path):
    study = powered.Study(tmp_path)
    (tmp_path / "screen.json").write_text(json.dumps(SCREEN))
    job = powered.parse_job("k8-half-lr:0")
    cfg, k8 = powered.run_config(study, job), powered.run_config(study, powered.Job("k8", 0))
    assert cfg.lr == 2.5e-5 and cfg.k == "8" and cfg.out_dir.endswith("k8-half-lr/seed0")
    assert cfg.replace(lr=k8.lr, out_dir=k8.out_dir) == k8
    assert job not in powered.plan()


def test_the_block_shows_an_exploratory_run(tmp_path):
    study = powered.Study(tmp_path)
    values = {"base": BASE_WIDE, "k1": BASE_WIDE, "k8": KEPT, "k8-half-lr": SHARPENED}
    for job in (None, "k8:0", "k8-half-lr:0"):
        only = powered.parse_job(job) if job else None
        powered.run(study, None, lambda m: None, fake_executor(values, []), only)
    text = pr.block(tmp_path)
    assert "| k8-half-lr | 0 |" in text
    line = "Exploratory (outside the plan: k = 8, lr 2.5e-05), k8-half-lr − k1 at pass@16: -30.0"
    assert line in text and "k8-half-lr − base at pass@16: -30.0" in text
    assert "Secondary, k8 − base at pass@16: +20.0" in text
    assert "lies below 0, so the step size does not account for k8's loss" in text


def test_the_step_size_rule_holds_when_half_the_lr_does_not_lose(tmp_path):
    study = powered.Study(tmp_path)
    values = {"base": BASE_WIDE, "k1": SHARPENED, "k8": [0] * 20, "k8-half-lr": SHARPENED}
    assert pr.step_size_rule(pr.study_runs(tmp_path)) == []
    for job in (None, "k8:0", "k8-half-lr:0"):
        only = powered.parse_job(job) if job else None
        powered.run(study, None, lambda m: None, fake_executor(values, []), only)
    (rule,) = pr.step_size_rule(pr.study_runs(tmp_path))
    assert "does not lie below 0, so by the rule the step size accounts" in rule
    assert "cannot tell the two apart" not in rule  # k8's loss (-30 points) is outside [0, 0]


@pytest.mark.parametrize("text", ["k8", "k8:x", "k4:0", "k8:3", "base:0", "screen:0", ""])
def test_a_bad_job_name_is_refused(text):
    with pytest.raises(ValueError, match="--job must be one of k1:0, k8:0"):
        powered.parse_job(text)


def test_the_cli_refuses_a_bad_job_in_one_line(tmp_path, capsys):
    assert powered.main(["run", "--out", str(tmp_path), "--job", "k2:0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_changed_setting_makes_a_run_unfinished(tmp_path):
    study, calls = powered.Study(tmp_path), []
    powered.run(
        study, None, lambda m: None, fake_executor({"base": BASE_WIDE, "k1": BASE_WIDE}, calls)
    )
    changed = study._replace(settings={**powered.STUDY, "lr": 1e-4})
    assert powered.finished(changed, powered.Job("k1", 0)) is False
    assert powered.finished(study, powered.Job("k1", 0)) is True
    # a training setting leaves the base's evaluation finished; an evaluation setting does not
    assert powered.finished(changed, powered.Job("base", 0)) is True
    fewer = study._replace(settings={**powered.STUDY, "eval_samples": 32})
    assert powered.finished(fewer, powered.Job("base", 0)) is False


def test_another_model_in_the_same_folder_is_refused(tmp_path):
    powered.check_study(powered.Study(tmp_path))
    with pytest.raises(ValueError, match="another --out folder"):
        powered.check_study(powered.Study(tmp_path, model="other.gguf"))


# ------------------------------------------------------------------------------ the docs block


DOC = (
    "# Results\n\n## A powered run\n\nrules\n\n"
    "<!-- generated:powered -->\nold\n<!-- /generated:powered -->\n"
)


def test_the_block_after_a_stop(tmp_path):
    study = powered.Study(tmp_path)
    powered.run(
        study, None, lambda m: None, fake_executor({"base": BASE_WIDE, "k1": BASE_WIDE}, [])
    )
    text = pr.block(tmp_path)
    assert "| 2 (chosen) | 16 x 16 | 3.0 ± 1.0 | 9 of 16 | 70 s |" in text
    rows = [
        line for line in text.splitlines() if line.startswith("| base") or line.startswith("| k")
    ]
    assert rows[0].startswith("| base (before training) | - |") and rows[1].startswith("| k1 | 0 |")
    assert (
        "**Stop rule**: **stop after seed 0**: k1 did not lose" in text and "no sharpening" in text
    )
    assert "not measured, no k8 run finished" in text
    assert (
        "**Not run, by the stop rule**: k8 seed 0, k1 seed 1, k8 seed 1, k1 seed 2, k8 seed 2."
        in text
    )
    assert "5.0 → 4.0" in text  # the training -log p of the first and last steps
    doc = tmp_path / "results.md"
    doc.write_text(DOC)
    pr.write_docs(tmp_path, doc)
    new = doc.read_text()
    assert "old" not in new and "rules" in new and "**Stop rule**" in new


def test_the_block_after_a_stop_with_a_job_run_beside_it(tmp_path):
    study, values = powered.Study(tmp_path), {"base": BASE_WIDE, "k1": BASE_WIDE, "k8": KEPT}
    powered.run(study, None, lambda m: None, fake_executor(values, []))
    assert "Run although" not in pr.block(tmp_path)
    powered.run(study, None, lambda m: None, fake_executor(values, []), powered.parse_job("k8:0"))
    text = pr.block(tmp_path)
    assert "**Stop rule**: **stop after seed 0**" in text
    assert "**Primary measure**, k8 − k1 at held-out pass@16" in text
    assert "**Not run, by the stop rule**: k1 seed 1, k8 seed 1, k1 seed 2, k8 seed 2." in text
    assert "does not gate): k8 seed 0. Their comparisons above are exploratory" in text


def test_the_block_after_the_whole_study(tmp_path):
    study = powered.Study(tmp_path)
    values = {"base": BASE_WIDE, "k1": SHARPENED, "k8": KEPT}
    powered.run(study, None, lambda m: None, fake_executor(values, []))
    text = pr.block(tmp_path)
    assert "**Stop rule**: **go on**" in text and "Every planned run finished." in text
    primary = pr.compare(pr.study_runs(tmp_path), "k8", "k1")
    # identical seeds: every seed gives +10 of 20 problems, no variance
    assert primary["diff"] == pytest.approx((16 - 6) / PROBLEMS) and primary["seeds"] == 3
    assert "**Primary measure**" in text and "+50.0 points" in text
    assert "The interval excludes 0." in text


def test_the_block_states_a_null_with_its_mde(tmp_path):
    study = powered.Study(tmp_path)
    values = {"base": BASE_WIDE, "k1": SHARPENED, "k8": [16] * 5 + [0] * 14 + [16]}
    powered.run(study, None, lambda m: None, fake_executor(values, []))
    text = pr.block(tmp_path)
    d = pr.compare(pr.study_runs(tmp_path), "k8", "k1")
    assert d["lo"] < 0 < d["hi"]
    assert "A null" in text and f"is {100 * d['mde']:.1f} points" in text


def test_the_block_before_anything_ran(tmp_path):
    assert "Nothing has run yet" in pr.block(tmp_path)


def test_the_block_lists_what_did_not_run_in_the_time_box(tmp_path):
    study = powered.Study(tmp_path)
    do = fake_executor({"base": BASE_WIDE, "k1": SHARPENED}, [], interrupt_at="k8 seed 0")
    with pytest.raises(KeyboardInterrupt):
        powered.run(study, None, lambda m: None, do)
    text = pr.block(tmp_path)
    assert "**Stop rule**: **go on**" in text
    assert "**Not run yet** (time box or not started): k8 seed 0, k1 seed 1" in text


# ------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    sys.path.insert(0, str(ROOT / "tests" / "rl" / "policies"))
    from test_hf_policy import tiny_model, tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model(seed=5).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


def test_end_to_end_with_a_tiny_model_and_a_resumed_run(tmp_path, tiny_llama):
    tiny = {**powered.STUDY, "steps": 2, "prompts_per_step": 2, "n": 16, "max_new_tokens": 3,
            "eval_problems": 3, "n_train": 24, "n_heldout": 3, "checkpoint_every": 1}  # fmt: skip
    study = powered.Study(tmp_path, tiny_llama, tiny, screen_problems=2, screen_samples=2)
    ended = powered.run(study, None, lambda m: None)
    screen = powered.read_screen(tmp_path)
    assert powered.chosen_difficulty(screen) is not None
    assert all(r["problems"] == 2 and r["samples"] == 2 for r in screen.values())
    k1 = tmp_path / "runs" / "k1" / "seed0"
    first = [json.loads(line) for line in (k1 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in first if "policy/entropy" in r] == [0, 1]
    assert (
        json.loads((tmp_path / "runs" / "base" / "seed0" / "final.json").read_text())["steps"] == 0
    )
    detail = json.loads((k1 / "eval_detail.json").read_text())
    assert detail["samples"] == 16 and len(detail["uid"]) == 3 and "greedy_successes" in detail
    # one more step: the finished 2-step run is continued from its checkpoint, not restarted
    longer = study._replace(settings={**tiny, "steps": 3})
    assert powered.finished(longer, powered.Job("base", 0))
    powered.train_run(longer, powered.Job("k1", 0))
    after = [json.loads(line) for line in (k1 / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in after if "policy/entropy" in r]
    assert [r["step"] for r in steps] == [0, 1, 2]
    assert steps[:2] == [r for r in first if "policy/entropy" in r]
    # the smoke timing trains in OUT/smoke and leaves the study's runs alone
    before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    seconds = powered.smoke(study, 2, lambda m: None)
    assert len(seconds) == 2 and all(t > 0 for t in seconds)
    assert (tmp_path / "smoke" / "final.json").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == before
    with pytest.raises(ValueError, match="--steps must be >= 1"):
        powered.smoke(study, 0, lambda m: None)
    rule = pr.stop_rule(tmp_path)
    assert rule["decided"] and ended == ("stop rule" if rule["stop"] else "done")
    assert (tmp_path / "runs" / "k8" / "seed0").exists() is not rule["stop"]
