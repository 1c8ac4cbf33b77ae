"""Run folders that lose nothing: refuse to clobber a run, lock the folder, point at the checkpoint.

A run folder (``pkpo train --out DIR``, ``TrainConfig.out_dir``) holds one run: ``metrics.jsonl``,
``checkpoint.pt``, ``final.json`` and ``tb/``. The rules:

- a new start into a folder that already holds a run is refused, unless the caller asks to
  continue it (``resume``, which needs its checkpoint) or to replace it (``overwrite``, which
  deletes those run files and nothing else);
- while a process works in a folder it holds an exclusive lock on ``DIR/.pkpo.lock``; a second
  process that wants the same folder is refused at once, naming the holder. The lock is an
  ``fcntl.flock`` (``msvcrt.locking`` on Windows), so the system releases it when the holder
  exits, also when it is killed: a crashed run leaves no stale lock;
- a sweep folder (``pkpo sweep`` / ``pkpo demo --out DIR``) is locked as a whole, and each of its
  runs in ``DIR/runs/<name>/seed<s>/`` as above;
- the lock file is pkpo's own: a symbolic link or a hard link at ``DIR/.pkpo.lock`` is refused,
  never written through; temporary files left by a write that was killed
  (``checkpoint.pt.tmp<pid>``) are deleted once the lock is held.

Every refusal is a :class:`RunDirError` (a ValueError) whose message says what is in the folder and
how to go on.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path

from .runfiles import RunFiles, read_metrics

__all__ = [
    "LOCK_NAME",
    "RUN_FILES",
    "RunDirError",
    "RunLock",
    "check_run",
    "checkpoint_note",
    "clear_run",
    "existing_run",
    "open_run",
    "prepare_folder",
    "recorded_config",
    "remove_stale_temporaries",
]

RUN_FILES = RunFiles.OWNED  # metrics.jsonl, checkpoint.pt, final.json, tb
LOCK_NAME = RunFiles.LOCK


class RunDirError(ValueError):
    """A run folder cannot be used as asked; the message says why and how to go on."""


def prepare_folder(folder, what: str = "--out") -> Path:
    """Create ``folder`` (and parents) if needed; check it is a writable folder.

    Raises:
        RunDirError: it exists and is not a folder, cannot be created, or is not writable.
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{what} {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise RunDirError(f"cannot create the {what} folder {str(path)!r}: {reason}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunDirError(f"the {what} folder {str(path)!r} is not writable")
    return path


def existing_run(folder) -> list[str]:
    """The run files present in ``folder`` (a subset of :data:`RUN_FILES`, in that order)."""
    path = Path(folder)
    return [name for name in RUN_FILES if (path / name).exists()]


def describe_run(folder) -> str:
    """'metrics.jsonl (104 records), checkpoint.pt (saved 2025-06-01 12:00), final.json'."""
    path = Path(folder)
    parts = []
    for name in existing_run(path):
        if name == RunFiles.METRICS:
            with open(path / name, "rb") as handle:
                records = sum(1 for line in handle if line.strip())
            parts.append(f"{name} ({records} records)")
        elif name == RunFiles.CHECKPOINT:
            parts.append(f"{name} (saved {_mtime(path / name)})")
        else:
            parts.append(name)
    return ", ".join(parts)


def clear_run(folder) -> list[str]:
    """Delete the run files of ``folder`` (and checkpoint temp files); other files stay."""
    path = Path(folder)
    removed = existing_run(path)
    for name in removed:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    for leftover in path.glob(f"{RunFiles.CHECKPOINT}.tmp*"):
        leftover.unlink()
    return removed


_TEMPORARY = re.compile(r".+\.tmp\d+")  # pkpo._output.atomic_write's "<name>.tmp<pid>"


def remove_stale_temporaries(folder) -> list[str]:
    """Delete the temporary files an interrupted write left in ``folder``
    (``checkpoint.pt.tmp4711``).

    Call it only while holding the folder's lock: then no other pkpo process is writing there, so
    every such file is a leftover of a process that was killed mid-write.
    """
    removed = []
    for entry in Path(folder).iterdir():
        if _TEMPORARY.fullmatch(entry.name) and (entry.is_symlink() or entry.is_file()):
            entry.unlink()
            removed.append(entry.name)
    return sorted(removed)


def open_run(folder, *, resume: bool = False, overwrite: bool = False) -> RunLock:
    """Lock ``folder`` for one run, after checking that starting (or resuming) there loses nothing.

    - ``resume``: the folder must hold ``checkpoint.pt``;
    - ``overwrite``: the run files of an earlier run are deleted (other files are kept);
    - neither: the folder must not hold a run.

    The folder is created if needed (not for ``resume``). The checks that decide what to delete run
    under the lock, so a run in progress is never cleared by another process.

    Returns:
        The held :class:`RunLock`; release it (or leave its ``with`` block) when the run ends.

    Raises:
        RunDirError: naming what the folder holds and the option that would go on.
    """
    path = check_run(folder, resume=resume, overwrite=overwrite, lock=False)
    lock = RunLock(path)
    try:
        remove_stale_temporaries(path)
        present = existing_run(path)
        if resume:
            _check_resumable(path)
        elif present and not overwrite:
            check_run(path, lock=False)  # raises: the run appeared after the first check
        elif present:
            clear_run(path)
    except BaseException:
        lock.release()
        raise
    return lock


def check_run(folder, *, resume: bool = False, overwrite: bool = False, lock: bool = True) -> Path:
    """The checks of :func:`open_run`, made up front (before a long warm start, say); deletes
    nothing.

    Creates the folder (unless ``resume``) and, with ``lock=True``, takes and releases its lock, so
    that a folder in use is reported now rather than when the run starts.
    """
    if resume and overwrite:
        raise RunDirError(
            "--resume and --overwrite exclude each other: continue the run or replace it, not both"
        )
    path = Path(folder)
    if resume:
        _check_resumable(path)
    prepare_folder(path)
    if lock:
        RunLock(path).release()
    if not resume and not overwrite and existing_run(path):
        raise RunDirError(
            f"{str(path)!r} already holds a run ({describe_run(path)}); continue it with --resume "
            "(resume=True), replace it with --overwrite (overwrite=True), or choose another folder"
        )
    return path


def _check_resumable(path: Path) -> None:
    if RunFiles(path).checkpoint.is_file():
        return
    if path.is_dir() and existing_run(path):
        held = f"it holds {describe_run(path)}"
    else:
        held = "the folder does not exist" if not path.exists() else "it holds no run"
    raise RunDirError(
        f"nothing to resume in {str(path)!r}: there is no checkpoint.pt ({held}); start a new run "
        "without --resume (resume=False), adding --overwrite (overwrite=True) to replace what is "
        "there"
    )


def recorded_config(folder) -> dict | None:
    """The config a run folder was started with (first record of metrics.jsonl, else final.json)."""
    path = Path(folder)
    try:
        records = read_metrics(RunFiles(path).metrics)
        if records and isinstance(records[0].get("config"), dict):
            return records[0]["config"]
    except (OSError, ValueError):
        pass
    try:
        final = json.loads(RunFiles(path).final.read_text(encoding="utf-8"))
        return final.get("config") if isinstance(final, dict) else None
    except (OSError, ValueError):
        return None


def checkpoint_note(folder) -> str:
    """Where the last checkpoint of ``folder`` is, for the message after an interruption."""
    path = RunFiles(folder).checkpoint
    if path.exists():
        return f"the last checkpoint is {str(path)!r} (saved {_mtime(path)})"
    return f"no checkpoint was written yet in {str(Path(folder))!r}"


def _mtime(path: Path) -> str:
    return _dt.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")


# --- the lock ----------------------------------------------------------------------------------


class RunLock:
    """An exclusive, non-blocking lock on ``folder/.pkpo.lock``, held until :meth:`release`.

    Use as a context manager. The lock file records the holder (pid, command, start time) so that
    a refused process can name it. The file is left in place after release: deleting it could let
    two processes lock two different files of the same name.

    Raises:
        RunDirError: another process (or another open lock in this process) holds the folder.
    """

    _handle = None

    def __init__(self, folder, what: str = "run"):
        self.folder = prepare_folder(folder)
        self.path = self.folder / LOCK_NAME
        self._handle = _open_lock_file(self.path)
        try:
            _lock(self._handle)
        except OSError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "another process"
            self._handle.close()
            self._handle = None
            raise RunDirError(
                f"{str(self.folder)!r} is in use by {holder}; wait for it to finish or use another "
                "folder"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        launcher = Path(sys.argv[0] if sys.argv and sys.argv[0] else "python")
        is_pkpo = launcher.name == "pkpo" or (
            launcher.name == "__main__.py" and launcher.parent.name == "pkpo"
        )
        command = " ".join(["pkpo", *sys.argv[1:]]) if is_pkpo else what
        started = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        self._handle.write(f"pid {os.getpid()} ({command}, since {started})\n")
        self._handle.flush()

    def release(self) -> None:
        if self._handle is not None:
            try:
                self._handle.seek(0)
                self._handle.truncate()
                _unlock(self._handle)
            finally:
                self._handle.close()
                self._handle = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        self.release()


def _open_lock_file(path: Path):
    """``path`` opened for reading and writing, created if missing, never through a link.

    The lock file is truncated and rewritten, so it must be pkpo's own: a symbolic link (which
    would truncate its target) or a file with other hard links is refused, not followed.
    """
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        if path.is_symlink():
            raise RunDirError(
                f"{str(path)!r} is a symbolic link; pkpo does not write through links: remove it"
            ) from None
        raise RunDirError(
            f"cannot open the lock file {str(path)!r}: {error.strerror or error}"
        ) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(info.st_mode) else "has other hard links"
        raise RunDirError(f"the lock file {str(path)!r} {what}; pkpo would overwrite it: remove it")
    return os.fdopen(fd, "r+", encoding="utf-8")


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
