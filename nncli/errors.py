"""Errors nncli reports to users, and the exit codes they map to.

The library raises these; only the CLI turns them into one line on stderr and an exit
code. Every message should name the file, the key path (``train.lr``) or the CSV row and
column, and say what to do.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the job ran and failed: diverged, gradcheck mismatch
EXIT_USAGE = 2  # bad usage, config or data
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM


class NncliError(Exception):
    """Base of every error nncli reports as one line."""

    exit_code = EXIT_USAGE


class ConfigError(NncliError):
    """The YAML config (or a --set override) is invalid."""


class DataError(NncliError):
    """A CSV file or its contents cannot be used."""


class RunError(NncliError):
    """A run directory is missing, incomplete or corrupt."""


class OutputError(NncliError):
    """A result cannot be written: stdout or an output file (a full disk, a read-only file system)."""


class JobFailed(NncliError):
    """The job ran and failed (training diverged, gradients disagree)."""

    exit_code = EXIT_FAILED


class Interrupted(NncliError):
    """The job was interrupted by SIGINT or SIGTERM."""

    exit_code = EXIT_INTERRUPTED


def did_you_mean(word: str, choices) -> str:
    """' did you mean 'x'?' for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
