"""Analyse one trained run: metrics.json plus plots.

Reads the simulation directory and the run's train directory, rebuilds the learned model from
its weights and compares it with the ground truth:

- connectivity (connectivity_R2 with the family's correction, raw R2, Pearson, sign match,
  MagRatio, in/out weight-sum Pearson, per-type R2),
- neuron types from the embeddings (cluster_accuracy: KMeans + Hungarian matching; the reference
  single-linkage variant),
- dynamics: an autoregressive rollout of the learned model against the true simulator on the
  held-out frames (test_R2, test_pearson).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import layout
from ..config import validate
from ..device import resolve_device
from ..families import get_family
from ..io import TRAIN_INFO, DataError, read_json, remove_stale_temps, write_json
from ..progress import log_summary
from ..simulate.data import Simulation
from ..train.trainer import LOSS, MODEL, RUN_CONFIG
from . import plots
from .clustering import cluster_metrics, kmeans_types
from .metrics import (
    connectivity_metrics,
    field_metrics,
    linear_fit_r2,
    per_type_r2,
    rollout_metrics,
    svd_rank,
)

METRICS = layout.METRICS
PLOTS = {
    "w_scatter": "W_scatter.png",
    "embeddings": "embeddings.png",
    "mlp": "mlp_curves.png",
    "loss": "loss.png",
    "per_type": "per_type_R2.png",
    "rollout": "rollout.png",
    "field": "field_traces.png",  # a learned input only
    "field_images": "field_images.png",  # ... whose units have places (FlyVis, moving pattern)
}


def rollout(
    f, u0: torch.Tensor, n_steps: int, dt: float, inputs: torch.Tensor | None = None
) -> np.ndarray:
    """Explicit-Euler rollout of u' = f(u) (or f(u, x_t)) from u0 for n_steps frames (u0 included).

    ``inputs`` (n_steps x N), when given, is the external input of every step.
    """
    out = torch.empty((n_steps, u0.shape[-1]), dtype=torch.float32)
    u = u0.clone()
    with torch.no_grad():
        for t in range(n_steps):
            out[t] = u.cpu()
            if inputs is None:
                du = f(u.unsqueeze(0)).squeeze(0)
            else:
                du = f(u.unsqueeze(0), inputs[t].unsqueeze(0)).squeeze(0)
            u = u + dt * du
            if not torch.isfinite(u).all():
                out[t + 1 :] = float("nan")
                break
    return out.numpy()


MAX_DENSE_RANK_N = 3000  # above this, W ranks are left out (a dense SVD of N x N is too costly)


def _rank_metrics(sim: Simulation, ro: dict) -> dict:
    """SVD ranks (90/99 % of the variance) of the true and learned W, plus the activity ranks
    the simulator recorded (simulation.json ``svd_rank_90/99``) when present."""
    out = {
        f"activity_rank_{q}": sim.meta[f"svd_rank_{q}"]
        for q in (90, 99)
        if f"svd_rank_{q}" in sim.meta
    }
    n = sim.n_neurons
    if n <= MAX_DENSE_RANK_N:
        for label, values in (("true", ro["w_true"]), ("learned", ro["w_learned"])):
            dense = np.zeros((n, n))
            dense[ro["post"], ro["pre"]] = values
            for key, rank in svd_rank(dense).items():
                out[f"W_{label}_{key}"] = rank
    return out


def parameter_metrics(family, ro: dict) -> dict:
    """R2 and slope of the family's per-neuron parameters against the truth, for each reading
    (the family's ``parameter_variants``) and over each of its ``neuron_subsets``."""
    out: dict = {}
    for name in family.neuron_parameters:
        truth = ro[f"{name}_true"]
        for variant in ("", *family.parameter_variants):
            learned = ro.get(f"{name}_{variant}_learned" if variant else f"{name}_learned")
            if learned is None:
                continue
            suffix = f"_{variant}" if variant else ""
            slope, _, r2 = linear_fit_r2(truth, learned)
            out[f"{name}_R2{suffix}"] = r2
            out[f"{name}_slope{suffix}"] = slope
        for subset in family.neuron_subsets:
            keep = ro.get(subset)
            if keep is not None and keep.sum() >= 2:
                _, _, r2 = linear_fit_r2(truth[keep], ro[f"{name}_learned"][keep])
                out[f"{name}_R2_{subset}"] = r2
    for subset in family.neuron_subsets:
        if subset in ro:
            out[f"{subset}_fraction"] = float(np.mean(ro[subset]))
    return out


#: training frames (evenly spread) of the data-loss comparison of the learned and true models
DATA_LOSS_FRAMES = 2000


FIELD_FRAMES = 5000


def field_readout(sim: Simulation, field, frames=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true and the learned input per field unit (T x n_units each) on ``frames`` (default:
    up to :data:`FIELD_FRAMES` training frames spread evenly), and those frames.  A unit's true
    value is the simulated x of its first target neuron (the targets of a unit share one)."""
    if frames is None:
        n = sim.n_train_frames
        frames = np.unique(np.linspace(0, n - 1, min(FIELD_FRAMES, n)).round().astype(int))
    frames = np.asarray(frames, dtype=np.int64)
    targets = field.targets.cpu().numpy()
    units = field.units.cpu().numpy()
    first = np.array([targets[np.flatnonzero(units == m)[0]] for m in range(field.n_units)])
    x_true = sim.read_frames("x", frames)[:, first]
    with torch.no_grad():
        learned = field.unit_values(torch.from_numpy(frames).to(field.targets.device))
    return x_true, learned.cpu().numpy(), frames


def model_input(model, frames, known, device):
    """The input x (frames x N) the model reads at ``frames``: its learned field, or ``known``,
    the simulated x already read for the same frames (None for a simulation without input)."""
    if getattr(model, "field", None) is None:
        return known
    with torch.no_grad():
        return model.field(torch.as_tensor(np.asarray(frames), device=device))


def data_losses(sim: Simulation, model, truth, device) -> dict:
    """Mean squared error of du/dt on the same training frames for the learned model
    (``data_mse``) and the ground-truth simulator (``data_mse_true``; 0 up to rounding for
    exact derivatives, the noise level for noisy ones), relative to the variance of du/dt
    (``data_mse_rel``).  A learned model at or below the truth's loss whose W is still wrong
    is the signature of a near-degenerate fit (another W and edge function explain the data)."""
    idx = np.linspace(0, sim.n_train_frames - 1, min(DATA_LOSS_FRAMES, sim.n_train_frames))
    idx = np.unique(idx.round().astype(int))
    u = torch.from_numpy(sim.read_frames("u", idx)).to(device)
    du = torch.from_numpy(sim.read_frames("du", idx)).to(device)
    x = torch.from_numpy(sim.read_frames("x", idx)).to(device) if sim.has_input else None
    x_model = model_input(model, idx, x, device)
    with torch.no_grad():
        pred = model(u) if x_model is None else model(u, x_model)
        true = truth(u) if x is None else truth(u, x)
    var = float(du.double().var()) or 1.0
    learned = float(((pred - du).double() ** 2).mean())
    return {
        "data_mse": learned,
        "data_mse_true": float(((true - du).double() ** 2).mean()),
        "data_mse_rel": learned / var,
    }


def read_train_info(path: Path) -> dict:
    """train_info.json, checked: a status of ok/failed/pruned and the keys the analysis needs
    (a pruned run is analysed like a finished one; its metrics keep the status pruned)."""
    info = read_json(path)
    if not isinstance(info, dict):
        raise DataError(f"{path}: expected a JSON object")
    if info.get("status") not in ("ok", "failed", "pruned"):
        raise DataError(
            f"{path}: field 'status' must be 'ok', 'failed' or 'pruned' (stopped early by an "
            f"exploration), got {info.get('status')!r}"
        )
    xnorm = info.get("xnorm")
    if not isinstance(xnorm, int | float) or not np.isfinite(xnorm) or xnorm <= 0:
        raise DataError(f"{path}: field 'xnorm' must be a positive number, got {xnorm!r}")
    return info


def load_trained_model(sim: Simulation, train_dir: Path, device: torch.device):
    train_dir = Path(train_dir)
    cfg_path = train_dir / RUN_CONFIG
    run_cfg = read_json(cfg_path)
    if not isinstance(run_cfg, dict) or not isinstance(run_cfg.get("training"), dict):
        raise DataError(f"{cfg_path}: expected an object with a 'training' mapping")
    run_cfg["training"] = validate(run_cfg["training"], "train", source=f"{cfg_path}: training")
    family = get_family(sim.family)
    model = family.build_model(sim, run_cfg["training"])
    path = train_dir / MODEL
    if not path.is_file():
        raise DataError(f"{path}: trained model not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: cannot load model weights ({type(exc).__name__})") from None
    try:
        model.load_state_dict(state)
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc))
        raise DataError(
            f"{path}: cannot load model weights: they do not fit the architecture in "
            f"{cfg_path} ({first[:200]})"
        ) from None
    return family, model.to(device).eval(), run_cfg


def analyze_run(
    sim_dir: str | Path,
    train_dir: str | Path,
    out_dir: str | Path,
    run_id: dict | None = None,
    device: str = "cpu",
) -> dict:
    out_dir = Path(out_dir)
    plot_dir = out_dir / layout.PLOTS
    plot_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
    remove_stale_temps(plot_dir)
    sim = Simulation(sim_dir)
    info = read_train_info(Path(train_dir) / TRAIN_INFO)
    dev = resolve_device(device)
    family, model, run_cfg = load_trained_model(sim, Path(train_dir), dev)

    metrics: dict = {
        **(run_id or {}),
        "family": sim.family,
        "status": info["status"],
        "reason": info.get("reason"),
        "final_loss": info.get("final_loss"),
        "training_time_min": info.get("training_time_min"),
        "iterations": info.get("iterations_done"),
        "frames_per_s": info.get("frames_per_s"),
        "device": info.get("device"),
    }
    finite = all(torch.isfinite(p).all() for p in model.parameters())
    if not finite:
        metrics["status"] = "failed"
        metrics["reason"] = metrics["reason"] or "learned parameters are not finite"
    else:
        ro = family.readouts(model, sim, u_range=(-info["xnorm"], info["xnorm"]))
        conn = connectivity_metrics(
            ro["w_true"], ro["w_learned"], ro["w_raw"], ro["post"], ro["pre"], sim.n_neurons
        )
        metrics.update(conn)
        types = sim.types
        metrics["per_type_R2"] = per_type_r2(ro["w_true"], ro["w_learned"], types[ro["post"]])
        cluster_seed = int(run_cfg["training"]["seed"])
        kmeans = kmeans_types(ro["embeddings"], types, seed=cluster_seed)
        metrics.update(cluster_metrics(ro["embeddings"], types, cluster_seed, kmeans=kmeans))
        metrics.update(parameter_metrics(family, ro))
        metrics.update(_rank_metrics(sim, ro))
        truth = family.true_dynamics(sim).to(dev)
        metrics.update(data_losses(sim, model, truth, dev))

        n_test = sim.n_frames - sim.n_train_frames
        n_roll = min(int(sim.model_cfg.get("n_rollout_frames", n_test)), n_test)
        if n_roll >= 2:
            u0 = torch.from_numpy(sim.read("u", sim.n_train_frames, sim.n_train_frames + 1)[0]).to(
                dev
            )
            start = sim.n_train_frames
            x_in = sim.read_input(start, start + n_roll)
            x_in = None if x_in is None else torch.from_numpy(x_in).to(dev)
            u_true = rollout(truth, u0, n_roll, sim.dt, x_in)
            # a learned input is the field beyond the training frames (an extrapolation)
            x_model = model_input(model, np.arange(start, start + n_roll), x_in, dev)
            u_pred = rollout(model, u0, n_roll, sim.dt, x_model)
            metrics.update(rollout_metrics(u_true, u_pred))
            plots.plot_rollout(
                u_true, u_pred, sim.dt, plot_dir / PLOTS["rollout"], r2=metrics.get("test_R2")
            )

        if model.field is not None and sim.has_input:
            x_true, x_learned, frames = field_readout(sim, model.field)
            metrics.update(field_metrics(x_true, x_learned))
            plots.plot_field_traces(
                x_true,
                x_learned,
                frames * sim.dt,
                plot_dir / PLOTS["field"],
                r2=metrics["field_R2"],
            )
            positions = family.input_units(sim)[3]
            if positions is not None:
                plots.plot_field_images(
                    positions, x_true, x_learned, frames * sim.dt, plot_dir / PLOTS["field_images"]
                )

        plots.plot_w_scatter(
            ro["w_true"],
            ro["w_learned"],
            plot_dir / PLOTS["w_scatter"],
            r2=conn["connectivity_R2"],
            slope=conn["connectivity_slope"],
        )
        plots.plot_per_type_r2(metrics["per_type_R2"], plot_dir / PLOTS["per_type"])
        plots.plot_embeddings(
            ro["embeddings"],
            types,
            plot_dir / PLOTS["embeddings"],
            predicted=kmeans.predicted,
            accuracy=metrics["cluster_accuracy"],
        )
        plots.plot_mlp_curves(
            ro["grid"],
            ro["phi_curves"],
            ro["edge_curves"],
            types,
            plot_dir / PLOTS["mlp"],
            phi_true=ro.get("phi_true"),
            edge_true=ro.get("edge_true"),
            edge_labels=ro.get("edge_labels"),
            grid_label=ro.get("grid_label", "u"),
        )
    loss_path = Path(train_dir) / LOSS
    loss_df = (
        pd.read_csv(loss_path)
        if loss_path.is_file()
        else pd.DataFrame(columns=["iteration", "loss"])
    )
    plots.plot_loss(loss_df, plot_dir / PLOTS["loss"])
    write_json(out_dir / METRICS, metrics)
    summary = {"status": metrics["status"]}
    shown = ("connectivity_R2", "cluster_accuracy", "test_R2", *family.headline_metrics)
    summary.update({k: metrics[k] for k in dict.fromkeys(shown) if k in metrics})
    n_plots = len(list(plot_dir.glob("*.png")))
    summary["outputs"] = f"{out_dir / METRICS} and {n_plots} plots in {plot_dir}"
    log_summary("analyze", summary)
    return metrics
