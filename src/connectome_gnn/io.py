"""Small I/O helpers shared by all stages: atomic writes, JSON, zarr arrays."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, Interrupted  # noqa: F401 - re-exported
from .layout import TRAIN_INFO  # noqa: F401 - re-exported


def _json_default(obj: Any):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.floating) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds.

    Works for files and directories (e.g. zarr stores).  A killed job leaves only the
    temporary name behind, never a half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.rmdir()  # callers create a file or a directory at this name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete temporaries that :func:`atomic_path` left in ``directory`` when a job was killed.

    Call it only for a directory that the calling job owns (its own output directory).
    """
    directory = Path(directory)
    removed = []
    if directory.is_dir():
        for tmp in directory.glob(".*.tmp"):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically; NaN/inf become null so the file is strict JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_nan_to_none(data), indent=2, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def load_npz(path: str | Path, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError ...
        raise DataError(f"{path}: cannot read npz ({exc})") from None
    missing = [k for k in keys if k not in out]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}")
    return out


def open_zarr_array(store: str | Path, name: str):
    """Open array ``name`` of a zarr group read-only, with a clear error if absent or corrupt."""
    import zarr

    store = Path(store)
    if not store.is_dir():
        raise DataError(f"{store}: zarr store not found")
    try:
        group = zarr.open_group(str(store), mode="r")
        return group[name]
    except Exception as exc:
        raise DataError(
            f"{store}: cannot open zarr array {name!r} ({type(exc).__name__}: {exc})"
        ) from None


def read_zarr_array(
    store: str | Path, name: str, start: int = 0, stop: int | None = None
) -> np.ndarray:
    arr = open_zarr_array(store, name)
    try:
        return np.asarray(arr[start:stop])
    except Exception as exc:
        raise DataError(
            f"{store}: cannot read {name!r} frames {start}:{stop} (truncated or corrupt store? "
            f"{type(exc).__name__}: {exc})"
        ) from None


def save_png(fig: Any, path: str | os.PathLike, dpi: int) -> None:
    """Write a matplotlib figure as a compact PNG, atomically.

    The figure is rendered as usual and stored as an 8-bit palette PNG (256 colours, optimised):
    plots have few distinct colours, so this is about 4x smaller than matplotlib's RGBA PNG
    without a visible change, which keeps a report of hundreds of runs small.
    """
    import io as _io

    from PIL import Image

    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    with atomic_path(path) as tmp:
        palette.save(tmp, format="png", optimize=True)
