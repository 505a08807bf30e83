"""The optional external input of the signal family, additive to du_i/dt (``external_input``).

Two seeded kinds, on ``n_input_neurons`` neurons drawn at random (spread over the types):

- ``oscillatory``: e_i(t) = A_i cos(2 pi f t + phi_i), A_i uniform in [0.5, 1] x ``amplitude``,
  phi_i uniform in [0, 2 pi), f = ``frequency`` cycles per unit of time (t = frame x dt);
- ``moving_pattern``: every neuron has a place on a regular 2-D grid of the unit square
  (neurons.csv columns ``x``, ``y``); the input neurons see ``amplitude`` x (a drifting grating
  of spatial period ``wavelength`` in a seeded direction, at ``frequency``, plus a Gaussian blob
  of width ``wavelength`` / 4 circling the centre once every 1 / (``frequency`` / 4)) at their
  place.

During the burn-in the input holds its value at the first saved frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

KINDS = ("none", "oscillatory", "moving_pattern")


@dataclass
class ExternalInput:
    """A drawn input: ``neurons`` (M,) receive it; ``values(frames)`` gives it (T x N)."""

    kind: str
    n_neurons: int
    neurons: np.ndarray
    dt: float
    frequency: float
    amplitude: np.ndarray  # (M,) oscillatory; scalar array for the pattern
    phase: np.ndarray  # (M,) oscillatory
    positions: np.ndarray | None = None  # (N, 2) moving_pattern
    direction: float = 0.0
    wavelength: float = 0.5

    def values(self, frames: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(frames, dtype=np.float64) * self.dt)[:, None]
        out = torch.zeros(t.shape[0], self.n_neurons, dtype=torch.float64)
        w = 2.0 * math.pi * self.frequency
        if self.kind == "oscillatory":
            a, ph = torch.as_tensor(self.amplitude), torch.as_tensor(self.phase)
            out[:, self.neurons] = a * torch.cos(w * t + ph)
        else:
            p = torch.as_tensor(self.positions[self.neurons])  # (M, 2)
            k = torch.tensor([math.cos(self.direction), math.sin(self.direction)], dtype=p.dtype)
            grating = torch.cos(2.0 * math.pi * (p @ k) / self.wavelength - w * t)
            angle = w / 4.0 * t
            centre = 0.5 + 0.3 * torch.stack([torch.cos(angle), torch.sin(angle)], -1)  # (T,1,2)
            d2 = ((p[None] - centre) ** 2).sum(-1)
            blob = torch.exp(-d2 / (2.0 * (self.wavelength / 4.0) ** 2))
            out[:, self.neurons] = float(self.amplitude) * (0.5 * grating + blob)
        return out.float()


def grid_positions(n: int) -> np.ndarray:
    """Places of n neurons on a regular grid of the unit square, row by row: (n, 2)."""
    side = math.ceil(math.sqrt(n))
    i = np.arange(n)
    return np.stack([(i % side + 0.5) / side, (i // side + 0.5) / side], -1)


def draw_input(spec: dict | None, n: int, dt: float, rng: np.random.Generator):
    """The input of a model config's ``external_input`` (None when absent or ``none``)."""
    if not spec or spec.get("kind", "none") == "none":
        return None
    m = int(spec["n_input_neurons"])
    neurons = np.sort(rng.choice(n, size=min(m, n), replace=False)).astype(np.int64)
    amplitude = float(spec["amplitude"])
    common = {
        "kind": spec["kind"],
        "n_neurons": n,
        "neurons": neurons,
        "dt": dt,
        "frequency": float(spec["frequency"]),
    }
    if spec["kind"] == "oscillatory":
        return ExternalInput(
            **common,
            amplitude=amplitude * rng.uniform(0.5, 1.0, neurons.size),
            phase=rng.uniform(0.0, 2.0 * math.pi, neurons.size),
        )
    return ExternalInput(
        **common,
        amplitude=np.array(amplitude),
        phase=np.zeros(0),
        positions=grid_positions(n),
        direction=float(rng.uniform(0.0, 2.0 * math.pi)),
        wavelength=float(spec["wavelength"]),
    )
