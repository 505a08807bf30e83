"""Ground-truth connectivity matrices W[post, pre] (row = postsynaptic neuron)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import DataError


def lorentz_exponent(n_neurons: int) -> float:
    """The reference's N-dependent scaling exponent for Cauchy ('Lorentz') weights."""
    if n_neurons < 2000:
        return 0.7
    if n_neurons < 4000:
        return 0.675
    if n_neurons < 8000:
        return 0.67
    if n_neurons == 8000:
        return 0.66
    return 0.5


def random_connectivity(
    n_neurons: int, kind: str, filling_factor: float, rng: np.random.Generator
) -> np.ndarray:
    """Random W (float32, zero diagonal), keeping each off-diagonal entry with prob. ``filling_factor``.

    ``Lorentz``: standard Cauchy entries, |x| > 25 set to 0, scaled by N^-lorentz_exponent(N).
    ``Gaussian``: randn / sqrt(N).
    """
    if not 0 < filling_factor <= 1:
        raise ValueError(f"filling factor must be in (0, 1], got {filling_factor}")
    n = int(n_neurons)
    if kind == "Lorentz":
        w = rng.standard_cauchy((n, n))
        w[np.abs(w) > 25] = 0.0
        w /= n ** lorentz_exponent(n)
    elif kind == "Gaussian":
        w = rng.standard_normal((n, n)) / np.sqrt(n)
    else:
        raise ValueError(f"unknown connectivity kind {kind!r}")
    if filling_factor < 1:
        w[rng.random((n, n)) >= filling_factor] = 0.0
    np.fill_diagonal(w, 0.0)
    return w.astype(np.float32)


def _check_matrix(w: np.ndarray, n_neurons: int, path: Path) -> np.ndarray:
    if w.ndim != 2 or w.shape != (n_neurons, n_neurons):
        raise DataError(
            f"{path}: connectivity has shape {w.shape}, expected ({n_neurons}, {n_neurons})"
        )
    if not np.all(np.isfinite(w)):
        bad = int(np.size(w) - np.isfinite(w).sum())
        raise DataError(f"{path}: connectivity has {bad} non-finite values (NaN or inf)")
    return w.astype(np.float32)


def load_connectivity(path: str | Path, n_neurons: int) -> np.ndarray:
    """Read a user-supplied W[post, pre] from .npy, a torch .pt tensor or a CSV edge list.

    The CSV needs columns ``source,target,weight`` (source = presynaptic).  Shapes, indices and
    values are checked; problems raise :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: connectivity file not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            w = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path}: cannot read .npy ({exc})") from None
        return _check_matrix(np.asarray(w, dtype=np.float64), n_neurons, path)
    if suffix in (".pt", ".pth"):
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DataError(f"{path}: cannot read torch file ({exc})") from None
        if isinstance(obj, dict):
            tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
            if len(tensors) != 1:
                raise DataError(f"{path}: expected one tensor, found a dict with keys {list(obj)}")
            obj = tensors[0]
        if not isinstance(obj, torch.Tensor):
            raise DataError(f"{path}: expected a tensor, found {type(obj).__name__}")
        if obj.is_sparse:
            obj = obj.to_dense()
        return _check_matrix(obj.detach().double().numpy(), n_neurons, path)
    if suffix in (".csv", ".tsv"):
        import pandas as pd

        try:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        except Exception as exc:
            raise DataError(f"{path}: cannot read edge list ({exc})") from None
        missing = {"source", "target", "weight"} - set(df.columns)
        if missing:
            raise DataError(
                f"{path}: edge list lacks columns {sorted(missing)} (need source,target,weight)"
            )
        src = pd.to_numeric(df["source"], errors="coerce").to_numpy()
        tgt = pd.to_numeric(df["target"], errors="coerce").to_numpy()
        wts = pd.to_numeric(df["weight"], errors="coerce").to_numpy(dtype=np.float64)
        for name, col in (("source", src), ("target", tgt)):
            if not np.all(np.isfinite(col)) or np.any(col != np.round(col)):
                raise DataError(f"{path}: column {name!r} must hold integer neuron indices")
            if col.size and (col.min() < 0 or col.max() >= n_neurons):
                raise DataError(f"{path}: column {name!r} has indices outside [0, {n_neurons - 1}]")
        if not np.all(np.isfinite(wts)):
            raise DataError(f"{path}: column 'weight' has non-finite or non-numeric values")
        w = np.zeros((n_neurons, n_neurons))
        np.add.at(w, (tgt.astype(int), src.astype(int)), wts)
        return _check_matrix(w, n_neurons, path)
    raise DataError(f"{path}: unsupported connectivity format {suffix!r} (use .npy, .pt or .csv)")
