"""The activity store of a simulation: frames written into a zarr group chunk by chunk.

:class:`ChunkedFrameWriter` is the one writer of ``activity.zarr`` (see :mod:`.data`) for every
simulator; :class:`ActivityMoments` the global statistics of the state that it can collect.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np


class FrameStatistics(Protocol):
    """Streaming statistics of the (clean) state: ``add`` sees every block once, in order."""

    def add(self, start: int, block: np.ndarray) -> None: ...

    def summary(self) -> dict: ...


class ActivityMoments:
    """Mean, standard deviation and largest |u| of the state over all frames and neurons."""

    def __init__(self) -> None:
        self.total, self.total_sq, self.max_abs, self.count = 0.0, 0.0, 0.0, 0

    def add(self, start: int, block: np.ndarray) -> None:
        self.total += float(block.sum(dtype=np.float64))
        self.total_sq += float((block.astype(np.float64) ** 2).sum())
        self.max_abs = max(self.max_abs, float(np.abs(block).max()))
        self.count += block.size

    def summary(self) -> dict:
        mean = self.total / self.count
        return {
            "activity_mean": mean,
            "activity_std": float(np.sqrt(max(self.total_sq / self.count - mean**2, 0.0))),
            "activity_max_abs": self.max_abs,
        }


class ChunkedFrameWriter:
    """Writes the frames of one simulation into the zarr group ``store``, one chunk at a time.

    Every array is ``n_frames x width`` float32, chunked by ``chunk_frames`` frames (clamped to
    [1, n_frames]); ``widths`` maps the array names to their widths (``u`` first).  Each
    :meth:`append` takes the next rows of every array: the state block ``u`` must be finite (else
    FloatingPointError: "<label> diverged before frame k") and is fed to ``stats`` before it is
    saved.  With ``measurement_noise`` > 0 the saved ``u`` gets Gaussian noise of that std (seeded
    by ``noise_seed``) and the clean state goes to one more array, ``u_clean``.

    The compression and disk writes of a chunk run on a background thread while the caller
    computes the next one (one chunk in flight), so a block must not be modified once appended.
    Use it as a context manager; leaving it waits for the last writes, then :meth:`summary`
    gives the statistics and the wall time.
    """

    def __init__(
        self,
        store: str | Path,
        n_frames: int,
        chunk_frames: int,
        widths: dict[str, int],
        stats: FrameStatistics,
        *,
        label: str = "simulation",
        measurement_noise: float = 0.0,
        noise_seed: int | None = None,
    ):
        import zarr

        self.n_frames = int(n_frames)
        self.chunk_frames = max(1, min(int(chunk_frames), self.n_frames))
        self.noise = float(measurement_noise)
        self._rng = np.random.default_rng(noise_seed) if self.noise > 0 else None
        if self.noise > 0:
            widths = {**widths, "u_clean": widths["u"]}
        self.group = zarr.open_group(str(store), mode="w")
        self.arrays = {
            name: self.group.create_array(
                name,
                shape=(self.n_frames, width),
                chunks=(self.chunk_frames, width),
                dtype="float32",
            )
            for name, width in widths.items()
        }
        self.stats = stats
        self.label = label
        self.frame = 0
        self.elapsed: float | None = None
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: Future | None = None
        self._t0 = time.perf_counter()

    def __enter__(self) -> ChunkedFrameWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._pool.shutdown(wait=True)

    def append(self, u: np.ndarray, **blocks: np.ndarray) -> None:
        """Queue the next ``len(u)`` frames: the state ``u`` and one block per other array."""
        end = self.frame + len(u)
        if not np.all(np.isfinite(u)):
            raise FloatingPointError(f"{self.label} diverged before frame {end}")
        self.stats.add(self.frame, u)
        if self._rng is not None:
            blocks["u_clean"] = u
            u = u + (self.noise * self._rng.standard_normal(u.shape)).astype(np.float32)
        blocks["u"] = u
        self._wait()
        self._pending = self._pool.submit(self._write, slice(self.frame, end), blocks)
        self.frame = end

    def close(self) -> None:
        """Wait for the last writes (re-raising their error) and stop the clock."""
        self._wait()
        self._pool.shutdown(wait=True)
        if self.elapsed is None:
            self.elapsed = time.perf_counter() - self._t0

    def summary(self, burn_in: int = 0) -> dict:
        """``stats.summary()``, the wall time and the steps per second (burn-in included)."""
        if self.elapsed is None:
            self.close()
        return {
            **self.stats.summary(),
            "wall_time_s": self.elapsed,
            "frames_per_s": (self.n_frames + burn_in) / max(self.elapsed, 1e-9),
        }

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _write(self, rows: slice, blocks: dict[str, np.ndarray]) -> None:
        for name, block in blocks.items():
            self.arrays[name][rows] = block
