"""Unit tests for connectome_gnn.explore: UCB arithmetic, mutations, proposals, nodes.yaml."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from connectome_gnn.config import ConfigError
from connectome_gnn.explore import (
    SIGNAL_SPACE,
    ExplorationError,
    ExplorationTree,
    ParamSpec,
    compute_visits,
    config_diff,
    format_log,
    load_experiment,
    mutate,
    mutate_value,
    propose_batch,
    puct_score,
    resolve_space,
    select_parents,
    slot_rng,
    ucb_score,
    ucb_table,
    write_configs,
    write_log,
    write_ucb_scores,
)
from connectome_gnn.text import format_value

WEIGHTS = {"connectivity_R2": 0.6, "cluster_accuracy": 0.4}
BASE = {"lr_W": 1e-3, "lr": 5e-4, "lr_emb": 7.5e-4, "batch_size": 8}


def experiment(**changes) -> dict:
    exp = {
        "name": "t",
        "family": "signal",
        "base_config": dict(BASE),
        "blocks": [
            {"model": "m", "sparsity": 1.0, "n_iter_block": 8},
            {"model": "m", "sparsity": 0.5, "n_iter_block": 8},
        ],
        "score_weights": dict(WEIGHTS),
        "seed": 3,
    }
    exp.update(changes)
    return exp


def metrics(r2, acc, **extra) -> dict:
    return {"status": "ok", "connectivity_R2": r2, "cluster_accuracy": acc, **extra}


def hand_tree(tmp_path, **changes) -> ExplorationTree:
    """Block 0: 1 (root, 0.86) -> 2 (0.93) -> 4 (failed); 1 -> 3 (0.5)."""
    tree = ExplorationTree.create(tmp_path / "t", experiment(**changes))
    cfg = tree.blocks[0]["train"]
    for parent in (None, 1, 1, 2):
        new = dict(cfg, lr_W=1e-3 * tree.next_node_id())
        diff = config_diff(tree[parent].config, new) if parent else []
        tree.add(tree.new_node(new, parent, batch=1, mutation=diff))
    tree.update(1, metrics(0.9, 0.8, test_pearson=0.99))
    tree.update(2, metrics(0.95, 0.9, test_pearson=0.98))
    tree.update(3, metrics(0.5, 0.5, test_pearson=0.7))
    tree.update(4, {"status": "failed", "reason": "loss diverged"})
    return tree


# ---------------------------------------------------------------------------------------------
# UCB / PUCT arithmetic
# ---------------------------------------------------------------------------------------------


def test_ucb_and_puct_formulas():
    # 0.5 + 1.414 * sqrt(ln 4 / 1) = 0.5 + 1.414 * 1.1774100225 = 2.1648577718
    assert ucb_score(0.5, 1, 4, 1.414) == pytest.approx(2.1648577718, abs=1e-9)
    # 0.93 + 1.414 * sqrt(ln 4 / 2) = 0.93 + 1.414 * 0.8325546112
    assert ucb_score(0.93, 2, 4, 1.414) == pytest.approx(2.1072322202, abs=1e-9)
    # PUCT: 0.93 + 1.414 * sqrt(4) / (1 + 2) = 0.93 + 0.9426666667
    assert puct_score(0.93, 2, 4, 1.414) == pytest.approx(1.8726666667, abs=1e-9)
    assert puct_score(0.0, 0, 9, 2.0) == pytest.approx(6.0)  # 2 * 3 / 1
    # no division by zero: an unvisited arm is infinitely attractive; N = 1 gives no bonus
    assert ucb_score(0.3, 0, 5, 1.414) == math.inf
    assert ucb_score(0.3, 1, 1, 1.414) == 0.3
    assert ucb_score(0.3, 2, 5, 0.0) == 0.3


def test_visits_are_one_plus_descendants():
    # 1 -> 2 -> 4 -> 5, 1 -> 3; 6 has a parent outside the set (counts as a root)
    parents = {1: None, 2: 1, 3: 1, 4: 2, 5: 4, 6: 99}
    assert compute_visits(parents) == {1: 5, 2: 3, 3: 1, 4: 2, 5: 1, 6: 1}
    # the reference example of seed 004: root with one child -> visits 2 and 1
    assert compute_visits({1: None, 2: 1}) == {1: 2, 2: 1}


def test_ucb_table_on_hand_made_tree(tmp_path):
    tree = hand_tree(tmp_path)
    assert tree.visits(0) == {1: 4, 2: 2, 3: 1, 4: 1}
    table = ucb_table(tree, block=0)
    assert table.attrs["N"] == 4
    # hand-computed: score + 1.414 sqrt(ln 4 / n)
    expected = {
        3: 0.5 + 1.414 * math.sqrt(math.log(4) / 1),  # 2.16486
        2: 0.93 + 1.414 * math.sqrt(math.log(4) / 2),  # 2.10723
        1: 0.86 + 1.414 * math.sqrt(math.log(4) / 4),  # 1.69243
        4: 0.0 + 1.414 * math.sqrt(math.log(4) / 1),  # 1.66486 (failed: score 0)
    }
    assert table["node"].tolist() == [3, 2, 1, 4]  # sorted by UCB, descending
    for row in table.itertuples():
        assert row.UCB == pytest.approx(expected[row.node], abs=1e-12)
    assert table["UCB"].tolist()[0] == pytest.approx(2.1648577718, abs=1e-9)
    assert table["UCB"].tolist()[2] == pytest.approx(1.6924288859, abs=1e-9)
    assert table["parent"].tolist() == ["1", "1", "root", "2"]
    assert table["visits"].tolist() == [1, 2, 4, 1]
    assert table["score"].tolist() == pytest.approx([0.5, 0.93, 0.86, 0.0])
    assert table["status"].tolist() == ["ok", "ok", "ok", "failed"]
    assert table.loc[0, "test_pearson"] == 0.7
    puct = ucb_table(tree, block=0, form="puct")
    # score + 1.414 * 2 / (1 + n)
    assert dict(zip(puct["node"], puct["UCB"], strict=True)) == pytest.approx(
        {3: 1.914, 2: 0.93 + 2.828 / 3, 1: 0.86 + 2.828 / 5, 4: 1.414}
    )


def test_select_parents_virtual_visits_and_failed_nodes(tmp_path):
    tree = hand_tree(tmp_path)
    # slot 0: node 3 (2.1649 > 2.1072); failed node 4 (1.6649) is not eligible
    assert select_parents(tree, 1, block=0) == [3]
    # slot 1 after a virtual child of 3 (N=5): node 2 = 0.93 + 1.414 sqrt(ln5/2) = 2.1984
    # beats node 3 = 0.5 + 1.414 sqrt(ln5/2) = 1.7684; slot 2 (N=6): node 2 = 2.0228 > 1.8384
    assert select_parents(tree, 3, block=0) == [3, 2, 2]
    assert select_parents(tree, 1, block=0, form="puct") == [3]  # 1.914 > 1.8727
    # with c = 0 the score alone decides
    assert select_parents(tree, 2, block=0, c=0.0) == [2, 2]
    # failed nodes may be allowed explicitly; with c = 10: failed 3 and 4 tie at
    # 0 + 10 sqrt(ln 4) = 11.774 (lowest id wins) > node 2 at 0.93 + 10 sqrt(ln4 / 2) = 9.256
    tree.update(3, {"status": "failed"})
    assert select_parents(tree, 1, block=0, c=10.0, allow_failed=True) == [3]
    assert select_parents(tree, 1, block=0, c=10.0) == [2]


def test_select_parents_ties_are_deterministic(tmp_path):
    tree = ExplorationTree.create(tmp_path / "t", experiment())
    cfg = tree.blocks[0]["train"]
    tree.add(tree.new_node(cfg, None))
    for _ in range(3):
        tree.add(tree.new_node(dict(cfg, lr=tree.next_node_id() * 1e-4), 1))
    for i in range(1, 5):
        tree.update(i, metrics(0.5, 0.5))
    # 2, 3, 4 tie on UCB and score: the lowest id wins, then virtual visits move on
    assert select_parents(tree, 3, block=0) == [2, 3, 4]


def test_all_failed_block_falls_back_to_failed_parents(tmp_path):
    tree = ExplorationTree.create(tmp_path / "t", experiment())
    nodes = propose_batch(tree)
    for n in nodes:
        tree.update(n.node_id, None)  # no metrics file at all
    assert all(n.status == "failed" and n.score == 0.0 for n in tree)
    assert tree[1].reason == "no metrics"
    nxt = propose_batch(tree)  # the exploration goes on
    assert len(nxt) == 4
    assert all(n.parent in {1, 2, 3, 4} for n in nxt)


def test_write_ucb_scores_layout(tmp_path):
    tree = hand_tree(tmp_path)
    paths = write_ucb_scores(tree, block=0)
    lines = paths["txt"].read_text().splitlines()
    assert lines[0] == "=== UCB Scores (Simulation block 0, iters 1-8, N=4, c=1.414, form=ucb) ==="
    assert lines[2] == (
        "Node 3: UCB=2.165, parent=1, visits=1, score=0.500, R2=0.500, cluster=0.500, "
        "Pearson=0.700, Mutation=lr_W: 1E-3 -> 3E-3"
    )
    assert lines[4].startswith("Node 1: UCB=1.692, parent=root, visits=4, score=0.860")
    assert lines[5].startswith("Node 4: UCB=1.665, parent=2, visits=1, score=0.000, R2=n/a")
    assert "status=failed" in lines[5]
    csv = paths["csv"].read_text().splitlines()
    assert csv[0] == (
        "node,parent,visits,score,UCB,connectivity_R2,test_pearson,cluster_accuracy,mutation,"
        "status,iteration"
    )
    assert paths["parquet"].is_file() and paths["md"].is_file()
    # at a block boundary the file lists no node
    empty = write_ucb_scores(tree, block=1)
    assert len(empty["txt"].read_text().splitlines()) == 2


# ---------------------------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------------------------


def test_log_mutation_stays_in_range_and_is_multiplicative():
    spec = SIGNAL_SPACE["lr_W"]  # 1E-4 .. 1E-2, step 0.5 decades
    for seed in range(200):
        rng = np.random.default_rng(seed)
        new = mutate_value(spec, 1e-3, rng)
        assert 1e-4 <= new <= 1e-2 and new != 1e-3
        step = abs(math.log10(new / 1e-3))
        # |log10 step| in [0.05, 0.5], up to the 2-significant-digit rounding
        assert 0.03 <= step <= 0.53
        assert float(f"{new:.1e}") == new  # 2 significant digits
    # at the upper bound the step goes inwards
    for seed in range(20):
        new = mutate_value(spec, 1e-2, np.random.default_rng(seed))
        assert 1e-4 <= new < 1e-2
    # out of range (hand-edited) values are clipped into the range
    assert mutate_value(spec, 0.5, np.random.default_rng(0)) == 1e-2


def test_other_kinds_of_parameters():
    rng = np.random.default_rng(1)
    for _ in range(50):
        b = mutate_value(SIGNAL_SPACE["batch_size"], 8, rng)
        assert b in (1, 2, 4) and isinstance(b, int)
        d = mutate_value(SIGNAL_SPACE["data_augmentation_loop"], 100, rng)
        assert isinstance(d, int) and 10 <= d <= 400 and d != 100
        e = mutate_value(SIGNAL_SPACE["n_epochs"], 1, rng)
        assert isinstance(e, int) and 2 <= e <= 10
        e = mutate_value(SIGNAL_SPACE["n_epochs"], 10, rng)
        assert isinstance(e, int) and 1 <= e <= 9
    # zero ("off") parameters are switched on at `start`, and sometimes off again
    assert mutate_value(SIGNAL_SPACE["coeff_W_L1"], 0.0, rng) == 1e-6
    values = {
        mutate_value(SIGNAL_SPACE["coeff_W_L1"], 1e-6, np.random.default_rng(s)) for s in range(200)
    }
    assert 0.0 in values
    assert all(v == 0.0 or 1e-10 <= v <= 1e-4 for v in values)
    # a linear float parameter
    spec = ParamSpec("W_init_std", low=0.0, high=2.0, step=0.5).check()
    for s in range(50):
        v = mutate_value(spec, 1.0, np.random.default_rng(s))
        assert 0.0 <= v <= 2.0 and v != 1.0 and abs(v - 1.0) <= 1.0 + 1e-9


def test_mutate_config_changes_n_params_and_is_deterministic():
    cfg = {"lr_W": 1e-3, "lr": 5e-4, "batch_size": 8, "coeff_W_L1": 0.0, "hidden_dim": 64}
    new, mutation = mutate(cfg, SIGNAL_SPACE, slot_rng(7, 5, 1), n_params=2)
    assert len(mutation) == 2 and len({m["param"] for m in mutation}) == 2
    for m in mutation:
        assert m["old"] == cfg.get(m["param"]) and new[m["param"]] == m["new"] != m["old"]
        assert SIGNAL_SPACE[m["param"]].contains(m["new"])
    assert {k: v for k, v in new.items() if k not in {m["param"] for m in mutation}} == {
        k: v for k, v in cfg.items() if k not in {m["param"] for m in mutation}
    }
    again, mutation2 = mutate(cfg, SIGNAL_SPACE, slot_rng(7, 5, 1), n_params=2)
    assert (again, mutation2) == (new, mutation)
    other = [mutate(cfg, SIGNAL_SPACE, slot_rng(7, it, 0))[1] for it in range(1, 30)]
    assert len({json.dumps(m) for m in other}) > 5
    # never a no-op, for every seed
    for s in range(100):
        new, _ = mutate(cfg, SIGNAL_SPACE, np.random.default_rng(s))
        assert new != cfg


def test_resolve_space_overrides_and_errors():
    space = resolve_space(
        {
            "lr_W": {"low": 5e-4, "high": 5e-3},
            "n_epochs": None,
            "hidden_dim": {"type": "choice", "choices": [32, 64, 128]},
        },
        restrict=["lr_W", "hidden_dim"],
    )
    assert list(space) == ["lr_W", "hidden_dim"]
    assert space["lr_W"].low == 5e-4 and space["lr_W"].log is True
    with pytest.raises(ConfigError, match="parameter_space.learning_rate'.*not a training"):
        resolve_space({"learning_rate": {"low": 1e-5, "high": 1e-3}})
    with pytest.raises(ConfigError, match="parameter_space.lr_W'.*low .* must be below high"):
        resolve_space({"lr_W": {"low": 1e-2, "high": 1e-4}})
    with pytest.raises(ConfigError, match="parameter_space.lr'.*needs low > 0"):
        resolve_space({"lr": {"low": 0.0, "high": 1e-3}})


# ---------------------------------------------------------------------------------------------
# proposals, blocks, resume
# ---------------------------------------------------------------------------------------------


def test_first_batch_is_root_plus_variations(tmp_path):
    tree = ExplorationTree.create(tmp_path / "t", experiment())
    nodes = propose_batch(tree)
    assert [(n.node_id, n.iteration, n.slot, n.batch, n.block) for n in nodes] == [
        (1, 1, 0, 1, 0),
        (2, 2, 1, 1, 0),
        (3, 3, 2, 1, 0),
        (4, 4, 3, 1, 0),
    ]
    root = nodes[0]
    assert root.parent is None and root.source == "root" and root.mutation == []
    assert root.config["lr_W"] == 1e-3 and root.config["n_epochs"] == 1  # defaults filled
    assert root.sim == {"model": "m", "sparsity": 1.0, "seed": 0}
    for n in nodes[1:]:
        assert n.parent == 1 and n.source == "ucb" and len(n.mutation) == 1
        assert n.status == "pending" and n.config != root.config
    assert len(tree) == 4
    paths = write_configs(tree, nodes)
    assert [p.name for p in paths] == [f"t_n00{i}.yaml" for i in range(1, 5)]
    assert yaml.safe_load(paths[1].read_text()) == nodes[1].config


def test_variations_of_one_parent_in_a_batch_try_different_parameters(tmp_path):
    for seed in range(20):
        tree = ExplorationTree.create(tmp_path / f"s{seed}", experiment(seed=seed))
        nodes = propose_batch(tree)
        params = [n.mutation[0]["param"] for n in nodes[1:]]
        assert len(set(params)) == 3, (seed, params)


def test_propose_is_deterministic_given_seed(tmp_path):
    def run(directory, seed):
        tree = ExplorationTree.create(directory, experiment(seed=seed))
        out = []
        for _ in range(3):
            nodes = propose_batch(tree)
            for n in nodes:
                r2 = 0.5 + 0.1 * math.sin(n.node_id)
                tree.update(n.node_id, metrics(r2, 0.6))
            out += [(n.parent, json.dumps(n.mutation), json.dumps(n.config)) for n in nodes]
        return out

    a = run(tmp_path / "a", 3)
    assert a == run(tmp_path / "b", 3)
    assert a != run(tmp_path / "c", 4)


def test_blocks_cut_batches_carry_best_and_finish(tmp_path):
    exp = experiment(
        blocks=[
            {"model": "m", "sparsity": 1.0, "n_iter_block": 6},
            {"model": "m", "sparsity": 0.25, "n_iter_block": 4, "seed": 2},
        ]
    )
    tree = ExplorationTree.create(tmp_path / "t", exp)
    b1 = propose_batch(tree)
    for n, r2 in zip(b1, (0.5, 0.6, 0.95, 0.7), strict=True):
        tree.update(n.node_id, metrics(r2, 0.9))
    b2 = propose_batch(tree)
    assert [n.iteration for n in b2] == [5, 6]  # cut at the end of block 0
    for n in b2:
        tree.update(n.node_id, metrics(0.1, 0.1))
    b3 = propose_batch(tree)
    assert [n.block for n in b3] == [1, 1, 1, 1] and b3[0].source == "root"
    assert b3[0].parent is None
    assert b3[0].config == {**tree[3].config}  # best node of block 0
    assert "node 3" in b3[0].note
    assert b3[0].sim == {"model": "m", "sparsity": 0.25, "seed": 2}
    assert tree.block_of(7) == 1 and tree.block_bounds(1) == (7, 10)
    assert propose_batch(tree) == []  # all iterations proposed
    assert tree.finished


def test_block_root_without_carry_best(tmp_path):
    exp = experiment(
        carry_best=False,
        blocks=[{"model": "m", "sparsity": s, "n_iter_block": 4} for s in (1.0, 0.5)],
    )
    tree = ExplorationTree.create(tmp_path / "t", exp)
    for n in propose_batch(tree):
        tree.update(n.node_id, metrics(0.99, 0.99))
    root = propose_batch(tree)[0]
    assert root.config == tree.blocks[1]["train"] and root.note == "base configuration of block 1"


def test_resume_from_file(tmp_path):
    tree = ExplorationTree.create(tmp_path / "t", experiment())
    for n in propose_batch(tree):
        tree.update(n.node_id, metrics(0.8, 0.8))
    tree.save()
    again = ExplorationTree.load(tmp_path / "t")
    assert again.next_iteration() == 5 and again.next_node_id() == 5 and again.next_batch() == 2
    nodes = propose_batch(again)
    assert [n.iteration for n in nodes] == [5, 6, 7, 8]
    again.save()
    # a continued tree with other ids: numbering follows the file, not a constant
    text = (tmp_path / "t" / "nodes.yaml").read_text()
    data = yaml.safe_load(text)
    for entry in data["nodes"]:
        entry["node_id"] += 72
        if entry["parent"] is not None:
            entry["parent"] += 72
    (tmp_path / "t" / "nodes.yaml").write_text(yaml.safe_dump(data))
    moved = ExplorationTree.load(tmp_path / "t")
    assert moved.next_node_id() == 81 and moved.next_iteration() == 9
    # open() resumes too, and refuses a block that changed under existing nodes
    assert len(ExplorationTree.open(tmp_path / "t", experiment())) == 8
    changed = experiment()
    changed["blocks"][0]["sparsity"] = 0.75
    with pytest.raises(ExplorationError, match=r"nodes.yaml: block 0 holds nodes with sparsity"):
        ExplorationTree.open(tmp_path / "t", changed)


# ---------------------------------------------------------------------------------------------
# failed nodes
# ---------------------------------------------------------------------------------------------


def test_failed_node_handling(tmp_path):
    tree = ExplorationTree.create(tmp_path / "t", experiment())
    propose_batch(tree)
    tree.update(1, metrics(0.95, 0.95))
    assert tree[1].status == "ok" and tree[1].score == pytest.approx(0.95)
    tree.update(2, {"status": "failed", "reason": "loss diverged", "connectivity_R2": None})
    assert (tree[2].status, tree[2].reason, tree[2].score) == ("failed", "loss diverged", 0.0)
    tree.update(3, {"status": "ok", "connectivity_R2": float("nan"), "cluster_accuracy": 0.9})
    assert tree[3].status == "failed" and "connectivity_R2" in tree[3].reason
    missing = tree.update_from_file(4, tmp_path / "nope" / "metrics.json")
    assert missing.status == "failed" and "nope/metrics.json: file not found" in missing.reason
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not valid JSON" in tree.update_from_file(4, bad).reason
    good = tmp_path / "good.json"
    good.write_text(json.dumps(metrics(0.5, 0.5)))
    assert tree.update_from_file(4, good).status == "ok"
    assert tree[2].classification == "failed" and tree[1].classification == "converged"
    tree.set_status(4, "running")
    assert tree[4].score is None
    tree.save()
    reloaded = ExplorationTree.load(tmp_path / "t")
    assert reloaded[2].status == "failed" and reloaded[2].reason == "loss diverged"
    assert reloaded[3].metrics["connectivity_R2"] is None  # NaN stored as null


# ---------------------------------------------------------------------------------------------
# external / manual configurations
# ---------------------------------------------------------------------------------------------


def test_external_config_accepted_and_bad_one_rejected(tmp_path):
    tree = ExplorationTree.create(tmp_path / "t", experiment())
    propose_batch(tree)
    node = tree.add_external({**tree[1].config, "lr_W": 2e-3, "coeff_W_L1": 1e-5}, parent=1)
    assert (node.node_id, node.iteration, node.source, node.parent) == (5, 5, "external", 1)
    assert node.mutation == [
        {"param": "lr_W", "old": 1e-3, "new": 2e-3},
        {"param": "coeff_W_L1", "old": 0.0, "new": 1e-5},
    ]
    partial = tree.add_external({"lr_W": 5e-3}, source="manual", note="hand-written")
    assert partial.config["batch_size"] == 8 and partial.parent is None  # defaults filled
    assert partial.mutation == [] and partial.source == "manual"
    with pytest.raises(ConfigError, match=r"field 'lr_W'.*less than or equal to the minimum"):
        tree.add_external({"lr_W": -1.0}, parent=1)
    with pytest.raises(ConfigError, match=r"field '<top level>': unknown key.*learning_rate"):
        tree.add_external({"learning_rate": 1e-3})
    with pytest.raises(ExplorationError, match="parent 42 is not a node"):
        tree.add_external({"lr_W": 1e-3}, parent=42)
    f = tmp_path / "agent.yaml"
    f.write_text("lr_W: 1.0e-3\nbatch_size: three\n")
    with pytest.raises(ConfigError, match=rf"{f}: field 'batch_size'"):
        tree.add_external_file(f, parent=1)
    f.write_text("lr_W: 4.0e-3\n")
    assert tree.add_external_file(f, parent=1).config["lr_W"] == 4e-3
    assert len(tree) == 7


# ---------------------------------------------------------------------------------------------
# nodes.yaml and experiment errors
# ---------------------------------------------------------------------------------------------


def _saved(tmp_path):
    tree = ExplorationTree.create(tmp_path / "t", experiment())
    propose_batch(tree)
    tree.update(1, metrics(0.9, 0.9))
    tree.save()
    return tmp_path / "t" / "nodes.yaml"


def test_corrupt_nodes_yaml_names_file_node_and_field(tmp_path):
    path = _saved(tmp_path)
    text = path.read_text()

    path.write_text(text[: len(text) // 2] + "\n  - {broken: [")
    with pytest.raises(ExplorationError, match=rf"{path}: malformed YAML \(line"):
        ExplorationTree.load(path.parent)

    data = yaml.safe_load(text)
    data["nodes"][2]["status"] = "done"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ExplorationError, match=rf"{path}: node 3: field 'status': 'done' is not"):
        ExplorationTree.load(path.parent)

    data = yaml.safe_load(text)
    data["nodes"][1]["parent"] = 9
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ExplorationError, match=rf"{path}: node 2: parent 9 of node 2 is not"):
        ExplorationTree.load(path.parent)

    data = yaml.safe_load(text)
    del data["nodes"][0]["node_id"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ExplorationError, match=rf"{path}: nodes\[0\]: field '<top level>'"):
        ExplorationTree.load(path.parent)

    data = yaml.safe_load(text)
    data["nodes"][3]["node_id"] = 3
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ExplorationError, match=rf"{path}: node 3: node id 3 is used twice"):
        ExplorationTree.load(path.parent)

    data = yaml.safe_load(text)
    data["experiment"]["blocks"] = []
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ExplorationError, match=rf"{path}: field 'experiment'.*blocks"):
        ExplorationTree.load(path.parent)

    path.write_text("")
    with pytest.raises(ExplorationError, match=rf"{path}: empty file"):
        ExplorationTree.load(path.parent)
    path.unlink()
    with pytest.raises(ExplorationError, match=rf"{path}: file not found"):
        ExplorationTree.load(path.parent)


def test_experiment_validation_and_resolution(tmp_path):
    with pytest.raises(
        ConfigError, match="experiment: field '<top level>'.*'blocks' is a required"
    ):
        load_experiment({"name": "x"})
    with pytest.raises(ConfigError, match=r"field 'blocks\[0\].sparsity'"):
        load_experiment({"name": "x", "blocks": [{"model": "m", "sparsity": 0}]})
    with pytest.raises(ConfigError, match="field 'form'"):
        load_experiment(experiment(form="thompson"))
    with pytest.raises(ConfigError, match=r"field 'parameters': hidden_dim not in"):
        load_experiment(experiment(parameters=["lr_W", "hidden_dim"]))
    # a named base config from train_config_dir, defaults and the family's score weights
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "fast.yaml").write_text("lr_W: 2.0e-3\n")
    f = tmp_path / "exp.yaml"
    f.write_text(
        "name: s\nbase_config: fast\ntrain_config_dir: train\nn_iter_block: 12\n"
        "blocks:\n  - {model: m, sparsity: 1.0}\n  - {model: m, sparsity: 0.5, n_iter_block: 4}\n"
    )
    exp = load_experiment(f, root=tmp_path)
    assert exp["blocks"][0]["train"]["lr_W"] == 2e-3
    assert [b["n_iter_block"] for b in exp["blocks"]] == [12, 4]
    assert exp["score_weights"] == WEIGHTS
    assert (exp["n_slots"], exp["ucb_c"], exp["form"], exp["n_params"]) == (4, 1.414, "ucb", 1)
    assert list(exp["space"])[:3] == ["lr_W", "lr", "lr_emb"]
    f.write_text("name: s\nbase_config: missing\nblocks: [{model: m, sparsity: 1.0}]\n")
    with pytest.raises(ConfigError, match=rf"{f}: field 'base_config': no training configuration"):
        load_experiment(f, root=tmp_path)
    with pytest.raises(ConfigError, match=r"experiment: base_config: field 'lr_W'"):
        load_experiment(experiment(base_config={"lr_W": "fast"}))


# ---------------------------------------------------------------------------------------------
# iteration log
# ---------------------------------------------------------------------------------------------


def test_iteration_log_format(tmp_path):
    tree = hand_tree(tmp_path)
    text = format_log(tree)
    assert "# Block 0: model=m, sparsity=1 (iterations 1-8)" in text
    assert "### Batch 1 (Iters 1-4)" in text
    entry = text[text.index("## Iter 2:") :].split("\n\n")[0].splitlines()
    assert entry[0] == "## Iter 2: partial-W"  # 0.9 is not > 0.9
    assert entry[1] == "Node: id=2, parent=1"
    assert entry[2] == "Block: 0 (model=m, sparsity=1), batch 1, slot 0"
    assert entry[3] == "Mode/Strategy: ucb"
    assert entry[4] == "Sparsity: 100% (connectivity_filling_factor=1)"
    assert entry[5].startswith("Config: lr_W=2E-3, lr=5E-4, lr_emb=7.5E-4, coeff_W_L1=0, ")
    assert (
        entry[6] == "Metrics: connectivity_R2=0.9500, cluster_accuracy=0.9000, test_pearson=0.9800"
    )
    assert entry[7] == "Score: 0.9300"
    assert entry[8] == "Mutation: lr_W: 1E-3 -> 2E-3"
    failed = text[text.index("## Iter 4:") :].split("\n\n")[0].splitlines()
    assert failed[0] == "## Iter 4: failed" and failed[-1] == "Reason: loss diverged"
    root = text[text.index("## Iter 1:") :].split("\n\n")[0].splitlines()
    assert root[0] == "## Iter 1: partial" and root[1] == "Node: id=1, parent=root"
    paths = write_log(tree)
    assert paths["log"].read_text() == text
    import pandas as pd

    table = pd.read_parquet(paths["parquet"])
    assert table["node_id"].tolist() == [1, 2, 3, 4]
    assert table["classification"].tolist() == ["partial", "partial-W", "partial", "failed"]
    assert table["parent"].tolist()[1:] == [1, 1, 2]


def test_format_value():
    assert [format_value(v) for v in (6e-4, 1.25e-3, 750.0, 0.5, 8, True, None, 0.0, 1e-12)] == [
        "6E-4",
        "1.25E-3",
        "750",
        "0.5",
        "8",
        "true",
        "none",
        "0",
        "1E-12",
    ]


# ---------------------------------------------------------------------------------------------
# driver: rerun-failed with a fake Snakemake
# ---------------------------------------------------------------------------------------------


class FakeSnakemake:
    """Stands in for Snakemake: writes an ok train_info.json, checkpoint.pt and metrics.json
    for every target and records the command."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, cmd: list[str]) -> int:
        from pathlib import Path

        self.calls.append(cmd)
        for target in (a for a in cmd if a.endswith("metrics.json")):
            run = Path(target).parent
            (run / "train").mkdir(parents=True, exist_ok=True)
            (run / "train" / "train_info.json").write_text(json.dumps({"status": "ok"}))
            (run / "train" / "checkpoint.pt").write_bytes(b"ckpt")
            m = {"status": "ok", "connectivity_R2": 0.9, "cluster_accuracy": 0.8}
            Path(target).write_text(json.dumps(m))
        return 0


def test_rerun_failed_nodes_only(tmp_path, repo_root, monkeypatch):
    from connectome_gnn.explore.driver import Explorer, run_dir

    monkeypatch.chdir(repo_root)
    wf = yaml.safe_load((repo_root / "config/config.yaml").read_text())
    wf["results_dir"] = str(tmp_path / "results")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(wf))
    exp = "tests/data/experiments/tiny.yaml"
    root = tmp_path / "expl"

    fake = FakeSnakemake()
    first = Explorer(exp, tmp_path / "config.yaml", root, runner=fake)
    first.run(iterations=2)
    names = [first.tree.cfg_name(n) for n in first.tree.nodes]
    # pretend the second node's training diverged
    dirs = [run_dir(wf["results_dir"], n, c) for n, c in zip(first.tree.nodes, names, strict=True)]
    (dirs[1] / "train" / "train_info.json").write_text(json.dumps({"status": "failed"}))
    (dirs[1] / "metrics.json").write_text(json.dumps({"status": "failed", "reason": "NaN"}))
    first.tree.update_from_file(2, dirs[1] / "metrics.json")
    first.tree.save()
    kept = (dirs[0] / "metrics.json").stat().st_mtime_ns

    fake2 = FakeSnakemake()
    again = Explorer(exp, tmp_path / "config.yaml", root, runner=fake2)
    assert [n.status for n in again.tree.nodes] == ["ok", "failed"]
    assert again.run(iterations=0, rerun_failed=True) == 1
    (cmd,) = fake2.calls
    targets = [a for a in cmd if a.endswith("metrics.json")]
    assert targets == [str(dirs[1] / "metrics.json")]  # finished node 1 is not a target
    forced = cmd[cmd.index("--forcerun") + 1]
    assert forced == str(dirs[1] / "train" / "train_info.json")
    assert (dirs[1] / "train" / "checkpoint.failed.pt").is_file()  # set aside: from scratch
    assert not (dirs[0] / "train" / "checkpoint.failed.pt").exists()
    assert (dirs[0] / "metrics.json").stat().st_mtime_ns == kept
    reloaded = ExplorationTree.load(root / "tiny_landscape")
    assert [n.status for n in reloaded.nodes] == ["ok", "ok"]
    assert len(reloaded) == 2  # nothing new proposed with --iterations 0

    # nothing failed: no Snakemake call, no --forcerun
    fake3 = FakeSnakemake()
    Explorer(exp, tmp_path / "config.yaml", root, runner=fake3).run(0, rerun_failed=True)
    assert fake3.calls == []


# ---------------------------------------------------------------------------------------------
# search space per family
# ---------------------------------------------------------------------------------------------


def test_each_family_has_its_own_search_space(repo_root):
    from connectome_gnn.config import load_train_config
    from connectome_gnn.explore import default_space

    assert default_space("signal") == SIGNAL_SPACE
    flyvis = default_space("flyvis")
    assert flyvis != SIGNAL_SPACE  # no fallback to the signal space
    assert flyvis["lr_emb"].high == 0.1 and SIGNAL_SPACE["lr_emb"].high == 1e-2
    for recipe in ("flyvis", "flyvis_cpu"):  # the shipped recipes lie inside it
        cfg = load_train_config(repo_root / "config" / "train" / f"{recipe}.yaml")
        for name, spec in flyvis.items():
            if spec.applies(cfg):  # (the SIREN knobs: input learned only)
                assert spec.contains(cfg[name]), (recipe, name, cfg[name])
    exp = load_experiment(experiment(family="flyvis", score_weights=None))
    assert exp["space"] == {name: spec.to_dict() for name, spec in flyvis.items()}
    assert exp["score_weights"] == WEIGHTS  # flyvis declares 0.6 R2 + 0.4 clustering too


def test_unknown_family_is_a_clear_error():
    from connectome_gnn.explore import default_space

    with pytest.raises(ConfigError, match="model family 'nope': unknown model family 'nope'"):
        default_space("nope")
    with pytest.raises(ConfigError, match="experiment: field 'family': unknown model family"):
        load_experiment(experiment(family="nope", score_weights=None))


def test_a_parameter_with_requires_is_mutated_only_where_it_applies():
    from connectome_gnn.explore.mutate import default_space

    space = default_space("flyvis")
    assert space["omega_f"].requires == (("input", "learned"),)
    assert space["omega_f"].to_dict()["requires"] == {"input": "learned"}
    known = {"lr_W": 1e-3, "lr": 1e-3, "input": "known"}
    picked = {m["param"] for s in range(200) for m in mutate(known, space, slot_rng(1, s, 0))[1]}
    siren = {"omega_f", "hidden_dim_nnr_f", "n_layers_nnr_f", "nnr_f_T_period", "lr_siren"}
    assert not picked & siren and "lr_W" in picked
    learned = {**known, "input": "learned", "omega_f": 2048.0}
    picked = {m["param"] for s in range(200) for m in mutate(learned, space, slot_rng(1, s, 0))[1]}
    assert siren <= picked
    # an experiment may declare its own
    custom = resolve_space({"lr_siren": {"requires": {"input": "learned"}}}, base=space)
    assert custom["lr_siren"].applies({"input": "learned"})
    assert not custom["lr_siren"].applies({})
