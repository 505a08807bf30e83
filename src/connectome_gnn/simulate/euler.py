"""Explicit-Euler integration that streams frames into a zarr store chunk by chunk."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def integrate_to_zarr(
    derivative: Callable[[torch.Tensor], torch.Tensor],
    u0: torch.Tensor,
    n_frames: int,
    burn_in: int,
    dt: float,
    store: Path,
    chunk_frames: int,
) -> dict:
    """Integrate u' = derivative(u) and write u and the exact du of every saved frame.

    ``burn_in`` steps are taken first and not saved.  Only one chunk of frames is ever held in
    memory, so long simulations do not need to fit in RAM.  Returns simple statistics.
    """
    import zarr

    n = u0.shape[-1]
    chunk_frames = max(1, min(chunk_frames, n_frames))
    group = zarr.open_group(str(store), mode="w")
    arrays = {
        name: group.create_array(
            name, shape=(n_frames, n), chunks=(chunk_frames, n), dtype="float32"
        )
        for name in ("u", "du")
    }
    t0 = time.perf_counter()
    u = u0.clone()
    with torch.no_grad():
        for _ in range(burn_in):
            u = u + dt * derivative(u)
        buf_u = torch.empty((chunk_frames, n), dtype=u.dtype, device=u.device)
        buf_du = torch.empty_like(buf_u)
        frame, fill = 0, 0
        total, total_sq, max_abs = 0.0, 0.0, 0.0
        while frame < n_frames:
            du = derivative(u)
            buf_u[fill] = u
            buf_du[fill] = du
            fill += 1
            frame += 1
            u = u + dt * du
            if fill == chunk_frames or frame == n_frames:
                block = buf_u[:fill].cpu().numpy()
                if not np.all(np.isfinite(block)):
                    raise FloatingPointError(f"simulation diverged before frame {frame}")
                arrays["u"][frame - fill : frame] = block
                arrays["du"][frame - fill : frame] = buf_du[:fill].cpu().numpy()
                total += float(block.sum(dtype=np.float64))
                total_sq += float((block.astype(np.float64) ** 2).sum())
                max_abs = max(max_abs, float(np.abs(block).max()))
                fill = 0
    elapsed = time.perf_counter() - t0
    count = n_frames * n
    mean = total / count
    return {
        "activity_mean": mean,
        "activity_std": float(np.sqrt(max(total_sq / count - mean**2, 0.0))),
        "activity_max_abs": max_abs,
        "wall_time_s": elapsed,
        "frames_per_s": (n_frames + burn_in) / max(elapsed, 1e-9),
    }
