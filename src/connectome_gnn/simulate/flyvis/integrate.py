"""The FlyVis dynamics under a stream of luminance chunks (explicit Euler), in memory.

:func:`integrate_chunks` (explicit Euler through :func:`connectome_gnn.simulate.euler.euler_chunks`)
is the integration loop of the simulator (:mod:`.simulate`) and of the acceptance checks
(:mod:`.acceptance`); :func:`run_dynamics` a short in-memory simulation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from ..euler import Step, euler_chunks
from .connectome import Connectome
from .dynamics import FlyVisDynamics
from .stimuli import GREY, StimulusSequence

#: below this many edges a CPU simulation runs on one thread (threads only add overhead)
SINGLE_THREAD_EDGES = 100_000


@contextmanager
def cpu_threads_for(dyn: FlyVisDynamics):
    """Run small CPU simulations single-threaded; restores torch's thread count afterwards."""
    threads = torch.get_num_threads()
    small = dyn.weight.device.type == "cpu" and dyn.n_edges < SINGLE_THREAD_EDGES
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(threads)


def integrate_chunks(
    dyn: FlyVisDynamics,
    input_index: np.ndarray,
    luminance: Iterable[np.ndarray],
    burn_in: int,
    v0: torch.Tensor | None = None,
    step: Step | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Explicit Euler under a stream of luminance chunks; yields (v, dv, x) per chunk.

    ``v`` (T x N) holds V_k, ``dv`` = f(V_k, x_k), ``x`` the input current; all on ``dyn``'s
    device.  ``v0`` defaults to V_rest; ``burn_in`` grey steps are taken first and not yielded.
    ``step``: the per-step state update of :func:`~connectome_gnn.simulate.euler.euler_chunks`.
    """
    dev = dyn.V_rest.device
    n = dyn.n_neurons
    idx = torch.as_tensor(np.asarray(input_index).reshape(-1), device=dev)
    n_rep = int(np.asarray(input_index).shape[0])
    v = (dyn.V_rest.clone() if v0 is None else v0.to(dev, torch.float32).clone()).reshape(n)
    grey = torch.zeros(n, device=dev)
    grey[idx] = GREY

    def inputs() -> Iterator[torch.Tensor]:
        for lum in luminance:
            lum_t = torch.as_tensor(np.asarray(lum, dtype=np.float32), device=dev)
            x = torch.zeros((lum_t.shape[0], n), device=dev)
            x[:, idx] = lum_t.repeat(1, n_rep)
            yield x

    return euler_chunks(dyn, v, dyn.dt, inputs(), int(burn_in), grey, step)


def run_dynamics(
    dyn: FlyVisDynamics,
    con: Connectome,
    n_frames: int,
    burn_in: int = 0,
    seed: int = 0,
    mix: dict | None = None,
    chunk_frames: int = 500,
) -> np.ndarray:
    """Short in-memory simulation under a seeded stimulus mix: V (n_frames x N, float32)."""
    seq = StimulusSequence(con.column_u, con.column_v, dyn.dt, seed, mix)
    with cpu_threads_for(dyn):
        out = [
            v.cpu().numpy()
            for v, _, _ in integrate_chunks(
                dyn, con.input_index, seq.chunks(n_frames, chunk_frames), burn_in
            )
        ]
    return np.concatenate(out) if out else np.zeros((0, dyn.n_neurons), np.float32)
