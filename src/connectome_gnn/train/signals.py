"""Turn SIGTERM / SIGUSR1 / SIGINT into a polite stop request that the training loop polls.

SLURM sends SIGTERM at the time limit and on preemption (then SIGKILL after ``KillWait``,
30 s by default) and, with ``sbatch --signal=USR1@<seconds>``, SIGUSR1 ahead of the limit.  The
trainer checks :attr:`StopRequest.signum` between iterations, saves a checkpoint and stops, so a
retried job loses no work.  A second Ctrl-C while a stop is pending interrupts immediately.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


class StopRequest:
    """Context manager that records the first stop signal received while it is active."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
