"""Live refresh of an exploration's reports while a batch runs (issue 18): the watcher that
polls while Snakemake runs, and the driver recording each run as its metrics.json appears
(Snakemake stood in by a fake that finishes the runs one at a time)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from connectome_gnn.explore import ExplorationTree
from connectome_gnn.explore.driver import Explorer, watch


def test_watch_polls_while_the_command_runs_and_returns_its_status(capsys):
    calls = []
    cmd = [sys.executable, "-c", "import time, sys; time.sleep(1.0); sys.exit(3)"]
    assert watch(cmd, lambda: calls.append(time.time()), poll_s=0.1) == 3
    assert len(calls) >= 3

    def broken():
        raise OSError("disk full")

    # a failing refresh is reported and the command goes on
    assert watch([sys.executable, "-c", "import time; time.sleep(0.5)"], broken, 0.1) == 0
    assert "live refresh failed (disk full); going on" in capsys.readouterr().err


class OneByOne:
    """Writes the runs' metrics.json one at a time and lets the driver poll after each, as
    :func:`watch` does; records what the exploration directory held at each poll."""

    def __init__(self, root: Path, stale: int | None = None):
        self.explorer: Explorer | None = None
        self.root, self.stale, self.seen = root, stale, []

    def __call__(self, cmd):
        targets = [Path(a) for a in cmd if a.endswith("metrics.json")]
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        if self.stale is not None:  # an old metrics.json, from before the batch started
            old = targets[self.stale]
            old.write_text(json.dumps({"status": "ok", "connectivity_R2": 0.1}))
            os.utime(old, (time.time() - 3600, time.time() - 3600))
        for i, target in enumerate(targets):
            if i == self.stale:
                continue
            m = {"status": "ok", "connectivity_R2": 0.5 + 0.1 * i, "cluster_accuracy": 0.5}
            target.write_text(json.dumps(m))
            recorded = self.explorer.refresh_finished()
            nodes = yaml.safe_load((self.root / "nodes.yaml").read_text())["nodes"]
            best = pd.read_csv(self.root / "summary/best.csv")
            self.seen.append(([n.node_id for n in recorded], [n["status"] for n in nodes], best))
        if self.stale is not None:  # analysed again at the end of the batch
            m = {"status": "ok", "connectivity_R2": 0.9, "cluster_accuracy": 0.9}
            targets[self.stale].write_text(json.dumps(m))
        return 0


def _setup(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    wf = yaml.safe_load((repo_root / "config/config.yaml").read_text())
    wf["results_dir"] = str(tmp_path / "results")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(wf))
    exp = yaml.safe_load((repo_root / "tests/data/experiments/tiny.yaml").read_text())
    exp["n_slots"] = 3
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    return tmp_path / "exp.yaml", tmp_path / "config.yaml", tmp_path / "expl"


def test_reports_are_refreshed_after_every_finished_run(tmp_path, repo_root, monkeypatch):
    exp, cfg, root = _setup(tmp_path, repo_root, monkeypatch)
    fake = OneByOne(root / "tiny_landscape")
    explorer = Explorer(exp, cfg, root, runner=fake)
    fake.explorer = explorer
    explorer.run(iterations=3)
    # one refresh per finished run: the tree saved and the tables rewritten each time
    assert explorer.refreshes == 3
    assert [s[0] for s in fake.seen] == [[1], [2], [3]]
    assert [s[1] for s in fake.seen] == [
        ["ok", "running", "running"],
        ["ok", "ok", "running"],
        ["ok", "ok", "ok"],
    ]
    assert [len(s[2]) for s in fake.seen] == [1, 1, 1]  # the best config so far
    assert (root / "tiny_landscape/summary/exploration_tree.png").is_file()
    tree = ExplorationTree.load(root / "tiny_landscape")
    assert [n.score for n in tree.nodes] == [0.6 * r + 0.4 * 0.5 for r in (0.5, 0.6, 0.7)]
    assert explorer.refresh_finished() == []  # no batch running


def test_a_metrics_file_older_than_the_batch_is_not_taken(tmp_path, repo_root, monkeypatch):
    exp, cfg, root = _setup(tmp_path, repo_root, monkeypatch)
    fake = OneByOne(root / "tiny_landscape", stale=1)
    explorer = Explorer(exp, cfg, root, runner=fake)
    fake.explorer = explorer
    explorer.run(iterations=3)
    assert [s[0] for s in fake.seen] == [[1], [3]]
    assert fake.seen[-1][1] == ["ok", "running", "ok"]
    # after the batch, the file Snakemake left is the node's result
    tree = ExplorationTree.load(root / "tiny_landscape")
    assert tree[2].status == "ok" and tree[2].metrics["connectivity_R2"] == 0.9
