"""`pkpo toy` end to end in quick mode: files, JSON layout, determinism, resume, bad arguments."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("scipy", reason="the toy extra: make test installs it")
pytest.importorskip("matplotlib", reason="the toy extra: make test installs it")
pytest.importorskip("tqdm", reason="the toy extra: make test installs it")

from pkpo import cli as pkpo_cli  # noqa: E402
from pkpo.toy import cli, study  # noqa: E402
from pkpo.toy.estimators import ESTIMATORS  # noqa: E402
from pkpo.toy.figures import FIGURES  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    assert cli.main(["--out", str(out), "--quick", "--seed", "3", "--no-progress"]) == 0
    with open(out / "toy.json") as f:
        return out, json.load(f)


@pytest.mark.slow
def test_quick_run_writes_every_file(quick_run):
    out, _ = quick_run
    for name in FIGURES + ("toy.json", "report.md"):
        assert (out / name).stat().st_size > 0, name
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).stat().st_size < 200_000
    assert not (out / cli.CHECKPOINT).exists()
    report = (out / "report.md").read_text()
    for name in FIGURES:
        assert f"]({'.'}/{name})" in report


def test_json_holds_the_numbers_behind_the_figures(quick_run):
    _, result = quick_run
    assert set(result["theta_star"]) == {"1", "2", "4", "8", "16"}
    assert all(round(v, 3) == v for v in result["theta_star"].values())
    assert set(result["variance"]) == set(ESTIMATORS)
    assert set(result["variance"]["s"]) == {"4", "8", "16"}
    assert set(result["variance"]["s_loo"]) == {"8", "16"}  # needs n >= k + 1
    assert set(result["variance_mean"]) == set(ESTIMATORS)
    assert set(result["transformed"]["k"]["4"]) >= {
        "none",
        "loo",
        "loo_minus_one",
        "centered",
        "bin_centers",
    }
    assert len(result["weights"]["w"]["4"]) == 8
    assert set(result["training"]["runs"]) == {"1", "4", "16"}
    assert set(result["training"]["samples_to_converge"]["s_loo_minus_one"]) == {"1", "4", "16"}
    assert "s_loo" not in result["training"]["runs"]["16"]  # undefined at n = k = 16
    assert result["training"]["annealed"]["ks"] == [16, 1]


@pytest.mark.slow
def test_same_seed_same_numbers_other_seed_other_numbers(quick_run):
    _, result = quick_run
    again = json.loads(json.dumps(study.run_study(study.StudyConfig.quick(), 3, progress=False)))
    again["quick"] = True
    assert again == result
    other = study.run_study(study.StudyConfig.quick(), 4, progress=False)
    assert other["variance"]["s"]["8"] != result["variance"]["s"]["8"]
    assert other["theta_star"] == result["theta_star"]  # exact, not random


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, quick_run, monkeypatch):
    _, result = quick_run
    config = study.StudyConfig.quick()
    path = str(tmp_path / "ck.json")
    items = study.work_items(config, 3)
    done = {name: json.loads(json.dumps(compute())) for name, compute in items[:6]}
    study._save_checkpoint(path, study._settings(config, 3), done)
    calls = []
    original = study.work_items

    def counting(config, seed):
        return [
            (name, (lambda c=compute, n=name: calls.append(n) or c()))
            for name, compute in original(config, seed)
        ]

    monkeypatch.setattr(study, "work_items", counting)
    resumed = json.loads(json.dumps(study.run_study(config, 3, checkpoint=path, progress=False)))
    resumed["quick"] = True
    assert resumed == result
    assert calls == [name for name, _ in items[6:]]
    # a checkpoint from other settings is ignored
    assert study._load_checkpoint(path, study._settings(config, 4)) == {}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--quick"], "required: --out"),
        (["--out", "OUT", "--seed", "-1"], "argument --seed: expected an integer >= 0; got -1"),
        (["--out", "OUT", "--seed", "abc"], "argument --seed: expected an integer >= 0; got 'abc'"),
        (["--out", "OUT", "--k", "4"], "unrecognized arguments"),
        (["--out", "FILE"], "exists and is not a folder"),
    ],
)
def test_bad_arguments_give_one_clean_line(tmp_path, capsys, argv, message):
    (tmp_path / "FILE").write_text("x")
    argv = [str(tmp_path / a) if a in ("OUT", "FILE") else a for a in argv]
    assert pkpo_cli.main(["toy"] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkpo toy: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not os.path.exists(tmp_path / "OUT")


def test_help_exits_zero(capsys):
    assert cli.main(["--help"]) == 0
    assert "--quick" in capsys.readouterr().out


def test_the_outputs_list_names_every_file_a_run_writes():
    assert set(cli.OUTPUTS) == set(FIGURES) | {"toy.json", "report.md"}


def test_a_finished_run_is_not_overwritten_without_overwrite(quick_run, capsys):
    out, _ = quick_run
    before = (out / "toy.json").read_bytes()
    assert pkpo_cli.main(["toy", "--out", str(out), "--quick", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkpo toy: error: ") and "toy.json' exists; pass --overwrite" in err
    assert err.count("\n") == 1 and (out / "toy.json").read_bytes() == before


@pytest.mark.parametrize("name", ["report.md", "fig1_landscape.png", "toy.json"])
def test_no_output_is_written_through_a_planted_symlink(tmp_path, capsys, name):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(precious)
    assert pkpo_cli.main(["toy", "--out", str(out), "--quick", "--no-progress", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"{name}' is a symbolic link" in err and err.count("\n") == 1
    assert precious.read_text() == "keep me"


@pytest.mark.parametrize(
    "content, why",
    [
        ("[1, 2, 3]", "not a checkpoint of pkpo toy (a JSON list)"),
        (
            '{"settings": {}, "items": [1]}',
            "not a checkpoint of pkpo toy (its items are a JSON list)",
        ),
        ('{"settings": ', "unreadable (JSONDecodeError)"),
    ],
)
def test_a_damaged_toy_checkpoint_is_recomputed_with_a_note(tmp_path, capsys, content, why):
    path = tmp_path / cli.CHECKPOINT
    path.write_text(content)
    settings = study._settings(study.StudyConfig.quick(), 0)
    assert study._load_checkpoint(str(path), settings) == {}
    err = capsys.readouterr().err
    assert err == f"pkpo toy: note: ignoring {path}: {why}; recomputing\n"
