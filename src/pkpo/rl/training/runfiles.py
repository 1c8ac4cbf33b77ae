"""The files of a run folder (:class:`RunFiles`), of a sweep folder (:class:`SweepFiles`), and the
one reader of a run's ``metrics.jsonl`` (:func:`read_metrics`).

::

    files = RunFiles("runs/train")
    files.metrics, files.final, files.checkpoint      # Path("runs/train/metrics.jsonl"), ...
    records = read_metrics(files.metrics)             # one dict per line; a torn last line dropped

Standard library only: the trainer, the run-folder rules, the sweep reports and the tools all
name a run's files through :class:`RunFiles` and read its log through :func:`read_metrics`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DamagedMetrics", "RunFiles", "SweepFiles", "read_metrics"]


@dataclass(frozen=True)
class RunFiles:
    """Every file of the run folder ``folder`` (``pkpo train --out``, ``TrainConfig.out_dir``)."""

    folder: Path

    METRICS = "metrics.jsonl"  # first record: the config; then one record per step and evaluation
    FINAL = "final.json"  # the final metrics (written last: its presence means the run finished)
    CHECKPOINT = "checkpoint.pt"  # model, optimizer, RNG states, data order (resume from it)
    EVAL_DETAIL = "eval_detail.json"  # per-problem counts of the final evaluation
    TENSORBOARD = "tb"  # TensorBoard events (a folder)
    LOCK = ".pkpo.lock"  # the folder's lock (pkpo.rl.training.rundir.RunLock)
    # what a run owns: what --overwrite deletes and what makes a folder "hold a run", in this order
    OWNED = (METRICS, CHECKPOINT, FINAL, TENSORBOARD)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    @property
    def metrics(self) -> Path:
        return self.folder / self.METRICS

    @property
    def final(self) -> Path:
        return self.folder / self.FINAL

    @property
    def checkpoint(self) -> Path:
        return self.folder / self.CHECKPOINT

    @property
    def eval_detail(self) -> Path:
        return self.folder / self.EVAL_DETAIL

    @property
    def tensorboard(self) -> Path:
        return self.folder / self.TENSORBOARD

    @property
    def lock(self) -> Path:
        return self.folder / self.LOCK


@dataclass(frozen=True)
class SweepFiles:
    """Every file of the sweep folder ``folder`` (``pkpo sweep`` / ``pkpo demo --out``); its runs
    are run folders ``runs/<label>/seed<s>/`` (:meth:`run`)."""

    folder: Path

    REPORT = "report.md"  # table, findings, figures
    SUMMARY = "summary.json"  # pkpo demo: one entry per run
    TABLE_MD = "table.md"
    TABLE_JSON = "table.json"  # the table's rows and the findings
    WALL = "wall.json"  # the wall time measured when the runs were trained
    RUNS = "runs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    def run(self, label: str, seed: int) -> RunFiles:
        """The run folder of run ``label`` and ``seed``."""
        return RunFiles(self.folder / self.RUNS / label / f"seed{seed}")

    def finals(self) -> list[Path]:
        """The final.json of every finished run, sorted."""
        return sorted(self.folder.glob(f"{self.RUNS}/*/seed*/{RunFiles.FINAL}"))

    @property
    def report(self) -> Path:
        return self.folder / self.REPORT

    @property
    def summary(self) -> Path:
        return self.folder / self.SUMMARY

    @property
    def table_md(self) -> Path:
        return self.folder / self.TABLE_MD

    @property
    def table_json(self) -> Path:
        return self.folder / self.TABLE_JSON

    @property
    def wall(self) -> Path:
        return self.folder / self.WALL

    @property
    def runs(self) -> Path:
        return self.folder / self.RUNS


class DamagedMetrics(ValueError):
    """A line of ``metrics.jsonl`` before the last one that is not a record: the file is damaged."""


def _record(line: str) -> dict:
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError(f"a JSON {type(record).__name__}, not an object")
    return record


def read_metrics(path, *, tail_bytes: int | None = None, note: str = "") -> list[dict]:
    """The records of a ``metrics.jsonl`` (``[]`` if there is no such file), in order.

    A last line that is not a JSON object is what a write cut short leaves (a kill, a full disk):
    it is dropped; with ``note`` a line on stderr names the file, the line and ``note``. A bad line
    before the last one is damage, not an interrupted write: :class:`DamagedMetrics` (a ValueError)
    names the file and the line.

    Args:
        path: the file.
        tail_bytes: read only the last this many bytes (a progress bar polling a long log); the
            first line read, which may start mid-record, is skipped if it does not parse.
        note: what happens to a dropped last line, for the note on stderr (empty: no note).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            if tail_bytes is not None:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - tail_bytes))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last record
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(_record(line))
        except (ValueError, RecursionError) as error:
            if tail_bytes is not None and number == 1:
                continue  # the read began inside a record
            if number == len(lines):
                if note:
                    print(
                        f"pkpo: note: dropped line {number} of {str(path)!r}, cut short by an "
                        f"interrupted write; {note}",
                        file=sys.stderr,
                    )
                break
            why = " ".join(str(error).split()) or type(error).__name__
            why = why if len(why) <= 120 else why[:117] + "..."
            raise DamagedMetrics(
                f"{str(path)!r} line {number} is not a metrics record ({why}); the file is damaged"
            ) from None
    return records
