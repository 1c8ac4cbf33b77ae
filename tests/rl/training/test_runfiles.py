"""RunFiles / SweepFiles name a run's files; read_metrics is the one reader of metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pkpo.rl.training import rundir
from pkpo.rl.training.runfiles import DamagedMetrics, RunFiles, SweepFiles, read_metrics


def test_run_files_name_every_file_of_a_run_folder(tmp_path):
    files = RunFiles(str(tmp_path))
    assert files.folder == tmp_path and isinstance(files.folder, Path)
    assert files.metrics == tmp_path / "metrics.jsonl" and files.final == tmp_path / "final.json"
    assert files.checkpoint == tmp_path / "checkpoint.pt" and files.tensorboard == tmp_path / "tb"
    assert files.eval_detail == tmp_path / "eval_detail.json"
    assert files.lock == tmp_path / ".pkpo.lock"
    assert rundir.RUN_FILES == ("metrics.jsonl", "checkpoint.pt", "final.json", "tb")
    with pytest.raises(AttributeError):
        files.folder = tmp_path / "other"


def test_sweep_files_and_their_runs(tmp_path):
    sweep = SweepFiles(tmp_path)
    run = sweep.run("k8", 3)
    assert run.folder == tmp_path / "runs" / "k8" / "seed3"
    assert sweep.table_json == tmp_path / "table.json"
    assert sweep.summary == tmp_path / "summary.json"
    assert sweep.report == tmp_path / "report.md" and sweep.wall == tmp_path / "wall.json"
    assert sweep.finals() == []
    run.folder.mkdir(parents=True)
    run.final.write_text("{}")
    assert sweep.finals() == [run.final]


def _write(path: Path, records: list, tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def test_read_metrics_reads_every_record_and_drops_a_torn_last_line(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    assert read_metrics(path) == []  # no file yet
    records = [{"config": {"n": 4}}, {"step": 0, "k": 1}, {"step": 1, "k": 1, "x": None}]
    _write(path, records)
    assert read_metrics(path) == records
    _write(path, records, tail='{"step": 2, "k"')  # a write cut short
    assert read_metrics(path) == records and capsys.readouterr().err == ""
    assert read_metrics(path, note="it is logged again") == records
    err = capsys.readouterr().err
    assert "dropped line 4" in err and "cut short" in err and "it is logged again" in err


def test_read_metrics_refuses_a_damaged_line_before_the_last(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n[1, 2]\n{"step": 1}\n')
    with pytest.raises(DamagedMetrics, match=r"line 2 is not a metrics record \(a JSON list"):
        read_metrics(path)


def test_read_metrics_tail_skips_a_record_cut_by_the_read(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"step": i, "k": 1, "pad": "x" * 50} for i in range(40)]
    _write(path, records)
    tail = read_metrics(path, tail_bytes=300)
    assert 0 < len(tail) < len(records) and tail == records[-len(tail) :]
