"""``connectome-gnn status`` on the files of real tiny trainings: one finished, one stopped
mid-way (a signal: checkpoint and progress line written, no train_info.json, as while it
runs), one not started."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
import yaml

from connectome_gnn import layout
from connectome_gnn.cli import main
from connectome_gnn.config import validate
from connectome_gnn.errors import Interrupted
from connectome_gnn.explore import ExplorationTree, propose_batch
from connectome_gnn.explore.status import batch_status
from connectome_gnn.stages import run_simulation
from connectome_gnn.train import train_run


def test_status_of_a_running_batch(tmp_path, repo_root, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    results = tmp_path / "results"
    wf = yaml.safe_load((repo_root / "config/config.yaml").read_text())
    wf["results_dir"] = str(results)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(wf))
    exp = yaml.safe_load((repo_root / "tests/data/experiments/tiny.yaml").read_text())
    exp["n_slots"] = 3
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    tree = ExplorationTree.open(tmp_path / "expl/tiny_landscape", str(tmp_path / "exp.yaml"))
    nodes = propose_batch(tree)
    for node in nodes:
        tree.set_status(node.node_id, "running")
    tree.save()

    sim = validate({"family": "signal", "n_neurons": 100, "n_frames": 5000}, "signal.model")
    sim_dir = layout.simulation_dir(results, "signal_N2", 1.0, 0)
    run_simulation(sim, 1.0, 0, sim_dir)

    def train(node, **kw):
        cfg = dict(node.config, max_iterations=200, log_every=10)
        out = layout.train_dir(results, "signal_N2", 1.0, tree.cfg_name(node), 0)
        log = results / layout.run_log_pattern("train").format(
            model="signal_N2", sparsity="1", cfg=tree.cfg_name(node), seed=0
        )
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f, contextlib.redirect_stderr(f):
            return train_run(sim_dir, cfg, out, replicate_seed=0, **kw)

    info = train(nodes[0])
    assert info["status"] == "ok"

    def stop_at_100(model, done, elapsed):
        if done > 100:
            os.kill(os.getpid(), signal.SIGUSR1)

    with pytest.raises(Interrupted):
        train(nodes[1], monitor=stop_at_100)

    rows = {r["node"]: r for r in batch_status(tree, results)}
    assert [rows[n.node_id]["state"] for n in nodes] == ["finished", "running", "queued"]
    assert rows[1]["done"] == rows[1]["total"] == 200 and rows[1]["left_s"] == 0
    assert rows[1]["elapsed_s"] == pytest.approx(info["wall_time_s"])
    running = rows[2]
    assert 100 < running["done"] < 200 and running["total"] == 200
    assert running["left_s"] >= 0 and running["elapsed_s"] >= 0
    assert rows[3]["done"] is None

    # the command line: every node of the batch and the best node so far
    tree.update(1, {"status": "ok", "connectivity_R2": 0.5, "cluster_accuracy": 0.25})
    tree.save()
    rc = main(
        [
            "status",
            str(tmp_path / "exp.yaml"),
            "--config",
            str(tmp_path / "config.yaml"),
            "--root",
            str(tmp_path / "expl"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == "exploration tiny_landscape: 3 node(s), batch 1"
    assert lines[2].split()[:4] == ["1", "finished", "200/200", "0.4000"]
    assert lines[3].split()[:2] == ["2", "running"]
    assert lines[3].split()[2] == f"{running['done']}/200"
    assert lines[4].split() == ["3", "queued", "-", "-", "-", "-"]
    assert lines[5] == "best so far: node 1 (block 0, tiny_landscape_n001), score 0.4000"
