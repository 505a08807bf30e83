"""Progress of long loops, readable both on a terminal and in a log file.

On a terminal :func:`progress_bar` is a tqdm bar.  Anywhere else (a Snakemake or SLURM log) a
carriage-return bar would be one endless line, so :class:`LineProgress` writes one line every
``every_s`` seconds instead::

    train: 1200/25000 (4.8 %), loss 0.0123, 12 s elapsed, ~4.1 min left

:func:`summary_line` is the one-line closing summary that every stage writes to its log.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

__all__ = ["LineProgress", "log_summary", "progress_bar", "summary_line"]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def summary_line(stage: str, fields: Mapping[str, Any]) -> str:
    """``"<stage> summary: key value, key value, ..."`` (floats to 4 significant digits)."""
    return f"{stage} summary: " + ", ".join(f"{k} {_value(v)}" for k, v in fields.items())


def log_summary(stage: str, fields: Mapping[str, Any]) -> None:
    """Write the :func:`summary_line` of a stage to stderr (the job's log)."""
    print(summary_line(stage, fields), file=sys.stderr, flush=True)


class LineProgress:
    """The part of tqdm's interface the trainer uses (update, set_postfix, close), writing a
    line per ``every_s`` seconds (and one at the end) instead of redrawing a bar."""

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "progress",
        file: IO[str] | None = None,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.n, self.desc = int(total), int(initial), desc
        self.file = file if file is not None else sys.stderr
        self.every_s, self.clock = float(every_s), clock
        self.start_n = self.written_n = self.n
        self.t0 = self.last = clock()
        self.postfix: dict[str, Any] = {}
        self.closed = False

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.postfix = dict(values)

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if self.clock() - self.last >= self.every_s:
            self.write()

    def line(self) -> str:
        elapsed = self.clock() - self.t0
        parts = [f"{self.n}/{self.total}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.1f} %)"
        parts += [f"{k} {_value(v)}" for k, v in self.postfix.items()]
        parts.append(f"{_duration(elapsed)} elapsed")
        done = self.n - self.start_n
        if done > 0 and self.n < self.total:
            parts.append(f"~{_duration(elapsed / done * (self.total - self.n))} left")
        return f"{self.desc}: " + ", ".join(parts)

    def write(self) -> None:
        print(self.line(), file=self.file, flush=True)
        self.last, self.written_n = self.clock(), self.n

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n != self.written_n or self.n == self.start_n:
                self.write()


class _Silent:
    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(
    total: int,
    initial: int = 0,
    desc: str = "progress",
    disable: bool = False,
    file: IO[str] | None = None,
    every_s: float = 30.0,
):
    """A tqdm bar on a terminal, a :class:`LineProgress` elsewhere, nothing when disabled."""
    file = file if file is not None else sys.stderr
    if disable:
        return _Silent()
    if getattr(file, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, file=file, mininterval=0.5)
    return LineProgress(total, initial, desc, file, every_s)
