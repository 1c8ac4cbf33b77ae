"""benchmarks/grad_variance.py: the estimator-gradient assembly, tr Cov from a Gram matrix, the
bootstrap summary and the decision rule, on tiny synthetic cases with known answers (no model)."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "grad_variance.py"
_spec = importlib.util.spec_from_file_location("grad_variance", SCRIPT)
gv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gv)


def test_sample_weights_scatter_and_centre():
    # group (0, 0, 2) with advantages (1, 2, 3): sample 0 gets 1 + 2, sample 2 gets 3; minus 6 x
    # (1/3 each)
    W = gv.sample_weights(np.array([[0, 0, 2]]), np.array([[1.0, 2.0, 3.0]]), np.full(3, 1 / 3))
    np.testing.assert_allclose(W, [[1.0, -2.0, 1.0]])


def test_weights_reproduce_the_gradient_sum(rng):
    G = rng.normal(size=(7, 5))
    idx = rng.integers(7, size=(4, 3))
    adv = rng.normal(size=(4, 3))
    probs = rng.dirichlet(np.ones(7))
    W = gv.sample_weights(idx, adv, probs)
    gbar = probs @ G
    direct = np.einsum("mj,mjd->md", adv, G[idx] - gbar)
    np.testing.assert_allclose(W @ G, direct, atol=1e-12)


def test_trace_covariance_from_gram_equals_direct(rng):
    G = rng.normal(size=(9, 30))
    W = rng.normal(size=(50, 9))
    X = W @ G
    assert gv.trace_covariance(W, G @ G.T) == pytest.approx(np.trace(np.cov(X.T)), rel=1e-10)


def test_unbiased_baselines_share_the_exact_expectation_in_the_pool_world(rng):
    # all 4^3 = 64 equally likely groups of n = 3 drawn with replacement from a pool of 4 samples
    rewards = np.array([1.0, 0.0, 0.0, 1.0])
    G = rng.normal(size=(4, 6))
    K = G @ G.T
    idx = np.array(list(itertools.product(range(4), repeat=3)))
    uniform = np.full(4, 0.25)
    means = {
        e.label: gv.sample_weights(idx, e.fn(rewards[idx]), uniform).mean(axis=0) @ G
        for e in gv.pkpo_estimators([2])
    }
    first = means["none k=2"]
    for label, mean in means.items():
        np.testing.assert_allclose(mean, first, atol=1e-12, err_msg=label)
    # without the centring of g on the pool mean, "none" and "loo" differ (sum_i A_i differs)
    raw = {
        e.label: gv.sample_weights(idx, e.fn(rewards[idx]), np.zeros(4)).mean(axis=0)
        for e in gv.pkpo_estimators([2], ["none", "loo"])
    }
    assert not np.allclose(raw["none k=2"] @ G, raw["loo k=2"] @ G)
    # the Gram matrix of the means gives their cosines: 1 between equal means
    M = np.array([means["none k=2"], means["centered k=2"], raw["none k=2"] @ G])
    C = M @ M.T
    assert gv.cosine_to_mean(C, 0, [1]) == pytest.approx(1.0)
    assert gv.cosine_to_mean(C, 2, [0, 1]) < 1.0
    del K


def test_measure_known_variance_of_a_single_draw():
    # pool g = (1, 0), (-1, 0), rewards (1, 0); groups of n = 1, A = g_i / n = r: X = g_1 w.p. 1/2,
    # else 0 (the pool mean is 0, so centring changes nothing): E X = (1/2, 0), tr Cov = 1/2 - 1/4 =
    # 1/4
    G = np.array([[1.0, 0.0], [-1.0, 0.0]])
    est = gv.pkpo_estimators([1], ["none"])
    out = gv.measure(G @ G.T, [np.array([1.0, 0.0])], est, n=1, groups=40000, replicates=1, seed=3)
    assert out["tr_cov"][0, 0] == pytest.approx(0.25, rel=0.02)
    assert out["mean_gram"][0, 0, 0] == pytest.approx(0.25, rel=0.02)  # ||E X||^2, bias-corrected


def test_mean_gram_is_corrected_for_monte_carlo_noise(rng):
    # with few groups the raw ||Xbar||^2 is inflated by tr Cov / m; the corrected one is not
    G = rng.normal(size=(64, 200))
    r = (rng.random(64) < 0.3).astype(float)
    est = gv.pkpo_estimators([2], ["loo_minus_one"])
    many = gv.measure(G @ G.T, [r], est, n=8, groups=20000, replicates=1, seed=0)["mean_gram"][
        0, 0, 0
    ]
    few = [
        gv.measure(G @ G.T, [r], est, n=8, groups=20, replicates=1, seed=s)["mean_gram"][0, 0, 0]
        for s in range(200)
    ]
    assert np.mean(few) == pytest.approx(many, rel=0.15)


def test_measure_scaled_estimator_ratio_and_cosine(rng):
    G = rng.normal(size=(2 * 32, 10))
    rewards = [(rng.random(32) < 0.3).astype(float), (rng.random(32) < 0.2).astype(float)]
    base = gv.pkpo_estimators([4], ["loo_minus_one"])[0]
    doubled = gv.Estimator("double", None, lambda r: 2.0 * base.fn(r))
    out = gv.measure(
        G @ G.T, rewards, [base, doubled], n=8, groups=200, replicates=5, seed=1, point_groups=300
    )
    assert out["groups"].tolist() == [300, 200, 200, 200, 200]
    np.testing.assert_allclose(out["tr_cov"][:, 1] / out["tr_cov"][:, 0], 4.0, rtol=1e-9)
    rows = gv.summarise(out, [base, doubled])
    assert rows[1]["cosine_to_pooled"]["4"]["value"] == pytest.approx(1.0, abs=1e-9)
    assert rows[0]["ratio_to_loo_minus_one"]["value"] == pytest.approx(1.0)
    assert rows[0]["ratio_to_loo_minus_one"]["interval"] == pytest.approx((1.0, 1.0))
    # the relative variance is scale-free
    assert rows[1]["relative_variance"]["value"] == pytest.approx(
        rows[0]["relative_variance"]["value"], rel=1e-6
    )


def test_bootstrap_replicates_differ_and_sum_over_prompts(rng):
    G = rng.normal(size=(40, 6))
    r = (rng.random(40) < 0.3).astype(float)
    est = gv.pkpo_estimators([2], ["none"])
    both = gv.measure(G @ G.T, [r[:20], r[20:]], est, n=4, groups=100, replicates=4, seed=0)[
        "tr_cov"
    ][:, 0]
    assert len(set(np.round(both, 12))) == 4  # each replicate resamples the pools
    K = G @ G.T
    one = gv.measure(K[:20, :20], [r[:20]], est, n=4, groups=100, replicates=1, seed=0)["tr_cov"][
        0, 0
    ]
    assert 0 < one < both[0]


def test_measure_rejects_a_gram_matrix_of_the_wrong_size():
    with pytest.raises(ValueError, match="Gram matrix"):
        gv.measure(np.eye(3), [np.zeros(4)], gv.pkpo_estimators([1], ["none"]))


def test_percentile_interval():
    assert gv.percentile_interval(np.arange(101)) == pytest.approx((2.5, 97.5))


def _row(label, k, lo, hi):
    return {
        "estimator": f"{label} k={k}",
        "k": k,
        "ratio_to_loo_minus_one": {"value": (lo + hi) / 2, "interval": (lo, hi)},
    }


def test_verdict_rule():
    rows = [_row(b, k, 1.2, 1.5) for k in (4, 8) for b in ("none", "loo", "centered")]
    rows += [_row("loo_minus_one", k, 1.0, 1.0) for k in (4, 8)]
    assert gv.verdict(rows) == {
        "paper_choice_holds": True,
        "centered_not_worse": False,
        "interval_above_1": {
            f"{b} k={k}": True for k in (4, 8) for b in ("none", "loo", "centered")
        },
    }
    rows[-3] = _row("centered", 8, 0.9, 1.1)  # centered at k = 8 overlaps 1
    out = gv.verdict(rows)
    assert out["paper_choice_holds"] is False and out["centered_not_worse"] is True


def test_gram_matrix_from_stored_pools(tmp_path, rng):
    G1, G2 = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    for i, G in enumerate((G1, G2)):
        np.savez(tmp_path / f"prompt-{i:02d}.npz", rewards=np.zeros(len(G)), grads=G)
    G = np.vstack([G1, G2]).astype(np.float64)
    K = gv.gram_matrix(sorted(tmp_path.glob("prompt-*.npz")))
    np.testing.assert_allclose(K, G @ G.T, rtol=1e-5)


def test_per_sample_gradients_of_a_linear_score():
    torch = pytest.importorskip("torch")
    w = torch.zeros(3, requires_grad=True)
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    rows = gv.per_sample_gradients(lambda i: (w * x[i]).sum() + 0.5 * (w**2).sum(), 2, [w])
    np.testing.assert_allclose(rows, x.numpy())


def test_select_prompts():
    assert gv.select_prompts([0.0, 0.1, 0.5, 0.3, 0.2], 0.05, 0.4, 2) == [1, 3]


def test_analyse_without_pools_is_a_one_line_error(tmp_path, capsys):
    assert gv.main(["analyse", "--cache", str(tmp_path)]) == 2
    assert "no prompt-*.npz" in capsys.readouterr().err


def test_group_moments_equal_the_dense_definition(rng):
    G = rng.normal(size=(12, 7))
    K = G @ G.T
    idx = rng.integers(12, size=(40, 5))
    advs = rng.normal(size=(3, 40, 5))  # three estimators on the same groups
    probs = rng.dirichlet(np.ones(12))
    C, mean_w = gv.Groups(idx, probs, K).moments(advs)
    W = [gv.sample_weights(idx, adv, probs) for adv in advs]
    D = [w - w.mean(axis=0) for w in W]
    for e in range(3):
        assert C[e, e] == pytest.approx(gv.trace_covariance(W[e], K), rel=1e-10)
        np.testing.assert_allclose(mean_w[e], W[e].mean(axis=0), atol=1e-12)
        for f in range(3):  # cross terms: (1 / (m - 1)) sum_m <X_e,m - Xbar_e, X_f,m - Xbar_f>
            assert C[e, f] == pytest.approx(
                np.sum((D[e] @ G) * (D[f] @ G)) / 39, rel=1e-9, abs=1e-9
            )


def test_analyse_a_subset_of_pools_end_to_end(tmp_path, rng):
    for i, rate in enumerate((0.3, 0.1, 0.5)):
        np.savez(
            tmp_path / f"prompt-{i:02d}.npz",
            rewards=(rng.random(24) < rate).astype(float),
            grads=rng.normal(size=(24, 6)).astype(np.float32),
        )
        (tmp_path / f"prompt-{i:02d}.json").write_text(f'{{"key": "p{i}", "pass@1": {rate}}}')
    argv = [
        "analyse",
        "--cache",
        str(tmp_path),
        "--ks",
        "2,4",
        "--family",
        "",
        "--n",
        "6",
        "--groups",
        "50",
        "--point-groups",
        "80",
        "--replicates",
        "3",
    ]
    assert gv.main(argv + ["--pools", "0,2"]) == 0
    out = json.loads((tmp_path / "results-pools-0-2.json").read_text())
    assert [p["key"] for p in out["prompts"]] == ["p0", "p2"]
    assert {r["estimator"] for r in out["rows"]} == {
        f"{b} k={k}" for b in gv.PKPO_BASELINES for k in (2, 4)
    }
    assert gv.main(argv + ["--pools", "3"]) == 2


def test_draw_groups_without_replacement_has_distinct_members(rng):
    idx = gv.draw_groups(rng, 20, 500, 6, replace=False)
    assert idx.shape == (500, 6) and idx.min() >= 0 and idx.max() < 20
    assert all(len(set(row)) == 6 for row in idx.tolist())
    assert np.bincount(idx.ravel(), minlength=20).min() > 0
    with_repl = gv.draw_groups(rng, 20, 500, 6)
    assert any(len(set(row)) < 6 for row in with_repl.tolist())
    with pytest.raises(ValueError, match="larger than n"):
        gv.draw_groups(rng, 6, 5, 6, replace=False)


def test_report_combines_analyses(tmp_path, rng):
    for i, rate in enumerate((0.3, 0.2)):
        np.savez(
            tmp_path / f"prompt-{i:02d}.npz",
            rewards=(rng.random(24) < rate).astype(float),
            grads=rng.normal(size=(24, 6)).astype(np.float32),
        )
        (tmp_path / f"prompt-{i:02d}.json").write_text(f'{{"key": "p{i}", "pass@1": {rate}}}')
    argv = [
        "analyse",
        "--cache",
        str(tmp_path),
        "--family",
        "grpo,maxrl,tzsm",
        "--n",
        "9",
        "--groups",
        "40",
        "--point-groups",
        "60",
        "--replicates",
        "2",
    ]
    assert gv.main(argv) == 0
    path = tmp_path / "results.json"
    tables = gv.comparison_tables(
        {"a": json.loads(path.read_text()), "b": json.loads(path.read_text())}
    )
    assert "| pool pass@1 (%) | 30.0, 20.0 | 30.0, 20.0 |" in tables
    assert tables.count("| centered, k = 8 |") == 1 and "| grpo |" in tables
    assert gv.main(["report", f"x={tmp_path / 'missing.json'}"]) == 2
    doc = tmp_path / "doc.md"
    start, end = "<!-- generated:grad-variance -->\n", "\n<!-- /generated:grad-variance -->"
    doc.write_text(f"a\n{start}old{end}\nb\n")
    assert gv.main(["report", f"a={path}", f"b={path}", "--docs", str(doc)]) == 0
    assert doc.read_text() == f"a\n{start}{tables}{end}\nb\n"
    assert gv.main(["report", f"a={path}", "--docs", str(tmp_path / "none.md")]) == 2
