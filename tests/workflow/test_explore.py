"""A tiny exploration end to end: tree, UCB file, log, tables; resume and failed nodes."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from connectome_gnn.explore import ExplorationTree
from connectome_gnn.explore.driver import run_dir

from .conftest import edit_yaml, make_workdir, set_model

BIN = Path(sys.executable).parent


def explore(work: Path, repo: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        str(BIN / "connectome-gnn"),
        *args,
        "--snakefile",
        str(repo / "Snakefile"),
        "--",
        "--cores",
        "2",
        "--resources",
        "gpu=1",
        "--workflow-profile",
        "none",
        "--quiet",
    ]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tiny_exploration(tmp_path_factory, repo_root):
    work = make_workdir(tmp_path_factory.mktemp("explore"), repo_root)
    set_model(work, n_frames=2000)
    edit_yaml(work / "config/train/default.yaml", max_iterations=60)
    exp = work / "tiny.yaml"
    exp.write_text((repo_root / "tests/data/experiments/tiny.yaml").read_text())
    # first call: one batch (2 runs), then the command stops as if the driver had been killed
    first = explore(work, repo_root, "explore", str(exp), "--iterations", "2")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return work, exp


@pytest.mark.slow
def test_resumed_exploration_continues_at_the_right_iteration(tiny_exploration, repo_root):
    work, exp = tiny_exploration
    root = work / "results/explorations/tiny_landscape"
    nodes = yaml.safe_load((root / "nodes.yaml").read_text())["nodes"]
    assert [n["iteration"] for n in nodes] == [1, 2]
    assert all(n["status"] in ("ok", "failed") for n in nodes)
    # a node left "running" by a killed driver is run again first
    data = yaml.safe_load((root / "nodes.yaml").read_text())
    data["nodes"][1]["status"] = "running"
    (root / "nodes.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    res = explore(work, repo_root, "explore", str(exp), "--iterations", "6")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "resuming tiny_landscape: 1 unfinished node(s)" in res.stderr
    nodes = yaml.safe_load((root / "nodes.yaml").read_text())["nodes"]
    assert [n["iteration"] for n in nodes] == list(range(1, 9))
    assert [n["block"] for n in nodes] == [0] * 4 + [1] * 4
    assert all(n["status"] in ("ok", "failed") for n in nodes)
    assert sum(n["status"] == "ok" for n in nodes) >= 4, [n.get("reason") for n in nodes]
    assert all(
        n["metrics"].get("connectivity_R2") is not None for n in nodes if n["status"] == "ok"
    )
    # every non-root node has a parent in its own block and a mutation
    by_id = {n["node_id"]: n for n in nodes}
    for n in nodes:
        if n["source"] == "ucb":
            assert n["mutation"] and by_id[n["parent"]]["block"] == n["block"]
    # nothing left to do
    again = explore(work, repo_root, "explore", str(exp))
    assert again.returncode == 0 and "0 run(s) trained" in again.stdout


@pytest.mark.slow
def test_exploration_reports(tiny_exploration, repo_root):
    work, exp = tiny_exploration
    root = work / "results/explorations/tiny_landscape"
    assert "## Iter 1:" in (root / "iteration_log.md").read_text()
    assert "=== UCB Scores" in (root / "ucb_scores.txt").read_text()
    ucb = pd.read_csv(root / "ucb_scores.csv")
    assert list(ucb["UCB"]) == sorted(ucb["UCB"], reverse=True)
    for table in ("sparsity_landscape", "parameter_effects", "pareto", "replicates", "best"):
        assert (root / "summary" / f"{table}.csv").is_file(), table
    # regenerate from metrics only: no snakemake run, seconds
    (root / "summary" / "sparsity_landscape.csv").unlink()
    res = subprocess.run(
        [str(BIN / "connectome-gnn"), "explore-report", str(exp)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert (root / "summary" / "sparsity_landscape.csv").is_file()


@pytest.mark.slow
def test_rerun_failed_node_trains_again_and_nothing_else(tiny_exploration, repo_root):
    work, exp = tiny_exploration
    root = work / "results/explorations/tiny_landscape"
    data = yaml.safe_load((root / "nodes.yaml").read_text())
    tree = ExplorationTree.load(root)
    runs = {n.node_id: work / run_dir("results", n, tree.cfg_name(n)) for n in tree.nodes}
    models = {i: d / "train/model.pt" for i, d in runs.items() if (d / "train/model.pt").is_file()}
    assert 1 in models, sorted(runs.values())
    # node 1's training "diverged": its train_info, metrics and node say failed
    info = runs[1] / "train/train_info.json"
    info.write_text(info.read_text().replace('"status": "ok"', '"status": "failed"'))
    metrics = runs[1] / "metrics.json"
    metrics.write_text(metrics.read_text().replace('"status": "ok"', '"status": "failed"'))
    data["nodes"][0]["status"] = "failed"
    (root / "nodes.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    before = {i: p.stat().st_mtime_ns for i, p in models.items()}
    res = explore(work, repo_root, "explore", str(exp), "--rerun-failed", "--iterations", "0")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "rerunning 1 failed node(s)" in res.stderr
    after = yaml.safe_load((root / "nodes.yaml").read_text())["nodes"]
    assert after[0]["status"] == "ok" and len(after) == len(data["nodes"])
    assert '"status": "ok"' in info.read_text()
    changed = {i for i, p in models.items() if p.stat().st_mtime_ns != before[i]}
    assert changed == {1}


def test_bad_experiment_is_one_clear_error(tmp_path, repo_root):
    work = make_workdir(tmp_path, repo_root)
    exp = work / "bad.yaml"
    exp.write_text("name: x\nblocks:\n  - {model: nope, sparsity: 0.5}\n")
    res = subprocess.run(
        [str(BIN / "connectome-gnn"), "explore", str(exp)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1
    assert "field 'blocks[0].model': 'nope' is not defined" in res.stderr
    assert "Traceback" not in res.stderr


def test_shipped_sparsity_landscape_experiment(tmp_path, repo_root, monkeypatch):
    from connectome_gnn.explore.driver import Explorer
    from connectome_gnn.explore.propose import propose_batch

    monkeypatch.chdir(repo_root)
    explorer = Explorer(
        "config/experiments/sparsity_landscape.yaml", "config/config.yaml", tmp_path / "expl"
    )
    blocks = explorer.tree.blocks
    assert [b["sparsity"] for b in blocks] == [1.0, 0.75, 0.5, 0.25, 0.1, 0.05]
    assert {b["model"] for b in blocks} == {"signal_N1000"}
    batch = propose_batch(explorer.tree)
    assert len(batch) == 4 and batch[0].source == "root"
    assert all(n.config["max_iterations"] == 20000 for n in batch[:1])
