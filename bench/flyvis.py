"""FlyVis simulator benchmark: network build times, parameter draw, simulation frames/s, peak RSS.

Measures, in one process (one JSON object on stdout, progress on stderr):

- ``build_s``: building the lattice network from the connectome JSON (no cache) per extent
  (``--build-extents``, default 1,2,8,15), and ``cache_load_s`` (the .npz cache of ``--extent``);
- ``params_s``: drawing + checking the ground-truth parameter set ``--model-id`` (no cache);
- per device (``--device cpu``, ``cuda`` or ``both``): ``step_frames_per_s``, the bare Euler step
  (sparse CSR message passing, no I/O), and ``simulate_frames_per_s``, the full
  :func:`simulate_flyvis` (stimulus generation, input routing, zarr writes of u, du, x, statistics)
  for ``--frames`` frames at ``--extent`` into a temporary directory; plus the run's activity
  statistics and SVD ranks;
- per device, training of the sparse FlyVis GNN on that simulation with the recipe
  ``--train-config`` (default config/train/flyvis.yaml): ``train_iterations_per_s`` and
  ``train_frames_per_s`` over ``--train-seconds``, against a baseline in the same run that evaluates
  lin_edge once per *edge* (``baseline_iterations_per_s``; the reference's message passing)
  instead of once per neuron, and ``speedup_vs_per_edge``;
- ``peak_rss_mb`` (whole process, after training) and ``peak_gpu_mem_mb`` on CUDA.

    .venv/bin/python bench/flyvis.py                           # extent 8, 3000 frames, CPU
    .venv/bin/python bench/flyvis.py --extent 2 --frames 500   # smoke test (~10 s)
    .venv/bin/python bench/flyvis.py --device both > flyvis.json
    .venv/bin/python bench/flyvis.py --extent 3 --frames 2000 --train-seconds 60

CPU timings are only meaningful on an otherwise idle machine (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.utils import scatter

from connectome_gnn.config import load_yaml, validate
from connectome_gnn.models.base import gnn_kwargs
from connectome_gnn.models.flyvis import FlyVisGNN
from connectome_gnn.simulate.flyvis.connectome import build_connectome, load_connectome
from connectome_gnn.simulate.flyvis.params import make_params
from connectome_gnn.simulate.flyvis.simulate import cpu_threads_for, simulate_flyvis

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[flyvis-bench] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def step_rate(dyn, con, device: torch.device, seconds: float) -> dict:
    """Bare Euler steps per second (grey input) after a short warm-up."""
    dyn = dyn.to(device)
    x = torch.zeros(con.n_nodes, device=device)
    x[torch.as_tensor(con.input_index.reshape(-1), device=device)] = 0.5
    v = dyn.V_rest.clone()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad(), cpu_threads_for(dyn):
        for _ in range(20):
            v = dyn.step(v, x)
        sync()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(50):
                v = dyn.step(v, x)
            n += 50
            sync()
        elapsed = time.perf_counter() - t0
    return {"step_frames_per_s": n / elapsed, "step_frames": n}


class PerEdgeFlyVisGNN(FlyVisGNN):
    """Baseline: lin_edge([v_j, a_j]) evaluated once per edge (E x B rows), as a message-passing
    layer with per-edge messages does, instead of once per neuron."""

    def message_from(self, v: torch.Tensor) -> torch.Tensor:
        batch = v.shape[0]
        vj = v[:, self.pre].unsqueeze(-1)
        aj = self.a[self.pre].unsqueeze(0).expand(batch, -1, -1)
        out = self.lin_edge(torch.cat([vj, aj], dim=-1)).squeeze(-1)
        if self.lin_edge_positive:
            out = out * out
        return scatter(
            out * self.effective_W(), self.post, dim=1, dim_size=self.n_neurons, reduce="sum"
        )

    def forward(self, v: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.phi(v, self.message_from(v), x)


def train_rate(sim_dir: Path, train_cfg: dict, device: torch.device, seconds: float) -> dict:
    """Training iterations per second (forward, loss with the recipe's regularisers, backward,
    Adam step) of the sparse GNN and of the per-edge baseline, each for about ``seconds``."""
    from connectome_gnn.families import get_family
    from connectome_gnn.simulate.data import Simulation
    from connectome_gnn.train.regularizers import regularization
    from connectome_gnn.train.trainer import _make_optimizer

    sim = Simulation(sim_dir)
    n = sim.n_train_frames
    u = torch.from_numpy(sim.read("u", 0, n)).to(device)
    du = torch.from_numpy(sim.read("du", 0, n)).to(device)
    x = torch.from_numpy(sim.read_input(0, n)).to(device)
    xnorm = float(1.5 * u.std())
    batch = int(train_cfg["batch_size"])
    gen = torch.Generator().manual_seed(0)
    fast = get_family("flyvis").build_model(sim, train_cfg, generator=gen).to(device)
    slow = PerEdgeFlyVisGNN(fast.pre, fast.post, fast.n_neurons, **gnn_kwargs(train_cfg)).to(device)
    slow.load_state_dict(fast.state_dict())

    def run(model, budget: float) -> tuple[float, int]:
        opt = _make_optimizer(model, train_cfg)
        done, t0 = 0, time.perf_counter()
        while True:
            k = torch.randint(n, (batch,), generator=gen).to(device)
            loss = (model(u[k], x[k]) - du[k]).norm(2)
            loss = loss + sum(regularization(model, u[k], train_cfg, xnorm).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if device.type == "cuda" and done % 10 == 0:
                torch.cuda.synchronize(device)
            if done >= 3 and time.perf_counter() - t0 >= budget:
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return done / (time.perf_counter() - t0), done

    run(fast, 0.0)  # warm-up
    rate, its = run(fast, seconds)
    base, base_its = run(slow, max(seconds / 4, 1.0))
    return {
        "train_batch_size": batch,
        "train_iterations": its,
        "train_iterations_per_s": rate,
        "train_frames_per_s": rate * batch,
        "baseline_iterations": base_its,
        "baseline_iterations_per_s": base,
        "speedup_vs_per_edge": rate / base,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--extent", type=int, default=8)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--model-id", default="flyvis_049")
    ap.add_argument("--build-extents", default="1,2,8,15")
    ap.add_argument("--device", choices=["cpu", "cuda", "both", "auto"], default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--step-seconds", type=float, default=5.0)
    ap.add_argument("--chunk-frames", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-config", default=str(REPO / "config/train/flyvis.yaml"))
    ap.add_argument("--train-seconds", type=float, default=20.0, help="0: no training figures")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "both":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    elif args.device == "auto":
        devices = ["cuda" if torch.cuda.is_available() else "cpu"]
    else:
        devices = [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")

    out: dict = {
        "extent": args.extent,
        "frames": args.frames,
        "model_id": args.model_id,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "load_average_start": os.getloadavg()[0],
    }

    build = {}
    for e in [int(s) for s in args.build_extents.split(",") if s]:
        t0 = time.perf_counter()
        con = build_connectome(e)
        build[str(e)] = {
            "seconds": time.perf_counter() - t0,
            "n_neurons": con.n_nodes,
            "n_edges": con.n_edges,
        }
        log(
            f"extent {e}: {con.n_nodes} neurons, {con.n_edges} edges, {build[str(e)]['seconds']:.2f} s"
        )
    out["build_s"] = build

    with tempfile.TemporaryDirectory(prefix="flyvis_bench_") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        load_connectome(args.extent, cache_dir=cache)  # writes the cache
        t0 = time.perf_counter()
        con = load_connectome(args.extent, cache_dir=cache)
        out["cache_load_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        params = make_params(args.model_id)
        out["params_s"] = time.perf_counter() - t0
        out["params_attempt"] = params.attempt
        log(f"params {params.model_id}: attempt {params.attempt}, {out['params_s']:.1f} s")

        cfg = {
            "family": "flyvis",
            "extent": args.extent,
            "model_id": params.model_id,
            "n_frames": args.frames,
            "chunk_frames": args.chunk_frames,
            "cache_dir": str(cache),
        }
        runs = {}
        for name in devices:
            dev = torch.device(name)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            rate = step_rate(params.dynamics(con), con, dev, args.step_seconds)
            log(f"{name}: bare step {rate['step_frames_per_s']:.0f} frames/s")
            meta = simulate_flyvis(cfg, args.seed, tmp / f"sim_{name}", device=dev, params=params)
            run = {
                **rate,
                "simulate_frames_per_s": meta["frames_per_s"],
                "simulate_wall_s": meta["wall_time_s"],
                "simulate_total_s": meta["total_time_s"],
                **{
                    k: meta[k]
                    for k in (
                        "n_neurons",
                        "n_edges",
                        "activity_mean",
                        "activity_std",
                        "activity_min",
                        "activity_max",
                        "active_fraction",
                        "responsive_fraction",
                        "svd_rank_90",
                        "svd_rank_99",
                        "W_std",
                        "W_small_fraction",
                        "V_rest_mean",
                        "V_rest_std",
                    )
                },
                "activity_bytes_on_disk": int(
                    sum(
                        f.stat().st_size
                        for f in (tmp / f"sim_{name}" / "activity.zarr").rglob("*")
                        if f.is_file()
                    )
                ),
            }
            if args.train_seconds > 0:
                train_cfg = validate(load_yaml(args.train_config), "train", args.train_config)
                run.update(train_rate(tmp / f"sim_{name}", train_cfg, dev, args.train_seconds))
                log(
                    f"{name}: train {run['train_iterations_per_s']:.1f} it/s "
                    f"(x{run['speedup_vs_per_edge']:.1f} vs lin_edge per edge)"
                )
            if dev.type == "cuda":
                run["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
                run["gpu"] = torch.cuda.get_device_name(dev)
            log(f"{name}: simulate {run['simulate_frames_per_s']:.0f} frames/s (with I/O)")
            runs[name] = run
        out["runs"] = runs
    out["peak_rss_mb"] = peak_rss_mb()
    out["load_average_end"] = os.getloadavg()[0]
    print(
        json.dumps(
            out, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)
        )
    )
    return out


if __name__ == "__main__":
    main()
