"""Training loop: fit a family's GNN to du/dt of a simulation.

Outputs in the run's train directory::

    model.pt          final weights (state_dict; load with weights_only=True)
    checkpoint.pt     resumable state (model, optimizer, RNG, position): written every epoch,
                      every ``checkpoint_every`` iterations, every ``checkpoint_minutes`` and
                      when a stop signal arrives (SIGTERM/SIGUSR1/SIGINT: time limit, preemption)
    loss.csv          iteration, epoch, loss, data_loss and each regulariser
    train_info.json   status ok/failed/pruned (+ reason), wall time, iterations, frames/s,
                      device
    run_config.json   model, sparsity, cfg, seed, training and simulation settings
    scores.csv        only when an exploration asked for score reports (score_request.json):
                      the exploration's score at checkpoints (see :class:`.checkpoint.ScoreReports`);
                      a run its scorer decides to prune stops there with status ``pruned``

The parts: :mod:`.data` (the frames), :mod:`.checkpoint` (identity, resume, loss log),
:mod:`.schedule` (iterations, learning rates, time budget, basis refresh), :mod:`.step` (one
Adam step) and :mod:`.outputs`; :func:`train_run` orchestrates them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import validate
from ..device import resolve_device
from ..errors import ConfigError, Interrupted  # noqa: F401 - ConfigError re-exported
from ..families import get_family
from ..io import remove_stale_temps
from ..layout import CHECKPOINT, LOSS, MODEL, RUN_CONFIG  # noqa: F401 - re-exported
from ..models.base import ConnectomeGNN
from ..models.embedding import activity_embedding
from ..models.siren import LearnedInput, input_settings
from ..progress import log_summary, progress_bar
from ..simulate.data import Simulation
from . import field_fit, receiver_solver, solver, sparsify
from .checkpoint import (
    LossLog,
    ScoreReports,
    config_hash,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from .data import TrainingData, rollout_pred
from .outputs import write_outputs, write_run_config
from .schedule import (
    TimeBudget,
    epoch_config,
    frozen_epoch,
    iterations_per_epoch,
    make_optimizer,
    phase_settings,
    refresh_schedule,
    replaces_after,
    set_lr,
    training_seed,
)
from .signals import StopRequest
from .step import data_loss, train_step

#: frames (from the first) whose statistics start the embeddings with embedding_init: activity
ACTIVITY_EMBEDDING_FRAMES = 20_000

# the names the loop calls, looked up in this module (tests and benchmarks patch them here)
_config_hash = config_hash
_save_checkpoint = save_checkpoint
_rollout_pred = rollout_pred
_data_loss = data_loss
_make_optimizer = make_optimizer


def _set_lr(optimizer, cfg: dict, progress: float) -> None:
    set_lr(optimizer, cfg, progress, ConnectomeGNN.LR_KEYS)


class _Run:
    """The state of one training between its iterations."""

    def __init__(self, out_dir: Path, model, optimizer, gen, data, cfg: dict, hash_: str):
        self.out_dir, self.model, self.optimizer, self.gen = out_dir, model, optimizer, gen
        self.data, self.cfg, self.hash = data, cfg, hash_
        self.n_iter = iterations_per_epoch(data.n_train, cfg)
        self.n_epochs = int(cfg["n_epochs"])
        self.total = self.n_iter * self.n_epochs
        self.log = LossLog()
        self.epoch, self.iteration, self.before_s = 0, 0, 0.0
        self.resumed: int | None = None
        # stopped_by of a finished run whose outputs are written from its final checkpoint
        self.finished_by: str | None = None
        self.monitor: Callable[[Any, int, float], None] | None = None
        self.reports = ScoreReports.requested(out_dir, self.total)
        self.solver = {**cfg, **solver.settings(cfg), **input_settings(cfg)}
        self.solver_info: dict = {}
        if self.solving:  # W is set by the solver, and a fitted lin_edge is kept
            model.W.requires_grad_(False)
            if self.solver["edge_fit"] != "none":
                model.lin_edge.requires_grad_(False)
        self.phases = phase_settings(cfg)
        # what fix_cluster_embedding holds fixed for an epoch, and whether each trains otherwise
        self._fixable = [(p, p.requires_grad) for p in [model.a, *model.lin_edge.parameters()]]

    @property
    def solving(self) -> bool:
        return self.solver["W_solve"] != "none"

    @property
    def position(self) -> int:
        return self.epoch * self.n_iter + self.iteration

    def resume(self, attempt: int = 1) -> None:
        """Continue from the checkpoint of this configuration, if there is one.  The final
        checkpoint of a finished run means training afresh (a forced rerun), except in a retry
        (``attempt`` > 1, Snakemake's retry of a failed job): the run had finished within this
        workflow run (e.g. a member of a failed pack) and is finished from it, not trained again."""
        path = self.out_dir / CHECKPOINT
        ckpt = load_checkpoint(path, self.hash)
        if ckpt is not None and int(ckpt["epoch"]) >= self.n_epochs:
            if attempt > 1:
                self.finished_by = ckpt.get("stopped_by")
                print(
                    f"attempt {attempt}: {path} is the final checkpoint of this finished run; "
                    "writing its outputs from it without training again",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                print(
                    f"{path} is the final checkpoint of a finished run; training afresh",
                    file=sys.stderr,
                    flush=True,
                )
                ckpt = None
        if ckpt is None:
            return
        restore(ckpt, self.model, self.optimizer, self.gen)
        self.epoch, self.iteration = int(ckpt["epoch"]), int(ckpt["iteration"])
        self.before_s = float(ckpt["elapsed_s"])
        self.log = LossLog.from_checkpoint(ckpt)
        self.solver_info = dict(ckpt.get("solver_info", {}))
        self.resumed = self.position
        print(
            f"resumed from checkpoint {path}: epoch {self.epoch}, iteration {self.iteration} "
            f"({self.position} of {self.total} done)",
            file=sys.stderr,
            flush=True,
        )

    def save(
        self, epoch: int, iteration: int, budget: TimeBudget, stopped_by: str | None = None
    ) -> None:
        state = {
            "epoch": epoch,
            "iteration": iteration,
            "elapsed_s": budget.elapsed(),
            "config_hash": self.hash,
            **self.log.state(),
        }
        if stopped_by:
            state["stopped_by"] = stopped_by
        if self.solving:
            state["solver_info"] = self.solver_info
        _save_checkpoint(self.out_dir / CHECKPOINT, self.model, self.optimizer, self.gen, state)

    def prepare(self, seed: int, budget: TimeBudget) -> None:
        """A fresh start of a solver run: the edge fit, the first (joint) W solve and the fit of
        lin_phi to it; then a checkpoint, so that a preempted job does not redo them."""
        if not self.solving:
            return
        data, model, cfg = self.data, self.model, self.solver
        if model.W_solver == "per_receiver":  # a known connectome (FlyVis)
            self.solver_info.update(
                receiver_solver.prepare_receivers(
                    model, data.u, data.du, data.x_in, cfg, seed, _log
                )
            )
        else:
            field = model.field
            if cfg["edge_fit"] == "varpro":  # on du - x, or without the neurons of a learned x
                known = data.x_in if field is None else None
                every = solver.solver_frames(data.n_train, int(cfg["edge_fit_frames"]))
                du = (
                    data.du if known is None else field_fit.input_free_target(data.du, known, every)
                )
                exclude = None if field is None else field.targets
                self.solver_info.update(
                    solver.fit_edge(model, data.u, du, cfg, seed, _log, exclude=exclude)
                )
            if field is not None and cfg["field_init"] == "estimate":
                self.solver_info.update(
                    field_fit.initialise_field(model, data.u, data.du, cfg, self.gen, _log)
                )
            self.solver_info.update(solver.solve_W(model, data.u, data.du, cfg, data.x_in))
        self.solver_info["W_solves"] = 1
        _log(f"solver: {_describe(self.solver_info)}")
        self.save(0, 0, budget)

    def resolve(self) -> None:
        """A W solve given the current lin_phi (the periodic and final solves)."""
        info = solver.solve_W(
            self.model,
            self.data.u,
            self.data.du,
            {**self.solver, "W_solve_phi_basis": 0},
            self.data.x_in,
        )
        self.solver_info["W_solves"] = self.solver_info.get("W_solves", 0) + 1
        self.solver_info["W_solve_mse"] = info["W_solve_mse"]

    def begin_epoch(self, epoch: int) -> dict:
        """The config of an epoch (its L1 / edge_diff phase); lin_edge and the embeddings are
        held fixed in the epoch after a cluster-median replacement (fix_cluster_embedding)."""
        frozen = frozen_epoch(self.phases, epoch, self.n_epochs)
        for param, trains in self._fixable:
            param.requires_grad_(trains and not frozen)
        return epoch_config(self.cfg, self.phases, epoch)

    def end_epoch(self, epoch: int) -> None:
        """The cluster-median replacement of the embeddings after this epoch, if it is due."""
        if not replaces_after(self.phases, epoch, self.n_epochs):
            return
        info = sparsify.replace_embedding_function(
            self.model, self.data.xnorm, self.phases, float(self.cfg["lr"]), int(self.cfg["seed"])
        )
        _log(f"epoch {epoch}: embeddings replaced by cluster medians ({_describe(info)})")

    def before_step(self, global_it: int) -> None:
        """Periodic actions before an iteration's batch is drawn: the W-basis refresh and the
        W solves."""
        cfg = self.cfg
        if self.model.has_basis and refresh_schedule(global_it, int(cfg["W_basis_every"])):
            self.model.refresh_basis(
                self.optimizer, self.data.u, int(cfg["W_basis_frames"]), self.gen
            )
        every = int(self.solver["W_solve_every"])
        if self.solving and every and global_it and global_it % every == 0:
            self.resolve()


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _describe(info: dict) -> str:
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()
    )


def train_run(
    sim_dir: str | Path,
    train_cfg: dict,
    out_dir: str | Path,
    replicate_seed: int,
    device: str = "auto",
    run_id: dict | None = None,
    progress: bool | None = None,
    threads: int | None = None,
    monitor: Callable[[Any, int, float], None] | None = None,
    attempt: int = 1,
) -> dict:
    """Train one run and write its train directory; returns the train_info dict.

    ``attempt`` is Snakemake's attempt of the job: in a retry (> 1) a run that had finished
    (its final checkpoint is there, same configuration) only writes its outputs again, as when
    a failed pack of trainings is retried whole (see :meth:`_Run.resume`).

    ``monitor(model, iterations_done, elapsed_s)``, if given, is called after the solver's
    start (a solver run) and at every logged iteration: benchmarks read the model's progress
    through it (it must not change the model).

    Divergence (non-finite or exploding loss) is not an exception: the run ends with status
    ``failed`` and a reason, and all outputs are still written so the workflow completes.
    """
    out_dir = Path(out_dir)
    # fills defaults of keys newer than the caller's config (a workflow started before an
    # upgrade passes configs validated by the older schema)
    cfg = validate(dict(train_cfg), "train", source="training config")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
    if threads:
        torch.set_num_threads(int(threads))
    sim = Simulation(sim_dir)
    family = get_family(sim.family)
    dev = resolve_device(device)
    seed = training_seed(cfg["seed"], replicate_seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = TrainingData(sim, cfg, dev)
    model = family.build_model(sim, cfg, generator=gen).to(dev)
    if model.field is not None:  # input: learned; the rollouts read the field
        data.x_in = LearnedInput(model.field)
    run = _Run(
        out_dir, model, _make_optimizer(model, cfg), gen, data, cfg, _config_hash(cfg, sim.meta)
    )
    run.resume(attempt)
    if run.resumed is None and cfg["embedding_init"] == "activity":  # a resume loads a
        with torch.no_grad():
            span = slice(0, min(data.n_train, ACTIVITY_EMBEDDING_FRAMES))
            model.a.copy_(activity_embedding(data.u[span], data.du[span], model.a.shape[1]))
    write_run_config(out_dir, run_id, cfg, sim.model_cfg, run.hash)

    t0 = time.perf_counter()
    budget = TimeBudget(cfg.get("max_minutes"), run.before_s, lambda: time.perf_counter())
    if run.resumed is None:
        run.prepare(seed, budget)
    run.monitor = monitor
    if monitor is not None and run.solving:
        monitor(model, run.position, budget.elapsed())
    status, reason, stopped, done = _loop(run, budget, progress)
    stopped = stopped or run.finished_by
    if status == "ok" and run.solving and int(run.solver["W_solve_every"]):
        run.resolve()  # the final W for the final MLPs
    if status == "ok" and not all(torch.isfinite(p).all() for p in model.parameters()):
        status, reason = "failed", "non-finite parameters after training"
    if status == "failed":
        model.load_state_dict(run.last_good)

    wall = budget.elapsed()
    info = {
        "status": status,
        "reason": reason,
        "final_loss": run.log.final_loss(),
        "wall_time_s": wall,
        "training_time_min": wall / 60.0,
        "iterations_per_epoch": run.n_iter,
        "n_epochs": run.n_epochs,
        "iterations_done": (run.resumed or 0) + done,
        "frames_per_s": done * int(cfg["batch_size"]) / max(time.perf_counter() - t0, 1e-9)
        if done
        else None,
        "device": str(dev),
        "xnorm": data.xnorm,
        "training_seed": seed,
        "resumed_from_iteration": run.resumed,
        "stopped_by": stopped,
    }
    if run.solving:
        info["solver"] = run.solver_info
    write_outputs(out_dir, model, run.log, info)
    summary = {"status": status, "final_loss": info["final_loss"], "time_s": wall}
    summary["iterations"] = info["iterations_done"]
    if run.resumed:
        summary["resumed_from_iteration"] = run.resumed
    if stopped:
        summary["stopped_by"] = stopped
    if reason:
        summary["reason"] = reason
    log_summary("train", {**summary, "outputs": str(out_dir)})
    return info


def _loop(run: _Run, budget: TimeBudget, progress: bool | None) -> tuple:
    """The epochs and iterations of a run, from its resume position.  Returns (status, reason,
    stopped_by, iterations done here); the last logged state is kept in ``run.last_good``.
    Status ``pruned``: a score report (:func:`_report`) decided to stop the run."""
    cfg, model = run.cfg, run.model
    log_every = int(cfg["log_every"])
    ckpt_every = int(cfg["checkpoint_every"])
    ckpt_seconds = 60.0 * float(cfg["checkpoint_minutes"])
    batch = int(cfg["batch_size"])
    bar = progress_bar(run.total, run.position, desc="train", disable=progress is False)
    run.last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
    status, reason, stopped, done = "ok", None, None, 0
    last_save = time.perf_counter()
    start_epoch, start_iter = run.epoch, run.iteration
    model.train()
    with StopRequest() as stop:
        try:
            for epoch in range(start_epoch, run.n_epochs):
                first = start_iter if epoch == start_epoch else 0
                epoch_cfg = run.begin_epoch(epoch)
                for it in range(first, run.n_iter):
                    if stop.signum is not None:
                        run.save(epoch, it, budget)
                        raise Interrupted(
                            f"{stop.name} received at epoch {epoch} iteration {it}; checkpoint "
                            f"saved to {run.out_dir / CHECKPOINT}; rerun to resume",
                            stop.signum,
                        )
                    global_it = epoch * run.n_iter + it
                    spent = budget.spent()
                    if spent >= 1.0:
                        stopped = f"max_minutes {cfg['max_minutes']:g}"
                        break
                    _set_lr(run.optimizer, cfg, max(global_it / max(run.total, 1), spent))
                    run.before_step(global_it)
                    k = run.data.sample(batch, run.gen)
                    step = train_step(model, run.optimizer, run.data, k, epoch_cfg)
                    if step.diverged:
                        status = "failed"
                        reason = f"loss {step.diverged} at epoch {epoch} iteration {it}"
                        break
                    done += 1
                    if global_it % log_every == 0 or it == run.n_iter - 1:
                        rec = {
                            "iteration": global_it,
                            "epoch": epoch,
                            "loss": step.loss,
                            "data_loss": float(step.data_loss.detach()),
                        }
                        rec.update({k2: float(v.detach()) for k2, v in step.terms.items()})
                        run.log.add(rec)
                        bar.set_postfix(loss=f"{step.loss:.4g}", refresh=False)
                        run.last_good = {
                            k2: v.detach().clone() for k2, v in model.state_dict().items()
                        }
                        if run.monitor is not None:
                            run.monitor(model, global_it + 1, budget.elapsed())
                    report = run.reports is not None and run.reports.due(global_it + 1)
                    if (
                        report
                        or (ckpt_every and (global_it + 1) % ckpt_every == 0)
                        or (ckpt_seconds and time.perf_counter() - last_save >= ckpt_seconds)
                    ):
                        run.save(epoch, it + 1, budget)
                        last_save = time.perf_counter()
                    bar.update(1)
                    if report and (pruned := _report(run, global_it + 1)):
                        status, reason = "pruned", pruned
                        break
                if status != "ok":
                    break
                if stopped:  # the time budget is spent: the run is finished
                    run.save(run.n_epochs, 0, budget, stopped_by=stopped)
                    break
                run.end_epoch(epoch)
                run.save(epoch + 1, 0, budget)
                last_save = time.perf_counter()
        finally:
            bar.close()
    return status, reason, stopped, done


def _report(run: _Run, done: int) -> str | None:
    """The score report at the checkpoint just saved after ``done`` iterations; the reason
    to stop when the exploration's rule prunes the run there."""
    reason = run.reports.report(done, run.total, run.data.xnorm)
    if reason:
        _log(f"pruned at iteration {done} of {run.total}: {reason}")
    return reason
