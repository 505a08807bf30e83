"""Recovery under a wall-clock budget: simulate, train with a recipe, analyse, per filling factor.

For each filling factor f the standard dense signal model (PDE_N2, 4 types, Cauchy W scaled by
N^-0.7; N = 1000 and 50,000 frames by default) is simulated once and cached in ``--work-dir``.
The training budget (``--minutes``) is converted into a number of iterations by timing the real
training step on the real data for ~10 s (or set ``--iterations``); then
:func:`connectome_gnn.train.trainer.train_run` trains with the recipe (``config/train/default.yaml``
by default; ``max_iterations`` set so that the whole run, cosine learning-rate decay included, fits
the budget) and :func:`connectome_gnn.analysis.run.analyze_run` scores it.  One JSON object is
printed to stdout; progress goes to stderr.

Target (dense N = 1000, 2 CPU cores): connectivity_R2 >= 0.99 and cluster_accuracy >= 0.99 with a
training wall time within 10 minutes.

    .venv/bin/python bench/recovery.py                                    # full benchmark
    .venv/bin/python bench/recovery.py --n-neurons 100 --n-frames 3000 --minutes 0.3 \\
        --filling-factors 1.0                                             # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from connectome_gnn.analysis.run import analyze_run
from connectome_gnn.config import format_sparsity, load_train_config, validate
from connectome_gnn.families import get_family
from connectome_gnn.io import read_json, write_json
from connectome_gnn.simulate import Simulation
from connectome_gnn.stages import run_simulation
from connectome_gnn.train.regularizers import regularization
from connectome_gnn.train.schedule import refresh_schedule
from connectome_gnn.train.trainer import (
    _data_loss,
    _make_optimizer,
    _set_lr,
    iterations_per_epoch,
    resolve_device,
    train_run,
    training_seed,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRAIN_CONFIG = ROOT / "config" / "train" / "default.yaml"
SIM_TIME = "bench_simulation_time.json"  # our own side file in the cached simulation directory
TARGET = {"connectivity_R2": 0.99, "cluster_accuracy": 0.99}


def log(msg: str) -> None:
    print(f"[recovery] {msg}", file=sys.stderr, flush=True)


def model_config(args) -> dict:
    cfg = validate(
        {"family": "signal", "n_neurons": args.n_neurons, "n_frames": args.n_frames},
        "signal.model",
        source="bench/recovery.py",
    )
    get_family("signal").check_model(cfg, source="bench/recovery.py")
    return cfg


def simulate_cached(model_cfg: dict, sparsity: float, seed: int, work_dir: Path) -> tuple:
    """(sim_dir, simulation seconds, cached?) -- reuses a finished simulation of the same config."""
    name = f"N{model_cfg['n_neurons']}_F{model_cfg['n_frames']}"
    sim_dir = work_dir / "sim" / name / f"f{format_sparsity(sparsity)}" / f"seed{seed}"
    settings = sim_dir / "simulation.json"  # written last by the simulator
    if settings.is_file() and (sim_dir / SIM_TIME).is_file():
        meta = read_json(settings)
        if meta.get("model_config") == model_cfg and int(meta.get("seed", -1)) == seed:
            return sim_dir, float(read_json(sim_dir / SIM_TIME)["seconds"]), True
    if sim_dir.exists():
        shutil.rmtree(sim_dir)
    t0 = time.perf_counter()
    run_simulation(model_cfg, sparsity, seed, sim_dir)
    seconds = time.perf_counter() - t0
    write_json(sim_dir / SIM_TIME, {"seconds": seconds})
    return sim_dir, seconds, False


def measure_rate(sim_dir: Path, cfg: dict, replicate_seed: int, device: str, seconds: float):
    """Iterations/s of the trainer's step on this simulation (after 3 warm-up iterations)."""
    sim = Simulation(sim_dir)
    dev = resolve_device(device)
    seed = training_seed(cfg["seed"], replicate_seed)
    gen = torch.Generator().manual_seed(seed)
    n_train = sim.n_train_frames
    u = torch.from_numpy(sim.read("u", 0, n_train)).to(dev)
    du = torch.from_numpy(sim.read("du", 0, n_train)).to(dev)
    xnorm = float(1.5 * u.std())
    model = get_family(sim.family).build_model(sim, cfg, generator=gen).to(dev)
    optimizer = _make_optimizer(model, cfg)
    batch = int(cfg["batch_size"])
    eigen = getattr(model, "W_basis", None) is not None

    def step(i: int) -> None:
        _set_lr(optimizer, cfg, 0.0)
        if eigen and refresh_schedule(i, int(cfg["W_basis_every"])):
            model.refresh_basis(optimizer, u, int(cfg["W_basis_frames"]), gen)
        k = torch.randint(n_train, (batch,), generator=gen).to(dev)
        ub = u[k]
        pred = model(ub)
        data_loss = _data_loss(pred, du[k], cfg["loss"])
        terms = regularization(model, ub, cfg, xnorm)
        loss = data_loss + sum(terms.values()) if terms else data_loss
        float(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(3):
        step(i)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        step(3 + n)
        n += 1
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elapsed = time.perf_counter() - t0
    if eigen:
        # the step above refreshes at the same iteration numbers as training, but a short probe
        # under-counts them over a long run: add the expected refresh cost per iteration
        t1 = time.perf_counter()
        model.refresh_basis(optimizer, u, int(cfg["W_basis_frames"]), gen)
        per_refresh = time.perf_counter() - t1
        elapsed += n * per_refresh / int(cfg["W_basis_every"])
    return n / elapsed, n, elapsed


def run_one(args, model_cfg: dict, base_cfg: dict, sparsity: float) -> dict:
    key = format_sparsity(sparsity)
    sim_dir, sim_s, cached = simulate_cached(model_cfg, sparsity, args.seed, args.work_dir)
    log(f"f={key}: simulation {'cached' if cached else 'done'} ({sim_s:.1f} s) in {sim_dir}")
    sim = Simulation(sim_dir)
    n_epochs = int(base_cfg["n_epochs"])
    budget_s = args.minutes * 60.0

    calib = {}
    if args.iterations:
        total = int(args.iterations)
    else:
        seconds = min(args.calibration_seconds, budget_s / 2)
        rate, n, elapsed = measure_rate(sim_dir, base_cfg, args.seed, args.device, seconds)
        total = max(1, int(rate * budget_s))
        calib = {
            "calibration_iterations_per_s": rate,
            "calibration_iterations": n,
            "calibration_s": elapsed,
        }
        log(
            f"f={key}: {rate:.1f} it/s over {elapsed:.1f} s -> {total} iterations in {budget_s:g} s"
        )
    cfg = dict(base_cfg)
    cfg["max_iterations"] = max(1, math.ceil(total / n_epochs))
    recipe = iterations_per_epoch(sim.n_train_frames, base_cfg) * n_epochs
    planned = iterations_per_epoch(sim.n_train_frames, cfg) * n_epochs
    if planned < total:
        log(f"f={key}: the recipe's own length ({planned} iterations) is below the budget")

    run_dir = args.work_dir / "runs" / sim_dir.relative_to(args.work_dir / "sim") / args.cfg_name
    train_dir, analysis_dir = run_dir / "train", run_dir / "analysis"
    for d in (train_dir, analysis_dir):  # a finished checkpoint would be resumed: start afresh
        if d.exists():
            shutil.rmtree(d)
    run_id = {"model": "bench", "sparsity": key, "cfg": args.cfg_name, "seed": args.seed}

    t0 = time.perf_counter()
    info = train_run(
        sim_dir,
        cfg,
        train_dir,
        replicate_seed=args.seed,
        device=args.device,
        run_id=run_id,
        progress=False,
        threads=args.threads,
    )
    train_call_s = time.perf_counter() - t0
    log(
        f"f={key}: trained {info['iterations_done']} iterations in {info['wall_time_s']:.1f} s "
        f"({info['frames_per_s']:.0f} frames/s), status {info['status']}"
    )
    t0 = time.perf_counter()
    metrics = analyze_run(sim_dir, train_dir, analysis_dir, run_id=run_id, device=args.device)
    analysis_s = time.perf_counter() - t0

    def get(name):
        v = metrics.get(name)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    out = {
        "filling_factor": float(sparsity),
        "connectivity_R2": get("connectivity_R2"),
        "cluster_accuracy": get("cluster_accuracy"),
        "test_R2": get("test_R2"),
        "connectivity_slope": get("connectivity_slope"),
        "cluster_accuracy_single_linkage": get("cluster_accuracy_single_linkage"),
        "test_pearson": get("test_pearson"),
        "status": info["status"],
        "reason": info["reason"],
        "final_loss": info["final_loss"],
        "training_wall_s": info["wall_time_s"],
        "train_call_s": train_call_s,  # incl. data loading, model build, final save
        "iterations": info["iterations_done"],
        "frames_per_s": info["frames_per_s"],
        "budget_s": budget_s,
        "budget_iterations": total,
        "recipe_iterations": recipe,  # the recipe's own length caps the run
        "planned_iterations": planned,
        **calib,
        "simulation_time_s": sim_s,
        "simulation_cached": cached,
        "n_edges": sim.meta.get("n_edges"),
        "analysis_s": analysis_s,
        "train_dir": str(train_dir),
    }
    r2, acc = out["connectivity_R2"], out["cluster_accuracy"]
    out["meets_target"] = bool(
        r2 is not None
        and acc is not None
        and r2 >= TARGET["connectivity_R2"]
        and acc >= TARGET["cluster_accuracy"]
        and info["status"] == "ok"
    )
    out["meets_target_within_budget"] = out["meets_target"] and info["wall_time_s"] <= budget_s
    log(f"f={key}: connectivity_R2 {r2}, cluster_accuracy {acc}, test_R2 {out['test_R2']}")
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-neurons", type=int, default=1000)
    p.add_argument("--n-frames", type=int, default=50000)
    p.add_argument("--seed", type=int, default=0, help="simulation seed and replicate seed")
    p.add_argument(
        "--filling-factors",
        default="1.0,0.5,0.1,0.05",
        help="comma-separated filling factors in (0, 1]",
    )
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/connectome_gnn_bench"))
    p.add_argument("--train-config", type=Path, default=DEFAULT_TRAIN_CONFIG)
    p.add_argument("--minutes", type=float, default=10.0, help="training wall budget per run")
    p.add_argument(
        "--iterations", type=int, default=None, help="total iterations (skips the calibration)"
    )
    p.add_argument("--calibration-seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    args.work_dir = args.work_dir.resolve()
    args.cfg_name = args.train_config.stem
    base_cfg = load_train_config(args.train_config)
    model_cfg = model_config(args)
    factors = [float(format_sparsity(f.strip())) for f in args.filling_factors.split(",") if f]

    result: dict = {
        "benchmark": "recovery",
        "n_neurons": args.n_neurons,
        "n_frames": args.n_frames,
        "seed": args.seed,
        "train_config": str(args.train_config),
        "train_config_values": base_cfg,
        "minutes": args.minutes,
        "iterations_arg": args.iterations,
        "device": str(resolve_device(args.device)),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_start": list(os.getloadavg()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "target": {**TARGET, "training_wall_s_max": args.minutes * 60.0},
        "runs": {},
    }
    t0 = time.perf_counter()
    for f in factors:
        result["runs"][format_sparsity(f)] = run_one(args, model_cfg, base_cfg, f)
    result["total_s"] = time.perf_counter() - t0
    result["all_meet_target"] = all(
        r["meets_target_within_budget"] for r in result["runs"].values()
    )
    # other processes on the machine distort the timings badly (see bench/README.md)
    result["load_average_end"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
