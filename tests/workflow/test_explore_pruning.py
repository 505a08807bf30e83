"""Pruning and live reports through the real driver and the real Snakemake (issue 18).

A tiny exploration (N = 100, 2000-iteration runs, scores reported at 0.5 and 1): its first
batch trains two runs, whose score curves become the references of the next batch, and the
tables and tree plot are rewritten as soon as the first of them is analysed, before the batch
ends; then a hand-written configuration with lr_W far too small is added and is stopped by the
median rule at half of its training, deterministically: the decision is recomputed here from
the frozen reference files.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from connectome_gnn.explore import ExplorationTree
from connectome_gnn.explore.checkpoint_score import read_curve
from connectome_gnn.explore.driver import run_dir
from connectome_gnn.explore.pruning import median_decision

from .conftest import edit_yaml, make_workdir

BIN = Path(sys.executable).parent
# one train job at a time (each takes the only gpu) on one thread, so that a finished run's
# analysis runs beside the next training: the first metrics.json appears well before the second
SNAKEMAKE = [
    "--cores",
    "2",
    "--resources",
    "gpu=1",
    "--set-resources",
    "train:gpu=1",
    "--set-threads",
    "train=1",
    "--workflow-profile",
    "none",
    "--quiet",
]


def explore_cmd(repo: Path, *args: str) -> list[str]:
    cmd = [str(BIN / "connectome-gnn"), *args]
    if args[0] == "explore":
        cmd += ["--snakefile", str(repo / "Snakefile"), "--poll-seconds", "0.5", "--", *SNAKEMAKE]
    return cmd


def cli(work: Path, repo: Path, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run(
        explore_cmd(repo, *args), cwd=work, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def statuses(root: Path) -> dict[int, str]:
    path = root / "nodes.yaml"
    nodes = yaml.safe_load(path.read_text())["nodes"] if path.is_file() else []
    return {n["node_id"]: n["status"] for n in nodes}


@pytest.mark.slow
def test_bad_configuration_is_pruned_and_reports_follow_every_run(tmp_path, repo_root):
    work = make_workdir(tmp_path, repo_root)
    default = edit_yaml(work / "config/train/default.yaml", max_iterations=2000)
    exp = work / "tiny_pruning.yaml"
    exp.write_text((repo_root / "tests/data/experiments/tiny_pruning.yaml").read_text())
    root = work / "results/explorations/tiny_pruning"
    log = tmp_path / "batch1.log"

    # batch 1 (two runs, trained one after the other); the test watches the files
    with open(log, "w") as err:
        proc = subprocess.Popen(
            explore_cmd(repo_root, "explore", str(exp), "--iterations", "2"),
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    seen = None  # the node states when the tables first appear
    try:
        deadline = time.time() + 900
        while proc.poll() is None and time.time() < deadline:
            if seen is None and (root / "summary/best.csv").is_file():
                seen = statuses(root)
            time.sleep(0.1)
    finally:
        if proc.poll() is None:  # never left behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    # the reports were written with one run finished, while the other still ran
    assert seen is not None and sorted(seen.values()) == ["ok", "running"], (seen, text[-2000:])
    assert "(1/2 of batch 1): reports refreshed" in text, text[-2000:]
    assert statuses(root) == {1: "ok", 2: "ok"}

    tree = ExplorationTree.load(root)
    train = {n: work / run_dir("results", tree[n], tree.cfg_name(n)) / "train" for n in (1, 2)}
    for n in (1, 2):  # a block's first batch is reported on, never pruned
        scores = pd.read_csv(train[n] / "scores.csv")
        assert scores["fraction"].tolist() == [0.5, 1.0]
        assert scores["decision"].tolist() == ["continue", "continue"]
        assert "0 reference(s)" in scores["reason"].iloc[0]

    # a deliberately bad configuration: the recipe with lr_W 1e-8
    bad = work / "bad.yaml"
    bad.write_text(yaml.safe_dump({**default, "lr_W": 1e-8}))
    res = cli(work, repo_root, "explore-add", str(exp), str(bad), "--parent", "1")
    assert "added node 3" in res.stdout
    res = cli(work, repo_root, "explore", str(exp), "--iterations", "0")
    assert "1 run(s) trained" in res.stdout

    tree = ExplorationTree.load(root)
    node = tree[3]
    assert node.status == "pruned" and node.batch == 2, (node.status, node.reason)
    run = work / run_dir("results", node, tree.cfg_name(node))
    info = json.loads((run / "train/train_info.json").read_text())
    assert info["status"] == "pruned"
    assert info["iterations_done"] == 1000 < 2000  # stopped at half of its training
    assert (run / "train/checkpoint.pt").is_file()  # kept, to resume on request
    assert json.loads((run / "metrics.json").read_text())["status"] == "pruned"
    decision = json.loads((run / "train/prune_decision.json").read_text())
    assert decision["iteration"] == 1000 and decision["fraction"] == 0.5
    scores = pd.read_csv(run / "train/scores.csv")
    assert scores["iteration"].tolist() == [1000] and scores["decision"].tolist() == ["prune"]
    # deterministic: a pure function of the run's score and of the references' files, frozen
    # in its request before the batch ran
    request = json.loads((run / "train/score_request.json").read_text())
    curves = {n: read_curve(train[n]) for n in (1, 2)}
    assert request["references"] == {
        str(n): [[f, s] for f, s in sorted(c.items())] for n, c in curves.items()
    }
    again = median_decision(
        0.5, scores["score"].iloc[0], list(curves.values()), warmup_fraction=0.5
    )
    assert again.prune and again.reason == scores["reason"].iloc[0]
    # the bad run is far below the references, not a close call
    assert scores["score"].iloc[0] < again.threshold - 0.2, (scores, again)
    assert node.score == pytest.approx(scores["score"].iloc[0], abs=1e-9)

    # the tables, log and status show it
    assert "## Iter 3: pruned" in (root / "iteration_log.md").read_text()
    assert tree.best(0).node_id in (1, 2)
    res = cli(work, repo_root, "status", str(exp))
    assert "pruned" in res.stdout and "best so far: node" in res.stdout
