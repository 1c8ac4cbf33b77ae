"""examples/smollm_pkpo.py: presets parse into valid trainer configs; bad input gives a one-line
error."""

from __future__ import annotations

import importlib.util
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
