"""How pkpo writes results: markdown tables, JSON, and files that are replaced whole or not at all.

Every file pkpo writes goes through :func:`atomic_write`, which never writes through a symbolic
link: a link planted where an output or its temporary file will go is refused or replaced, never
followed, so no file outside the output folder is ever changed. The command-line front ends check
each output path once with :func:`check_output_path` before any work starts (an existing file
needs ``--overwrite``; an output that is also an input is refused). JSON goes through
:func:`write_json` (a file) or :func:`json_text` (a line of a log): strict JSON, with NaN and
infinities written as ``null``, so that ``jq``, JavaScript and ``json.loads`` with a strict
``parse_constant`` read every file pkpo writes.

Standard library only, so every front end (``pkpo eval``, ``pkpo bench``, the toy study, the RL
reports) can use it without importing anything heavy.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "OutputPathError",
    "atomic_write",
    "check_output_path",
    "json_text",
    "markdown_table",
    "replace_blocks",
    "rewrite_blocks",
    "write_json",
]


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence], align: str | None = None
) -> str:
    """A markdown table of ``rows`` under ``header``; cells are formatted with ``str``.

    Args:
        header: the column titles.
        rows: one sequence of cells per row, as many as titles.
        align: None for compact cells and ``---`` rules; or one letter per column, "l" or "r",
            for cells padded to the column's width and a rule that says the alignment.

    Examples:
        >>> print(markdown_table(["k", "pass@k"], [[1, "0.25"], [16, "0.75"]]))
        | k | pass@k |
        |---|---|
        | 1 | 0.25 |
        | 16 | 0.75 |
        >>> print(markdown_table(["k", "pass@k"], [[1, "0.25"], [16, "0.75"]], align="rl"))
        |  k | pass@k |
        |---:|:-------|
        |  1 | 0.25   |
        | 16 | 0.75   |
    """
    lines = [[str(cell) for cell in line] for line in [header, *rows]]
    if align is None:
        rows_text = ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join([rows_text[0], "|" + "---|" * len(header), *rows_text[1:]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = [letter == "r" for letter in align]

    def line(cells):
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|".join(
        "-" * (w + 1) + ":" if r else ":" + "-" * (w + 1) for w, r in zip(widths, right)
    )
    rule = f"|{rule}|"
    return "\n".join([line(lines[0]), rule] + [line(cells) for cells in lines[1:]])


def replace_blocks(text: str, blocks: dict[str, str], where: str, names: str = r"[\w-]+") -> str:
    """Replace each ``<!-- generated:NAME -->...<!-- /generated:NAME -->`` whose NAME matches the
    regular expression ``names`` (default: every block) by ``blocks[NAME]``; blocks of other names
    are left as they are. A matching marker without a block, or a block without a marker, is an
    error."""
    pattern = re.compile(rf"(<!-- generated:({names}) -->\n)(.*?)(<!-- /generated:\2 -->)", re.S)
    found = set()

    def sub(m):
        name = m.group(2)
        if name not in blocks:
            raise ValueError(f"{where}: no generated block named {name!r}")
        found.add(name)
        return m.group(1) + blocks[name].rstrip("\n") + "\n" + m.group(4)

    out = pattern.sub(sub, text)
    missing = [n for n in blocks if n not in found]
    if missing:
        raise ValueError(f"{where}: no marker for the blocks {missing}")
    return out


def rewrite_blocks(path, blocks: dict[str, str], names: str = r"[\w-]+") -> None:
    """Replace the generated blocks of the file ``path`` (:func:`replace_blocks`) and write it
    back whole (:func:`atomic_write`); an error leaves the file as it was."""
    path = Path(path)
    atomic_write(path, replace_blocks(path.read_text(), blocks, str(path), names))


class OutputPathError(ValueError):
    """An output path that pkpo refuses to write; the message is one line naming the path."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or cannot be read): not the same file
        return False


def check_output_path(
    path, *, overwrite: bool = False, inputs: Iterable = (), what: str = ""
) -> Path:
    """The output ``path`` as a Path, once it is safe to write there; else :class:`OutputPathError`.

    Refused: a symbolic link; a path that is one of ``inputs`` (the same file, also by a hard
    link); a folder; a path whose folder does not exist (pkpo does not create folders for a single
    output file); an existing file unless ``overwrite``.

    Args:
        path: the output file.
        overwrite: whether an existing file may be replaced.
        inputs: paths the command reads (``-`` for stdin is ignored).
        what: how the message names the output, e.g. ``"--json"``; default the path alone.
    """
    path = Path(path)
    name = f"{what} {str(path)!r}" if what else repr(str(path))
    if path.is_symlink():
        raise OutputPathError(f"{name} is a symbolic link; pkpo does not write through links.")
    for source in inputs:
        if str(source) != "-" and _same_file(path, Path(source)):
            raise OutputPathError(
                f"{name} is also an input ({source}); choose another output file."
            )
    if path.is_dir():
        raise OutputPathError(f"{name} is a folder; give a file name.")
    parent = path.parent
    if not parent.is_dir():
        raise OutputPathError(f"{name}: the folder {str(parent)!r} does not exist.")
    if path.exists() and not overwrite:
        raise OutputPathError(f"{name} exists; pass --overwrite to replace it.")
    return path


def _create_exclusive(path: Path):
    """A new file at ``path`` opened for binary writing; never follows a link at ``path``.

    O_EXCL | O_NOFOLLOW: a file or link already at ``path`` (a temporary file left by a crash, or
    one planted there) makes the open fail instead of being written through. Such a leftover is
    removed (unlinking a link does not touch its target) and the open is tried once more.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, flags, 0o666)
    return os.fdopen(fd, "wb")


def atomic_write(path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that a reader finds the old file or the new one, never a part.

    The data goes to a temporary file beside ``path`` (``<name>.tmp<pid>``, created exclusively,
    never through a link), reaches the disk (fsync), and then replaces ``path`` in one
    ``os.replace``; on any error the temporary file is removed. Text is written as UTF-8.

    Raises:
        OSError: (errno ELOOP) ``path`` is a symbolic link: pkpo never writes through one. Also
            the usual OSErrors of a full disk or a missing folder.
    """
    path = Path(path)
    if path.is_symlink():
        raise OSError(errno.ELOOP, "refusing to write through a symbolic link", str(path))
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with _create_exclusive(tmp) as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # replaces a link swapped in meanwhile; never writes through it
    except BaseException:
        try:
            if tmp.is_symlink() or tmp.is_file():
                tmp.unlink()
        except OSError:
            pass
        raise


def _finite_or_none(value):
    """``value`` with every NaN or infinite float (also inside lists, tuples and dicts) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def json_text(value, *, indent: int | None = None) -> str:
    """``value`` as strict JSON text: NaN, inf and -inf become ``null`` (no bare ``NaN`` token).

    Examples:
        >>> json_text({"pass@1": 0.5, "se": float("nan"), "ks": (1, 2)})
        '{"pass@1": 0.5, "se": null, "ks": [1, 2]}'
    """
    return json.dumps(_finite_or_none(value), indent=indent, allow_nan=False)


def write_json(path, value, *, indent: int | None = None) -> None:
    """Write ``value`` to ``path`` as strict JSON (:func:`json_text`) ending in a newline, through
    :func:`atomic_write`: a reader finds the old file or the new one, never a part."""
    atomic_write(path, json_text(value, indent=indent) + "\n")
