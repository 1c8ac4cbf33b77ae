"""How pkpo writes results: markdown tables, and files that are replaced whole or not at all.

Standard library only, so every front end (``pkpo eval``, ``pkpo bench``, the toy study, the RL
reports) can use it without importing anything heavy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["atomic_write", "markdown_table"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> str:
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

    rule = "|".join("-" * (w + 1) + ":" if r else ":" + "-" * (w + 1) for w, r in zip(widths, right))
    rule = f"|{rule}|"
    return "\n".join([line(lines[0]), rule] + [line(cells) for cells in lines[1:]])


def atomic_write(path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that a reader finds the old file or the new one, never a part.

    The data goes to a temporary file beside ``path``, reaches the disk (fsync), and then
    replaces ``path`` in one ``os.replace``; on any error the temporary file is removed. Text
    is written as UTF-8.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    text = isinstance(data, str)
    try:
        with open(tmp, "w" if text else "wb", encoding="utf-8" if text else None) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
