"""pkpo bench and benchmarks/transform.py: the per-group reference loop computes the same numbers,
and the report renders.

No wall-clock assertions: the benchmark's timings are printed, never tested.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import pkpo
from pkpo.commands import bench

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import reference_loop  # noqa: E402  (benchmarks/ is on sys.path)


def transform_benchmark():
    """benchmarks/transform.py as a module (its LOOPS are the references it adds to pkpo bench)."""
    spec = importlib.util.spec_from_file_location(
        "transform_benchmark", BENCHMARKS / "transform.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("weights", [reference_loop.comb_weights, reference_loop.ratio_weights])
@pytest.mark.parametrize("n", [2, 3, 5, 8, 16, 40])
def test_loop_reference_is_the_transform(weights, n, rng):
    g = np.concatenate([rng.normal(size=(3, n)), rng.integers(0, 3, size=(2, n)) * 0.5])
    for k in sorted({1, 2, max(1, n // 4), max(1, n // 2), n - 1, n} - {0}):
        expected = pkpo.transform(g, k)
        got = np.array([reference_loop.loop_group(row, k, weights) for row in g.tolist()])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)


def test_weights_agree():
    for n, k in [(16, 4), (64, 16), (256, 64), (40, 40)]:
        for a, b in zip(reference_loop.comb_weights(n, k), reference_loop.ratio_weights(n, k)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def fake_results():
    shape = {"groups": 4096, "n": 64, "k": 16, "numpy_s": 0.01, "torch_cpu_s": 0.02}
    shape.update({"loop_s": 1.5, "loop_groups_timed": 100, "loop_max_abs_diff": 1e-16})
    shape.update(
        {"loop_ratio_s": 0.5, "loop_ratio_groups_timed": 4096, "loop_ratio_max_abs_diff": 0.0}
    )
    growth = [
        {
            "groups": 4096,
            "n": 64,
            "k": 32,
            "first_call_s": 0.02,
            "numpy_s": 0.01,
            "torch_cpu_s": 0.02,
        },
        {
            "groups": 4,
            "n": 65536,
            "k": 32768,
            "first_call_s": 0.09,
            "numpy_s": 0.02,
            "torch_cpu_s": 0.07,
        },
    ]
    verl = {
        "groups": 512,
        "n": 16,
        "k": 16,
        "tokens": 32,
        "verl_s": 0.05,
        "pkpo_estimator_s": 0.005,
    }
    verl.update(
        {"pkpo_transform_s": 0.0005, "max_abs_diff_estimator": 0.0, "max_abs_diff_transform": 0.0}
    )
    return {"shapes": [shape], "growth": growth, "verl": verl}


def test_report_and_targets():
    """The tables render, and the project's targets are checked by benchmarks/transform.py."""
    results = fake_results()
    table = bench.shapes_table(results["shapes"], "cpu", transform_benchmark().LOOPS)
    assert (
        "| 4096 x 64 | 16 (n/4) | 10.00 ms | 20.00 ms | 1.50 s (100 groups timed) | 500.00 ms | "
        "150x | 50x |" in table
    )
    assert (
        "| 4096 x 64 | 16 (n/4) | 10.00 ms | 20.00 ms |\n"
        in bench.shapes_table(results["shapes"], "cpu") + "\n"
    )
    assert (
        "| 4096 x 64 | 16 (n/4) | 10.00 ms | 20.00 ms |\n"
        in bench.shapes_table(results["shapes"], "cpu") + "\n"
    )
    assert (
        "| 4 x 65536 | 32768 | 20.00 ms | 70.00 ms | 90.00 ms | 2.00 | 3.50 |"
        in bench.growth_table(results["growth"], "cpu")
    )
    assert (
        "| `pkpo.transform` on the dense (groups, n) scores | 500 us | 100x |"
        in bench.verl_table(results["verl"])
    )
    lines = "\n".join(transform_benchmark().targets(results))
    assert "512 x 16, k = n: 100x (pkpo.transform, torch) -> met" in lines
    assert "4096 x 64, k = 16: 150x (math.comb loop / pkpo) -> met" in lines
    assert "numpy: time at n = 65,536 (k = n/2) within 3x of n = 64: 2.00x -> met" in lines
    assert "torch: time at n = 65,536 (k = n/2) within 3x of n = 64: 3.50x -> NOT met" in lines
    json.dumps(results)  # the --json payload is plain JSON


def test_cuda_request_without_cuda_is_an_error(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert bench.main(["--device", "cuda"]) == 2
    assert "needs torch with a CUDA device" in capsys.readouterr().err


def test_verl_comparison_computes_the_same_advantages():
    """The verl table's "same advantages" line holds: pkpo's verl estimator (scale "none") and the
    bare transform both equal verl's grpo_passk at k = n."""
    pytest.importorskip(
        "verl", reason="the verl comparison needs the verl extra (make test installs it)"
    )
    result = bench.bench_verl(np.random.default_rng(0), tokens=4)
    assert result["max_abs_diff_estimator"] < 1e-5
    assert result["max_abs_diff_transform"] < 1e-5


def test_pkpo_bench_prints_no_project_targets(capsys):
    """pkpo bench is a plain timing tool: the targets (met / NOT met) live in benchmarks/."""
    assert not hasattr(bench, "targets")
    assert bench.main(["--quick", "--no-verl"]) == 0
    output = capsys.readouterr().out
    assert "## Targets" not in output and "-> met" not in output and "NOT met" not in output


def test_argsort_table_renders_measured_ratios():
    module = transform_benchmark()
    rows = [
        {"groups": 16384, "n": 16, "k": 4, "argsort_s": 0.001, "numpy_s": 0.0025, "torch_s": 0.004}
    ]
    assert "| 16384 x 16 | 4 | 1.00 ms | 2.50 ms | 2.5x | 4.00 ms | 4.0x |" in module.argsort_table(
        rows
    )
    assert module.argsort_verdict(rows).endswith("worst 4.0x -> NOT met")
    measured = module.argsort_rows(shapes=[(8, 16)])
    assert [row["k"] for row in measured] == [4, 16]
    assert all(row["numpy_s"] > 0 and row["argsort_s"] > 0 for row in measured)
