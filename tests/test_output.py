"""pkpo._output: whole-file writes that never follow a symbolic link, and the output-path checks."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from pkpo._output import (
    OutputPathError,
    atomic_write,
    check_output_path,
    json_text,
    rewrite_blocks,
    write_json,
)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    atomic_write(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_refuses_a_symlink_and_leaves_its_target_alone(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / "report.md"
    link.symlink_to(precious)
    with pytest.raises(OSError) as caught:
        atomic_write(link, "report")
    assert caught.value.errno == errno.ELOOP and "symbolic link" in str(caught.value)
    assert precious.read_text() == "keep me" and link.is_symlink()


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    path = tmp_path / "out.json"
    planted = tmp_path / f"out.json.tmp{os.getpid()}"
    planted.symlink_to(precious)
    atomic_write(path, "result")
    assert precious.read_text() == "keep me"
    assert path.read_text() == "result" and not path.is_symlink()
    assert not planted.exists() and not planted.is_symlink()


def test_a_stale_temporary_file_of_the_same_pid_is_replaced(tmp_path):
    stale = tmp_path / f"out.json.tmp{os.getpid()}"
    stale.write_text("half a file from a crash")
    atomic_write(tmp_path / "out.json", "whole")
    assert (tmp_path / "out.json").read_text() == "whole" and not stale.exists()


def test_check_output_path(tmp_path):
    samples = tmp_path / "s.jsonl"
    samples.write_text("{}\n")
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    (tmp_path / "link.json").symlink_to(existing)
    (tmp_path / "hard.json").hardlink_to(samples)
    (tmp_path / "dir").mkdir()

    def refused(path, **kw):
        with pytest.raises(OutputPathError) as caught:
            check_output_path(tmp_path / path, **kw)
        return str(caught.value)

    assert check_output_path(tmp_path / "new.json") == tmp_path / "new.json"
    assert check_output_path(existing, overwrite=True) == existing
    assert "exists; pass --overwrite" in refused("old.json")
    assert "symbolic link" in refused("link.json", overwrite=True)
    assert "is also an input" in refused("s.jsonl", overwrite=True, inputs=[samples])
    assert "is also an input" in refused("hard.json", overwrite=True, inputs=[str(samples)])
    assert "is a folder" in refused("dir", overwrite=True)
    message = refused("missing/x.json", what="--json")
    assert message.startswith("--json ") and "does not exist" in message
    assert not (tmp_path / "missing").exists()
    assert check_output_path(tmp_path / "x.json", inputs=["-"]) == tmp_path / "x.json"


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_write_json_writes_nan_and_infinities_as_null(tmp_path):
    value = {"a": float("nan"), "b": [1.5, float("inf"), -float("inf")], "c": (2, "x"), "d": None}
    path = tmp_path / "out.json"
    write_json(path, value, indent=2)
    text = path.read_text()
    assert text.endswith("}\n") and "NaN" not in text and "Infinity" not in text
    assert _strict(text) == {"a": None, "b": [1.5, None, None], "c": [2, "x"], "d": None}
    assert _strict(json_text(np.float64("nan"))) is None and json_text(np.float64(0.25)) == "0.25"
    assert not list(tmp_path.glob("*.tmp*"))


def test_write_json_refuses_a_symlink(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    link = tmp_path / "out.json"
    link.symlink_to(precious)
    with pytest.raises(OSError) as info:
        write_json(link, {"a": 1})
    assert info.value.errno == errno.ELOOP and precious.read_text() == "keep"


def test_rewrite_blocks_writes_the_named_blocks_or_nothing(tmp_path):
    doc = tmp_path / "doc.md"
    text = "".join(f"<!-- generated:{n} -->\nold {n}\n<!-- /generated:{n} -->\n" for n in "ab")
    doc.write_text(text)
    with pytest.raises(ValueError, match="no marker for the blocks"):
        rewrite_blocks(doc, {"a": "new a", "c": "new c"}, "a|c")
    assert doc.read_text() == text  # an error writes nothing
    rewrite_blocks(doc, {"a": "new a"}, "a")
    assert doc.read_text() == text.replace("old a", "new a")
