"""What pruning saves on an exploration, and what it costs: pruning on against pruning off.

The exploration (``--experiment``, default the CPU landscape with median stopping,
config/experiments/sparsity_landscape_cpu_pruning.yaml) is run with its pruning rule (or
resumed, when it already ran), and its state is recorded: per node its status, iterations,
score, connectivity_R2, and the train job's wall time and CPU time (Snakemake's benchmark file).
Then its pruned nodes are trained to their end (``explore --resume-pruned --iterations 0``) and
the state is recorded again.  That second state *is* the exploration with pruning off, run by
run, when the experiment has two batches per block:

- a block's first batch is never pruned, and the second batch's proposals depend only on the
  first batch's results, so the same configurations are trained with pruning on and off;
- a resumed run has the weights of a run never pruned (tests/unit/test_score_reports.py);
- a pruned node is never a block's best, so with ``carry_best`` the next block's root is the
  same with pruning on and off **unless** a resumed node becomes its block's best: the JSON says
  for each block whether the best changed (``best_changed``), and the counterfactual holds for the
  later blocks only while it did not.

CPU: the train jobs only (one thread each here, ``--set-threads train=1``), with pruning on the
jobs as they ran, with pruning off those plus the resume jobs of the pruned runs.  Every run of
both states paid the score reports (a scorer process at each reported fraction), which an
exploration without pruning would not run: their cost is given apart (``report_cpu_h``: the
number of reports times one report, timed here on a finished run).

    .venv/bin/python bench/pruning.py -- --profile profiles/local --cores 2 \\
        --resources gpu=2 --set-threads train=1

The two states are kept as ``pruning_on.json`` / ``pruning_off.json`` in the exploration
directory (a state already recorded is not taken again), and one JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from connectome_gnn import layout  # noqa: E402
from connectome_gnn.explore import pruning  # noqa: E402
from connectome_gnn.explore.checkpoint_score import read_curve  # noqa: E402
from connectome_gnn.explore.experiment import load_experiment  # noqa: E402
from connectome_gnn.explore.store import read_nodes  # noqa: E402

EXPERIMENT = ROOT / "config/experiments/sparsity_landscape_cpu_pruning.yaml"
CLI = [sys.executable, "-m", "connectome_gnn.cli"]


def log(msg: str) -> None:
    print(f"[pruning] {msg}", file=sys.stderr, flush=True)


def _benchmark(results: Path, node, cfg: str) -> dict:
    """Wall and CPU seconds of the node's last train job (Snakemake's benchmark file)."""
    sim = node.sim
    path = results / layout.TRAIN_BENCHMARK_PATTERN.format(
        model=sim["model"],
        sparsity=layout.format_sparsity(sim["sparsity"]),
        cfg=cfg,
        seed=int(sim.get("seed", 0)),
    )
    with open(path) as fh:
        row = next(csv.DictReader(fh, delimiter="\t"))
    return {"job_s": float(row["s"]), "cpu_s": float(row["cpu_time"])}


def _reports(train_dir: Path) -> int:
    """Score reports the run made (rows of its scores.csv)."""
    path = train_dir / "scores.csv"
    if not path.exists():
        return 0
    with open(path) as fh:
        return sum(1 for _ in csv.DictReader(fh))


def time_report(train_dir: Path) -> dict:
    """Wall and CPU seconds of one score report (the scorer process the training starts) on a
    copy of a finished run's train directory (the copy's scores.csv takes the row)."""
    info = json.loads((train_dir / "train_info.json").read_text())
    total = info["iterations_per_epoch"] * info["n_epochs"]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "train"
        shutil.copytree(train_dir, copy)
        cmd = [sys.executable, "-m", "connectome_gnn.explore.checkpoint_score", str(copy)]
        cmd += [str(total), str(total), repr(float(info["xnorm"]))]
        before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - t0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def snapshot(directory: Path, results: Path) -> dict:
    """Per node: block, sparsity, status, iterations, score, connectivity_R2, job seconds."""
    experiment, nodes = read_nodes(directory)
    name = experiment["name"]
    out = []
    for node in nodes:
        cfg = f"{name}_n{node.node_id:03d}"
        sim = node.sim
        run = layout.run_dir(str(results), sim["model"], sim["sparsity"], cfg, sim.get("seed", 0))
        info = json.loads((run / layout.TRAIN / "train_info.json").read_text())
        out.append(
            {
                "node": node.node_id,
                "train_dir": str(run / layout.TRAIN),
                "block": node.block,
                "batch": node.batch,
                "sparsity": sim["sparsity"],
                "status": node.status,
                "iterations": info["iterations_done"],
                "total": info["iterations_per_epoch"] * info["n_epochs"],
                "resumed_from_iteration": info.get("resumed_from_iteration"),
                "score": node.score,
                "connectivity_R2": node.metrics.get("connectivity_R2"),
                "cluster_accuracy": node.metrics.get("cluster_accuracy"),
                "reports": _reports(run / layout.TRAIN),
                **_benchmark(results, node, cfg),
            }
        )
    return {"experiment": name, "nodes": out}


def _best(nodes: list[dict], block: int) -> dict | None:
    ok = [n for n in nodes if n["block"] == block and n["status"] == "ok"]
    return max(ok, key=lambda n: n["score"]) if ok else None


def off_totals(on: dict, off: dict, key: str) -> dict[int, float]:
    """Per node, ``key`` (job_s, cpu_s) of its training with pruning off: its job as it ran
    with pruning on, plus its resume job when it had been pruned."""
    pruned = {n["node"] for n in on["nodes"] if n["status"] == "pruned"}
    total = {n["node"]: n[key] for n in on["nodes"]}
    for n in off["nodes"]:
        if n["node"] in pruned:  # its resume job ran the rest of the training
            total[n["node"]] += n[key]
    return total


def compare(on: dict, off: dict) -> dict:
    """CPU and wall seconds of the train jobs, pruning on and off, and the best per block."""
    by_id = {n["node"]: n for n in on["nodes"]}
    cpu_on = sum(n["cpu_s"] for n in on["nodes"])
    job_on = sum(n["job_s"] for n in on["nodes"])
    cpu_off = sum(off_totals(on, off, "cpu_s").values())
    full = off_totals(on, off, "job_s")
    job_off = sum(full.values())
    pruned = [
        {
            "node": n["node"],
            "sparsity": n["sparsity"],
            "pruned_at": by_id[n["node"]]["iterations"],
            "of": by_id[n["node"]]["total"],
            "score_when_pruned": by_id[n["node"]]["score"],
            "final_score": n["score"],
            "final_connectivity_R2": n["connectivity_R2"],
        }
        for n in off["nodes"]
        if by_id[n["node"]]["status"] == "pruned"
    ]
    # the exploration waits for a batch's slowest run before proposing the next batch: the wall
    # time is the sum over batches of their longest train job (with slots enough for a batch)
    batches: dict[tuple, list] = {}
    for n in on["nodes"]:
        batches.setdefault((n["block"], n["batch"]), []).append(n["node"])
    wall_on = sum(max(by_id[i]["job_s"] for i in ids) for ids in batches.values())
    wall_off = sum(max(full[i] for i in ids) for ids in batches.values())
    blocks = []
    for block in sorted({n["block"] for n in on["nodes"]}):
        b_on, b_off = _best(on["nodes"], block), _best(off["nodes"], block)
        blocks.append(
            {
                "block": block,
                "sparsity": b_on["sparsity"] if b_on else None,
                "pruned": sum(n["block"] == block and n["status"] == "pruned" for n in on["nodes"]),
                "best_on": {k: b_on[k] for k in ("node", "score", "connectivity_R2")}
                if b_on
                else None,
                "best_off": {k: b_off[k] for k in ("node", "score", "connectivity_R2")}
                if b_off
                else None,
                "best_changed": (b_on or {}).get("node") != (b_off or {}).get("node"),
            }
        )
    return {
        "runs": len(on["nodes"]),
        "pruned_runs": len(pruned),
        "train_cpu_h": {"on": cpu_on / 3600, "off": cpu_off / 3600},
        "train_job_h": {"on": job_on / 3600, "off": job_off / 3600},
        "batches_wall_h": {"on": wall_on / 3600, "off": wall_off / 3600},
        "saved_cpu_fraction": 1 - cpu_on / cpu_off if cpu_off else None,
        "saved_job_fraction": 1 - job_on / job_off if job_off else None,
        "score_reports": sum(n["reports"] for n in on["nodes"]),
        "pruned": pruned,
        "blocks": blocks,
    }


#: rules replayed on the recorded score curves (``replay``): the live one and alternatives
REPLAYED = {
    "median, warm-up 0.25 (live)": {"rule": "median", "warmup_fraction": 0.25},
    "median, warm-up 0.5": {"rule": "median", "warmup_fraction": 0.5},
    "median, warm-up 0.75": {"rule": "median", "warmup_fraction": 0.75},
    "successive halving 0.25 x 2": {
        "rule": "successive_halving",
        "min_fraction": 0.25,
        "reduction_factor": 2,
    },
    "successive halving 0.5 x 2": {
        "rule": "successive_halving",
        "min_fraction": 0.5,
        "reduction_factor": 2,
    },
}


def replay(off: dict, on: dict, rule: dict) -> dict:
    """A pruning rule replayed on the curves of the exploration with pruning off (every run
    trained to its end, a score every quarter): the decisions are pure functions of those
    curves, so this is what the rule would have decided.  References of a node: the nodes of
    its block from earlier batches, truncated where the replayed rule stopped them.  A stopped
    run's train cost is its full job time times the fraction it trained (a run's time is
    close to linear in its iterations)."""
    settings = pruning.resolve_settings({"report_every": 0.25, **rule})
    full = off_totals(on, off, "job_s")
    stopped: dict[int, float] = {}  # node -> fraction at which the rule stops it
    curves = {n["node"]: read_curve(Path(n["train_dir"])) for n in off["nodes"]}
    for n in sorted(off["nodes"], key=lambda n: (n["batch"], n["node"])):
        refs = []
        for r in off["nodes"]:
            if r["block"] == n["block"] and r["batch"] < n["batch"]:
                end = stopped.get(r["node"], 1.0)
                refs.append({f: v for f, v in curves[r["node"]].items() if f <= end})
        if not refs:
            continue
        for f in sorted(curves[n["node"]]):
            if pruning.decide(settings, f, curves[n["node"]][f], refs).prune:
                stopped[n["node"]] = f
                break
    cost = sum(full[i] * stopped.get(i, 1.0) for i in full)
    blocks = {}
    for n in off["nodes"]:
        if n["node"] not in stopped and n["status"] == "ok":
            best = blocks.get(n["block"])
            if best is None or n["score"] > best["score"]:
                blocks[n["block"]] = n
    best_off = {b: _best(off["nodes"], b) for b in {n["block"] for n in off["nodes"]}}
    return {
        "stopped": {str(i): f for i, f in sorted(stopped.items())},
        "train_job_h": cost / 3600,
        "saved_job_fraction": 1 - cost / sum(full.values()),
        "best_connectivity_R2": {
            str(best_off[b]["sparsity"]): blocks[b]["connectivity_R2"] for b in sorted(blocks)
        },
        "blocks_whose_best_is_stopped": sorted(
            best_off[b]["sparsity"] for b in best_off if best_off[b]["node"] in stopped
        ),
    }


def _explore(experiment: Path, extra: list[str], snakemake_args: list[str]) -> None:
    cmd = [*CLI, "explore", str(experiment), *extra, "--", *snakemake_args]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=sys.stderr)  # stdout: the JSON only


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", type=Path, default=EXPERIMENT)
    ap.add_argument("--results", type=Path, default=ROOT / "results", help="results_dir")
    ap.add_argument("snakemake_args", nargs="*", help="after --: Snakemake's arguments")
    args = ap.parse_args(argv)
    name = load_experiment(args.experiment)["name"]
    directory = args.results / layout.EXPLORATIONS / name
    states = {}
    for state, extra in (("on", []), ("off", ["--resume-pruned", "--iterations", "0"])):
        path = directory / f"pruning_{state}.json"
        if not path.exists():
            _explore(args.experiment, extra, args.snakemake_args)
            path.write_text(json.dumps(snapshot(directory, args.results), indent=1))
        states[state] = json.loads(path.read_text())
    result = {"experiment": name, **compare(states["on"], states["off"])}
    report = time_report(Path(states["off"]["nodes"][0]["train_dir"]))
    result["one_report"] = report
    result["report_cpu_h"] = result["score_reports"] * report["cpu_s"] / 3600
    # an exploration with pruning off would not run score reports at all
    reports_off = sum(n["reports"] for n in states["off"]["nodes"])
    plain = result["train_cpu_h"]["off"] - reports_off * report["cpu_s"] / 3600
    result["train_cpu_h"]["off_without_reports"] = plain
    result["saved_cpu_h_net"] = plain - result["train_cpu_h"]["on"]
    result["best_connectivity_R2_off"] = {
        str(b["sparsity"]): b["best_off"]["connectivity_R2"] for b in result["blocks"]
    }
    result["replayed"] = {
        name: replay(states["off"], states["on"], rule) for name, rule in REPLAYED.items()
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
