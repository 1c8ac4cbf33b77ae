"""Check a built pkpo wheel against pyproject.toml, so that publishing it is one step away.

    python tools/check_wheel.py dist/pkpo-0.1.0-py3-none-any.whl

Checks the wheel's METADATA (name, version, Requires-Python, the extras and what each requires,
the base dependencies), its entry points (the ``pkpo`` command, the verl plugin), that no library
extra pins an exact version (users get ranges; the tests' exact versions live in
constraints/*.txt), and that every exact pin of the constraints files lies inside the range the
extras give. Prints one line per problem and exits 1 if there is any, else prints "ok" and exits 0.
"""

from __future__ import annotations

import re
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = ("constraints/cpu.txt", "constraints/test.txt")


def read_wheel(path: Path) -> tuple[dict, str]:
    """(METADATA as a header mapping with list values, entry_points.txt) of the wheel."""
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        entry_points = metadata.replace("METADATA", "entry_points.txt")
        message = Parser().parsestr(wheel.read(metadata).decode())
        points = wheel.read(entry_points).decode() if entry_points in names else ""
    headers: dict[str, list[str]] = {}
    for key, value in message.items():
        headers.setdefault(key, []).append(value)
    return headers, points


def requirement_set(requirements) -> set[str]:
    """Requirements in one canonical spelling (name, extras, sorted specifiers, marker)."""
    canonical = set()
    for text in requirements:
        req = Requirement(text)
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        specifier = ",".join(sorted(str(spec) for spec in req.specifier))
        marker = f"; {req.marker}" if req.marker else ""
        canonical.add(f"{canonicalize_name(req.name)}{extras}{specifier}{marker}")
    return canonical


def wheel_requirements(headers: dict) -> tuple[set[str], dict[str, set[str]]]:
    """(base requirements, requirements per extra) from Requires-Dist."""
    base: set[str] = set()
    extras: dict[str, set[str]] = {name: set() for name in headers.get("Provides-Extra", [])}
    for text in headers.get("Requires-Dist", []):
        req = Requirement(text)
        marker = str(req.marker) if req.marker else ""
        extra = re.search(r'extra == "([^"]+)"', marker)
        if extra is None:
            base |= requirement_set([text])
            continue
        rest = re.sub(r'\s*(and\s+)?extra == "[^"]+"', "", marker).strip()
        rest = re.sub(r"^\((.*)\)$", r"\1", rest)
        plain = str(Requirement(text)).split(";")[0] + (f"; {rest}" if rest else "")
        extras.setdefault(extra.group(1), set()).update(requirement_set([plain]))
    return base, extras


def pinned_versions(paths) -> dict[str, str]:
    """{package: version} of the ``name==version`` lines of the constraints files."""
    pins = {}
    for path in paths:
        for line in (REPO / path).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==")
                pins[canonicalize_name(name)] = version.strip()
    return pins


def problems(wheel: Path, pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    headers, entry_points = read_wheel(wheel)
    found: list[str] = []

    def expect(field: str, wanted: str) -> None:
        got = headers.get(field, ["<missing>"])[0]
        if got != wanted:
            found.append(f"{field} is {got!r}; pyproject.toml says {wanted!r}")

    expect("Name", project["name"])
    expect("Version", project["version"])
    expect("Requires-Python", project["requires-python"])
    base, extras = wheel_requirements(headers)
    if base != requirement_set(project["dependencies"]):
        found.append(f"base requirements {sorted(base)} differ from pyproject.toml's dependencies")
    wanted_extras = project["optional-dependencies"]
    if set(extras) != set(wanted_extras):
        found.append(f"extras {sorted(extras)}; pyproject.toml declares {sorted(wanted_extras)}")
    for name, requirements in wanted_extras.items():
        if name in extras and extras[name] != requirement_set(requirements):
            found.append(f"extra {name!r} requires {sorted(extras[name])} in the wheel")
        for text in requirements:
            if any(spec.operator in ("==", "===") for spec in Requirement(text).specifier):
                found.append(
                    f"extra {name!r} pins {text!r}: library extras take a tested range; put the "
                    "exact version into constraints/test.txt"
                )
    for script, target in project.get("scripts", {}).items():
        if f"{script} = {target}" not in entry_points:
            found.append(f"entry point {script} = {target} is missing")
    for group, points in project.get("entry-points", {}).items():
        for name, target in points.items():
            if f"[{group}]" not in entry_points or f"{name} = {target}" not in entry_points:
                found.append(f"entry point [{group}] {name} = {target} is missing")

    pins = pinned_versions(CONSTRAINTS)
    for name, requirements in wanted_extras.items():
        for text in requirements:
            req = Requirement(text)
            version = pins.get(canonicalize_name(req.name))
            if version is not None and version not in req.specifier:
                found.append(
                    f"constraints pin {req.name}=={version}, outside extra {name!r}'s {text!r}"
                )
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/check_wheel.py WHEEL", file=sys.stderr)
        return 2
    wheel = Path(argv[0])
    found = problems(wheel)
    for problem in found:
        print(f"{wheel.name}: {problem}")
    if not found:
        print(f"{wheel.name}: ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
