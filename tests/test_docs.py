"""Every command and code block of README.md and docs/ runs as written, on small settings.

Fenced blocks labelled bash/sh/shell, console, python/py or toml are collected automatically from
README.md and docs/**/*.md, so a block added later is covered without touching this file:

- **python** blocks run in a fresh interpreter; **bash** blocks run under ``bash -euo pipefail``;
  **console** blocks run each ``$ command`` and compare its output with the lines under it;
  **toml** blocks are parsed, and one whose first line is ``# name.toml`` is a ``TrainConfig``
  file (its keys are checked) written into the document's working folder before any block runs.
- The blocks of one document run in order in one temporary working folder that links the
  repository's ``examples/``, ``src/``, ``tools/``, ``docs/`` and ``benchmarks/``; ``runs/...``
  outputs land there.
- Small settings: ``pkpo`` on the PATH is the real command with a few flags appended (argparse
  keeps the last value), see ``SMALL`` below: ``train``/``sweep`` run 1 step with a 2-step warm
  start and a tiny evaluation, ``toy`` and ``bench`` run ``--quick``, ``demo`` ``--quick``.

A comment on the line(s) just before a fence changes that:

- ``<!-- docs-test: parse-only (REASON) -->``: not run (it needs a GPU, a cluster, or hours);
  python is compiled, shell is checked with ``bash -n``, every ``pkpo ...`` command is parsed by
  the real argument parser, and every ``make TARGET`` is dry-run with ``make -n``.
- ``<!-- docs-test: slow -->``: run, but only in the full suite (``make test``).
- ``<!-- docs-test: replace "OLD" "NEW" -->``: run with that substitution (to shrink a Python
  block).

An unlabelled block that looks like a command fails :func:`test_unlabelled_blocks_hold_no_commands`.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LANGS = {
    "bash": "shell",
    "sh": "shell",
    "shell": "shell",
    "console": "console",
    "python": "python",
    "py": "python",
    "toml": "toml",
}
# flags appended to each pkpo command in shell blocks (the last value of a repeated flag wins)
SMALL = {
    "train": [
        "--steps",
        "1",
        "--warm-steps",
        "2",
        "--eval-every",
        "0",
        "--eval-problems",
        "1",
        "--eval-samples",
        "2",
        "--eval-ks",
        "1,2",
        "--prompts-per-step",
        "1",
        "--no-progress",
    ],
    "sweep": [
        "--steps",
        "1",
        "--warm-steps",
        "2",
        "--eval-problems",
        "2",
        "--seeds",
        "0",
        "--jobs",
        "1",
        "--no-progress",
    ],
    "toy": ["--quick", "--no-progress"],
    "bench": ["--quick", "--no-verl"],
    "demo": ["--quick", "--jobs", "1", "--no-progress"],
}
MARKER = re.compile(r"<!--\s*docs-test:\s*(parse-only|slow|replace)\b(.*?)-->")
LOOKS_LIKE_A_COMMAND = re.compile(r"^\s*(\$ |pkpo |python3? |make |pip |import |from pkpo)")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # "", or the info string's first word
    code: str
    markers: list = field(default_factory=list)  # (kind, argument text)

    @property
    def kind(self) -> str | None:
        return LANGS.get(self.lang)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    def marked(self, kind: str) -> bool:
        return any(k == kind for k, _ in self.markers)


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        markers, j = [], i - 1
        while j >= 0 and MARKER.search(lines[j]):
            markers[:0] = [(m.group(1), m.group(2).strip()) for m in MARKER.finditer(lines[j])]
            j -= 1
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence.group(2)):
            end += 1
        indent = len(fence.group(1))
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        out.append(Block(path, i + 1, fence.group(3).lower(), code, markers))
        i = end + 1
    return out


ALL = [block for path in DOCS for block in blocks_of(path)]
CHECKED = [b for b in ALL if b.kind]


def _param(block: Block):
    slow = block.marked("slow")
    return pytest.param(block, id=block.id, marks=[pytest.mark.slow] if slow else [])


# --- working folders and the pkpo shim
# --------------------------------------------------------------


@pytest.fixture(scope="session")
def workspaces(tmp_path_factory):
    cache: dict = {}

    def get(path: Path) -> tuple[Path, dict]:
        if path not in cache:
            root = tmp_path_factory.mktemp(path.stem)
            for name in ("examples", "src", "tools", "docs", "benchmarks"):
                (root / name).symlink_to(REPO / name)
            for block in blocks_of(path):
                if block.kind == "toml" and (name := _toml_file_name(block)):
                    (root / name).write_text(block.code, encoding="utf-8")
            cache[path] = (root, _environment(root))
        return cache[path]

    return get


def _environment(root: Path) -> dict:
    bin_dir = root / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "pkpo"
    shim.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from pkpo.cli import main\n"
        f"SMALL = {SMALL!r}\n"
        "argv = sys.argv[1:]\n"
        "if argv and argv[0] in SMALL and not {'-h', '--help'} & set(argv):\n"
        "    argv = argv + SMALL[argv[0]]\n"
        "sys.exit(main(argv))\n"
    )
    shim.chmod(0o755)
    for name in (
        "python",
        "python3",
    ):  # a script, not a symlink: a symlinked venv python loses its venv
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
        "PKPO_CACHE": str(root / ".cache"),
        "MPLBACKEND": "Agg",
    }
    return env


def _toml_file_name(block: Block) -> str | None:
    first = block.code.lstrip().splitlines()[0] if block.code.strip() else ""
    match = re.fullmatch(r"#\s*([\w.-]+\.toml)\s*", first)
    return match.group(1) if match else None


# --- parse-only checks
# ---------------------------------------------------------------------------------


class _Parsed(BaseException):
    """Raised by the patched parse_args once the real parser has accepted the arguments."""


def _commands(shell: str) -> list[list[str]]:
    """The simple commands of a shell snippet (continuations joined; split at ; && || |)."""
    text = re.sub(r"\\\n", " ", shell)
    commands = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        for part in re.split(r"&&|\|\||;|\|", line):
            try:
                words = shlex.split(part)
            except ValueError:
                continue
            while words and re.fullmatch(
                r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]
            ):  # VAR=value prefix
                words = words[1:]
            if words:
                commands.append(words)
    return commands


def parse_pkpo(argv: list[str], monkeypatch) -> None:
    """Run the real argument parser of ``pkpo argv`` and stop right after it accepted them."""
    from pkpo.cli import COMMANDS

    assert argv and argv[0] in COMMANDS, f"unknown pkpo command in the docs: {argv}"
    module, function = COMMANDS[argv[0]][:2]
    entry = getattr(importlib.import_module(module), function)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    err = io.StringIO()
    try:
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            code = entry(argv[1:])
    except _Parsed:
        return
    finally:
        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", original)
    pytest.fail(
        f"pkpo {shlex.join(argv)} is rejected by its parser (exit {code}): {err.getvalue().strip()}"
    )


def parse_check(block: Block, monkeypatch) -> None:
    if block.kind == "python":
        compile(block.code, block.id, "exec")
        return
    shell = (
        block.code
        if block.kind == "shell"
        else "\n".join(line[2:] for line in block.code.splitlines() if line.startswith("$ "))
    )
    result = subprocess.run(["bash", "-n"], input=shell, capture_output=True, text=True)
    assert result.returncode == 0, f"{block.id}: bash -n: {result.stderr}"
    for words in _commands(shell):
        if words[0] == "pkpo":
            parse_pkpo(words[1:], monkeypatch)
        elif words[0] == "make":
            dry = subprocess.run(
                ["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True
            )
            assert dry.returncode == 0, f"{block.id}: make -n {' '.join(words[1:])}: {dry.stderr}"


# --- running
# -------------------------------------------------------------------------------------------


def _substituted(block: Block) -> str:
    code = block.code
    for kind, argument in block.markers:
        if kind == "replace":
            old, new = shlex.split(argument)
            assert old in code, f"{block.id}: replace marker: {old!r} is not in the block"
            code = code.replace(old, new)
    return code


def run_block(block: Block, cwd: Path, env: dict) -> None:
    code = _substituted(block)
    if block.kind == "python":
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, f"{block.id} failed:\n{result.stderr[-3000:]}"
    elif block.kind == "shell":
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, (
            f"{block.id} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )
    elif block.kind == "console":
        for command, expected in _transcript(code):
            result = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            got = [line.rstrip() for line in (result.stdout + result.stderr).splitlines()]
            assert got == expected, f"{block.id}: output of `{command}` differs:\n" + "\n".join(got)


def _transcript(code: str) -> list[tuple[str, list[str]]]:
    steps: list = []
    for line in code.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line.rstrip())
    for _, expected in steps:
        while expected and not expected[-1]:
            expected.pop()
    return steps


# --- the tests
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [_param(b) for b in CHECKED])
def test_doc_block(block: Block, workspaces, monkeypatch):
    if block.kind == "toml":
        data = tomllib.loads(block.code)
        if _toml_file_name(block):
            from pkpo.rl.training.trainer import TrainConfig

            flat = {}
            for key, value in data.items():
                flat.update(value) if isinstance(value, dict) else flat.update({key: value})
            TrainConfig.from_dict(flat)  # checked when made
        return
    if block.marked("parse-only"):
        reasons = [argument for kind, argument in block.markers if kind == "parse-only"]
        assert all(reasons), f"{block.id}: a parse-only marker needs a reason in brackets"
        parse_check(block, monkeypatch)
        return
    cwd, env = workspaces(block.path)
    run_block(block, cwd, env)


def test_every_document_is_collected():
    assert {p.name for p in DOCS} >= {
        "README.md",
        "evaluation.md",
        "math.md",
        "rl.md",
        "toy.md",
        "results.md",
        "pretrained.md",
        "integrations.md",
    }
    assert len(CHECKED) >= 20


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in ALL if not b.lang])
def test_unlabelled_blocks_hold_no_commands(block: Block):
    """A block without a label is not run, so it must not look like something to run: label
    commands bash/console and code python (a plain listing can be labelled text)."""
    commands = [line for line in block.code.splitlines() if LOOKS_LIKE_A_COMMAND.match(line)]
    assert not commands, (
        f"{block.id}: unlabelled block with commands {commands[:3]}; label it bash/console/python"
    )


def test_parse_check_catches_a_bad_flag(monkeypatch):
    block = Block(REPO / "README.md", 0, "bash", "pkpo train --steps 3 --no-such-flag\n")
    with pytest.raises(pytest.fail.Exception, match="rejected by its parser"):
        parse_check(block, monkeypatch)
    parse_check(
        Block(REPO / "README.md", 0, "bash", "pkpo train --steps 3 \\\n  --k 4 && make -n test\n"),
        monkeypatch,
    )


UNSHIPPED = re.compile(r"paper\.md|RL_NOTES|DESIGN\.md|peers\.md|sweep_src")


def test_docs_and_code_cite_only_what_ships():
    """The paper is cited by section and equation (arXiv:2505.15201 v4); notes that are not in the
    repository are not cited."""
    files = [
        *DOCS,
        *sorted((REPO / "src").rglob("*.py")),
        *sorted((REPO / "examples").glob("*")),
        *sorted((REPO / "benchmarks").glob("*")),
    ]
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()[:80]}"
        for path in files
        if path.is_file()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if UNSHIPPED.search(line)
    ]
    assert not hits, "\n".join(hits)
