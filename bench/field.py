"""Unknown inputs (issue 17): recovery and training throughput with the input learned vs known.

Simulates a signal circuit with an external input once (default: N = 200, dense, an oscillatory
input on 50 neurons, 20,000 frames; cached under ``--work-dir``), then trains the recipe
(default ``config/train/solver_field.yaml``) twice in this process on the same data: with the
input learned (the recipe) and with it known (``input: known``, everything else equal).  For
each it analyses the run and reports the training wall time, the trainer's frames/s (its Adam
phase), the time of the solver's start (edge fit, input pursuit, field fit, W solve),
field_R2 / field_pearson (learned only), connectivity_R2 and cluster_accuracy; then the ratio of
the frames/s.  One JSON object goes to stdout, progress to stderr.

    .venv/bin/python bench/field.py --threads 2 > field.json        # the issue's target (N = 200)
    .venv/bin/python bench/field.py --n-neurons 100 --n-frames 5000 --threads 1   # quick (~1 min)
    .venv/bin/python bench/field.py --kind moving_pattern            # the 2-D moving pattern
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "config" / "train" / "solver_field.yaml"


def log(msg: str) -> None:
    print(f"[field] {msg}", file=sys.stderr, flush=True)


def simulate(args) -> Path:
    from connectome_gnn.config import validate
    from connectome_gnn.io import read_json
    from connectome_gnn.stages import run_simulation

    cfg = validate(
        {
            "family": "signal",
            "n_neurons": args.n_neurons,
            "n_frames": args.n_frames,
            "external_input": {"kind": args.kind, "n_input_neurons": args.n_input_neurons},
        },
        "signal.model",
        source="bench/field.py",
    )
    name = f"N{args.n_neurons}_F{args.n_frames}_{args.kind}{args.n_input_neurons}_s{args.seed}"
    sim_dir = args.work_dir / "sim" / name
    settings = sim_dir / "simulation.json"
    if settings.is_file() and read_json(settings).get("model_config") == cfg:
        return sim_dir
    if sim_dir.exists():
        shutil.rmtree(sim_dir)
    run_simulation(cfg, args.filling_factor, args.seed, sim_dir)
    return sim_dir


def variant(sim_dir: Path, cfg: dict, out: Path, threads: int) -> dict:
    from connectome_gnn.analysis import analyze_run
    from connectome_gnn.train import train_run

    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    info = train_run(sim_dir, cfg, out / "train", 0, device="cpu", progress=False, threads=threads)
    wall = time.perf_counter() - t0
    metrics = analyze_run(sim_dir, out / "train", out / "analysis")
    solver = info.get("solver", {})
    start = sum(
        float(solver.get(k) or 0.0)
        for k in ("edge_fit_s", "field_pursuit_s", "field_fit_s", "W_solve_s", "phi_fit_s")
    )
    keep = ("connectivity_R2", "cluster_accuracy", "field_R2", "field_pearson", "test_R2")
    return {
        "training_wall_s": wall,
        "solver_start_s": start,
        "frames_per_s": info.get("frames_per_s"),
        "iterations": info.get("iterations_done"),
        "field_lines": solver.get("field_lines"),
        "field_frequencies": solver.get("field_frequencies"),
        **{k: metrics.get(k) for k in keep},
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-neurons", type=int, default=200)
    p.add_argument("--n-frames", type=int, default=20_000)
    p.add_argument("--n-input-neurons", type=int, default=50)
    p.add_argument("--kind", default="oscillatory", choices=["oscillatory", "moving_pattern"])
    p.add_argument("--filling-factor", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", type=Path, default=RECIPE)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/connectome_gnn_field"))
    args = p.parse_args(argv)

    from connectome_gnn.config import load_train_config

    load_start = os.getloadavg()[0]
    sim_dir = simulate(args)
    learned_cfg = load_train_config(args.config)
    if learned_cfg.get("input") != "learned":
        raise SystemExit(f"{args.config}: field 'input': the recipe must learn its input")
    results = {}
    for name, cfg in (("learned", learned_cfg), ("known", {**learned_cfg, "input": "known"})):
        log(f"training with the input {name}")
        results[name] = variant(sim_dir, cfg, args.work_dir / name, args.threads)
        log(f"{name}: {json.dumps(results[name])}")
    fps = [results[k]["frames_per_s"] for k in ("learned", "known")]
    out = {
        "benchmark": "field",
        "config": str(args.config),
        "simulation": {
            "n_neurons": args.n_neurons,
            "n_frames": args.n_frames,
            "kind": args.kind,
            "n_input_neurons": args.n_input_neurons,
            "filling_factor": args.filling_factor,
        },
        "variants": results,
        "frames_per_s_learned_over_known": fps[0] / fps[1] if all(fps) else None,
        "threads": args.threads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0],
        "machine": platform.platform(),
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
