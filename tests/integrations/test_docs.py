"""docs/integrations.md runs: every Python and shell block runs here or is marked and parse-checked.

A block preceded by ``<!-- docs-test: skip (needs a GPU) -->`` or ``<!-- docs-test: parse-only -->``
is compiled (Python) or checked with ``bash -n`` (shell); every other block runs. The verl
commands, which need a GPU, are also checked as far as a CPU can: their Hydra overrides compose
with verl 0.9.1's own ``ppo_trainer.yaml`` and give valid PKPO options. The advantage-scale table
must be exactly what ``benchmarks/advantage_scale.py`` prints.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pkpo.integrations import verl as plugin

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integrations.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- docs-test: (skip \(needs a GPU\)|parse-only) -->")
LANGUAGES = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}


def _blocks():
    """(line, language, marked, code) of every Python / shell block of the page."""
    text = DOC.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        language = LANGUAGES.get(match.group(1))
        if language is None:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, language, bool(MARKER.fullmatch(before.strip())), match.group(2)))
    return blocks


BLOCKS = _blocks()


def _python_shim(directory: Path) -> dict:
    """An environment whose ``python`` / ``python3`` is this interpreter."""
    directory.mkdir(exist_ok=True)
    for name in ("python", "python3"):  # a script, not a symlink: a symlinked venv python loses its venv
        shim = directory / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        shim.chmod(0o755)
    return {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}


def test_the_page_has_the_blocks_this_file_expects():
    languages = [language for _, language, _, _ in BLOCKS]
    assert languages.count("python") >= 1 and languages.count("bash") >= 4
    assert any(not marked for _, _, marked, _ in BLOCKS), "nothing runs"


@pytest.mark.parametrize(
    "line, language, marked, code",
    BLOCKS,
    ids=[f"line{line}-{language}" for line, language, _, _ in BLOCKS],
)
def test_every_block_runs_or_is_marked_and_parses(tmp_path, line, language, marked, code):
    env = _python_shim(tmp_path / "bin")
    env.update(OMP_NUM_THREADS="1", WANDB_DISABLED="true", PYTHONWARNINGS="ignore")
    if marked:
        if language == "python":
            compile(code, f"{DOC.name}:{line}", "exec")
        else:
            result = subprocess.run(
                ["bash", "-n"], input=code, text=True, capture_output=True, check=False
            )
            assert result.returncode == 0, result.stderr
        return
    # runnable blocks run from the repository root (the page says so); the Python ones in a
    # scratch directory holding a link to examples/, so that their outputs land there
    if language == "python":
        (tmp_path / "examples").symlink_to(ROOT / "examples")
        command, cwd = [sys.executable, "-c", code], tmp_path
    else:
        command, cwd = ["bash", "-e", "-c", code], ROOT
    result = subprocess.run(
        command, cwd=cwd, env=env, text=True, capture_output=True, timeout=600, check=False
    )
    assert result.returncode == 0, (
        f"{DOC.name}:{line}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    if "pkpo_eval_ks=[1, 8]" in code:  # the TRL block prints its unbiased eval metrics
        for name in ("eval_pass@1", "eval_pass@8", "eval_maxg@8", "eval_pass@8/se"):
            assert f"'{name}'" in result.stdout, result.stdout[-3000:]


def test_scale_table_in_the_docs_is_what_the_benchmark_prints():
    path = ROOT / "benchmarks" / "advantage_scale.py"
    spec = importlib.util.spec_from_file_location("advantage_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.table()
    assert len(table.splitlines()) == 2 + 3 * (4 + 5 + 5) + (4 + 5 + 5)  # header + all (n, k) rows
    assert table in DOC.read_text(), "docs/integrations.md: rerun benchmarks/advantage_scale.py"


def _verl_overrides(code: str) -> list[str]:
    """The Hydra overrides of a ``python3 -m verl.trainer.main_ppo ...`` block, as bash passes them."""
    words = shlex.split(code.replace("\\\n", " "), comments=True)
    start = words.index("verl.trainer.main_ppo") + 1
    return [word for word in words[start:] if "=" in word]


VERL_BLOCKS = [(line, code) for line, _, _, code in BLOCKS if "verl.trainer.main_ppo" in code]


@pytest.mark.parametrize("line, code", VERL_BLOCKS, ids=[f"line{line}" for line, _ in VERL_BLOCKS])
def test_verl_commands_compose_with_verls_config(line, code):
    import verl.trainer.config
    from hydra import compose, initialize_config_dir

    overrides = _verl_overrides(code)
    config_dir = os.path.dirname(verl.trainer.config.__file__)
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    assert config.algorithm.adv_estimator == "pkpo"
    options = plugin.read_options(config.algorithm)  # raises on a bad PKPO option
    assert options.scale == "mean_abs"
    if "val_ks" in config.algorithm.pkpo:
        assert config.trainer.v1.trainer_mode == "pkpo_sync"
        assert plugin.read_val_ks(config) == (1, 4, 8)
        assert config.actor_rollout_ref.rollout.val_kwargs.temperature > 0
    if options.schedule.kind != "constant":
        assert config.trainer.v1.trainer_mode == "pkpo_sync"


def test_verl_command_parser_sees_what_bash_passes():
    """The override extraction above against bash itself (a stub python3 records its argv)."""
    (_, code) = VERL_BLOCKS[-1]
    result = subprocess.run(
        ["bash", "-c", 'python3() { printf "%s\\n" "$@" | tail -n +3; }\n' + code],
        text=True,
        capture_output=True,
        check=False,
    )
    passed = [word for word in result.stdout.splitlines() if "=" in word]
    assert passed == _verl_overrides(code), json.dumps(passed)
