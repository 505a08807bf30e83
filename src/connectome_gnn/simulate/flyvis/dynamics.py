"""The ground-truth FlyVis dynamics as a torch module (sparse, never a dense N x N matrix).

    dV_i/dt = ( -V_i + V_rest_i + sum_{j -> i} w_ij ReLU(V_j) + x_i(t) ) / max(tau_i, dt)

(flyvis' ``PPNeuronIGRSynapses``: passive point neurons with instantaneous graded-release
synapses; ReLU on the presynaptic voltage; tau clamped below at dt as in flyvis).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ..data import Simulation


class FlyVisDynamics(nn.Module):
    """``f(v[..., N], x[..., N]) -> dv/dt[..., N]`` of the FlyVis voltage model.

    Parameters are given per neuron (``tau``, ``V_rest``) and per edge (``source`` = presynaptic
    j, ``target`` = postsynaptic i, ``weight`` = w_ij).  The message sum is a CSR sparse-dense
    matmul (rebuilt lazily on the module's device); ``x`` may be omitted (no input).
    :meth:`step` is one explicit Euler step.
    """

    def __init__(self, source, target, weight, tau, V_rest, dt: float = 0.02):
        super().__init__()
        as_long = lambda a: torch.tensor(np.asarray(a, dtype=np.int64))  # noqa: E731
        as_float = lambda a: torch.tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        source, target, weight = as_long(source), as_long(target), as_float(weight)
        tau, V_rest = as_float(tau), as_float(V_rest)
        if not (source.shape == target.shape == weight.shape) or source.ndim != 1:
            raise ValueError("source, target and weight must be 1-D arrays of equal length")
        if tau.shape != V_rest.shape or tau.ndim != 1:
            raise ValueError("tau and V_rest must be 1-D arrays of equal length")
        n = tau.numel()
        if source.numel() and (int(source.max()) >= n or int(target.max()) >= n):
            raise ValueError(f"edge indices out of range for {n} neurons")
        order = torch.argsort(target * n + source)  # CSR order: by target, then source
        self.register_buffer("source", source[order])
        self.register_buffer("target", target[order])
        self.register_buffer("weight", weight[order])
        self.register_buffer("tau", tau)
        self.register_buffer("V_rest", V_rest)
        self.register_buffer(
            "crow",
            torch.cat(
                [torch.zeros(1, dtype=torch.long), torch.bincount(target, minlength=n).cumsum(0)]
            ),
        )
        self.dt = float(dt)
        self._csr: torch.Tensor | None = None

    @property
    def n_neurons(self) -> int:
        return int(self.tau.numel())

    @property
    def n_edges(self) -> int:
        return int(self.weight.numel())

    def csr(self) -> torch.Tensor:
        """W[post, pre] as a torch sparse CSR tensor on the module's device."""
        w = self.weight
        if self._csr is None or self._csr.device != w.device or self._csr.dtype != w.dtype:
            with warnings.catch_warnings():  # "sparse CSR support is in beta" and the like
                warnings.simplefilter("ignore", UserWarning)
                self._csr = torch.sparse_csr_tensor(
                    self.crow, self.source, w, size=(self.n_neurons, self.n_neurons)
                )
        return self._csr

    def message(self, v: torch.Tensor) -> torch.Tensor:
        """sum_j w_ij ReLU(v_j) for every neuron i, for v of shape (..., N)."""
        shape = v.shape
        r = torch.relu(v.reshape(-1, shape[-1])).to(self.weight.dtype)
        return (self.csr() @ r.T).T.reshape(shape)

    def forward(self, v: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        drive = -v + self.V_rest + self.message(v)
        if x is not None:
            drive = drive + x
        return drive / torch.clamp(self.tau, min=self.dt)

    def step(self, v: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """One explicit Euler step: v + dt f(v, x)."""
        return v + self.dt * self(v, x)

    @classmethod
    def from_simulation(cls, sim, dt: float | None = None) -> FlyVisDynamics:
        """The true dynamics of a simulation directory (a path or a ``Simulation``)."""
        if not isinstance(sim, Simulation):
            sim = Simulation(sim)
        c, nrn = sim.connectivity, sim.neurons
        return cls(
            c["pre"],
            c["post"],
            c["weight"],
            nrn["tau"].to_numpy(),
            nrn["V_rest"].to_numpy(),
            dt=sim.dt if dt is None else dt,
        )
