"""The package as users get it: API pages up to date, and a wheel that works in a clean venv with numpy
alone (pkpo.transform and pkpo eval run; pkpo demo names the extra to install)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_api_reference_pages_are_up_to_date():
    result = subprocess.run([sys.executable, str(REPO / "tools" / "gen_api_docs.py"), "--check"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0, result.stderr


def test_python_dash_m_pkpo_is_the_pkpo_command():
    result = subprocess.run([sys.executable, "-m", "pkpo", "--version"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0 and result.stdout.startswith("pkpo ")


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_works_with_numpy_alone(tmp_path):
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(REPO)]
    if importlib.util.find_spec("hatchling") is not None:  # make test installs it (dev extra): no network
        build.insert(4, "--no-build-isolation")
    subprocess.run(build, check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("pkpo-*.whl")
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

    code = ("import importlib.util, numpy as np, pkpo\n"
            "assert importlib.util.find_spec('torch') is None, 'the clean venv must not have torch'\n"
            "print(pkpo.transform(np.array([0., 1., 0., 1.]), 2).round(6).tolist())")
    result = subprocess.run([python, "-c", code], **clean)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0.0, 0.333333, 0.0, 0.333333]"

    result = subprocess.run([str(venv / "bin" / "pkpo"), "eval", str(REPO / "examples" / "samples.jsonl"),
                             "--k", "1,4", "--bootstrap", "0"], **clean)
    assert result.returncode == 0, result.stderr
    assert "|  1 | 0.2656 |" in result.stdout or "| 1 | 0.2656 |" in result.stdout

    for command, extra in (("demo", "pkpo[rl]"), ("train", "pkpo[rl]"), ("toy", "pkpo[toy]")):
        result = subprocess.run([str(venv / "bin" / "pkpo"), command, "--out", "x"], **clean)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"pkpo {command}: error: this command needs ")
        assert f"pip install '{extra}'" in result.stderr, result.stderr
    result = subprocess.run([str(venv / "bin" / "pkpo"), "eval", str(REPO / "examples" / "samples.jsonl"),
                             "--plot", "p.png"], **clean)
    assert result.returncode == 2 and "--plot needs matplotlib" in result.stderr and "pkpo[plot]" in result.stderr
