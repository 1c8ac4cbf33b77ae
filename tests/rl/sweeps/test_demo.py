"""The demo's pieces: the mixed task and its splits, solve rates, paired comparisons, generated
findings, figures with the warm-start reference, progress, wall time, and the docs regeneration."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pkpo.rl.cli import summary_rows  # noqa: E402
from pkpo.rl.config import TrainConfig  # noqa: E402
from pkpo.rl.interfaces import Problem  # noqa: E402
from pkpo.rl.policies.gpt import GPT, GPTConfig  # noqa: E402
from pkpo.rl.sweeps.grid import _steps_logged, wall_time  # noqa: E402
from pkpo.rl.sweeps.plots import plot_runs  # noqa: E402
from pkpo.rl.sweeps.report import findings, paired_difference, t975, table_markdown  # noqa: E402
from pkpo.rl.sweeps.runs import WARM_LABEL as WARM  # noqa: E402
from pkpo.rl.sweeps.runs import aggregate, per_problem_pass_at_k  # noqa: E402
from pkpo.rl.tasks.hidden_rule import (  # noqa: E402
    AMBIGUOUS_PRIOR,
    MIXED_TABLE,
    HiddenRuleTask,
    apply_rule,
    hidden_rule,
    rule_law,
    stratified_quota,
)
from pkpo.rl.training.trainer import train  # noqa: E402
from pkpo.rl.training.warmstart import cache_key, warm_start  # noqa: E402

sys.path.insert(
    0, str(Path(__file__).resolve().parents[3] / "tools")
)  # tools/diagnose.py, tools/results.py
from diagnose import optimal_rule_distribution, pass_at_k_of  # noqa: E402

from pkpo._output import replace_blocks  # noqa: E402

torch.set_num_threads(1)


def mixed(**kw):
    return HiddenRuleTask(
        **{"feature": "mixed", "n_train": 3000, "n_heldout": 200, "n_validation": 100, **kw}
    )


# --- the mixed task ----------------------------------------------------------------------------


def test_mixed_splits_are_disjoint_deterministic_and_stratified():
    a, b = mixed(), mixed()
    digits = {
        s: [p.prompt.split(":")[0] for p in a.problems(s)]
        for s in ("train", "validation", "heldout")
    }
    assert digits["heldout"] == [p.prompt.split(":")[0] for p in b.problems("heldout")]
    assert [len(v) for v in digits.values()] == [3000, 100, 200]
    sets = {s: set(v) for s, v in digits.items()}
    assert all(len(sets[s]) == len(digits[s]) for s in sets)  # distinct strings within a split
    assert not sets["train"] & sets["heldout"] and not sets["train"] & sets["validation"]
    assert not sets["validation"] & sets["heldout"]
    law = rule_law("mixed")
    for split, size in (("heldout", 200), ("validation", 100)):
        cells = Counter((int(d[0]), hidden_rule(d, "mixed")) for d in digits[split])
        assert dict(cells) == {c: q for c, q in stratified_quota(law, size).items() if q}
    # every prefix follows the law closely: the first 50 held-out problems have their share of each
    # kind
    first50 = digits["heldout"][:50]
    for kind in set(MIXED_TABLE):
        expected = 50 * MIXED_TABLE.count(kind) / len(MIXED_TABLE)
        assert abs(sum(MIXED_TABLE[int(d[0])] == kind for d in first50) - expected) <= 2, kind
    assert digits["heldout"] != [p.prompt.split(":")[0] for p in mixed(seed=1).problems("heldout")]
    with pytest.raises(ValueError, match="split"):
        a.problems("test")


def test_mixed_law_rules_and_categories():
    law = rule_law("mixed")
    assert sum(law.values()) == pytest.approx(1.0)
    task = mixed()
    train = task.problems("train")
    for p in train[:300]:
        d = p.prompt.split(":")[0]
        assert p.prompt.endswith(":?>") and p.answer == apply_rule(task.rule_of(p), d)
        cat = task.category(p)
        assert cat == (
            "ambiguous"
            if MIXED_TABLE[int(d[0])] == "*"
            else "majority"
            if MIXED_TABLE[int(d[0])] == "r"
            else "minority"
        )
        assert task.is_hard(p) == (task.rule_of(p) != "r")
    # ambiguous problems: the rule is a hash of the string, distributed as AMBIGUOUS_PRIOR
    amb = [task.rule_of(p) for p in train if task.category(p) == "ambiguous"]
    freq = Counter(amb)
    for rule, p in AMBIGUOUS_PRIOR.items():
        assert abs(freq[rule] / len(amb) - p) < 0.06, (rule, freq)
    assert hidden_rule("812345", "mixed") == hidden_rule("812345", "mixed")


def test_classify_names_the_rule_a_completion_executed():
    task = mixed()
    p = Problem(uid="x", prompt="312954:?>", answer=apply_rule("s", "312954"))
    assert task.classify(p, "s123459") == "s"
    assert task.classify(p, "r123459") == "s"  # planned r, wrote the sorted string
    assert task.classify(p, "r459213") == "r"
    assert task.classify(p, "r000000") == "error"
    assert task.classify(p, "x123459") == "invalid"


def test_warm_start_cache_key_follows_the_demonstrator():
    policy = GPT(GPTConfig(d_model=32, n_layer=1, n_head=2))
    keys = {
        cache_key(policy, t, 10, 8, 1e-3, 0)
        for t in (
            HiddenRuleTask(feature="sum"),
            HiddenRuleTask(feature="mixed", n_train=64, n_heldout=32, n_validation=32),
            HiddenRuleTask(feature="sum", demo_power=3.0),
        )
    }
    assert len(keys) == 3


def test_warm_start_reports_progress_and_its_wall_time(tmp_path):
    task = HiddenRuleTask(feature="sum", n_train=16, n_heldout=8, n_validation=8)
    calls = []
    info = warm_start(
        GPT(GPTConfig(d_model=32, n_layer=1, n_head=2)),
        task,
        steps=3,
        batch=4,
        cache_dir=tmp_path,
        progress=False,
        on_step=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)] and info["wall_s"] > 0
    again = warm_start(
        GPT(GPTConfig(d_model=32, n_layer=1, n_head=2)),
        task,
        steps=3,
        batch=4,
        cache_dir=tmp_path,
        progress=False,
    )
    assert (
        again["cached"] and again["wall_s"] == info["wall_s"]
    )  # the cache keeps what the fit took


# --- trainer: problems seen, hard solve rate, evaluation split and details ----------------------


class HardDigitTask:
    """Reward 1 for a digit; problems with an even index are "hard" (for the bookkeeping only)."""

    name, binary = "digit", True

    def problems(self, split):
        return [
            Problem(uid=f"{split}{i}", prompt=f"{i}:", answer=None)
            for i in range(40 if split == "train" else 6)
        ]

    def score(self, problem, completion):
        return float(completion[:1].isdigit())

    def is_hard(self, problem):
        return int(problem.uid[-1]) % 2 == 0

    def category(self, problem):
        return "hard" if self.is_hard(problem) else "easy"


def test_solve_rates_count_the_problems_drawn_and_eval_details_are_saved(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(
        steps=3,
        prompts_per_step=4,
        n=4,
        k="2",
        max_new_tokens=1,
        eval_every=2,
        eval_problems=2,
        final_eval_problems=6,
        eval_split="validation",
        eval_samples=4,
        eval_ks=(1, 2),
        out_dir=str(tmp_path / "run"),
        tensorboard=False,
        checkpoint_every=0,
    )
    final = train(
        cfg,
        GPT(GPTConfig(d_model=32, n_layer=1, n_head=2, block_size=32)),
        HardDigitTask(),
        progress=False,
    )
    assert final["problems_seen"] == 12  # 3 steps x 4 prompts of 40: nothing drawn twice
    recs = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    steps = [r for r in recs if "k" in r and "step" in r]
    assert all(0 <= r["train/hard_solve_rate"] <= 1 for r in steps)
    evals = [r for r in recs if "eval/pass@1" in r]
    assert [r["eval/num_problems"] for r in evals] == [
        2,
        2,
        6,
    ]  # subset mid-training, all 6 at the end
    detail = json.loads((tmp_path / "run" / "eval_detail.json").read_text())
    assert detail["uid"] == [f"validation{i}" for i in range(6)] and detail["samples"] == 4
    assert final["pass@1"] == pytest.approx(np.mean(detail["successes"]) / 4)
    assert detail["category"] == ["hard", "easy"] * 3


# --- paired comparisons and generated words ------------------------------------------------------


def test_t975_and_per_problem_pass_at_k():
    assert (
        t975(1) == pytest.approx(12.706) and t975(4) == pytest.approx(2.776) and t975(100) == 1.96
    )
    np.testing.assert_allclose(per_problem_pass_at_k([0, 1, 4], 4, 2), [0.0, 0.5, 1.0])


def _fake_sweep(tmp_path, values: dict[str, list[list[int]]], samples=8, solve=None):
    """Run folders with eval_detail.json: values[label][seed] = successes per problem (out of
    ``samples``)."""
    finals = []
    for label, per_seed in values.items():
        for seed, succ in enumerate(per_seed):
            run = tmp_path / "runs" / label / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "eval_detail.json").write_text(
                json.dumps(
                    {
                        "uid": [f"p{i}" for i in range(len(succ))],
                        "samples": samples,
                        "successes": succ,
                    }
                )
            )
            f = {
                "label": label,
                "seed": seed,
                "method": label,
                "k_schedule": label,
                "baseline": "loo_minus_one",
                "run_dir": str(run),
                "config": {"out_dir": str(run), "n": samples},
            }
            for k in (1, 2, 4, 8):
                f[f"pass@{k}"] = float(per_problem_pass_at_k(succ, samples, k).mean())
            if solve and label in solve:
                f["hard_solve_rate"] = solve[label][seed]
            finals.append(f)
    return finals


def test_paired_difference_hand_checked(tmp_path):
    finals = _fake_sweep(tmp_path, {"a": [[8, 0], [4, 4]], "b": [[0, 0], [0, 4]]})
    d = paired_difference(finals, "a", "b", 1)
    # seed 0: (1 - 0 + 0 - 0) / 2 = 0.5; seed 1: (0.5 - 0 + 0.5 - 0.5) / 2 = 0.25
    assert d["per_seed"] == pytest.approx([0.5, 0.25]) and d["diff"] == pytest.approx(0.375)
    half = 12.706 * np.std([0.5, 0.25], ddof=1) / np.sqrt(2)
    assert d["lo"] == pytest.approx(0.375 - half) and d["hi"] == pytest.approx(0.375 + half)
    assert paired_difference(finals, "a", "missing", 1) is None


def test_findings_are_generated_from_the_numbers(tmp_path):
    n = 8
    good = {
        WARM: [[2] * 10, [2] * 10],
        "k1": [[3] * 10, [3] * 10],
        "k4": [[2] * 5 + [8] * 5, [2] * 5 + [8] * 5],
        "k8": [[1, 2] * 5, [1, 2] * 5],
        "anneal": [[3] * 10, [4] * 10],
    }
    solve = {"k1": [0.1, 0.1], "k4": [0.5, 0.5], "k8": [0.8, 0.9]}
    claims = {c["id"]: c for c in findings(_fake_sweep(tmp_path / "a", good, n, solve))}
    w8 = 100 * per_problem_pass_at_k([2], n, 8)[0]
    k8_8 = 100 * np.mean(per_problem_pass_at_k([1, 2], n, 8))
    assert f"from {w8:.1f} % (warm start) to {k8_8:.1f} %" in claims["a"]["text"]
    assert claims["a"]["holds"] == (k8_8 - w8 >= 10)
    assert claims["b"]["holds"] and "from 25.0 % (warm start) to 37.5 %" in claims["b"]["text"]
    assert claims["d"]["holds"] and "k1 10.0 % < k4 50.0 % < k8 85.0 %" in claims["d"]["text"]
    assert (
        "k4" in claims["c1"]["text"]
    )  # k4 has the best pass@1 here: said, with the exploration numbers
    assert claims["e"]["holds"] is False  # anneal's pass@8 is not 10 points above k1's
    # change the numbers: (b) and (d) no longer hold, and the sentences say so
    worse = {**good, "k1": [[1] * 10, [3] * 10]}
    claims = {
        c["id"]: c
        for c in findings(_fake_sweep(tmp_path / "b", worse, n, {**solve, "k8": [0.2, 0.2]}))
    }
    assert not claims["d"]["holds"] and "not increasing" in claims["d"]["text"]
    assert not claims["b"]["holds"] and "not a gain" in claims["b"]["text"]


def test_table_bolds_the_warm_start_when_it_is_best(tmp_path):
    finals = _fake_sweep(tmp_path, {WARM: [[6, 6]], "k1": [[2, 2]]})
    table = table_markdown(aggregate(finals))
    assert "**75.0" in table.splitlines()[4]  # the warm_start row, pass@1 = 6/8


def test_every_figure_draws_the_warm_start(tmp_path, monkeypatch):
    finals = _fake_sweep(tmp_path, {WARM: [[2, 3]], "k1": [[3, 3]]})
    for f in finals:
        f["entropy"] = 0.5
        if f["label"] == "k1":
            Path(f["run_dir"], "metrics.jsonl").write_text(
                "\n".join(
                    json.dumps(r)
                    for r in [
                        {"config": {}},
                        {"step": 0, "eval/pass@1": 0.3, "eval/pass@8": 0.5},
                        {
                            "step": 0,
                            "k": 1,
                            "train/cumulative_solve_rate": 0.5,
                            "train/hard_solve_rate": 0.2,
                            "policy/entropy": 0.4,
                        },
                    ]
                )
                + "\n"
            )
    labels = {}
    from matplotlib.figure import Figure

    savefig = Figure.savefig

    def capture(fig, path, **kwargs):  # what each saved figure draws
        labels[Path(path).name] = [
            line.get_label() for ax in fig.axes for line in ax.get_lines()
        ] + [
            t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
        ]
        return savefig(fig, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    figures = plot_runs(tmp_path, finals)
    assert sorted(Path(f).name for f in figures) == sorted(labels) and len(labels) == 4
    assert all(Path(f).stat().st_size > 1000 for f in figures)
    for name, found in labels.items():
        assert any("warm start" in x for x in found), name


# --- sweep plumbing -----------------------------------------------------------------------------


def test_steps_logged_reads_the_last_step_record(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert _steps_logged(path) == 0
    path.write_text(json.dumps({"config": {"k": "8"}}) + "\n")
    assert _steps_logged(path) == 0
    with open(path, "a") as fh:
        for step in range(5):
            fh.write(json.dumps({"step": step, "k": 8}) + "\n")
        fh.write(json.dumps({"step": 5, "eval/pass@1": 0.5}) + "\n")
    assert _steps_logged(path) == 5


def test_wall_time_is_kept_when_every_run_is_reused(tmp_path):
    assert wall_time(tmp_path, [{"cached": False}], 120.0) == (120.0, "")
    wall, note = wall_time(tmp_path, [{"cached": True}, {"cached": True}], 4.0)
    assert wall == 120.0 and "reused them in 4 s" in note


def test_summary_rows_have_the_same_keys_for_the_warm_start():
    rows = summary_rows(
        [
            {"label": WARM, "seed": 0, "k_schedule": "none", "method": WARM, "pass@1": 0.4},
            {
                "label": "k8",
                "seed": 0,
                "k_schedule": "k=8",
                "method": "pkpo",
                "pass@1": 0.3,
                "cumulative_solve_rate": 0.9,
            },
        ]
    )
    assert rows[0]["name"] == WARM and rows[0].keys() == rows[1].keys()


def test_replace_blocks_needs_every_marker_and_every_block():
    text = "a\n<!-- generated:x -->\nold\n<!-- /generated:x -->\nb\n"
    assert (
        replace_blocks(text, {"x": "new"}, "doc")
        == "a\n<!-- generated:x -->\nnew\n<!-- /generated:x -->\nb\n"
    )
    with pytest.raises(ValueError, match="no marker"):
        replace_blocks(text, {"x": "1", "y": "2"}, "doc")
    with pytest.raises(ValueError, match="no generated block"):
        replace_blocks(text, {}, "doc")


def test_optimal_rule_distribution_beats_a_grid_of_alternatives():
    prior = np.array([0.6, 0.3, 0.1])
    for k in (1, 2, 4, 8):
        q = optimal_rule_distribution(prior, k)
        assert q.sum() == pytest.approx(1.0) and (q >= 0).all()
        best = pass_at_k_of(prior, q, k)
        grid = [
            np.array([a, b, 1 - a - b])
            for a in np.linspace(0, 1, 41)
            for b in np.linspace(0, 1, 41)
            if a + b <= 1 + 1e-12
        ]
        assert best >= max(pass_at_k_of(prior, g, k) for g in grid) - 1e-9
    assert optimal_rule_distribution(prior, 1).tolist() == [1.0, 0.0, 0.0]


def test_results_refuses_an_unknown_part_in_one_line(capsys):
    import results

    with pytest.raises(SystemExit) as exc:
        results.main(["--out", "unused", "--parts", "sum,mazes"])
    assert exc.value.code == 2
    assert "unknown --parts ['mazes']" in capsys.readouterr().err
