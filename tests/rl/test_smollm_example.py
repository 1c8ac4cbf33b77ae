"""examples/smollm_pkpo.py: presets parse into valid trainer configs; bad input gives a one-line
error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "smollm_pkpo.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("smollm_pkpo", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
@pytest.mark.parametrize("k", ["1", "4", "4->1@15"])
def test_presets_make_valid_configs(example, preset, k):
    p = example.preset(preset)
    cfg = example.make_config(p, name="run", k=k, out="/tmp/x")
    assert cfg.n == p["n"] and cfg.steps == p["steps"] and cfg.out_dir == "/tmp/x/run"
    assert cfg.schedule().max_k <= cfg.n
    assert example.make_task(p).problems("heldout")[: p["eval_problems"]]


def test_gpu_preset_differs_where_documented(example):
    cpu, gpu = example.preset("cpu"), example.preset("gpu")
    assert gpu["device"] == "cuda" and gpu["lora_r"] == 0
    assert gpu["prompts_per_step"] * gpu["n"] > cpu["prompts_per_step"] * cpu["n"]


def test_bad_preset_and_bad_keys(example, tmp_path, capsys):
    assert example.main(["train", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    assert example.main(["train", "--preset", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown preset keys ['stepz']" in err and err.count("\n") == 1
    assert example.main(["train", "--k", "9", "--out", str(tmp_path)]) == 2  # k > n = 8
    assert "k=9 > n=8" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the report


def _result(p1: float, p8: float) -> dict:
    values = {1: p1, 2: (p1 + p8) / 2, 4: (p1 + p8) / 2, 8: p8}
    return {f"pass@{k}": v for k, v in values.items()} | {f"pass@{k}_se": 0.01 for k in values}


def _write_run(folder: Path, run: str, k: str, seed: int, p1: float, p8: float, entropy: float):
    (folder / run).mkdir(parents=True)
    config = {"steps": 30, "prompts_per_step": 2, "n": 8, "lr": 2e-4}
    final = _result(p1, p8) | {"seed": seed, "k_schedule": f"k={k}", "entropy": entropy}
    final["config"] = config
    (folder / run / "final.json").write_text(json.dumps(final))
    record = {"reward/mean": 0.5, "reward/pass_at_k": 0.5, "policy/entropy": entropy}
    steps = [{"config": config}] + [record | {"step": s, "perf/step_s": 30.0} for s in range(4)]
    (folder / run / "metrics.jsonl").write_text("\n".join(map(json.dumps, steps)) + "\n")


def test_the_report_pairs_seeds_and_rewrites_its_block(example, tmp_path, capsys):
    out = tmp_path / "runs"
    out.mkdir()
    (out / "seed0.log").write_text("a file named like a seed folder is not one\n")
    (out / "baseline.json").write_text(json.dumps({"1": _result(0.1, 0.5) | {"wall_s": 100.0}}))
    _write_run(out, "k1", "1", 0, 0.60, 0.80, 2.0)
    _write_run(out, "k4", "4", 0, 0.65, 0.85, 1.0)
    _write_run(out / "seed1", "k1", "1", 1, 0.50, 0.70, 3.0)
    _write_run(out / "seed1", "k4", "4", 1, 0.60, 0.70, 2.0)
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- generated:smollm -->\nold\n<!-- /generated:smollm -->\nend\n")
    figs = tmp_path / "figs"
    args = ["report", "--out", str(out), "--figures", str(figs), "--runs", "k1", "k4", "anneal"]
    assert example.main([*args, "--docs", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "old" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert "| 1 | 10.0 ± 1.0 | 30.0 ± 1.0 | 30.0 ± 1.0 | 50.0 ± 1.0 | 100 s |" in rows
    assert rows.index("| base (before training) | - | - | 10.0 ± 1.0 | 30.0 ± 1.0 | 30.0 ± 1.0 "
                      "| 50.0 ± 1.0 | - | - |") > 0  # fmt: skip
    assert (
        "| k1 | k=1 | 1 | 50.0 ± 1.0 | 60.0 ± 1.0 | 60.0 ± 1.0 | 70.0 ± 1.0 | 3.0 | 2 min |" in rows
    )
    assert "| **mean of 2 seeds**: k4 |  |  | 62.5 | 70.0 | 70.0 | 77.5 | 1.5 |  |" in rows
    assert "| k4 − k1 | 0 | +5.0 | +5.0 | -1.0 |" in rows
    assert "| k4 − k1 | 1 | +10.0 | +0.0 | -1.0 |" in rows
    assert "30 steps x 2 prompts x 8 samples, lr 0.0002" in text
    names = {"training_curves.png", "training_curves_seed1.png", "base_pass_at_k.png",
             "heldout_pass_at_k.png"}  # fmt: skip
    assert {f.name for f in figs.iterdir()} == names
    assert "rewrote the smollm block" in capsys.readouterr().out


def test_the_report_refuses_a_missing_docs_file(example, tmp_path, capsys):
    args = ["report", "--out", str(tmp_path), "--figures", str(tmp_path / "f")]
    assert example.main([*args, "--docs", str(tmp_path / "nope.md")]) == 2
    err = capsys.readouterr().err
    assert "is not a file" in err and err.count("\n") == 1
