"""The ``pkpo`` front end: usage without a command, help without the extras, plain-text help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pkpo._cli import plain_text
from pkpo.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
# Modules of the optional extras; None in sys.modules makes find_spec and import both fail, as
# when the package is not installed.
EXTRA_MODULES = ("torch", "tqdm", "matplotlib", "scipy", "jax", "tomli", "transformers")


def run_without_extras(argv) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        f"for name in {EXTRA_MODULES!r}: sys.modules[name] = None\n"
        "from pkpo.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )


def test_no_command_prints_the_usage_and_exits_2(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: pkpo COMMAND") and "eval" in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_works_without_the_extras_and_shows_no_markup(command):
    result = run_without_extras([command, "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: pkpo {command}")
    assert not any(mark in result.stdout for mark in ("`", ":func:", ":class:"))


def test_without_the_extras_a_real_run_names_the_extra():
    result = run_without_extras(["toy", "--out", "/nonexistent/never-created", "--quick"])
    assert result.returncode == 2
    assert result.stderr.startswith("pkpo toy: error: this command needs")
    assert "pkpo[toy]" in result.stderr


def test_plain_text():
    assert plain_text("see ``pkpo.rl.tasks.TASKS`` and :func:`~pkpo.schedules.from_spec`") == (
        "see pkpo.rl.tasks.TASKS and pkpo.schedules.from_spec"
    )
    text = "`x` and :class:`pkpo.metrics.MetricReport`"
    assert plain_text(text) == "x and pkpo.metrics.MetricReport"
    assert plain_text("pass@k, 8->1@200, a 'quote'") == "pass@k, 8->1@200, a 'quote'"
