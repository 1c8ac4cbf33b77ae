"""What a run folder may hold and what pkpo does with it: links are not followed, leftovers of killed
writes are cleaned, a torn metrics line does not block --resume, a crafted checkpoint runs nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pkpo.rl.cli import train_main  # noqa: E402
from pkpo.rl.training import rundir  # noqa: E402
from pkpo.rl.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from pkpo.rl.training.trainer import train  # noqa: E402

from test_trainer import DigitTask, tiny_config, tiny_gpt  # noqa: E402  (tests/rl is on sys.path)

torch.set_num_threads(1)


# --- the lock file and leftovers ------------------------------------------------------------------


def test_a_symlinked_lock_file_is_refused_and_its_target_kept(tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / rundir.LOCK_NAME).symlink_to(precious)
    with pytest.raises(rundir.RunDirError, match=r"\.pkpo\.lock' is a symbolic link; pkpo does not write"):
        rundir.RunLock(folder)
    assert train_main(["--out", str(folder), "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkpo train: error: ") and "symbolic link" in err and err.count("\n") == 1
    assert precious.read_text() == "keep me"


def test_a_hard_linked_lock_file_is_refused(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / rundir.LOCK_NAME).hardlink_to(precious)
    with pytest.raises(rundir.RunDirError, match="has other hard links"):
        rundir.RunLock(folder)
    assert precious.read_text() == "keep me"


def test_leftovers_of_killed_writes_are_removed_under_the_lock(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("checkpoint.pt.tmp4711", "metrics.jsonl.tmp12", "final.json.tmp9"):
        (folder / name).write_bytes(b"half a file")
    (folder / "notes.tmp").write_text("mine")  # not pkpo's: no pid
    (folder / "data.txt").write_text("mine")
    with rundir.open_run(folder):
        assert sorted(p.name for p in folder.iterdir()) == [".pkpo.lock", "data.txt", "notes.tmp"]
