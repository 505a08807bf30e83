"""Explicit-Euler integration chunk by chunk, and streaming it into a zarr store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from .store import ActivityMoments, ChunkedFrameWriter

#: the state update of one step from (u_k, du_k) to u_{k+1}
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def noisy_step(dt: float, sigma: float, generator: torch.Generator) -> Step:
    """Euler-Maruyama: u_{k+1} = u_k + dt du_k + sigma sqrt(dt) xi_k, xi_k ~ N(0, 1) drawn from
    ``generator`` on the CPU (the same noise on every device)."""
    amplitude = float(sigma) * float(dt) ** 0.5

    def step(u: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
        xi = torch.randn(u.shape, generator=generator, dtype=u.dtype)
        return u + dt * du + amplitude * xi.to(u.device)

    return step


def frame_chunks(n_frames: int, chunk_frames: int) -> list[int]:
    """The frame counts of consecutive chunks of ``chunk_frames`` frames (the last shorter)."""
    chunk_frames = max(1, int(chunk_frames))
    return [min(chunk_frames, n_frames - start) for start in range(0, n_frames, chunk_frames)]


def euler_chunks(
    derivative: Callable[..., torch.Tensor],
    u0: torch.Tensor,
    dt: float,
    chunks: Iterable[int | torch.Tensor],
    burn_in: int = 0,
    burn_in_input: torch.Tensor | None = None,
    step: Step | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Explicit Euler from ``u0``, one chunk of frames at a time; yields ``(u, du, x)`` per chunk.

    Each item of ``chunks`` is either a number of frames (no input: ``du_k = derivative(u_k)``)
    or the inputs of the chunk's frames, a (T x N) tensor ``x`` (``du_k = derivative(u_k,
    x[k])``).  ``u`` (T x N, new tensors for every chunk, on ``u0``'s device) holds the states
    u_k, ``du`` the derivatives at them, ``x`` is the chunk's input (None without).  ``burn_in``
    steps (under ``burn_in_input``, if given) are taken first and not yielded.

    ``step`` is the per-step hook: every step, burn-in included, sets u_{k+1} = step(u_k, du_k);
    the default is explicit Euler, u_k + dt du_k.
    """
    if step is None:

        def step(u: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
            return u + dt * du

    def f(u: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        return derivative(u) if x is None else derivative(u, x)

    u = u0.clone()
    with torch.no_grad():
        for _ in range(int(burn_in)):
            u = step(u, f(u, burn_in_input))
        for chunk in chunks:
            x = None if isinstance(chunk, int) else chunk
            t_len = int(chunk) if x is None else int(x.shape[0])
            us = torch.empty((t_len, u.shape[-1]), dtype=u.dtype, device=u.device)
            dus = torch.empty_like(us)
            for k in range(t_len):
                du = f(u, None if x is None else x[k])
                us[k] = u
                dus[k] = du
                u = step(u, du)
            yield us, dus, x


def integrate_to_zarr(
    derivative: Callable[[torch.Tensor], torch.Tensor],
    u0: torch.Tensor,
    n_frames: int,
    burn_in: int,
    dt: float,
    store: Path,
    chunk_frames: int,
    step: Step | None = None,
    measurement_noise: float = 0.0,
    noise_seed: int | None = None,
    inputs: Callable[[np.ndarray], torch.Tensor] | None = None,
) -> dict:
    """Integrate u' = derivative(u) and write u and du of every saved frame.

    ``burn_in`` steps are taken first and not saved; ``step`` is the state update (default
    explicit Euler; :func:`noisy_step` adds intrinsic noise).  Without measurement noise du is
    the exact derivative at u.  With ``measurement_noise`` > 0 the saved u is the state plus
    Gaussian noise of that std (seeded by ``noise_seed``; the state is kept as ``u_clean``) and
    du is what a recording gives, the finite difference (u[k+1] - u[k]) / dt of the noisy u
    (one more state is simulated for the last frame).  Only one chunk of frames is held in
    memory (:class:`~.store.ChunkedFrameWriter`).  Returns simple statistics
    (:class:`~.store.ActivityMoments`, of the saved u) and the wall time.

    With ``inputs`` (frame indices -> their input x, T x N) the dynamics are
    ``derivative(u, x)``, the input is saved as array ``x`` and the burn-in holds the input of
    frame 0.
    """
    n = u0.shape[-1]
    noise = float(measurement_noise)
    widths = {"u": n, "du": n, **({"u_clean": n} if noise > 0 else {})}
    if inputs is not None:
        widths["x"] = n
    burn_x = None if inputs is None else inputs(np.zeros(1, dtype=np.int64))[0].to(u0.device)

    def driven(counts: list[int]):
        if inputs is None:
            yield from counts
            return
        start = 0
        for c in counts:
            yield inputs(np.arange(start, start + c)).to(u0.device)
            start += c

    def x_block(x) -> dict:
        return {} if x is None else {"x": x.cpu().numpy()}

    with ChunkedFrameWriter(store, n_frames, chunk_frames, widths, ActivityMoments()) as writer:
        if noise <= 0:
            chunks = driven(frame_chunks(n_frames, writer.chunk_frames))
            for u, du, x in euler_chunks(derivative, u0, dt, chunks, burn_in, burn_x, step):
                writer.append(u.cpu().numpy(), du=du.cpu().numpy(), **x_block(x))
            return writer.summary(burn_in)
        rng = np.random.default_rng(noise_seed)
        carry = None  # the last state (clean, noisy, input) of the previous chunk
        chunks = driven(frame_chunks(n_frames + 1, writer.chunk_frames))
        for u, _, x in euler_chunks(derivative, u0, dt, chunks, burn_in, burn_x, step):
            clean = u.cpu().numpy()
            noisy = clean + (noise * rng.standard_normal(clean.shape)).astype(np.float32)
            xs = None if x is None else x.cpu().numpy()
            if carry is not None:
                clean, noisy = np.concatenate([carry[0], clean]), np.concatenate([carry[1], noisy])
                xs = None if xs is None else np.concatenate([carry[2], xs])
            du = (np.diff(noisy, axis=0) / dt).astype(np.float32)
            extra = {} if xs is None else {"x": xs[:-1]}
            writer.append(noisy[:-1], du=du, u_clean=clean[:-1], **extra)
            carry = (clean[-1:], noisy[-1:], None if xs is None else xs[-1:])
    return writer.summary(burn_in)
