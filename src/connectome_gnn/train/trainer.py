"""Training loop: fit a family's GNN to du/dt of a simulation.

Outputs in the run's train directory::

    model.pt          final weights (state_dict; load with weights_only=True)
    checkpoint.pt     resumable state (model, optimizer, RNG, position): written every epoch,
                      every ``checkpoint_every`` iterations, every ``checkpoint_minutes`` and
                      when a stop signal arrives (SIGTERM/SIGUSR1/SIGINT: time limit, preemption)
    loss.csv          iteration, epoch, loss, data_loss and each regulariser
    train_info.json   status ok/failed (+ reason), wall time, iterations, frames/s, device
    run_config.json   model, sparsity, cfg, seed, training and simulation settings
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..config import ConfigError, validate
from ..device import resolve_device
from ..families import get_family
from ..io import TRAIN_INFO, DataError, Interrupted, atomic_path, remove_stale_temps, write_json
from ..layout import CHECKPOINT, LOSS, MODEL, RUN_CONFIG  # noqa: F401 - re-exported
from ..models.embedding import activity_embedding
from ..simulate.data import Simulation
from .basis import refresh_basis, refresh_schedule
from .regularizers import regularization
from .signals import StopRequest

#: frames (from the first) whose statistics start the embeddings with embedding_init: activity
ACTIVITY_EMBEDDING_FRAMES = 20_000


def iterations_per_epoch(n_frames: int, cfg: dict) -> int:
    """The reference formula: int(n_frames * data_augmentation_loop // batch_size * 0.2)."""
    n = int(n_frames * cfg["data_augmentation_loop"] // cfg["batch_size"] * cfg["iteration_factor"])
    if cfg.get("max_iterations"):
        n = min(n, int(cfg["max_iterations"]))
    return max(n, 1)


def training_seed(cfg_seed: int, replicate_seed: int) -> int:
    return int(np.random.SeedSequence([int(cfg_seed), int(replicate_seed)]).generate_state(1)[0])


def _config_hash(train_cfg: dict, sim_meta: dict) -> str:
    """Identity of a training for resuming: its config, the simulation config and seed, and
    (FlyVis) the version of the ground-truth parameter generator, so that a checkpoint trained
    on data of an older generator is not resumed on regenerated data."""
    ident = {"train": train_cfg, "sim": sim_meta.get("model_config"), "seed": sim_meta.get("seed")}
    if sim_meta.get("params_version") is not None:  # absent: the hash of earlier runs is kept
        ident["params_version"] = sim_meta["params_version"]
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _rollout_pred(model, u, du, x_in, k, cfg: dict, dt: float):
    """Prediction and target of one batch starting at frames ``k``: du/dt (the default) or, with
    recurrent_training, the Euler rollout over time_step frames as a mean derivative."""
    ub = u[k]
    if not cfg["recurrent_training"]:
        return (model(ub) if x_in is None else model(ub, x_in[k])), du[k]
    steps = int(cfg["time_step"])
    v = ub
    for s in range(steps):
        v = v + dt * (model(v) if x_in is None else model(v, x_in[k + s]))
    return (v - ub) / (dt * steps), (u[k + steps] - ub) / (dt * steps)


def _data_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return torch.mean((pred - target) ** 2)
    return (pred - target).norm(2)


def _make_optimizer(model, cfg: dict) -> torch.optim.Optimizer:
    groups = {"W": [], "emb": [], "mlp": []}
    for name, param in model.named_parameters():
        if name == "W" or name.endswith(".W"):
            groups["W"].append(param)
        elif name == "a" or name.endswith(".a"):
            groups["emb"].append(param)
        else:
            groups["mlp"].append(param)
    lrs = {"W": cfg["lr_W"], "emb": cfg["lr_emb"], "mlp": cfg["lr"]}
    return torch.optim.Adam(
        [{"params": p, "lr": lrs[k], "name": k} for k, p in groups.items() if p]
    )


def _set_lr(optimizer, cfg: dict, progress: float) -> None:
    if cfg["lr_schedule"] != "cosine":
        return
    lrs = {"W": cfg["lr_W"], "emb": cfg["lr_emb"], "mlp": cfg["lr"]}
    floor = cfg["lr_final_fraction"]
    factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    for group in optimizer.param_groups:
        group["lr"] = lrs[group["name"]] * factor


def _save_checkpoint(path: Path, model, optimizer, gen, state: dict) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        **state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, config_hash: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(
            f"{path}: corrupted checkpoint ({type(exc).__name__}); delete it to restart this run"
        ) from None
    if ckpt.get("config_hash") != config_hash:
        return None  # a checkpoint of another configuration: start afresh
    return ckpt


def train_run(
    sim_dir: str | Path,
    train_cfg: dict,
    out_dir: str | Path,
    replicate_seed: int,
    device: str = "auto",
    run_id: dict | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> dict:
    """Train one run and write its train directory; returns the train_info dict.

    Divergence (non-finite or exploding loss) is not an exception: the run ends with status
    ``failed`` and a reason, and all outputs are still written so the workflow completes.
    """
    out_dir = Path(out_dir)
    # fills defaults of keys newer than the caller's config (a workflow started before an
    # upgrade passes configs validated by the older schema)
    train_cfg = validate(dict(train_cfg), "train", source="training config")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
    if threads:
        torch.set_num_threads(int(threads))
    sim = Simulation(sim_dir)
    family = get_family(sim.family)
    dev = resolve_device(device)
    seed = training_seed(train_cfg["seed"], replicate_seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    n_train = sim.n_train_frames
    # start frames: a recurrent rollout of time_step frames must end inside the training frames
    n_starts = n_train - (int(train_cfg["time_step"]) if train_cfg["recurrent_training"] else 0)
    if n_starts < 1:
        raise ConfigError(
            f"field 'time_step': {train_cfg['time_step']} is not shorter than the "
            f"{n_train} training frames"
        )
    u = torch.from_numpy(sim.read("u", 0, n_train)).to(dev)
    du = torch.from_numpy(sim.read("du", 0, n_train)).to(dev)
    x_in = sim.read_input(0, n_train)
    x_in = None if x_in is None else torch.from_numpy(x_in).to(dev)
    xnorm = float(1.5 * u.std())

    model = family.build_model(sim, train_cfg, generator=gen).to(dev)
    optimizer = _make_optimizer(model, train_cfg)
    n_iter = iterations_per_epoch(n_train, train_cfg)
    n_epochs = int(train_cfg["n_epochs"])
    batch = int(train_cfg["batch_size"])
    total_iters = n_iter * n_epochs
    config_hash = _config_hash(train_cfg, sim.meta)

    start_epoch, start_iter, elapsed_before, records = 0, 0, 0.0, []
    ckpt = _load_checkpoint(out_dir / CHECKPOINT, config_hash)
    if ckpt is not None and int(ckpt["epoch"]) >= n_epochs:
        # the checkpoint of a finished run: being asked to train again (snakemake --forcerun,
        # rerun-failed) means train again, not return the old weights
        print(
            f"{out_dir / CHECKPOINT} is the final checkpoint of a finished run; training afresh",
            file=sys.stderr,
            flush=True,
        )
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        start_epoch, start_iter = int(ckpt["epoch"]), int(ckpt["iteration"])
        elapsed_before = float(ckpt["elapsed_s"])
        records = [
            dict(zip(ckpt["loss_columns"], row, strict=True)) for row in ckpt["loss_rows"].tolist()
        ]
        print(
            f"resumed from checkpoint {out_dir / CHECKPOINT}: epoch {start_epoch}, iteration "
            f"{start_iter} ({start_epoch * n_iter + start_iter} of {total_iters} done)",
            file=sys.stderr,
            flush=True,
        )
    elif train_cfg["embedding_init"] == "activity":  # a fresh start (a resume loads a)
        with torch.no_grad():
            span = slice(0, min(n_train, ACTIVITY_EMBEDDING_FRAMES))
            model.a.copy_(activity_embedding(u[span], du[span], model.a.shape[1]))

    write_json(
        out_dir / RUN_CONFIG,
        {
            **(run_id or {}),
            "training": train_cfg,
            "simulation": sim.model_cfg,
            "config_hash": config_hash,
        },
    )

    status, reason = "ok", None
    log_every = int(train_cfg["log_every"])
    ckpt_every = int(train_cfg["checkpoint_every"])
    ckpt_seconds = 60.0 * float(train_cfg["checkpoint_minutes"])
    threshold = float(train_cfg["divergence_threshold"])
    resume_pos = start_epoch * n_iter + start_iter
    bar = tqdm(
        total=total_iters,
        initial=resume_pos,
        desc="train",
        disable=progress is False,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
    done_iters = 0

    def state(epoch: int, iteration: int) -> dict:
        cols = list(records[0]) if records else ["iteration"]
        rows = torch.tensor(
            [[r.get(c, float("nan")) for c in cols] for r in records], dtype=torch.float64
        )
        return {
            "epoch": epoch,
            "iteration": iteration,
            "elapsed_s": elapsed_before + time.perf_counter() - t0,
            "config_hash": config_hash,
            "loss_columns": cols,
            "loss_rows": rows.reshape(len(records), len(cols)),
        }

    def save(epoch: int, iteration: int) -> None:
        nonlocal last_save
        _save_checkpoint(out_dir / CHECKPOINT, model, optimizer, gen, state(epoch, iteration))
        last_save = time.perf_counter()

    budget_s = 60.0 * float(train_cfg.get("max_minutes") or 0.0)
    stopped = None

    def time_spent() -> float:
        """Fraction of the max_minutes budget used (0 without a budget)."""
        if not budget_s:
            return 0.0
        return (elapsed_before + time.perf_counter() - t0) / budget_s

    epoch, it = start_epoch, start_iter
    last_save = t0
    model.train()
    with StopRequest() as stop:
        try:
            for epoch in range(start_epoch, n_epochs):
                first = start_iter if epoch == start_epoch else 0
                for it in range(first, n_iter):
                    if stop.signum is not None:
                        save(epoch, it)
                        raise Interrupted(
                            f"{stop.name} received at epoch {epoch} iteration {it}; checkpoint "
                            f"saved to {out_dir / CHECKPOINT}; rerun to resume",
                            stop.signum,
                        )
                    global_it = epoch * n_iter + it
                    spent = time_spent()
                    if spent >= 1.0:
                        stopped = f"max_minutes {train_cfg['max_minutes']:g}"
                        break
                    _set_lr(optimizer, train_cfg, max(global_it / max(total_iters, 1), spent))
                    if getattr(model, "W_basis", None) is not None and refresh_schedule(
                        global_it, int(train_cfg["W_basis_every"])
                    ):
                        args = (optimizer, u, int(train_cfg["W_basis_frames"]), gen)
                        if hasattr(model, "refresh_basis"):  # per-receiver bases (FlyVis)
                            model.refresh_basis(*args)
                        else:
                            refresh_basis(model, *args)
                    k = torch.randint(n_starts, (batch,), generator=gen).to(dev)
                    ub = u[k]
                    pred, target = _rollout_pred(model, u, du, x_in, k, train_cfg, sim.dt)
                    data_loss = _data_loss(pred, target, train_cfg["loss"])
                    terms = regularization(model, ub, train_cfg, xnorm)
                    loss = data_loss + sum(terms.values()) if terms else data_loss
                    value = float(loss.detach())
                    if not math.isfinite(value) or value > threshold:
                        status = "failed"
                        what = (
                            "non-finite"
                            if not math.isfinite(value)
                            else f"above divergence_threshold {threshold:g}"
                        )
                        reason = f"loss {what} ({value:.4g}) at epoch {epoch} iteration {it}"
                        break
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    done_iters += 1
                    if global_it % log_every == 0 or it == n_iter - 1:
                        rec = {
                            "iteration": global_it,
                            "epoch": epoch,
                            "loss": value,
                            "data_loss": float(data_loss.detach()),
                        }
                        rec.update({k2: float(v.detach()) for k2, v in terms.items()})
                        records.append(rec)
                        bar.set_postfix(loss=f"{value:.4g}", refresh=False)
                        last_good = {k2: v.detach().clone() for k2, v in model.state_dict().items()}
                    if (ckpt_every and (global_it + 1) % ckpt_every == 0) or (
                        ckpt_seconds and time.perf_counter() - last_save >= ckpt_seconds
                    ):
                        save(epoch, it + 1)
                    bar.update(1)
                if status != "ok":
                    break
                if stopped:  # the time budget is spent: the run is finished
                    save(n_epochs, 0)
                    break
                save(epoch + 1, 0)
                start_iter = 0
        finally:
            bar.close()

    if status != "ok" or not all(torch.isfinite(p).all() for p in model.parameters()):
        if status == "ok":
            status, reason = "failed", "non-finite parameters after training"
        model.load_state_dict(last_good)

    wall = elapsed_before + time.perf_counter() - t0
    with atomic_path(out_dir / MODEL) as tmp:
        torch.save(model.state_dict(), tmp)
    loss_df = pd.DataFrame.from_records(records)
    if loss_df.empty:
        loss_df = pd.DataFrame(columns=["iteration", "epoch", "loss", "data_loss"])
    with atomic_path(out_dir / LOSS) as tmp:
        loss_df.to_csv(tmp, index=False)
    final_loss = float(loss_df["loss"].iloc[-1]) if len(loss_df) else float("nan")
    info = {
        "status": status,
        "reason": reason,
        "final_loss": final_loss,
        "wall_time_s": wall,
        "training_time_min": wall / 60.0,
        "iterations_per_epoch": n_iter,
        "n_epochs": n_epochs,
        "iterations_done": resume_pos + done_iters,
        "frames_per_s": done_iters * batch / max(time.perf_counter() - t0, 1e-9)
        if done_iters
        else None,
        "device": str(dev),
        "xnorm": xnorm,
        "training_seed": seed,
        "resumed_from_iteration": resume_pos if ckpt is not None else None,
        "stopped_by": stopped,
    }
    write_json(out_dir / TRAIN_INFO, info)
    return info
