"""PDE_N2 'signal' simulator: du_i/dt = -c_i u_i + s_i tanh(u_i) + g_i sum_j W_ij tanh(u_j)
[+ e_i(t), the optional external input of :mod:`.signal_input`]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..io import atomic_path, save_npz, write_json
from . import data as layout
from .connectivity import load_connectivity, random_connectivity
from .euler import integrate_to_zarr, noisy_step
from .signal_input import draw_input


def neuron_types(n_neurons: int, n_types: int) -> np.ndarray:
    """Contiguous type blocks: type = floor(i / (N // K)), the remainder joins the last type."""
    block = max(n_neurons // n_types, 1)
    return np.minimum(np.arange(n_neurons) // block, n_types - 1).astype(np.int64)


class PDEN2(nn.Module):
    """Ground-truth dynamics as a torch module mapping u[..., N] to du/dt[..., N]."""

    def __init__(self, W: np.ndarray | torch.Tensor, g, s, c):
        super().__init__()
        as_t = lambda x: torch.tensor(np.array(x, dtype=np.float32))  # noqa: E731
        self.register_buffer("W", torch.as_tensor(W, dtype=torch.float32))
        self.register_buffer("g", as_t(g))
        self.register_buffer("s", as_t(s))
        self.register_buffer("c", as_t(c))

    def forward(self, u: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        msg = torch.tanh(u) @ self.W.T
        out = -self.c * u + self.s * torch.tanh(u) + self.g * msg
        return out if x is None else out + x


def per_neuron_params(model_cfg: dict, types: np.ndarray) -> pd.DataFrame:
    params = np.asarray(model_cfg["params"], dtype=np.float64)
    return pd.DataFrame(
        {
            "neuron": np.arange(types.size),
            "type": types,
            "g": params[types, 0],
            "s": params[types, 1],
            "c": params[types, 2],
        }
    )


def simulate_signal(
    model_cfg: dict, sparsity: float, seed: int, out_dir: Path, device: str = "cpu"
) -> dict:
    """Simulate one PDE_N2 circuit and write the standard simulation directory."""
    from .plots import plot_simulation

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n, k = int(model_cfg["n_neurons"]), int(model_cfg["n_types"])
    rng = np.random.default_rng(seed)
    if model_cfg["connectivity"] == "file":
        W = load_connectivity(model_cfg["connectivity_file"], n)
        source = str(model_cfg["connectivity_file"])
    else:
        W = random_connectivity(n, model_cfg["connectivity"], float(sparsity), rng)
        source = model_cfg["connectivity"]
    types = neuron_types(n, k)
    neurons = per_neuron_params(model_cfg, types)
    dyn = PDEN2(W, neurons["g"], neurons["s"], neurons["c"]).to(device)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    u0 = (float(model_cfg["init_scale"]) * torch.randn(n, generator=gen)).to(device)
    # optional keys (absent in configs older than them: no noise)
    sigma = float(model_cfg.get("intrinsic_noise", 0.0))
    noise = float(model_cfg.get("measurement_noise", 0.0))
    step_seed, noise_seed = (int(x) for x in rng.integers(2**31, size=2))
    step = (
        noisy_step(float(model_cfg["dt"]), sigma, torch.Generator().manual_seed(step_seed))
        if sigma > 0
        else None
    )
    # drawn after everything older configs draw, so that their simulations stay the same
    ext = draw_input(model_cfg.get("external_input"), n, float(model_cfg["dt"]), rng)
    if ext is not None and ext.positions is not None:
        neurons["x"], neurons["y"] = ext.positions[:, 0], ext.positions[:, 1]

    with atomic_path(out_dir / layout.ACTIVITY) as store:
        stats = integrate_to_zarr(
            dyn,
            u0,
            n_frames=int(model_cfg["n_frames"]),
            burn_in=int(model_cfg["burn_in"]),
            dt=float(model_cfg["dt"]),
            store=store,
            chunk_frames=int(model_cfg["chunk_frames"]),
            step=step,
            measurement_noise=noise,
            noise_seed=noise_seed,
            inputs=None if ext is None else ext.values,
        )
    post, pre = np.nonzero(W)
    save_npz(
        out_dir / layout.CONNECTIVITY,
        post=post.astype(np.int64),
        pre=pre.astype(np.int64),
        weight=W[post, pre].astype(np.float32),
        n_neurons=np.int64(n),
    )
    with atomic_path(out_dir / layout.NEURONS) as tmp:
        neurons.to_csv(tmp, index=False)

    n_frames = int(model_cfg["n_frames"])
    n_test = int(round(n_frames * float(model_cfg["test_fraction"])))
    eig = np.linalg.eigvals(W.astype(np.float64)) if n <= 4000 else np.array([np.nan])
    meta = {
        "family": "signal",
        "model_config": model_cfg,
        "sparsity": float(sparsity),
        "seed": int(seed),
        "n_neurons": n,
        "n_types": k,
        "n_frames": n_frames,
        "n_train_frames": n_frames - n_test,
        "dt": float(model_cfg["dt"]),
        "connectivity_source": source,
        "n_edges": int(post.size),
        "filling_factor_measured": float(post.size / max(n * (n - 1), 1)),
        "spectral_radius": float(np.abs(eig).max()),
        **stats,
    }
    if sigma > 0 or noise > 0:  # (noiseless: the same simulation.json as before these keys)
        meta["intrinsic_noise"], meta["measurement_noise"] = sigma, noise
        meta["du"] = "finite difference of the noisy u" if noise > 0 else "drift f(u_k)"
    if ext is not None:  # which neurons the input x drives (the values are array x)
        meta["input"] = {"kind": ext.kind, "neurons": ext.neurons.tolist()}
    plot_simulation(out_dir, W, types)
    write_json(out_dir / layout.SETTINGS, meta)
    return meta
