"""Simulate one FlyVis model and write the standard simulation directory.

Entry point: :func:`simulate_flyvis`.  The directory (see :mod:`connectome_gnn.simulate.data`)::

    activity.zarr/      zarr group, every array chunked by frames (chunk_frames):
        u            frames x N  float32  voltage V_k at frame k (+ measurement noise, if any)
        du           frames x N  float32  exact dV/dt at frame k = f(V_k, x_k) of the clean state
        x            frames x N  float32  input current x_k per neuron: the luminance of the
                                          neuron's column on R1-R8, 0 for every other neuron
        stimulus     frames x n_columns   luminance per column (columns in hex_columns order;
                                          read it with io.read_zarr_array: Simulation.read
                                          expects frames x N)
        u_clean      frames x N  float32  only when measurement_noise > 0: V_k without noise
    connectivity.npz    post, pre, weight (w_ij of the edge pre -> post), n_neurons (as the
                        signal family) + per edge: sign, n_syn, du, dv, edge_type (type-pair
                        index), edge_group ((pair, du, dv) group), filled (hull-filled offset);
                        per type pair: pair_source_type, pair_target_type, pair_sign,
                        pair_strength; type_names; input_index (8 x n_columns); extent
    neurons.csv         neuron, type (0-64 in the connectome file's order, R1..R8 first),
                        type_name, u, v (hex column), column (index), role (input /
                        intermediate / output), tau, V_rest, activity_mean, activity_std
                        (per-neuron voltage statistics over all saved frames)
    stimulus.csv        one row per stimulus segment: start, n_frames, kind, params (JSON)
    simulation.json     settings and statistics (written last: its presence marks completion)
    simulation.png      stimulus and voltage traces of central neurons of a few types

Frame k holds V_k and the derivative at V_k under input x_k; V_{k+1} = V_k + dt du_k (explicit
Euler).  V starts at V_rest and is relaxed for ``burn_in`` steps under grey (0.5) input, which
are not saved.  Every file is written through :func:`connectome_gnn.io.atomic_path`.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...config import validate
from ...device import resolve_device
from ...io import atomic_path, save_npz, save_png, write_json
from .. import data as layout
from ..euler import noisy_step
from ..store import ChunkedFrameWriter
from .connectome import FLYVIS_VERSION, Connectome, default_cache_dir, load_connectome
from .dynamics import FlyVisDynamics
from .integrate import SINGLE_THREAD_EDGES, cpu_threads_for, integrate_chunks, run_dynamics
from .params import PARAMS_VERSION, make_params
from .paramset import FlyVisParams
from .statistics import activity_svd_rank, weight_statistics
from .stimuli import StimulusSequence

STIMULUS_CSV = "stimulus.csv"
SVD_MAX_FRAMES = 2000
#: central neurons of these types are plotted in simulation.png
PLOT_TYPES = ("R1", "L1", "L2", "Mi1", "Tm3", "Mi9", "T4a", "T5a", "Tm1", "TmY15")

# the integration loop lives in .integrate (the acceptance checks use it too); these names stay
# importable from here
__all__ = [
    "SINGLE_THREAD_EDGES",
    "cpu_threads_for",
    "integrate_chunks",
    "neuron_table",
    "plot_flyvis",
    "run_dynamics",
    "simulate_flyvis",
    "stimulus_seeds",
]


def stimulus_seeds(seed: int, model_index: int) -> tuple[int, int]:
    """(stimulus seed, noise seed) of replicate ``seed`` of model ``model_index``."""
    s1, s2 = np.random.SeedSequence([int(seed), int(model_index), 0x57]).generate_state(2)
    return int(s1), int(s2)


class _Stats:
    """Streaming per-neuron and global statistics of the clean voltage, plus SVD frame samples."""

    def __init__(self, n: int, n_frames: int):
        self.s1 = np.zeros(n)
        self.s2 = np.zeros(n)
        self.vmin, self.vmax = np.inf, -np.inf
        self.active = np.zeros(n, dtype=bool)
        self.count = 0
        self.stride = max(1, -(-n_frames // SVD_MAX_FRAMES))
        self.samples: list[np.ndarray] = []

    def add(self, start: int, block: np.ndarray) -> None:
        self.s1 += block.sum(0, dtype=np.float64)
        self.s2 += np.einsum("ij,ij->j", block, block, dtype=np.float64)
        self.vmin = min(self.vmin, float(block.min()))
        self.vmax = max(self.vmax, float(block.max()))
        self.active |= (block > 0).any(0)
        self.count += len(block)
        first = (-start) % self.stride
        self.samples.append(block[first :: self.stride].copy())

    def per_neuron(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.s1 / self.count
        return mean, np.sqrt(np.maximum(self.s2 / self.count - mean**2, 0.0))

    def summary(self) -> dict:
        mean, std = self.per_neuron()
        total = self.s1.sum() / (self.count * mean.size)
        var = self.s2.sum() / (self.count * mean.size) - total**2
        ranks = activity_svd_rank(np.concatenate(self.samples))
        return {
            "activity_mean": float(total),
            "activity_std": float(np.sqrt(max(var, 0.0))),
            "activity_min": self.vmin,
            "activity_max": self.vmax,
            "activity_max_abs": max(abs(self.vmin), abs(self.vmax)),
            "active_fraction": float(self.active.mean()),
            "responsive_fraction": float(np.mean(std > 0.01)),
            "neuron_std_median": float(np.median(std)),
            "svd_rank_90": ranks["rank_90"],
            "svd_rank_99": ranks["rank_99"],
            "svd_frames": int(sum(len(s) for s in self.samples)),
            "svd_frame_stride": self.stride,
        }


def _write_activity(
    store: Path,
    dyn: FlyVisDynamics,
    con: Connectome,
    seq: StimulusSequence,
    n_frames: int,
    burn_in: int,
    chunk_frames: int,
    noise: float,
    noise_seed: int,
    intrinsic_noise: float = 0.0,
) -> tuple[dict, _Stats]:
    """Simulate under ``seq`` into the zarr group ``store``: (summary statistics, ``_Stats``)."""
    n, n_col = con.n_nodes, con.n_columns
    stats = _Stats(n, n_frames)
    lum_chunks: list[np.ndarray] = []

    def luminance():
        for lum in seq.chunks(n_frames, chunk_frames):
            lum_chunks.append(lum)
            yield lum

    writer = ChunkedFrameWriter(
        store,
        n_frames,
        chunk_frames,
        {"u": n, "du": n, "x": n, "stimulus": n_col},
        stats,
        label="FlyVis simulation",
        measurement_noise=noise,
        noise_seed=noise_seed,
    )
    with writer, cpu_threads_for(dyn):
        step = None
        if intrinsic_noise > 0:  # its own stream, so the measurement noise stays the same
            gen = torch.Generator().manual_seed(int(noise_seed) + 1)
            step = noisy_step(dyn.dt, intrinsic_noise, gen)
        for v, dv, x in integrate_chunks(dyn, con.input_index, luminance(), burn_in, step=step):
            writer.append(
                v.cpu().numpy(), du=dv.cpu().numpy(), x=x.cpu().numpy(), stimulus=lum_chunks.pop(0)
            )
    writer.group.attrs.update(
        {
            "frames": "frame k: u = V_k, du = f(V_k, x_k), V_{k+1} = V_k + dt du_k",
            "x": "input current per neuron (luminance on R1-R8 of the column, else 0)",
            "u": "voltage"
            + (" + Gaussian measurement noise (u_clean: without)" if noise > 0 else ""),
        }
    )
    return writer.summary(burn_in), stats


def _write_connectivity(path: Path, con: Connectome, params: FlyVisParams, w: np.ndarray) -> None:
    save_npz(
        path,
        post=con.edge_target.astype(np.int64),
        pre=con.edge_source.astype(np.int64),
        weight=w.astype(np.float32),
        n_neurons=np.int64(con.n_nodes),
        sign=con.edge_sign.astype(np.int8),
        n_syn=con.edge_n_syn.astype(np.float32),
        du=con.edge_du.astype(np.int32),
        dv=con.edge_dv.astype(np.int32),
        edge_type=con.edge_pair.astype(np.int32),
        edge_group=con.edge_group.astype(np.int32),
        filled=con.edge_filled.astype(bool),
        pair_source_type=con.pair_source_type.astype(np.int32),
        pair_target_type=con.pair_target_type.astype(np.int32),
        pair_sign=con.pair_sign.astype(np.int8),
        pair_strength=params.strength.astype(np.float64),
        type_names=con.type_names.astype(str),
        input_index=con.input_index.astype(np.int64),
        extent=np.int64(con.extent),
    )


def neuron_table(con: Connectome, params: FlyVisParams) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "neuron": np.arange(con.n_nodes),
            "type": con.node_type.astype(np.int64),
            "type_name": con.node_type_name,
            "u": con.node_u,
            "v": con.node_v,
            "column": con.node_column,
            "role": con.node_role,
            "tau": params.tau[con.node_type],
            "V_rest": params.V_rest[con.node_type],
        }
    )


def _write_stimulus_csv(path: Path, seq: StimulusSequence, n_frames: int) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["start", "n_frames", "kind", "params"])
        for start, n, kind, params in seq.segments:
            if start >= n_frames:
                break
            out.writerow([start, min(n, n_frames - start), kind, json.dumps(params)])


def plot_flyvis(sim_dir: Path, con: Connectome, max_frames: int = 1000) -> None:
    """simulation.png: stimulus at the central column and voltages of central neurons."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...io import read_zarr_array

    store = Path(sim_dir) / layout.ACTIVITY
    u = read_zarr_array(store, "u", 0, max_frames)
    lum = read_zarr_array(store, "stimulus", 0, max_frames)
    centre = int(np.flatnonzero((con.column_u == 0) & (con.column_v == 0))[0])
    fig, (ax0, ax1) = plt.subplots(
        2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [1, 2.5]}
    )
    ax0.plot(lum[:, centre], lw=0.8, label="central column")
    ax0.plot(lum.mean(1), lw=0.8, label="field mean")
    ax0.set(ylabel="luminance", ylim=(-0.05, 1.05), title="stimulus")
    ax0.legend(fontsize=7, loc="upper right")
    for name in PLOT_TYPES:
        if name in con.type_names:
            i = int(con.central_index[con.type_index(name)])
            ax1.plot(u[:, i], lw=0.8, label=name)
    ax1.set(xlabel="frame", ylabel="V", title="central neuron voltages")
    ax1.legend(fontsize=7, ncol=5, loc="upper right")
    fig.tight_layout()
    save_png(fig, Path(sim_dir) / layout.PLOT, dpi=100)
    plt.close(fig)


def simulate_flyvis(
    model_cfg: dict,
    seed: int,
    out_dir: Path,
    *,
    device: str | torch.device | None = "cpu",
    params: FlyVisParams | None = None,
    sparsity: float | None = None,
) -> dict:
    """Simulate FlyVis model ``model_cfg["model_id"]`` (replicate ``seed``) into ``out_dir``.

    ``model_cfg`` follows ``schemas/flyvis.model.schema.yaml`` (defaults are filled here).  The
    ground-truth parameters depend on the model id only; ``seed`` drives the stimulus sequence
    and the measurement noise.  ``params`` overrides the parameter set (tests).  ``sparsity``
    (the workflow's filling factor) must be None or 1: the connectome fixes the connectivity.
    ``device``: "cpu" (default), "cuda", or "auto".  Returns the metadata written to
    ``simulation.json``.
    """
    if sparsity is not None and float(sparsity) != 1.0:
        raise ValueError(
            f"flyvis: the connectivity is the connectome's, filling factor must be 1 (got {sparsity})"
        )
    cfg = validate(model_cfg, "flyvis.model", source="flyvis model")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    t_start = time.perf_counter()

    cache_dir = Path(cfg["cache_dir"]) if cfg.get("cache_dir") else default_cache_dir()
    con = load_connectome(int(cfg["extent"]), cache_dir=cache_dir)
    t_params = time.perf_counter()
    if params is None:
        params = make_params(cfg["model_id"], cache_dir=cache_dir)
    t_params = time.perf_counter() - t_params
    dt = float(cfg["dt"])
    weights = params.edge_weights(con)
    dyn = FlyVisDynamics(
        con.edge_source, con.edge_target, weights, params.node_tau(con), params.node_V_rest(con), dt
    ).to(dev)
    stim_seed, noise_seed = stimulus_seeds(int(seed), params.index)
    mix = cfg["stimulus"]["mix"]
    seq = StimulusSequence(con.column_u, con.column_v, dt, stim_seed, mix)
    n_frames, chunk = (
        int(cfg["n_frames"]),
        max(1, min(int(cfg["chunk_frames"]), int(cfg["n_frames"]))),
    )
    noise = float(cfg["measurement_noise"])
    sigma = float(cfg.get("intrinsic_noise", 0.0))  # optional key (absent = noiseless)

    with atomic_path(out_dir / layout.ACTIVITY) as store:
        sim_stats, stats = _write_activity(
            store, dyn, con, seq, n_frames, int(cfg["burn_in"]), chunk, noise, noise_seed, sigma
        )
    _write_connectivity(out_dir / layout.CONNECTIVITY, con, params, weights)
    table = neuron_table(con, params)
    table["activity_mean"], table["activity_std"] = stats.per_neuron()
    with atomic_path(out_dir / layout.NEURONS) as tmp:
        table.to_csv(tmp, index=False)
    _write_stimulus_csv(out_dir / STIMULUS_CSV, seq, n_frames)
    plot_flyvis(out_dir, con)

    n_test = int(round(n_frames * float(cfg["test_fraction"])))
    kinds = [k for s, _, k, _ in seq.segments if s < n_frames]
    meta = {
        "family": "flyvis",
        "model_config": cfg,
        "model_id": params.model_id,
        "model_index": params.index,
        "param_seed": params.seed,
        "param_attempt": params.attempt,
        "params_version": PARAMS_VERSION,
        "params": params.summary(),
        "sparsity": 1.0,
        "seed": int(seed),
        "stimulus_seed": stim_seed,
        "extent": con.extent,
        "n_neurons": con.n_nodes,
        "n_edges": con.n_edges,
        "n_types": con.n_types,
        "n_columns": con.n_columns,
        "n_input_neurons": int(con.input_index.size),
        "n_frames": n_frames,
        "n_train_frames": n_frames - n_test,
        "dt": dt,
        "burn_in": int(cfg["burn_in"]),
        "measurement_noise": noise,
        **({"intrinsic_noise": sigma} if sigma > 0 else {}),
        "stimulus_segments": {k: kinds.count(k) for k in sorted(set(kinds))},
        "connectome_sha256": con.json_sha256,
        "flyvis_version": FLYVIS_VERSION,
        "x_layout": "x: frames x n_neurons, luminance of the neuron's column on R1-R8, 0 elsewhere",
        "device": str(dev),
        **weight_statistics(weights),
        "tau_min": float(params.tau.min()),
        "tau_max": float(params.tau.max()),
        "V_rest_mean": float(table["V_rest"].mean()),
        "V_rest_std": float(table["V_rest"].std(ddof=0)),
        "V_rest_min": float(params.V_rest.min()),
        "V_rest_max": float(params.V_rest.max()),
        **sim_stats,
        "params_time_s": t_params,
        "total_time_s": time.perf_counter() - t_start,
    }
    write_json(out_dir / layout.SETTINGS, meta)
    return meta
