"""Recovery of W under a wall-clock budget: training recipes side by side, per filling factor.

For each filling factor f the standard signal model (PDE_N2, 4 types, Cauchy W scaled by N^-0.7;
N = 1000 and 50,000 frames by default) is simulated once and cached in ``--work-dir``.  Each
variant (a training config; ``config/train/default.yaml``, today's Adam recipe, and
``config/train/solver.yaml``, the W-solver recipe, by default) is then trained on the same data
in its own subprocess (so that its peak RSS is its own) and analysed.  For an Adam recipe the
budget (``--minutes``) is converted into iterations by timing the real training step for ~10 s,
so that its cosine learning-rate decay ends within the budget; a solver recipe runs as
configured, with ``max_minutes`` set to the budget.

During training connectivity_R2 (the analysis' definition: the family's readouts, fit of learned
against true W) is evaluated at most every ``--monitor-seconds`` of training time; its own time
is not counted.  Per variant and filling, one JSON record gives the wall time at which
connectivity_R2 first reached 0.9 / 0.99 / 0.999, the final connectivity_R2, cluster_accuracy
and test_R2, frames/s, the solver's timings and peak RSS.  Per filling, the conditioning of the
problem with the true edge function is recorded too (condition number and 99 %-variance rank of
the covariance of tanh(u)): the measure of what noise does to it.  One JSON object goes to
stdout; progress goes to stderr.

Targets (issue 16, 2 CPU cores): connectivity_R2 >= 0.99 and cluster_accuracy >= 0.99 at every
filling, within 10 minutes of training at f >= 0.25 and 30 minutes at f = 0.1 and 0.05; dense
within 60 s (``config/train/solver_fast.yaml``).

    .venv/bin/python bench/recovery.py                                     # the full benchmark
    .venv/bin/python bench/recovery.py --variants solver_fast --filling-factors 1 --minutes 1
    .venv/bin/python bench/recovery.py --n-neurons 100 --n-frames 3000 --minutes 0.3 \\
        --filling-factors 1.0                                              # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_CONFIGS = ROOT / "config" / "train"
SIM_TIME = "bench_simulation_time.json"  # our own side file in the cached simulation directory
TARGET = {"connectivity_R2": 0.99, "cluster_accuracy": 0.99}
THRESHOLDS = (0.9, 0.99, 0.999)


def log(msg: str) -> None:
    print(f"[recovery] {msg}", file=sys.stderr, flush=True)


def budget_minutes(sparsity: float, minutes: float | None) -> float:
    """The issue's training budget: 10 minutes at f >= 0.25, 30 below (unless --minutes)."""
    if minutes is not None:
        return float(minutes)
    return 10.0 if sparsity >= 0.25 else 30.0


def variant_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path.resolve()
    return TRAIN_CONFIGS / f"{name}.yaml"


# ---------------------------------------------------------------- parent: simulate, spawn, collect
def model_config(n_neurons: int, n_frames: int, **noise: float) -> dict:
    """The benchmark's signal model; ``noise``: intrinsic_noise / measurement_noise if > 0."""
    from connectome_gnn.config import validate
    from connectome_gnn.families import get_family

    source = "bench/recovery.py"
    extra = {k: float(v) for k, v in noise.items() if v and float(v) > 0}
    cfg = validate(
        {"family": "signal", "n_neurons": n_neurons, "n_frames": n_frames, **extra},
        "signal.model",
        source=source,
    )
    get_family("signal").check_model(cfg, source=source)
    return cfg


def simulate_cached(model_cfg: dict, sparsity: float, seed: int, work_dir: Path) -> tuple:
    """(sim_dir, simulation seconds, cached?) -- reuses a finished simulation of the same config."""
    from connectome_gnn.io import read_json, write_json
    from connectome_gnn.layout import format_sparsity
    from connectome_gnn.stages import run_simulation

    name = f"N{model_cfg['n_neurons']}_F{model_cfg['n_frames']}"
    for key, tag in (("intrinsic_noise", "in"), ("measurement_noise", "mn")):
        if model_cfg.get(key):
            name += f"_{tag}{model_cfg[key]:.4g}"
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


def conditioning(sim_dir: Path, max_frames: int = 50_000) -> dict:
    """The conditioning of the W problem with the true edge function: eigenvalues of the
    covariance of the regressors tanh(u_j) over the training frames (float64).  Returns its
    condition number and how many directions hold 99 % of the variance."""
    import torch

    from connectome_gnn.simulate.data import Simulation

    sim = Simulation(sim_dir)
    n = min(sim.n_train_frames, max_frames)
    x = torch.tanh(torch.from_numpy(sim.read("u", 0, n)).double())
    x = x - x.mean(0)
    ev = torch.linalg.eigvalsh(x.T @ x / n).clamp(min=0.0).flip(0)
    share = torch.cumsum(ev, 0) / ev.sum()
    return {
        "regressor_cond": float(ev[0] / ev[-1].clamp(min=1e-300)),
        "regressor_rank99": int((share < 0.99).sum()) + 1,
        "regressor_frames": n,
    }


def spawn(spec: dict) -> dict:
    """Run one variant in a child process; its JSON record plus its peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        return {"status": "error", "returncode": proc.returncode, "variant": spec["variant"]}
    record = json.loads(lines[-1])
    record["peak_rss_MiB"] = usage.ru_maxrss / 1024.0  # KiB on Linux
    return record


# ---------------------------------------------------------------- child: one training + analysis
class R2Monitor:
    """connectivity_R2 of the model during training, every ``every_s`` seconds of training time
    (its own evaluation time is excluded from the times it records)."""

    def __init__(self, family, sim, every_s: float):
        from connectome_gnn.analysis.metrics import linear_fit_r2

        self.family, self.sim, self.every_s = family, sim, every_s
        self.fit = linear_fit_r2
        self.own_s, self.last_t = 0.0, -math.inf
        self.xnorm = 4.0
        self.trace: list[dict] = []

    def __call__(self, model, iterations: int, elapsed_s: float) -> None:
        t = elapsed_s - self.own_s
        if t - self.last_t < self.every_s:
            return
        t0 = time.perf_counter()
        ro = self.family.readouts(model, self.sim, u_range=(-self.xnorm, self.xnorm))
        r2 = float(self.fit(ro["w_true"], ro["w_learned"])[2])
        self.trace.append({"training_s": t, "iterations": iterations, "connectivity_R2": r2})
        self.last_t = t
        self.own_s += time.perf_counter() - t0

    def crossings(self) -> dict:
        out = {}
        for thr in THRESHOLDS:
            hit = next((p for p in self.trace if p["connectivity_R2"] >= thr), None)
            out[f"s_to_R2_{thr:g}"] = None if hit is None else hit["training_s"]
        return out


def measure_rate(sim, cfg: dict, replicate_seed: int, device: str, seconds: float) -> float:
    """Iterations/s of the trainer's own step on this simulation (after 3 warm-up iterations),
    W-basis refreshes included at their rate."""
    import torch

    from connectome_gnn.device import resolve_device
    from connectome_gnn.families import get_family
    from connectome_gnn.train.data import TrainingData
    from connectome_gnn.train.schedule import make_optimizer, refresh_schedule, training_seed
    from connectome_gnn.train.step import train_step

    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(training_seed(cfg["seed"], replicate_seed))
    data = TrainingData(sim, cfg, dev)
    model = get_family(sim.family).build_model(sim, cfg, generator=gen).to(dev)
    optimizer = make_optimizer(model, cfg)
    batch, every = int(cfg["batch_size"]), int(cfg["W_basis_every"])

    def step(i: int) -> None:
        if model.has_basis and refresh_schedule(i, every):
            model.refresh_basis(optimizer, data.u, int(cfg["W_basis_frames"]), gen)
        train_step(model, optimizer, data, data.sample(batch, gen), cfg)

    for i in range(3):
        step(i)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        step(3 + n)
        n += 1
    elapsed = time.perf_counter() - t0
    if model.has_basis:  # a short probe under-counts the refreshes of a long run
        t1 = time.perf_counter()
        model.refresh_basis(optimizer, data.u, int(cfg["W_basis_frames"]), gen)
        elapsed += n * (time.perf_counter() - t1) / every
    return n / elapsed


def child(spec: dict) -> dict:
    import torch

    from connectome_gnn.analysis.run import analyze_run
    from connectome_gnn.config import load_train_config
    from connectome_gnn.families import get_family
    from connectome_gnn.simulate import Simulation
    from connectome_gnn.train import solver
    from connectome_gnn.train.schedule import iterations_per_epoch
    from connectome_gnn.train.trainer import train_run

    if spec["threads"]:
        torch.set_num_threads(int(spec["threads"]))
    sim_dir, run_dir = Path(spec["sim_dir"]), Path(spec["run_dir"])
    sim = Simulation(sim_dir)
    cfg = load_train_config(Path(spec["train_config"]))
    budget_s = 60.0 * spec["minutes"]
    solving = solver.settings(cfg)["W_solve"] != "none"
    record: dict = {"variant": spec["variant"], "budget_s": budget_s, "solver": solving}
    if not solving:  # fit the recipe's cosine schedule into the budget
        rate = measure_rate(sim, cfg, spec["seed"], spec["device"], min(10.0, budget_s / 2))
        total = max(1, int(rate * budget_s))
        cfg["max_iterations"] = max(1, math.ceil(total / int(cfg["n_epochs"])))
        record["calibration_iterations_per_s"] = rate
        planned = iterations_per_epoch(sim.n_train_frames, cfg) * int(cfg["n_epochs"])
        record["planned_iterations"] = planned
    cfg["max_minutes"] = spec["minutes"]
    for sub in ("train", "analysis"):  # a finished checkpoint would be resumed: start afresh
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    monitor = R2Monitor(get_family(sim.family), sim, spec["monitor_seconds"])
    u = sim.read("u", 0, sim.n_train_frames)
    monitor.xnorm = float(1.5 * u.std())  # the trainer's xnorm (TrainingData), as analysis uses
    del u
    info = train_run(
        sim_dir,
        cfg,
        run_dir / "train",
        replicate_seed=spec["seed"],
        device=spec["device"],
        run_id={"model": "bench", "sparsity": spec["key"], "cfg": spec["variant"]},
        progress=False,
        monitor=monitor,
    )
    t0 = time.perf_counter()
    metrics = analyze_run(sim_dir, run_dir / "train", run_dir / "analysis", device=spec["device"])
    analysis_s = time.perf_counter() - t0

    def get(name):
        v = metrics.get(name)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    training_s = info["wall_time_s"] - monitor.own_s
    record.update(
        {
            name: get(name)
            for name in (
                "connectivity_R2",
                "cluster_accuracy",
                "test_R2",
                "data_mse",
                "data_mse_true",
                "data_mse_rel",
            )
        }
    )
    record.update(monitor.crossings())
    r2, acc = record["connectivity_R2"], record["cluster_accuracy"]
    meets = (
        info["status"] == "ok"
        and r2 is not None
        and acc is not None
        and r2 >= TARGET["connectivity_R2"]
        and acc >= TARGET["cluster_accuracy"]
    )
    record.update(
        {
            "status": info["status"],
            "reason": info["reason"],
            "training_s": training_s,
            "monitor_s": monitor.own_s,
            "iterations": info["iterations_done"],
            "frames_per_s": info["frames_per_s"],
            "solver_info": info.get("solver"),
            "analysis_s": analysis_s,
            "meets_target": bool(meets),
            "meets_target_within_budget": bool(meets and training_s <= budget_s),
            "trace": monitor.trace,
        }
    )
    return record


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-neurons", type=int, default=1000)
    p.add_argument("--n-frames", type=int, default=50000)
    p.add_argument("--seed", type=int, default=0, help="simulation seed and replicate seed")
    p.add_argument(
        "--filling-factors",
        default="1,0.75,0.5,0.25,0.1,0.05",
        help="comma-separated filling factors in (0, 1]",
    )
    p.add_argument(
        "--variants",
        default="default,solver",
        help="comma-separated training configs: names in config/train/ or yaml paths",
    )
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/connectome_gnn_bench"))
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="training budget per run (default: 10 at f >= 0.25, 30 below)",
    )
    p.add_argument(
        "--intrinsic-noise", type=float, default=0.0, help="process noise sigma of the simulation"
    )
    p.add_argument(
        "--measurement-noise",
        type=float,
        default=0.0,
        help="measurement noise, as a fraction of the std of u of the noiseless simulation",
    )
    p.add_argument("--monitor-seconds", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        record = child(json.loads(args.child))
        print(json.dumps(record))
        return record

    from connectome_gnn.layout import format_sparsity

    work_dir = args.work_dir.resolve()
    factors = [float(format_sparsity(f.strip())) for f in args.filling_factors.split(",") if f]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if not variant_path(v).is_file():
            p.error(f"--variants: no training config {variant_path(v)}")
    result: dict = {
        "benchmark": "recovery",
        "n_neurons": args.n_neurons,
        "n_frames": args.n_frames,
        "seed": args.seed,
        "intrinsic_noise": args.intrinsic_noise,
        "measurement_noise_relative": args.measurement_noise,
        "variants": {v: str(variant_path(v)) for v in variants},
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "load_average_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "target": TARGET,
        "runs": {},
    }
    t0 = time.perf_counter()
    for f in factors:
        key = format_sparsity(f)
        cfg_f = model_config(args.n_neurons, args.n_frames, intrinsic_noise=args.intrinsic_noise)
        if args.measurement_noise > 0:  # relative to the std of the state
            clean_dir, _, _ = simulate_cached(cfg_f, f, args.seed, work_dir)
            std = float(json.loads((clean_dir / "simulation.json").read_text())["activity_std"])
            cfg_f = model_config(
                args.n_neurons,
                args.n_frames,
                intrinsic_noise=args.intrinsic_noise,
                measurement_noise=args.measurement_noise * std,
            )
        sim_dir, sim_s, cached = simulate_cached(cfg_f, f, args.seed, work_dir)
        log(f"f={key}: simulation {'cached' if cached else 'done'} ({sim_s:.1f} s) in {sim_dir}")
        result["runs"][key] = {"simulation_s": sim_s, "model_config": cfg_f}
        cond = conditioning(sim_dir)
        result["runs"][key].update(cond)
        log(f"f={key}: regressor conditioning {cond}")
        for v in variants:
            spec = {
                "variant": v,
                "key": key,
                "train_config": str(variant_path(v)),
                "sim_dir": str(sim_dir),
                "run_dir": str(work_dir / "runs" / sim_dir.relative_to(work_dir / "sim") / v),
                "minutes": budget_minutes(f, args.minutes),
                "seed": args.seed,
                "device": args.device,
                "threads": args.threads,
                "monitor_seconds": args.monitor_seconds,
            }
            record = spawn(spec)
            result["runs"][key][v] = record
            log(
                f"f={key} {v}: connectivity_R2 {record.get('connectivity_R2')}, cluster_accuracy "
                f"{record.get('cluster_accuracy')}, training {record.get('training_s')} s, "
                f"peak RSS {record.get('peak_rss_MiB')} MiB"
            )
    result["total_s"] = time.perf_counter() - t0
    result["load_average_end"] = list(os.getloadavg())  # other load distorts the timings
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
