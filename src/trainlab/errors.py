"""The errors a run can end with, and what each means to the person who typed the command.

:mod:`trainlab.console` maps them to exit codes, the same way for every console script:

* :class:`ConfigError` (and ``FileNotFoundError``, :class:`DataFileError`): the command line, a
  setting or a file is unusable. One line naming the setting, the value and what is allowed; exit 2; nothing of
  the run written.
* :class:`RunInterrupted`: a signal stopped training after its state was saved; exit ``128 + signal``.
* :class:`RecipeCheckFailed` and :class:`DivergenceError`: the run worked and found a problem; exit 1.

Importing this module is cheap (no torch), so the checks that run before torch is imported can raise these.
"""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """One or more settings are invalid; the message has one line per setting."""


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class RecipeCheckFailed(RuntimeError):
    """A recipe check found a problem; its message says which and what to try."""


class RunInterrupted(Exception):
    """ctrl-C, SIGTERM or SIGUSR1 stopped training; its state is in ``checkpoint``."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted by signal {signum}; continue with: ckpt_path={checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


def one_line(text: object, limit: int = 600) -> str:
    """``text`` (a message, an exception) on one line: whitespace runs, newlines included, become one space."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def refusal(prog: str, message: object) -> str:
    """What a console script prints for a refused input: ``<prog>: <message>``, one line per problem.

    A :class:`ConfigError` with one problem (``invalid settings, nothing was run:`` and one indented line) is printed
    on one line (``<prog>: <problem>; nothing was run``); with several problems, one line each under the heading."""
    lines = [line for line in str(message).splitlines() if line.strip()]
    if len(lines) == 2 and lines[0].endswith("nothing was run:") and lines[1].startswith("  "):
        return f"{prog}: {lines[1].strip()}; nothing was run"
    return f"{prog}: " + "\n".join(lines)


class DataFileError(ValueError):
    """A data file exists but is not what it should be (truncated, another format, wrong shapes)."""
