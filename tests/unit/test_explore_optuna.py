"""The optuna-tpe proposer: Optuna ask/tell with a journal file; resuming after a crash
continues at the right trial."""

from __future__ import annotations

import copy

import pytest

from connectome_gnn.explore import ExplorationTree, propose_batch, space_of
from connectome_gnn.explore.optuna_tpe import open_study

BASE = {"lr_W": 1e-3, "lr": 5e-4, "lr_emb": 7.5e-4, "batch_size": 8}
EXP = {
    "name": "t",
    "family": "signal",
    "form": "optuna-tpe",
    "tpe_startup_trials": 2,
    "base_config": BASE,
    "blocks": [{"model": "m", "sparsity": 1.0, "n_iter_block": 9}],
    "n_slots": 3,
    "seed": 5,
    "parameters": ["lr_W", "lr", "coeff_W_L1", "batch_size"],
}


def _score(node):
    return {
        "status": "ok",
        "connectivity_R2": min(1.0, node.config["lr_W"] * 300),
        "cluster_accuracy": 0.5,
    }


def _finish(tree, nodes):
    for node in nodes:
        tree.update(node.node_id, _score(node))
    tree.save()


def _explore(directory, crash_after_ask=False, crash_before_tell=False):
    """Three batches of three; optionally a crash after the second batch's ask (nodes not
    saved) or after its results were saved (not yet told to the study)."""
    tree = ExplorationTree.open(directory, copy.deepcopy(EXP))
    _finish(tree, (b1 := propose_batch(tree)))
    b2 = propose_batch(tree)
    if crash_after_ask:
        tree = ExplorationTree.open(directory, copy.deepcopy(EXP))  # the asks are in the journal
        b2 = propose_batch(tree)
    _finish(tree, b2)
    if crash_before_tell:
        tree = ExplorationTree.open(directory, copy.deepcopy(EXP))
    b3 = propose_batch(tree)
    _finish(tree, b3)
    return tree, b1, b2, b3


def test_tpe_proposes_in_the_space_and_tells_the_results(tmp_path):
    tree, b1, b2, b3 = _explore(tmp_path / "a")
    assert [n.source for n in b1] == ["root", "tpe", "tpe"]
    assert [n.trial for n in tree.nodes] == [None, 0, 1, 2, 3, 4, 5, 6, 7]
    assert all(n.parent == 1 for n in tree.nodes[1:])
    space = space_of(tree.experiment)
    for node in tree.nodes[1:]:
        for m in node.mutation:
            assert m["param"] in space and space[m["param"]].contains(m["new"])
    study = open_study(tmp_path / "a", "t", 0)
    trials = study.get_trials()
    assert len(trials) == 8 and {t.state.name for t in trials[:5]} == {"COMPLETE"}
    node = tree.nodes[1]
    assert trials[0].value == pytest.approx(node.score)
    assert (tmp_path / "a/optuna.journal").is_file()


@pytest.mark.parametrize("crash", ["crash_after_ask", "crash_before_tell"])
def test_resume_after_a_crash_continues_at_the_right_trial(tmp_path, crash):
    ref, *_ = _explore(tmp_path / "ref")
    got, *_ = _explore(tmp_path / "crash", **{crash: True})
    assert [n.trial for n in got.nodes] == [n.trial for n in ref.nodes]
    assert [n.config for n in got.nodes] == [n.config for n in ref.nodes]
    study = open_study(tmp_path / "crash", "t", 0)
    assert len(study.get_trials()) == 8  # no trial asked twice
