"""The anchor: the reference's supplementary-figure-8 recipe through our trainer (issue 16).

Simulates the standard signal model once (N = 1000, filling 0.1, 100,000 *training* frames, so
that an epoch of ``config/train/reference_supp8.yaml`` is 1 M iterations, as in the reference;
cached under ``--work-dir``/sim with bench/recovery.py's cache), then trains the recipe under a
wall-clock budget (``--minutes``, the trainer's max_minutes) on ``--threads`` threads and records
connectivity_R2 (the analysis' definition, bench/recovery.py's monitor) every
``--monitor-seconds`` of training against iterations.  The trace is rewritten after every point
(``trace.json``), so a run stopped early still leaves it; at the end the run is analysed and
``anchor.json`` and ``anchor.png`` (connectivity_R2 against iterations, with the reference's
convergence points: 0.2 M iterations at 100 %, 3 M at 50 %, 4 M at 20 %, 6 M at 10 %, 8-10 M at
5 %, and this recipe's phase boundaries) are written to ``--work-dir``.  One JSON object also
goes to stdout.

``--profile-seconds S`` first times where an iteration's time goes (sample, forward, data loss,
regularisers, backward, Adam) at batch 1 and batch 8, in phase 1 (edge_diff) and phase 2 (L1),
for S seconds each, and the cluster-median replacement once.

    .venv/bin/python bench/anchor.py --work-dir /work/exp/anchor --minutes 120 --threads 1
    .venv/bin/python bench/anchor.py --work-dir /tmp/anchor_smoke --minutes 3 \\
        --monitor-seconds 30 --profile-seconds 15 --threads 1          # smoke run + profile
    .venv/bin/python bench/anchor.py --n-neurons 100 --train-frames 5000 --minutes 0.3 \\
        --monitor-seconds 5 --profile-seconds 2 --work-dir /tmp/anchor_tiny   # plumbing check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recovery  # noqa: E402 - bench/recovery.py: simulation cache and connectivity_R2 monitor

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "config" / "train" / "reference_supp8.yaml"
#: the reference's iterations to converge (connectivity_R2 ~1.0), per filling factor (issue 16)
REFERENCE_CONVERGENCE = {"100 %": 0.2e6, "50 %": 3e6, "20 %": 4e6, "10 %": 6e6, "5 %": 9e6}
REFERENCE_5_PERCENT_SPAN = (8e6, 10e6)


def log(msg: str) -> None:
    print(f"[anchor] {msg}", file=sys.stderr, flush=True)


def frames_for_training(train_frames: int, test_fraction: float = 0.1) -> int:
    """Simulated frames whose training part (the simulator holds out round(n * test_fraction))
    is exactly ``train_frames``."""
    n = round(train_frames / (1.0 - test_fraction))
    while n - round(n * test_fraction) < train_frames:
        n += 1
    while n - round(n * test_fraction) > train_frames:
        n -= 1
    return n


class TraceMonitor(recovery.R2Monitor):
    """recovery's connectivity_R2 monitor that also rewrites ``path`` after every point."""

    def __init__(self, family, sim, every_s: float, path: Path):
        super().__init__(family, sim, every_s)
        self.path = path

    def __call__(self, model, iterations: int, elapsed_s: float) -> None:
        n = len(self.trace)
        super().__call__(model, iterations, elapsed_s)
        if len(self.trace) > n:
            p = self.trace[-1]
            p["process_cpu_s"] = time.process_time()  # load-independent: CPU time of this process
            log(
                f"{p['training_s']:.0f} s, {p['iterations']} iterations: "
                f"connectivity_R2 {p['connectivity_R2']:.4f}"
            )
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.trace))
            tmp.replace(self.path)


# ---------------------------------------------------------------- profile of one iteration
def profile(sim, cfg: dict, seconds: float, seed: int) -> dict:
    """Milliseconds per part of the trainer's iteration (the parts of train.step.train_step,
    timed one by one), per batch size and phase, and one cluster-median replacement."""
    import torch

    from connectome_gnn.families import get_family
    from connectome_gnn.train.data import TrainingData
    from connectome_gnn.train.regularizers import regularization
    from connectome_gnn.train.schedule import epoch_config, make_optimizer, phase_settings
    from connectome_gnn.train.sparsify import replace_embedding_function
    from connectome_gnn.train.step import data_loss

    phases = phase_settings(cfg)
    data = TrainingData(sim, cfg, torch.device("cpu"))
    out: dict = {}
    for batch in (1, 8):
        for phase, epoch in (("phase1", 0), ("phase2", int(phases["n_epochs_init"]))):
            ecfg = {**epoch_config(cfg, phases, epoch), "batch_size": batch}
            gen = torch.Generator().manual_seed(seed)
            model = get_family(sim.family).build_model(sim, ecfg, generator=gen)
            opt = make_optimizer(model, ecfg)
            parts = dict.fromkeys(
                ("sample", "forward", "data_loss", "regularizers", "backward", "optimizer"), 0.0
            )
            n, t_start = 0, time.perf_counter()
            while time.perf_counter() - t_start < seconds or n < 5:
                t = [time.perf_counter()]
                k = data.sample(batch, gen)
                t.append(time.perf_counter())
                pred, target = data.batch(model, k, ecfg)
                t.append(time.perf_counter())
                loss = data_loss(pred, target, ecfg["loss"])
                t.append(time.perf_counter())
                terms = regularization(model, data.u[k], ecfg, data.xnorm)
                loss = loss + sum(terms.values())
                float(loss.detach())  # the trainer's divergence check reads the loss back
                t.append(time.perf_counter())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                t.append(time.perf_counter())
                opt.step()
                t.append(time.perf_counter())
                if n >= 3:  # warm-up iterations not counted
                    for name, a, b in zip(parts, t[:-1], t[1:], strict=True):
                        parts[name] += b - a
                n += 1
            counted = n - 3
            total = sum(parts.values())
            out[f"batch{batch}_{phase}"] = {
                "iterations": counted,
                "ms_per_iteration": 1e3 * total / counted,
                "iterations_per_s": counted / total,
                "frames_per_s": counted * batch / total,
                "ms": {k: 1e3 * v / counted for k, v in parts.items()},
                "share": {k: v / total for k, v in parts.items()},
                "terms": sorted(terms),
            }
            log(f"profile batch {batch} {phase}: {out[f'batch{batch}_{phase}']}")
    t0 = time.perf_counter()
    info = replace_embedding_function(model, data.xnorm, phases, float(cfg["lr"]), seed)
    out["replacement_s"] = time.perf_counter() - t0
    out["replacement"] = info
    log(f"profile: one cluster-median replacement {out['replacement_s']:.2f} s ({info})")
    return out


# ---------------------------------------------------------------- the plot
def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = result["trace"]
    per_epoch = result["iterations_per_epoch"]
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(13, 4.8), width_ratios=(3, 2))
    span = REFERENCE_5_PERCENT_SPAN
    ax.axvspan(span[0] / 1e6, span[1] / 1e6, color="0.85", label="reference converged, 5 %")
    for name, it in REFERENCE_CONVERGENCE.items():
        if name == "5 %":
            continue
        target = name == "10 %"
        ax.axvline(
            it / 1e6,
            color="tab:red" if target else "0.5",
            ls="-" if target else ":",
            lw=2 if target else 1,
        )
        ax.text(it / 1e6, 0.02, f" ref. {name}", rotation=90, va="bottom", fontsize=8)
    ax.plot(
        [p["iterations"] / 1e6 for p in trace],
        [p["connectivity_R2"] for p in trace],
        "o-",
        color="tab:blue",
        label=f"ours, filling {result['filling_factor']:g} ({result['threads']} CPU thread)",
    )
    n_init = result["phases"]["n_epochs_init"]
    ax.axvline(n_init * per_epoch / 1e6, color="tab:green", ls="--", lw=1, label="L1 on")
    for e in result["replacement_epochs"]:
        ax.axvline((e + 1) * per_epoch / 1e6, color="tab:purple", ls="--", lw=1)
    if result["replacement_epochs"]:
        ax.plot([], [], color="tab:purple", ls="--", label="embeddings -> cluster medians")
    ax.plot([], [], color="tab:red", lw=2, label="reference converged, 10 %")
    last = trace[-1]["iterations"] / 1e6 if trace else 0.0
    ax.set_xlim(0, max(10.5, 1.05 * last))
    ax.set_ylim(min(0.0, *(p["connectivity_R2"] for p in trace)) if trace else 0.0, 1.02)
    ax.set_xlabel("iterations (millions; batch 1)")
    ax.set_ylabel("connectivity_R2")
    ax.set_title(
        f"reference_supp8 recipe, N = {result['n_neurons']}, filling {result['filling_factor']:g}:"
        f" {last:.2f} M iterations in {result['training_s'] / 60:.0f} min"
    )
    ax.legend(fontsize=8, loc="center right")
    # our own range, where the left panel's scale crushes the curve
    zoom.plot(
        [p["iterations"] / 1e3 for p in trace],
        [p["connectivity_R2"] for p in trace],
        "o-",
        color="tab:blue",
        ms=3,
    )
    zoom.set_xlabel("iterations (thousands)")
    zoom.set_ylabel("connectivity_R2")
    zoom.set_title(f"ours: {result.get('iterations_per_s') or 0:.0f} iterations/s", fontsize=10)
    zoom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-neurons", type=int, default=1000)
    p.add_argument("--train-frames", type=int, default=100_000)
    p.add_argument("--filling-factor", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0, help="simulation seed and replicate seed")
    p.add_argument("--config", type=Path, default=RECIPE, help="the training recipe")
    p.add_argument("--minutes", type=float, default=120.0, help="training budget (max_minutes)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its checkpoint (and trace) in --work-dir; "
        "--minutes stays the total budget",
    )
    p.add_argument("--monitor-seconds", type=float, default=120.0)
    p.add_argument("--profile-seconds", type=float, default=0.0, help="0: no profile")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--replot", action="store_true", help="only redraw anchor.png from --work-dir/anchor.json"
    )
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/connectome_gnn_anchor"))
    p.add_argument(
        "--sim-cache", type=Path, default=None, help="where simulations are cached (--work-dir)"
    )
    args = p.parse_args(argv)
    if args.replot:
        result = json.loads((args.work_dir / "anchor.json").read_text())
        plot(result, args.work_dir / "anchor.png")
        return result

    import torch

    from connectome_gnn.analysis.run import analyze_run
    from connectome_gnn.config import load_train_config
    from connectome_gnn.families import get_family
    from connectome_gnn.simulate import Simulation
    from connectome_gnn.train.schedule import iterations_per_epoch, phase_settings, replaces_after
    from connectome_gnn.train.trainer import train_run

    torch.set_num_threads(args.threads)
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    n_frames = frames_for_training(args.train_frames)
    model_cfg = recovery.model_config(args.n_neurons, n_frames)
    cache = (args.sim_cache or work).resolve()
    sim_dir, sim_s, cached = recovery.simulate_cached(
        model_cfg, args.filling_factor, args.seed, cache
    )
    log(f"simulation {'cached' if cached else 'done'} ({sim_s:.0f} s): {sim_dir}")
    sim = Simulation(sim_dir)
    cfg = load_train_config(args.config)
    phases = phase_settings(cfg)
    per_epoch = iterations_per_epoch(sim.n_train_frames, cfg)
    n_epochs = int(cfg["n_epochs"])
    result: dict = {
        "benchmark": "anchor",
        "config": str(args.config),
        "train_config": cfg,
        "phases": phases,
        "n_neurons": args.n_neurons,
        "n_frames": n_frames,
        "n_train_frames": sim.n_train_frames,
        "filling_factor": args.filling_factor,
        "seed": args.seed,
        "threads": args.threads,
        "budget_minutes": args.minutes,
        "iterations_per_epoch": per_epoch,
        "replacement_epochs": [e for e in range(n_epochs) if replaces_after(phases, e, n_epochs)],
        "reference_convergence_iterations": REFERENCE_CONVERGENCE,
        "simulation_s": sim_s,
        "cpu_count": os.cpu_count(),
        "load_average_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if args.profile_seconds > 0:
        result["profile"] = profile(sim, cfg, args.profile_seconds, args.seed)

    run_dir = work / "run"
    if not args.resume:
        shutil.rmtree(run_dir, ignore_errors=True)  # a finished checkpoint would be resumed
    family = get_family(sim.family)
    monitor = TraceMonitor(family, sim, args.monitor_seconds, work / "trace.json")
    if args.resume and (work / "trace.json").exists():  # continue the interrupted run's trace
        monitor.trace = json.loads((work / "trace.json").read_text())
    monitor.xnorm = float(1.5 * sim.read("u", 0, sim.n_train_frames).std())  # the trainer's
    cfg["max_minutes"] = args.minutes
    cpu0 = time.process_time()
    info = train_run(
        sim_dir,
        cfg,
        run_dir / "train",
        replicate_seed=args.seed,
        device="cpu",
        run_id={"model": "anchor", "sparsity": f"{args.filling_factor:g}", "cfg": "supp8"},
        progress=False,
        threads=args.threads,
        monitor=monitor,
    )
    cpu_s = time.process_time() - cpu0  # training and monitor, all threads of this process
    metrics = analyze_run(sim_dir, run_dir / "train", run_dir / "analysis", device="cpu")
    training_s = info["wall_time_s"] - monitor.own_s
    its = int(info["iterations_done"])
    final = metrics.get("connectivity_R2")
    if final is not None and (not monitor.trace or monitor.trace[-1]["iterations"] < its):
        monitor.trace.append(  # the final model, as analysed
            {"training_s": training_s, "iterations": its, "connectivity_R2": final, "final": True}
        )
    result.update(
        {
            "status": info["status"],
            "reason": info["reason"],
            "stopped_by": info["stopped_by"],
            "iterations": its,
            "epochs_done": its / per_epoch,
            "training_s": training_s,
            "monitor_s": monitor.own_s,
            "iterations_per_s": its / training_s if training_s > 0 else None,
            "process_cpu_s": cpu_s,
            "iterations_per_cpu_s": its / cpu_s if cpu_s > 0 else None,
            "connectivity_R2": metrics.get("connectivity_R2"),
            "cluster_accuracy": metrics.get("cluster_accuracy"),
            "crossings": monitor.crossings(),
            "trace": monitor.trace,
            "load_average_end": list(os.getloadavg()),
        }
    )
    rate = result["iterations_per_s"]
    if rate:
        result["hours_to_6M_iterations_at_this_rate"] = 6e6 / rate / 3600
    (work / "anchor.json").write_text(json.dumps(result, indent=2, default=str))
    plot(result, work / "anchor.png")
    log(f"wrote {work / 'anchor.json'} and {work / 'anchor.png'}")
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
