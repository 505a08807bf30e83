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
- ``peak_rss_mb`` (whole process) and ``peak_gpu_mem_mb`` on CUDA.

    .venv/bin/python bench/flyvis.py                           # extent 8, 3000 frames, CPU
    .venv/bin/python bench/flyvis.py --extent 2 --frames 500   # smoke test (~10 s)
    .venv/bin/python bench/flyvis.py --device both > flyvis.json

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

from connectome_gnn.simulate.flyvis.connectome import build_connectome, load_connectome
from connectome_gnn.simulate.flyvis.params import make_params
from connectome_gnn.simulate.flyvis.simulate import cpu_threads_for, simulate_flyvis


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
