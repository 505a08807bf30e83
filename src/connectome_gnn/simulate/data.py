"""The on-disk layout of one simulation and a reader for it.

A simulation directory holds::

    activity.zarr/      zarr group: u (frames x N, float32) and du (exact du/dt), chunked by
                        frames; with measurement noise u is noisy, u_clean is not, and du is
                        the finite difference of the noisy u (signal) or exact (FlyVis)
    connectivity.npz    W_true as COO: post, pre, weight (nonzeros) and n_neurons
    neurons.csv         one row per neuron: neuron, type, and the family's per-neuron parameters
    simulation.json     settings, model config, statistics, wall time
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import DataError, load_npz, open_zarr_array, read_json, read_zarr_array
from ..layout import ACTIVITY, CONNECTIVITY, NEURONS, SETTINGS  # noqa: F401 - re-exported
from ..layout import SIMULATION_PLOT as PLOT  # noqa: F401


class Simulation:
    """Read access to a simulation directory (lazy; arrays are read on demand)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path}: simulation directory not found")

    @cached_property
    def meta(self) -> dict:
        return read_json(self.path / SETTINGS)

    @property
    def family(self) -> str:
        return self.meta["family"]

    @property
    def model_cfg(self) -> dict:
        return self.meta["model_config"]

    @property
    def n_neurons(self) -> int:
        return int(self.meta["n_neurons"])

    @property
    def n_frames(self) -> int:
        return int(self.meta["n_frames"])

    @property
    def dt(self) -> float:
        return float(self.meta["dt"])

    @property
    def n_train_frames(self) -> int:
        """Frames available to training; the rest is held out for the rollout test."""
        return int(self.meta["n_train_frames"])

    @cached_property
    def neurons(self) -> pd.DataFrame:
        path = self.path / NEURONS
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        df = pd.read_csv(path)
        if len(df) != self.n_neurons or "type" not in df:
            raise DataError(f"{path}: expected {self.n_neurons} rows with a 'type' column")
        return df

    @property
    def types(self) -> np.ndarray:
        return self.neurons["type"].to_numpy(dtype=np.int64)

    @cached_property
    def connectivity(self) -> dict[str, np.ndarray]:
        data = load_npz(self.path / CONNECTIVITY, keys=("post", "pre", "weight"))
        return data

    def dense_W(self) -> np.ndarray:
        c = self.connectivity
        w = np.zeros((self.n_neurons, self.n_neurons), dtype=np.float32)
        w[c["post"], c["pre"]] = c["weight"]
        return w

    def _check_shape(self, name: str) -> None:
        arr = open_zarr_array(self.path / ACTIVITY, name)
        expected = (self.n_frames, self.n_neurons)
        if tuple(arr.shape) != expected:
            raise DataError(
                f"{self.path / ACTIVITY}: array {name!r} has shape {arr.shape}, expected {expected}"
            )

    @cached_property
    def has_input(self) -> bool:
        """Whether the simulation was driven by an external input x_i(t) (array ``x``)."""
        import zarr

        try:
            return "x" in zarr.open_group(str(self.path / ACTIVITY), mode="r")
        except Exception:
            return False

    def read_input(self, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        """Frames ``start:stop`` of the input x_i(t) (frames x N), or None without input."""
        return self.read("x", start, stop) if self.has_input else None

    def read_frames(self, name: str, frames, block: int = 4096) -> np.ndarray:
        """The given frames (sorted indices) of array ``name`` (len(frames) x N, float32), read
        ``block`` contiguous frames at a time: one read per block, not one per frame."""
        frames = np.asarray(frames, dtype=np.int64)
        if frames.size and np.any(np.diff(frames) < 0):
            raise ValueError("read_frames: frames must be sorted")
        blocks = frames // block
        parts = []
        for b in np.unique(blocks):
            sel = frames[blocks == b]
            parts.append(self.read(name, int(b * block), int(sel[-1]) + 1)[sel - b * block])
        if not parts:
            return np.zeros((0, self.n_neurons), dtype=np.float32)
        return np.concatenate(parts)

    def read(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` of array ``u`` or ``du`` as float32 (frames x N)."""
        self._check_shape(name)
        out = read_zarr_array(self.path / ACTIVITY, name, start, stop)
        if not np.all(np.isfinite(out)):
            raise DataError(f"{self.path / ACTIVITY}: array {name!r} holds non-finite values")
        return out.astype(np.float32, copy=False)
