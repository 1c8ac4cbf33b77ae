"""The package as users get it: API pages up to date, a wheel whose metadata matches pyproject.toml
(tools/check_wheel.py), and a wheel that works in a clean venv with numpy alone (pkpo.transform and
pkpo eval run; pkpo demo names the extra to install); the Makefile's torch source."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_wheel", REPO / "tools" / "check_wheel.py")
check_wheel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_wheel)


def _build_wheel(dist: Path) -> Path:
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(REPO)]
    if (
        importlib.util.find_spec("hatchling") is not None
    ):  # make test installs it (dev extra): no network
        build.insert(4, "--no-build-isolation")
    subprocess.run(build, check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("pkpo-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return _build_wheel(tmp_path_factory.mktemp("dist"))


def test_wheel_metadata_matches_pyproject(wheel):
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "check_wheel.py"), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == f"{wheel.name}: ok", result.stdout
    headers, _ = check_wheel.read_wheel(wheel)
    assert (headers["Name"], headers["Version"]) == (["pkpo"], ["0.1.0"])
    extras = set(headers["Provides-Extra"])
    assert {"rl", "trl", "verl", "tunix", "openrlhf", "dev"} <= extras
    rl = [
        req for req in headers["Requires-Dist"] if "extra == 'rl'" in req or 'extra == "rl"' in req
    ]
    assert any(req.startswith("tensorboard") for req in rl), rl  # the trainer's default events


@pytest.mark.parametrize(
    "change, problem",
    [
        (
            ('version = "0.1.0"', 'version = "0.2.0"'),
            "Version is '0.1.0'; pyproject.toml says '0.2.0'",
        ),
        (
            ('requires-python = ">=3.10"', 'requires-python = ">=3.11"'),
            "Requires-Python is '>=3.10'",
        ),
        (
            ('openrlhf = ["wrapt>=1.14"]', 'openrlhf = ["wrapt>=1.14"]\nextra2 = ["numpy"]'),
            "extras",
        ),
        (('"trl>=1.16"', '"trl==1.16.0"'), "extra 'trl' pins 'trl==1.16.0'"),
        (('"trl>=1.16"', '"trl>=1.17"'), "constraints pin trl==1.16.0, outside extra 'trl'"),
    ],
)
def test_the_wheel_check_finds_what_differs(wheel, tmp_path, change, problem):
    pyproject = tmp_path / "pyproject.toml"
    text = (REPO / "pyproject.toml").read_text()
    assert change[0] in text
    pyproject.write_text(text.replace(change[0], change[1]))
    found = check_wheel.problems(wheel, pyproject)
    assert any(problem in line for line in found), found


def test_extras_take_ranges_and_the_tests_pin_versions_inside_them():
    extras = check_wheel.tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    pins = check_wheel.pinned_versions(check_wheel.CONSTRAINTS)
    for package in ("trl", "verl", "google-tunix", "tensorboard", "torch", "ruff"):
        assert package in pins, f"constraints/*.txt pins no {package}"
    for requirements in extras.values():
        assert not any("==" in text for text in requirements), requirements


def test_makefile_takes_the_torch_source_as_a_variable():
    """The dry run of the base install: pip's own sources by default, TORCH_INDEX when given."""

    def torch_line(*variables):
        result = subprocess.run(
            ["make", "-n", "-B", "install", "PYTHON=python3", *variables],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return next(line for line in result.stdout.splitlines() if "torch==" in line)

    default = torch_line()
    assert "--constraint constraints/cpu.txt" in default and default.endswith('"torch==2.13.0"')
    assert "--index-url" not in default
    cpu = torch_line("TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu and cpu.endswith(
        '"torch==2.13.0"'
    )


def test_api_reference_pages_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_api_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert result.returncode == 0, result.stderr


def test_python_dash_m_pkpo_is_the_pkpo_command():
    result = subprocess.run(
        [sys.executable, "-m", "pkpo", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert result.returncode == 0 and result.stdout.startswith("pkpo ")


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_works_with_numpy_alone(tmp_path, wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "pkpo/py.typed" in names and any(n.endswith("licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "docs/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    clean = dict(cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    code = (
        "import importlib.util, numpy as np, pkpo\n"
        "assert importlib.util.find_spec('torch') is None, 'the clean venv must not have torch'\n"
        "print(pkpo.transform(np.array([0., 1., 0., 1.]), 2).round(6).tolist())"
    )
    result = subprocess.run([python, "-c", code], **clean)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0.0, 0.333333, 0.0, 0.333333]"

    result = subprocess.run(
        [
            str(venv / "bin" / "pkpo"),
            "eval",
            str(REPO / "examples" / "samples.jsonl"),
            "--k",
            "1,4",
            "--bootstrap",
            "0",
        ],
        **clean,
    )
    assert result.returncode == 0, result.stderr
    assert "|  1 | 0.2656 |" in result.stdout or "| 1 | 0.2656 |" in result.stdout

    for command, extra in (("demo", "pkpo[rl]"), ("train", "pkpo[rl]"), ("toy", "pkpo[toy]")):
        result = subprocess.run([str(venv / "bin" / "pkpo"), command, "--out", "x"], **clean)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"pkpo {command}: error: this command needs ")
        assert f"pip install -e '.[{extra[5:-1]}]' in the pkpo checkout" in result.stderr, (
            result.stderr
        )
    result = subprocess.run(
        [
            str(venv / "bin" / "pkpo"),
            "eval",
            str(REPO / "examples" / "samples.jsonl"),
            "--plot",
            "p.png",
        ],
        **clean,
    )
    assert (
        result.returncode == 2
        and "--plot needs matplotlib" in result.stderr
        and "pkpo[plot]" in result.stderr
    )
