"""The reference's epoch phases: two L1 phases (n_epochs_init / first_coeff_L1, coeff_edge_diff
only in phase 1) and the embedding cluster-median replacement (embedding_sparsity:
replace_embedding_function every sparsity_freq epochs)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from connectome_gnn.config import ConfigError, validate
from connectome_gnn.models import SignalGNN
from connectome_gnn.stages import run_simulation
from connectome_gnn.train import train_run
from connectome_gnn.train.regularizers import regularization
from connectome_gnn.train.schedule import (
    epoch_config,
    frozen_epoch,
    phase_settings,
    replaces_after,
)
from connectome_gnn.train.sparsify import cluster_medians, replace_embedding_function


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory, tiny_model_cfg):
    path = tmp_path_factory.mktemp("sim") / "sim"
    run_simulation(tiny_model_cfg, 1.0, 0, path)
    return path


def _linear_model(n=3):
    """lin_edge(u) = -2 u + 0.5 (decreasing) and lin_phi([u, a]) = u + a_0 + a_1 (one layer)."""
    m = SignalGNN(n, embedding_dim=2, n_layers=1, n_layers_update=1, W_init_std=0.0)
    with torch.no_grad():
        m.lin_edge.layers[0].weight.fill_(-2.0)
        m.lin_edge.layers[0].bias.fill_(0.5)
        m.lin_phi.layers[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
        m.lin_phi.layers[0].bias.fill_(0.0)
    return m


def test_two_phases_hand_computed():
    m = _linear_model()
    with torch.no_grad():
        m.W.copy_(torch.tensor([[0.0, 1.0, -2.0], [0.5, 0.0, 0.0], [0.0, -3.0, 0.0]]))
    u = torch.tensor([[0.0, 1.0, -1.0], [2.0, 3.0, 4.0]])
    cfg = validate(
        {
            "n_epochs": 4,
            "n_epochs_init": 2,
            "first_coeff_L1": 0.05,
            "coeff_W_L1": 0.1,
            "coeff_edge_diff": 10.0,
        },
        "train",
    )
    phases = phase_settings(cfg)
    # sum |W| = 6.5; each of the 6 entries of lin_edge drops by 2 * xnorm / 150 = 0.02
    edge_diff = 10.0 * 0.02 * math.sqrt(6)
    for epoch, (l1, diff) in enumerate([(0.325, edge_diff), (0.325, edge_diff), (0.65, None)]):
        terms = regularization(m, u, epoch_config(cfg, phases, epoch), 1.5)
        assert terms["W_L1"].item() == pytest.approx(l1, rel=1e-6), epoch
        if diff is None:
            assert "edge_diff" not in terms, epoch
        else:
            assert terms["edge_diff"].item() == pytest.approx(diff, rel=1e-5), epoch
    # first_coeff_L1 0: no L1 in phase 1; n_epochs_init 0: one phase, the config as it is
    no_l1 = {**cfg, "first_coeff_L1": 0.0}
    assert "W_L1" not in regularization(m, u, epoch_config(no_l1, phase_settings(no_l1), 1), 1.5)
    one = validate({"coeff_W_L1": 0.1, "coeff_edge_diff": 10.0}, "train")
    assert epoch_config(one, phase_settings(one), 5) is one


def test_replacement_and_freeze_epochs_follow_the_reference_rule():
    def plan(n_epochs, **over):
        phases = phase_settings(validate({"n_epochs": n_epochs, **over}, "train"))
        return (
            [e for e in range(n_epochs) if replaces_after(phases, e, n_epochs)],
            [e for e in range(n_epochs) if frozen_epoch(phases, e, n_epochs)],
        )

    rep = {"embedding_sparsity": "replace_embedding_function"}
    assert plan(10, **rep, sparsity_freq=4) == ([3], [])  # 7 >= 10 - 4: only after epoch 3
    assert plan(10, **rep, sparsity_freq=4, fix_cluster_embedding=True) == ([3], [4])
    assert plan(3, **rep, sparsity_freq=1, fix_cluster_embedding=True) == ([0, 1], [1, 2])
    assert plan(10, sparsity_freq=4, fix_cluster_embedding=True) == ([], [])  # sparsity none


def test_cluster_medians_are_elementwise_medians():
    values = torch.tensor([[1.0, 9.0], [3.0, 7.0], [2.0, 8.0], [10.0, -1.0]])
    out = cluster_medians(values, np.array([0, 0, 0, 1]))
    assert torch.equal(out, torch.tensor([[2.0, 8.0]] * 3 + [[10.0, -1.0]]))


@pytest.mark.parametrize("method", ["distance", "kmeans"])
def test_replacement_gives_each_cluster_its_median_embedding(method):
    # three groups of embeddings (odd sizes: one middle value), lin_phi = u + a_0 + a_1: the
    # curves of a group lie within 0.3 of each other, groups 5 apart (all curves span 17)
    gen = torch.Generator().manual_seed(0)
    centres = [(0.0, 0.0), (5.0, 5.0), (5.0, -10.0)]
    sizes = [5, 7, 3]
    a = torch.cat(
        [
            torch.tensor(c) + 0.1 * torch.rand(s, 2, generator=gen)
            for c, s in zip(centres, sizes, strict=True)
        ]
    )
    perm = torch.randperm(a.shape[0], generator=gen)
    a, groups = a[perm], np.repeat(np.arange(3), sizes)[perm.numpy()]
    m = _linear_model(a.shape[0])
    with torch.no_grad():
        m.a.copy_(a)
    phases = phase_settings(
        validate({"cluster_method": method, "n_clusters": 3, "sparsity_fit_steps": 0}, "train")
    )
    info = replace_embedding_function(m, 1.0, phases, lr=1e-3, seed=0)
    assert info["clusters"] == 3
    for g in range(3):
        rows = m.a.detach()[groups == g]
        assert torch.equal(rows, rows[:1].expand_as(rows))  # one embedding per cluster
        np.testing.assert_allclose(rows[0].numpy(), np.median(a[groups == g].numpy(), axis=0))


def test_replacement_fits_lin_phi_to_the_cluster_median_curves():
    m = SignalGNN(9, embedding_dim=2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        m.a.copy_(torch.randn(9, 2, generator=torch.Generator().manual_seed(2)))
    phases = phase_settings(validate({"cluster_method": "kmeans", "n_clusters": 2}, "train"))
    info = replace_embedding_function(m, 2.0, phases, lr=1e-3, seed=0)
    assert info["clusters"] == 2 and info["fit_loss_end"] < info["fit_loss_start"]
    assert len(torch.unique(m.a.detach(), dim=0)) == 2


def _phase_cfg(**over):
    return validate(
        {
            "W_init_std": 0.0,
            "lr_W": 3e-3,
            "lr": 1e-3,
            "lr_emb": 1.5e-3,
            "n_epochs": 3,
            "max_iterations": 40,
            "log_every": 1,
            "n_epochs_init": 1,
            "first_coeff_L1": 0.0,
            "coeff_W_L1": 1e-4,
            "coeff_edge_diff": 10.0,
            "embedding_sparsity": "replace_embedding_function",
            "sparsity_freq": 1,
            "cluster_method": "kmeans",
            "n_clusters": 4,
            "fix_cluster_embedding": True,
            **over,
        },
        "train",
    )


def test_training_switches_phase_and_resumes_across_the_boundary(tmp_path, tiny_sim, preempted):
    cfg = _phase_cfg()
    info = train_run(tiny_sim, cfg, tmp_path / "full", 0, progress=False, threads=1)
    assert info["status"] == "ok" and info["iterations_done"] == 120
    loss = pd.read_csv(tmp_path / "full" / "loss.csv")
    phase1, phase2 = loss[loss["epoch"] == 0], loss[loss["epoch"] > 0]
    assert phase1["W_L1"].isna().all() and phase1["edge_diff"].notna().all()
    assert (phase2["W_L1"] > 0).all() and phase2["edge_diff"].isna().all()
    full = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    # replaced after epoch 1, then held fixed through epoch 2: one embedding per cluster
    assert len(torch.unique(full["a"], dim=0)) <= 4

    # stopped at the end of phase 1
    preempted(1, tiny_sim, cfg, tmp_path / "resumed", 0, progress=False, threads=1)
    info = train_run(tiny_sim, cfg, tmp_path / "resumed", 0, progress=False, threads=1)
    assert info["resumed_from_iteration"] == 40 and info["iterations_done"] == 120
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    for key in full:
        np.testing.assert_allclose(full[key].numpy(), resumed[key].numpy(), atol=1e-6, rtol=0)
    again = pd.read_csv(tmp_path / "resumed" / "loss.csv")
    pd.testing.assert_frame_equal(loss, again, atol=1e-6, check_dtype=False)


def test_bad_phase_settings_name_the_field(tmp_path, tiny_sim):
    with pytest.raises(ConfigError, match="field 'n_epochs_init'"):
        validate({"n_epochs_init": -1}, "train")
    with pytest.raises(ConfigError, match="field 'n_epochs_init'"):
        phase_settings({"n_epochs": 2, "n_epochs_init": -1})
    with pytest.raises(ConfigError, match="field 'n_epochs_init': 3 is more than n_epochs"):
        train_run(tiny_sim, _phase_cfg(n_epochs=2, n_epochs_init=3), tmp_path / "t", 0)
    with pytest.raises(ConfigError, match="field 'sparsity_freq'"):
        validate({"sparsity_freq": 0}, "train")
