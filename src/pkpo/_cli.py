"""Helpers shared by the ``pkpo`` subcommands: one-line errors, strict flag types, optional extras.

Every subcommand reports a bad argument as one line, ``pkpo <cmd>: error: <message>``, on stderr
and returns exit status 2. The argument types below raise ``argparse.ArgumentTypeError`` with a
message that names the constraint and the value received; :class:`Parser` turns any parser error
into a :class:`UsageError` instead of printing the usage and exiting.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys

__all__ = [
    "EXTRAS",
    "Parser",
    "UsageError",
    "fail",
    "k_list",
    "missing_extra",
    "non_negative_int",
    "plain_text",
    "positive_int",
    "strict_bool",
]


class UsageError(ValueError):
    """A bad command-line argument; the message is printed as one line."""


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :func:`pkpo.transform` -> pkpo.transform
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")  # ``x`` or `x` -> x


def plain_text(text: str) -> str:
    """``text`` without reStructuredText markup: roles and backquotes are dropped, the words kept.

    Docstrings and field help are written in reStructuredText for the API docs; a terminal shows
    them through this function.

    Examples:
        >>> plain_text("task name (``pkpo.rl.tasks.TASKS``), see :func:`~pkpo.schedules.from_spec`")
        'task name (pkpo.rl.tasks.TASKS), see pkpo.schedules.from_spec'
    """
    text = _ROLE.sub(lambda m: m.group(1), text)
    return _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (no usage dump, no SystemExit) and
    whose help is plain text (:func:`plain_text`), for every ``pkpo`` command."""

    def error(self, message):
        raise UsageError(message)

    def format_help(self) -> str:
        return plain_text(super().format_help())


def fail(prog: str, message) -> int:
    """Print ``<prog>: error: <message>`` as one line on stderr and return exit status 2."""
    text = " ".join(str(message).split())  # a multi-line message from a library becomes one line
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2


# --- argument types ---------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def strict_bool(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no, on/off, any case); anything else is an error."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(
        f"expected true or false (or 1/0, yes/no, on/off); got {text!r}"
    )


def _integer(text: str, low: int, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}; got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _integer(text, 0, "an integer >= 0")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _integer(text, 1, "an integer >= 1")


def k_list(text: str) -> list[int]:
    """Values of k as one comma-separated argument, e.g. ``1,2,4,8``: sorted, duplicates dropped.

    The one spelling of a list of k in every ``pkpo`` command (``eval --k``, ``train --eval-ks``).
    """
    ks = []
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or int(part) < 1:
            raise argparse.ArgumentTypeError(
                f"expected positive integers separated by commas, like 1,2,4; got {text!r}"
            )
        ks.append(int(part))
    return sorted(set(ks))


# --- optional dependencies --------------------------------------------------------------------

# import name -> the pkpo extra that installs it
EXTRAS = {
    "torch": "rl",
    "tqdm": "rl",
    "matplotlib": "plot",
    "scipy": "toy",
    "jax": "jax",
    "tomli": "rl",
}


def missing_extra(modules, extra: str | None = None) -> str | None:
    """A sentence naming those of ``modules`` that are not installed and the extra to install.

    ``extra`` names the pkpo extra that brings them all; by default it is looked up per module
    in :data:`EXTRAS`. Uses ``importlib.util.find_spec``, so nothing is imported. Returns None when
    all are present.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    spec = extra or ",".join(sorted({EXTRAS.get(name, name) for name in missing}))
    return (
        f"this command needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
        f"not installed; install it with: {install_hint(spec)}"
    )


def install_hint(extras: str) -> str:
    """The pip command that installs pkpo's ``extras``: from a checkout (pkpo is not on PyPI
    yet)."""
    return f"pip install -e '.[{extras}]' in the pkpo checkout ('pkpo[{extras}]' once on PyPI)"
