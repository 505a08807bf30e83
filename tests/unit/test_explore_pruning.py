"""Pruning in the exploration: requests with frozen references, pruned nodes in the tree and in
UCB, resuming pruned nodes, configuration errors (Snakemake stood in by a fake)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from connectome_gnn.config import ConfigError
from connectome_gnn.explore import ExplorationTree, load_experiment, select_parents, ucb_table
from connectome_gnn.explore.driver import Explorer, run_dir

PRUNING = {"rule": "successive_halving", "min_fraction": 0.5, "reduction_factor": 2}


class CurveSnakemake:
    """Writes train_info.json, scores.csv and metrics.json for every target: node -> (status,
    curve {fraction: score}); the metrics give the last score (0.6 R2 + 0.4 acc, R2 = acc)."""

    def __init__(self, outcomes):
        self.outcomes, self.calls, self.requests = outcomes, [], {}

    def __call__(self, cmd):
        self.calls.append(cmd)
        for target in (a for a in cmd if a.endswith("metrics.json")):
            run = Path(target).parent
            node = int(run.parent.name.rsplit("_n", 1)[1])
            self.requests[node] = json.loads((run / "train/score_request.json").read_text())
            status, curve = self.outcomes[node]
            rows = [
                {"iteration": int(100 * f), "fraction": f, "score": s} for f, s in curve.items()
            ]
            pd.DataFrame(rows).to_csv(run / "train/scores.csv", index=False)
            (run / "train/train_info.json").write_text(json.dumps({"status": status}))
            last = list(curve.values())[-1]
            m = {"status": status, "connectivity_R2": last, "cluster_accuracy": last}
            if status == "pruned":
                m["reason"] = "below the threshold"
            Path(target).write_text(json.dumps(m))
        return 0


@pytest.fixture
def setup(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    wf = yaml.safe_load((repo_root / "config/config.yaml").read_text())
    wf["results_dir"] = str(tmp_path / "results")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(wf))
    exp = yaml.safe_load((repo_root / "tests/data/experiments/tiny.yaml").read_text())
    exp["pruning"] = PRUNING
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    return tmp_path / "exp.yaml", tmp_path / "config.yaml", tmp_path / "expl", wf["results_dir"]


def test_batches_get_frozen_references_and_pruned_nodes_are_kept(setup):
    exp, cfg, root, results = setup
    fake = CurveSnakemake(
        {
            1: ("ok", {0.5: 0.5, 1.0: 0.8}),
            2: ("ok", {0.5: 0.3, 1.0: 0.6}),
            3: ("pruned", {0.5: 0.2}),
            4: ("ok", {0.5: 0.6, 1.0: 0.9}),
        }
    )
    explorer = Explorer(exp, cfg, root, runner=fake)
    explorer.run(iterations=4)
    tree = explorer.tree
    # the first batch has no reference; the second compares with the first, frozen
    for node in (1, 2):
        assert fake.requests[node]["references"] == {}
    for node in (3, 4):
        req = fake.requests[node]
        assert req["references"] == {"1": [[0.5, 0.5], [1.0, 0.8]], "2": [[0.5, 0.3], [1.0, 0.6]]}
        assert req["pruning"]["rule"] == "successive_halving"
        assert req["pruning"]["reduction_factor"] == 2
        assert req["fractions"] == [0.25, 0.5, 0.75, 1.0]
        assert req["score_weights"] == {"connectivity_R2": 0.6, "cluster_accuracy": 0.4}
        assert req["scorer"] == "connectome_gnn.explore.checkpoint_score"
        assert req["sim_dir"].endswith("signal_N2/1/simulation/seed0")
    pruned = tree[3]
    assert pruned.status == "pruned" and pruned.finished
    assert pruned.score == pytest.approx(0.2) and pruned.reason == "below the threshold"
    assert pruned.classification == "pruned"
    # UCB: the pruned node counts as a visit but is never a parent while ok nodes exist
    assert tree.visits(0)[tree[3].parent] >= 2
    assert 3 not in select_parents(tree, 4, block=0)
    table = ucb_table(tree, block=0)
    assert table.set_index("node").loc[3, "status"] == "pruned"
    assert tree.best(0).node_id == 4
    # nodes.yaml keeps the status; the iteration log says why
    reloaded = ExplorationTree.load(root / "tiny_landscape")
    assert reloaded[3].status == "pruned" and reloaded[3].score == pytest.approx(0.2)
    log = (root / "tiny_landscape/iteration_log.md").read_text()
    assert "## Iter 3: pruned" in log and "Reason: below the threshold" in log

    # resuming the pruned node on request: forced, from its checkpoint, without pruning
    fake2 = CurveSnakemake({3: ("ok", {0.5: 0.2, 1.0: 0.7})})
    again = Explorer(exp, cfg, root, runner=fake2)
    assert again.run(iterations=0, resume_pruned=[]) == 1
    (cmd,) = fake2.calls
    train3 = run_dir(results, again.tree[3], again.tree.cfg_name(3)) / "train"
    assert cmd[cmd.index("--forcerun") + 1] == str(train3 / "train_info.json")
    assert fake2.requests[3]["pruning"] is None and fake2.requests[3]["references"] == {}
    node = ExplorationTree.load(root / "tiny_landscape")[3]
    assert node.status == "ok" and node.no_pruning and node.score == pytest.approx(0.7)


def test_resume_pruned_refuses_a_node_that_is_not_pruned(setup):
    exp, cfg, root, _ = setup
    fake = CurveSnakemake({1: ("ok", {1.0: 0.5}), 2: ("ok", {1.0: 0.4})})
    Explorer(exp, cfg, root, runner=fake).run(iterations=2)
    with pytest.raises(Exception, match=r"node\(s\) 2 not pruned"):
        Explorer(exp, cfg, root, runner=fake).run(iterations=0, resume_pruned=[2])


def test_pruning_off_by_default_and_bad_settings_name_the_field(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    exp = yaml.safe_load((repo_root / "tests/data/experiments/tiny.yaml").read_text())
    assert load_experiment(exp)["pruning"] is None
    resolved = load_experiment({**exp, "pruning": {"rule": "median"}})["pruning"]
    assert resolved == {
        "rule": "median",
        "report_every": 0.25,
        "min_references": 1,
        "warmup_fraction": 0.25,
        "min_fraction": 0.25,
        "reduction_factor": 3,
    }
    for bad, field in (
        ({"rule": "hyperband"}, "pruning.rule"),
        ({"rule": "median", "reduction_factor": 1}, "pruning.reduction_factor"),
        ({"rule": "median", "min_fraction": 1.0}, "pruning.min_fraction"),
        ({"rule": "median", "patience": 3}, "pruning"),
        ({"min_fraction": 0.5}, "pruning"),
    ):
        with pytest.raises(ConfigError, match=f"field '{field}"):
            load_experiment({**exp, "pruning": bad})
