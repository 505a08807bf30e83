"""The exceptions every stage raises for known problems, in one module below all stages.

- :class:`ConfigError`: a configuration file or value is invalid (the message names the file and
  the field);
- :class:`DataError`: an input data file is missing, truncated or malformed (names the file);
- :class:`Interrupted`: a job stopped on a signal after saving its state (exit code 128 + signal).

``connectome_gnn.workflow.run_logged`` turns the first two into a one-line error and the third
into the exit status a scheduler retries.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and field."""


class DataError(ValueError):
    """An input data file is missing, truncated or malformed; the message names the file."""


class Interrupted(RuntimeError):
    """A job stopped on a signal (time limit, preemption, Ctrl-C) after saving its state.

    ``exit_code`` is the conventional 128 + signal number, so schedulers and Snakemake see a
    failed job and retry it; the retry resumes from the saved state.
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + int(signum)


__all__ = ["ConfigError", "DataError", "Interrupted"]
