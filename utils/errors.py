"""Expected errors: bad input a user can fix, reported by the commands as one message and exit status 2.

An *expected* error is one caused by what the user gave the command: a config file or ``--set`` override, a
command-line option, a data or label file, a checkpoint, an unsafe pickle, a full disk. Its message names the
file, record, key or option and what was expected. Every other exception is a bug and keeps its traceback.

Raise :class:`InputError` (or :class:`DataError` / :class:`CheckpointError` / :class:`ConfigKeyError`) for new
expected errors; the other project errors that are expected (``ConfigError``, ``UnsafePickleError``,
``CheckpointMismatchError``, ``DiskFullError``, ``NonFiniteLossError``) derive from :class:`InputError` too.
``FileNotFoundError`` (a path the user named does not exist) is expected as well.

Entry points wrap their ``main`` with :func:`command_main`::

    if __name__ == "__main__":
        command_main(main)

``--debug`` on the command line (or ``UNIHOPE_DEBUG=1`` in the environment, for the tools without that option)
shows the traceback of expected errors too.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

EXIT_BAD_INPUT = 2
DEBUG_FLAG = "--debug"
DEBUG_ENV = "UNIHOPE_DEBUG"


class InputError(Exception):
    """Bad input from the user (file, record, key, option); the message names it and what was expected."""


class DataError(InputError, ValueError):
    """A data, label or annotation file holds a value of the wrong type, range or shape."""


class MissingKeyError(DataError, KeyError):
    """A data or label file lacks a key, field or sample it must have."""


class ConfigKeyError(InputError, KeyError):
    """A config value names something that does not exist (a model, dataset, loss, optimizer, scheduler, block)."""


class CheckpointError(InputError, RuntimeError):
    """A checkpoint file cannot be used (unreadable, wrong layout, non-finite weights, incompatible resume)."""


EXPECTED_ERRORS = (InputError, FileNotFoundError)


def wants_traceback(argv: Sequence[str]) -> bool:
    """True when ``argv`` holds ``--debug`` / ``-d`` or the environment sets ``UNIHOPE_DEBUG=1``."""
    return DEBUG_FLAG in argv or "-d" in argv or os.environ.get(DEBUG_ENV) == "1"


def command_main(main: Callable, argv: Sequence[str] | None = None):
    """Run ``main(argv)``; an expected error prints ``error: <message>`` on stderr and exits with status 2.

    With ``--debug`` (see :func:`wants_traceback`) expected errors propagate with their traceback; unexpected
    errors always do.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(args)
    except EXPECTED_ERRORS as err:
        if wants_traceback(args):
            raise
        print(f"error: {describe(err)}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None


def describe(err: BaseException) -> str:
    """One-line text of an expected error (``KeyError`` quotes its message; that quoting is removed)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return str(text) or type(err).__name__
