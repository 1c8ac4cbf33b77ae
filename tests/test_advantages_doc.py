"""docs/advantages.md: its table is what benchmarks/advantage_family.py prints, its figure exists,
and every claim of its "Which one should I use" section holds for the current code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pkpo import advantages

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "advantages.md"


def _family():
    path = ROOT / "benchmarks" / "advantage_family.py"
    spec = importlib.util.spec_from_file_location("advantage_family", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


family = _family()


def ratio_to_target(name: str, p: float) -> float:
    return float(family.expected_update(name, p)[0] / family.TARGETS[name][1](p))


def ratio_to_grpo(name: str, p: float) -> float:
    return family.mean_abs(name, p) / family.mean_abs("grpo", p)


def test_table_in_the_doc_is_what_the_script_prints():
    table = family.table()
    assert len(table.splitlines()) == 2 + len(advantages.names())
    assert table in DOC.read_text(), "docs/advantages.md: rerun benchmarks/advantage_family.py"


def test_the_figure_and_its_data_are_there():
    folder = ROOT / "docs" / "figures" / "advantages"
    assert (folder / "expected_update.png").stat().st_size > 10_000
    assert (folder / "expected_update.json").is_file()
    assert "figures/advantages/expected_update.png" in DOC.read_text()


UNBIASED = ["pkpo", "dr_grpo", "rloo", "maxrl", "tailrl", "w_reinforce", "tzsm"]


@pytest.mark.parametrize("name", UNBIASED)
def test_unbiased_rows_have_ratio_one(name):
    for p in family.PS:
        assert ratio_to_target(name, p) == pytest.approx(1.0, rel=1e-9)


def test_which_one_should_i_use_claims():
    ps = family.PS
    # pkpo's values are far smaller than GRPO's; tzsm's update vanishes as p grows
    assert all(ratio_to_grpo("pkpo", p) < 0.1 for p in ps)
    tzsm = [abs(float(family.expected_update("tzsm", p)[0])) for p in ps]
    assert tzsm[0] > tzsm[1] > tzsm[2] and tzsm[2] < 1e-6 * tzsm[0]
    # maxrl's steps: larger than GRPO's where p is small, smaller where p is large
    assert ratio_to_grpo("maxrl", ps[0]) > 1 > ratio_to_grpo("maxrl", ps[-1])
    # biased: grpo's ratio moves with p; pkpo_two_baselines over-weights more as p grows;
    # passk_training's ratio moves with p
    for name in ("grpo", "passk_training"):
        ratios = [ratio_to_target(name, p) for p in ps]
        assert max(ratios) - min(ratios) > 0.1
    two = [ratio_to_target("pkpo_two_baselines", p) for p in ps]
    assert 1 < two[0] < two[1] < two[2]
    # rs_grpo: biased at n = 16
    assert all(abs(ratio_to_target("rs_grpo", p) - 1) > 1e-3 for p in ps)


def test_the_speed_benchmark_prints_a_row_per_estimator(monkeypatch):
    """benchmarks/advantages.py on tiny shapes runs and lists every estimator (times unchecked)."""
    path = ROOT / "benchmarks" / "advantages.py"
    spec = importlib.util.spec_from_file_location("advantages_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "SHAPES", ((8, 16), (4, 64)))
    table = bench.table(bench.measure(rounds=1, budget=1e-4))
    for name in advantages.names():
        assert f"| `{name}` |" in table
