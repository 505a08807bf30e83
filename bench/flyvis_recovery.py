"""FlyVis recovery under a CPU budget: training recipes side by side, noiseless and with
intrinsic noise.

For each intrinsic-noise level (``--noise``, default 0 and 0.5) the FlyVis model ``--model-id``
(default flyvis_049) is simulated once at ``--extent`` (default 3: 2,345 neurons, 63,209 edges)
with ``--frames`` frames (default 40,000) and cached in ``--work-dir``.  Each recipe
(``--variants``, training configs; default ``flyvis_solver``, the per-receiver W solver, and
``flyvis_cpu``, Adam on everything) is trained on it in its own subprocess on ``--threads``
threads, then analysed.  One JSON object goes to stdout: per noise level and recipe, training
wall time, connectivity_R2, tau_R2 (all / identifiable), V_rest_R2 (all / identifiable),
cluster_accuracy, data_mse_rel, test_R2 and the solver's timings.

Targets (issue 16, flyvis_049 extent 3, 30 CPU minutes): noiseless connectivity_R2 >= 0.95 and
tau_R2_identifiable >= 0.9; intrinsic noise 0.5: connectivity_R2 >= 0.95, tau_R2 >= 0.95 and
V_rest_R2 >= 0.9 over all neurons.

    .venv/bin/python bench/flyvis_recovery.py --work-dir /tmp/fvr                 # both levels
    .venv/bin/python bench/flyvis_recovery.py --work-dir /tmp/fvr --noise 0.5 --variants flyvis_solver
    .venv/bin/python bench/flyvis_recovery.py --work-dir /tmp/fvr --extent 1 --frames 3000 \\
        --variants flyvis_solver                                                 # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = (
    "connectivity_R2",
    "tau_R2",
    "tau_R2_identifiable",
    "V_rest_R2",
    "V_rest_R2_identifiable",
    "cluster_accuracy",
    "data_mse_rel",
    "test_R2",
)


def log(msg: str) -> None:
    print(f"[flyvis-recovery] {msg}", file=sys.stderr, flush=True)


def simulate(work: Path, model_id: str, extent: int, frames: int, noise: float) -> Path:
    """The cached simulation of one noise level."""
    from connectome_gnn.config import validate
    from connectome_gnn.stages import run_simulation

    out = work / f"{model_id}_e{extent}_F{frames}_noise{noise:g}"
    if (out / "simulation.json").exists():
        return out
    cfg = {"family": "flyvis", "model_id": model_id, "extent": extent, "n_frames": frames}
    if noise > 0:
        cfg["intrinsic_noise"] = noise
    log(f"simulating {out.name}")
    run_simulation(validate(cfg, "flyvis.model", source="bench/flyvis_recovery.py"), 1, 0, out)
    return out


def train_and_analyse(sim: Path, cfg_path: Path, out: Path, threads: int) -> dict:
    """Child process: one training + analysis; returns the record."""
    from connectome_gnn.analysis.run import analyze_run
    from connectome_gnn.config import load_train_config
    from connectome_gnn.train import train_run

    cfg = load_train_config(cfg_path)
    t0 = time.perf_counter()
    info = train_run(sim, cfg, out / "train", replicate_seed=0, device="cpu", threads=threads)
    train_s = time.perf_counter() - t0
    metrics = analyze_run(sim, out / "train", out / "analysis", device="cpu")
    record = {"train_s": round(train_s, 1)}
    record |= {k: metrics.get(k) for k in METRICS}
    solver = (info or {}).get("solver") or {}
    record |= {k: v for k, v in solver.items() if k.endswith("_s") or k.endswith("mse")}
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work-dir", type=Path, required=True)
    ap.add_argument("--model-id", default="flyvis_049")
    ap.add_argument("--extent", type=int, default=3)
    ap.add_argument("--frames", type=int, default=40_000)
    ap.add_argument("--noise", default="0,0.5", help="intrinsic-noise levels, comma-separated")
    ap.add_argument("--variants", default="flyvis_solver,flyvis_cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", nargs=3, metavar=("SIM", "CFG", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sim, cfg, out = args.child
        print(json.dumps(train_and_analyse(Path(sim), Path(cfg), Path(out), args.threads)))
        return
    args.work_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for noise in (float(n) for n in args.noise.split(",")):
        sim = simulate(args.work_dir, args.model_id, args.extent, args.frames, noise)
        for name in args.variants.split(","):
            cfg = ROOT / "config" / "train" / f"{name}.yaml"
            out = args.work_dir / "runs" / f"{sim.name}_{name}"
            log(f"training {name} on {sim.name}")
            env = os.environ | {"OMP_NUM_THREADS": str(args.threads)}
            cmd = [sys.executable, __file__, "--work-dir", str(args.work_dir)]
            cmd += ["--threads", str(args.threads), "--child", str(sim), str(cfg), str(out)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode:
                log(proc.stderr[-2000:])
                record = {"error": f"exit {proc.returncode}"}
            else:
                record = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append({"intrinsic_noise": noise, "variant": name} | record)
            log(json.dumps(results[-1]))
    print(
        json.dumps(
            {
                "benchmark": "flyvis_recovery",
                "model_id": args.model_id,
                "extent": args.extent,
                "frames": args.frames,
                "threads": args.threads,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "results": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
