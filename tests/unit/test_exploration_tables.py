"""Unit tests for connectome_gnn.aggregate.exploration: every table on hand-made metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from connectome_gnn.aggregate import classify, load_runs
from connectome_gnn.aggregate.exploration import (
    config_labels,
    exploration_summary,
    param_columns,
    parameter_effects,
    pareto_front,
    per_type_recovery,
    plot_exploration_tree,
    replicate_cv,
    sparsity_landscape,
    type_difficulty_correlation,
    variance_by_config,
    varying_params,
)

NAN = float("nan")


def run(model="A", sparsity="1", cfg="c", seed=0, status="ok", **values) -> dict:
    row = {
        "model": model,
        "sparsity": sparsity,
        "filling_factor": float(sparsity),
        "cfg": cfg,
        "seed": seed,
        "family": "signal",
        "status": status,
        "reason": None if status == "ok" else "diverged",
    }
    row.update(values)
    row["classification"] = classify(
        values.get("connectivity_R2"), values.get("cluster_accuracy"), status
    )
    return row


def frame(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


# ---------------------------------------------------------------------------------------------
# configurations
# ---------------------------------------------------------------------------------------------


def test_param_columns_and_labels():
    df = frame(
        run(cfg="a", lr_W=1e-3, batch_size=8, param_seed=1, log_every=10, connectivity_R2=0.9),
        run(cfg="b", lr_W=2e-3, batch_size=8, param_seed=2, log_every=20, connectivity_R2=0.8),
        run(cfg="c", lr_W=NAN, batch_size=NAN, param_seed=NAN, log_every=NAN),
    )
    # train-schema order; seed / log_every do not define a configuration
    assert param_columns(df) == ["batch_size", "lr_W"]
    assert varying_params(df) == ["lr_W"]
    assert config_labels(df).tolist() == ["lr_W=1E-3", "lr_W=2E-3", "c"]


# ---------------------------------------------------------------------------------------------
# parameter effects
# ---------------------------------------------------------------------------------------------


def test_parameter_effects_exact():
    df = frame(
        run(cfg="c1", lr_W=1e-3, batch_size=8, connectivity_R2=0.95, cluster_accuracy=0.95),
        run(cfg="c2", lr_W=1e-3, batch_size=4, connectivity_R2=0.85, cluster_accuracy=0.70),
        run(cfg="c3", lr_W=2e-3, batch_size=8, connectivity_R2=0.60, cluster_accuracy=0.50),
        run(cfg="c4", lr_W=2e-3, batch_size=8, status="failed"),
        run(
            model="B", cfg="c5", lr_W=1e-3, batch_size=8, connectivity_R2=0.5, cluster_accuracy=0.4
        ),
    )
    t = parameter_effects(df)
    assert t[["model", "param", "value"]].values.tolist() == [
        ["A", "batch_size", "4"],
        ["A", "batch_size", "8"],
        ["A", "lr_W", "1E-3"],
        ["A", "lr_W", "2E-3"],
        ["B", "batch_size", "8"],
        ["B", "lr_W", "1E-3"],
    ]
    assert t["value_num"].tolist() == [4.0, 8.0, 1e-3, 2e-3, 8.0, 1e-3]
    assert t["n_runs"].tolist() == [1, 3, 2, 2, 1, 1]
    assert t["n_ok"].tolist() == [1, 2, 2, 1, 1, 1]
    assert t["n_converged"].tolist() == [0, 1, 1, 0, 0, 0]
    assert t["connectivity_R2_mean"].tolist() == pytest.approx([0.85, 0.775, 0.9, 0.6, 0.5, 0.5])
    assert t["connectivity_R2_min"].tolist() == pytest.approx([0.85, 0.6, 0.85, 0.6, 0.5, 0.5])
    assert t["connectivity_R2_max"].tolist() == pytest.approx([0.85, 0.95, 0.95, 0.6, 0.5, 0.5])
    assert t["cluster_accuracy_mean"].tolist() == pytest.approx([0.7, 0.725, 0.825, 0.5, 0.4, 0.4])
    assert "test_R2_mean" not in t.columns  # only metrics present
    only = parameter_effects(df, params=["lr_W"], metrics=["cluster_accuracy"])
    assert list(only.columns)[-3:] == [
        "cluster_accuracy_mean",
        "cluster_accuracy_min",
        "cluster_accuracy_max",
    ]
    assert len(only) == 3


# ---------------------------------------------------------------------------------------------
# replicates and variance
# ---------------------------------------------------------------------------------------------


def test_replicate_cv_matches_seed_001():
    # seed 001, model 041: 0.931, 0.859, 0.923, 0.930 -> "CV=3.30%" (population std)
    values = [0.931, 0.859, 0.923, 0.930]
    df = frame(
        *[
            run(cfg=f"n{i}", lr_W=5e-4, connectivity_R2=v)
            for i, v in zip((35, 47, 51, 55), values, strict=True)
        ],
        run(cfg="n60", lr_W=6e-4, connectivity_R2=0.95),
        run(cfg="n61", lr_W=5e-4, status="failed"),
    )
    t = replicate_cv(df, metrics=["connectivity_R2"])
    assert t["config"].tolist() == ["lr_W=5E-4", "lr_W=6E-4"]
    assert t["n_runs"].tolist() == [5, 1] and t["n_ok"].tolist() == [4, 1]
    assert t.loc[0, "runs"] == "n35, n47, n51, n55, n61"
    assert t.loc[0, "connectivity_R2_mean"] == pytest.approx(0.91075)
    # sum of squared deviations = 0.02025² + 0.05175² + 0.01225² + 0.01925² = 0.00360875
    assert t.loc[0, "connectivity_R2_std"] == pytest.approx(math.sqrt(0.00360875 / 3))
    assert t.loc[0, "connectivity_R2_cv"] == pytest.approx(math.sqrt(0.00360875 / 3) / 0.91075)
    assert t.loc[0, "connectivity_R2_mean_std"] == "0.9108 ± 0.0347"
    assert math.isnan(t.loc[1, "connectivity_R2_std"]) and math.isnan(
        t.loc[1, "connectivity_R2_cv"]
    )
    assert t.loc[1, "connectivity_R2_mean_std"] == "0.9500"
    pop = replicate_cv(df, metrics=["connectivity_R2"], ddof=0)
    assert round(pop.loc[0, "connectivity_R2_cv"] * 100, 2) == 3.30
    assert pop.loc[1, "connectivity_R2_std"] == 0.0


def test_variance_by_config_matches_seed_003_layout():
    # seed 003 "V_rest Variance Analysis": two configurations and their runs
    first = [(62, 0.559), (81, 0.264), (85, 0.403), (104, 0.333), (110, 0.420)]
    second = [(82, 0.465), (86, 0.333)]
    rows = [run(node_id=i, lr_W=6e-4, coeff_W_L1=3e-5, V_rest_R2=v) for i, v in first]
    rows += [run(node_id=i, lr_W=7e-4, coeff_W_L1=4.5e-5, V_rest_R2=v) for i, v in second]
    rows += [
        run(node_id=117, lr_W=6e-4, coeff_W_L1=2.5e-6, V_rest_R2=0.283),
        run(node_id=90, lr_W=6e-4, coeff_W_L1=3e-5, status="failed"),
        run(node_id=91, lr_W=6e-4, coeff_W_L1=3e-5, V_rest_R2=NAN),
    ]
    t = variance_by_config(frame(*rows), "V_rest_R2")
    assert t["config"].tolist() == [
        "lr_W=7E-4, coeff_W_L1=4.5E-5",
        "lr_W=6E-4, coeff_W_L1=3E-5",
        "lr_W=6E-4, coeff_W_L1=2.5E-6",
    ]  # by mean, descending: 0.399, 0.3958, 0.283
    assert t["runs"].tolist() == ["N82, N86", "N62, N81, N85, N104, N110", "N117"]
    assert t["values"].tolist() == [
        "0.465, 0.333",
        "0.559, 0.264, 0.403, 0.333, 0.420",
        "0.283",
    ]
    assert t["n_runs"].tolist() == [2, 5, 1]
    assert t["range"].tolist()[:2] == pytest.approx([0.132, 0.295])
    assert math.isnan(t["range"].iloc[2])
    assert t["mean"].tolist() == pytest.approx([0.399, 0.3958, 0.283])
    assert t["std"].iloc[0] == pytest.approx(math.sqrt(2 * 0.066**2))
    assert (t["metric"] == "V_rest_R2").all()
    assert variance_by_config(frame(*rows), "tau_R2").empty


# ---------------------------------------------------------------------------------------------
# Pareto front
# ---------------------------------------------------------------------------------------------


def test_pareto_front_exact():
    pts = {
        "p1": (0.96, 0.86, 0.55),
        "p2": (0.94, 0.88, 0.56),
        "p3": (0.95, 0.85, 0.50),  # dominated by p1
        "p4": (0.97, 0.80, 0.40),  # best connectivity
        "p5": (0.90, 0.89, 0.30),  # best clustering
        "p6": (0.94, 0.88, 0.56),  # equal to p2: both kept
        "p8": (0.99, 0.99, NAN),  # a metric missing: left out
    }
    rows = [
        run(cfg=k, connectivity_R2=a, cluster_accuracy=b, V_rest_R2=c)
        for k, (a, b, c) in pts.items()
    ]
    rows.append(run(cfg="p7", status="failed", connectivity_R2=1.0, cluster_accuracy=1.0))
    rows.append(run(model="B", cfg="q1", connectivity_R2=0.5, cluster_accuracy=0.5, V_rest_R2=0.5))
    rows.append(run(model="B", cfg="q2", connectivity_R2=0.4, cluster_accuracy=0.4, V_rest_R2=0.4))
    front = pareto_front(frame(*rows))
    assert front.attrs["metrics"] == ["connectivity_R2", "cluster_accuracy", "V_rest_R2"]
    assert front[["model", "cfg"]].values.tolist() == [
        ["A", "p4"],
        ["A", "p1"],
        ["A", "p2"],
        ["A", "p6"],
        ["A", "p5"],
        ["B", "q1"],
    ]
    assert front["best_in"].tolist() == [
        "connectivity_R2",
        "",
        "V_rest_R2",
        "V_rest_R2",
        "cluster_accuracy",
        "connectivity_R2, cluster_accuracy, V_rest_R2",
    ]
    assert front.loc[1, ["connectivity_R2", "cluster_accuracy", "V_rest_R2"]].tolist() == [
        0.96,
        0.86,
        0.55,
    ]
    two = pareto_front(frame(*rows), metrics=("connectivity_R2", "cluster_accuracy"))
    # with two metrics p8 (0.99, 0.99) dominates all of model A
    assert two[two["model"] == "A"]["cfg"].tolist() == ["p8"]


# ---------------------------------------------------------------------------------------------
# sparsity landscape, classification
# ---------------------------------------------------------------------------------------------


def _landscape_runs() -> pd.DataFrame:
    return frame(
        run(cfg="a1", lr_W=1e-3, coeff_W_L1=0.0, connectivity_R2=0.95, cluster_accuracy=0.95),
        run(cfg="a2", lr_W=2e-3, coeff_W_L1=0.0, connectivity_R2=0.80, cluster_accuracy=0.99),
        run(
            sparsity="0.5",
            cfg="h1",
            lr_W=1e-3,
            coeff_W_L1=1e-6,
            connectivity_R2=0.7,
            cluster_accuracy=0.6,
        ),
        run(
            sparsity="0.5",
            cfg="h2",
            lr_W=2e-3,
            coeff_W_L1=1e-5,
            connectivity_R2=0.5,
            cluster_accuracy=0.92,
        ),
        run(sparsity="0.5", cfg="h3", lr_W=2e-3, coeff_W_L1=1e-4, status="failed"),
        run(
            model="B",
            cfg="b1",
            lr_W=1e-3,
            coeff_W_L1=0.0,
            connectivity_R2=0.91,
            cluster_accuracy=0.93,
        ),
    )


def test_sparsity_landscape_exact():
    t = sparsity_landscape(_landscape_runs())
    assert t[["model", "sparsity", "sparsity_pct"]].values.tolist() == [
        ["A", "1", "100%"],
        ["A", "0.5", "50%"],
        ["B", "1", "100%"],
    ]
    assert t["n_runs"].tolist() == [2, 3, 1]
    assert t["n_ok"].tolist() == [2, 2, 1]
    assert t["n_converged"].tolist() == [1, 0, 1]
    assert t["best_connectivity_R2"].tolist() == [0.95, 0.7, 0.91]
    assert t["best_cluster_accuracy"].tolist() == [0.99, 0.92, 0.93]
    # best score 0.6 R2 + 0.4 acc: a1 0.95 > a2 0.876; h2 0.668 > h1 0.66; b1 0.918
    assert t["best_score"].tolist() == pytest.approx([0.95, 0.668, 0.918])
    assert t["best_cfg"].tolist() == ["a1", "h2", "b1"]
    assert t["best_lr_W"].tolist() == [1e-3, 2e-3, 1e-3]
    assert t["best_coeff_W_L1"].tolist() == [0.0, 1e-5, 0.0]
    assert t["best_config"].tolist()[1] == "lr_W=2E-3, coeff_W_L1=1E-5"
    weighted = sparsity_landscape(_landscape_runs(), score_weights={"cluster_accuracy": 1.0})
    assert weighted["best_cfg"].tolist() == ["a2", "h2", "b1"]


def test_summary_writes_every_table_and_plot(tmp_path):
    runs = _landscape_runs()
    runs["per_type_R2_0"] = [0.9, 0.8, 0.5, 0.4, NAN, 0.3]
    runs["per_type_R2_1"] = [0.2, 0.3, 0.1, 0.2, NAN, 0.9]
    tables = exploration_summary(runs, tmp_path / "s")
    expected = {
        "best",
        "parameter_effects",
        "replicates",
        "pareto",
        "classification",
        "sparsity_landscape",
        "per_type_recovery",
        "type_difficulty",
        "variance_connectivity_R2",
        "variance_cluster_accuracy",
    }
    assert set(tables) == expected
    for name in expected:
        for ext in ("parquet", "csv", "md"):
            assert (tmp_path / "s" / f"{name}.{ext}").is_file(), (name, ext)
    cls = tables["classification"]
    assert cls[
        ["model", "sparsity", "converged", "partial-E", "partial", "failed"]
    ].values.tolist() == [
        ["A", "0.5", 0, 1, 1, 1],
        ["A", "1", 1, 1, 0, 0],
        ["B", "1", 1, 0, 0, 0],
    ]
    for png in (
        "metric_vs_params_connectivity_R2.png",
        "metric_vs_params_cluster_accuracy.png",
        "pareto_front.png",
        "sparsity_landscape.png",
    ):
        assert (tmp_path / "s" / png).stat().st_size > 1000
    summary = (tmp_path / "s" / "summary.md").read_text()
    assert "## Sparsity landscape" in summary and "## Variance of cluster_accuracy" in summary
    back = pd.read_parquet(tmp_path / "s" / "sparsity_landscape.parquet")
    assert back["best_cfg"].tolist() == ["a1", "h2", "b1"]


# ---------------------------------------------------------------------------------------------
# per-type recovery and cross-model difficulty
# ---------------------------------------------------------------------------------------------


def _type_runs() -> pd.DataFrame:
    return frame(
        run(cfg="a1", per_type_R2_0=0.9, per_type_R2_1=0.2, per_type_R2_10=0.5),
        run(cfg="a2", per_type_R2_0=0.7, per_type_R2_1=0.4, per_type_R2_10=NAN),
        run(cfg="a3", status="failed", per_type_R2_0=0.0, per_type_R2_1=0.0, per_type_R2_10=0.0),
        run(model="B", cfg="b1", per_type_R2_0=0.1, per_type_R2_1=0.8, per_type_R2_10=0.3),
        run(model="C", cfg="c1", per_type_R2_0=0.4, per_type_R2_1=NAN, per_type_R2_10=NAN),
    )


def test_per_type_recovery_exact():
    t = per_type_recovery(_type_runs())
    assert t[["model", "type"]].values.tolist() == [
        ["A", "0"],
        ["A", "1"],
        ["A", "10"],
        ["B", "0"],
        ["B", "1"],
        ["B", "10"],
        ["C", "0"],
    ]
    assert t["n_runs"].tolist() == [2, 2, 1, 1, 1, 1, 1]
    assert t["mean"].tolist() == pytest.approx([0.8, 0.3, 0.5, 0.1, 0.8, 0.3, 0.4])
    assert t["min"].tolist() == pytest.approx([0.7, 0.2, 0.5, 0.1, 0.8, 0.3, 0.4])
    assert t["max"].tolist() == pytest.approx([0.9, 0.4, 0.5, 0.1, 0.8, 0.3, 0.4])
    assert t["std"].tolist()[:2] == pytest.approx([math.sqrt(0.02), math.sqrt(0.02)])
    assert np.isnan(t["std"].tolist()[2])
    assert t["rank"].tolist() == [3, 1, 2, 1, 3, 2, 1]  # 1 = hardest type of the model


def test_type_difficulty_correlation_exact():
    t = type_difficulty_correlation(_type_runs())
    assert t[["model_a", "model_b", "n_types"]].values.tolist() == [
        ["A", "B", 3],
        ["A", "C", 1],
        ["B", "C", 1],
    ]
    # A = (0.8, 0.3, 0.5), B = (0.1, 0.8, 0.3): sum dA dB = -0.17, sum dA² = 0.38/3, sum dB² = 0.26
    assert t.loc[0, "pearson"] == pytest.approx(-0.17 / math.sqrt(0.38 / 3 * 0.26))
    assert t.loc[0, "spearman"] == pytest.approx(-1.0)  # ranks (3, 1, 2) vs (1, 3, 2)
    assert t[["pearson", "spearman"]].iloc[1:].isna().all().all()
    assert type_difficulty_correlation(frame(run(connectivity_R2=0.5))).empty


# ---------------------------------------------------------------------------------------------
# the same functions on load_runs output and on an exploration tree
# ---------------------------------------------------------------------------------------------


def _write_run(root, cfg, seed, training, **metrics):
    run_dir = root / "m" / "1" / cfg / f"seed{seed}"
    (run_dir / "train").mkdir(parents=True)
    data = {"status": "ok", "connectivity_R2": 0.9, "cluster_accuracy": 0.8, **metrics}
    (run_dir / "metrics.json").write_text(json.dumps(data))
    config = {"model": "m", "sparsity": "1", "cfg": cfg, "seed": seed, "training": training}
    (run_dir / "train" / "run_config.json").write_text(json.dumps(config))
    return run_dir / "metrics.json"


def test_tables_on_load_runs_output(tmp_path):
    paths = [
        _write_run(tmp_path, "x", 0, {"lr_W": 1e-3, "seed": 0}, connectivity_R2=0.91),
        _write_run(tmp_path, "x", 1, {"lr_W": 1e-3, "seed": 1}, connectivity_R2=0.93),
        _write_run(tmp_path, "y", 0, {"lr_W": 3e-3, "seed": 0}, connectivity_R2=0.5),
    ]
    runs = load_runs(paths)
    assert param_columns(runs) == ["lr_W"]  # param_seed excluded
    rep = replicate_cv(runs, metrics=["connectivity_R2"])
    assert rep["runs"].tolist() == ["x/seed0, x/seed1", "y/seed0"]
    assert rep["connectivity_R2_mean"].tolist() == pytest.approx([0.92, 0.5])
    effects = parameter_effects(runs)
    assert effects["value"].tolist() == ["1E-3", "3E-3"]
    assert effects["connectivity_R2_mean"].tolist() == pytest.approx([0.92, 0.5])


def test_tables_on_an_exploration_tree(tmp_path):
    from connectome_gnn.explore import ExplorationTree, propose_batch

    exp = {
        "name": "e",
        "base_config": {"lr_W": 1e-3},
        "blocks": [{"model": "m", "sparsity": 0.5, "n_iter_block": 4}],
        "score_weights": {"connectivity_R2": 0.6, "cluster_accuracy": 0.4},
    }
    tree = ExplorationTree.create(tmp_path / "e", exp)
    nodes = propose_batch(tree)
    for n, r2 in zip(nodes[:3], (0.95, 0.6, 0.3), strict=True):
        tree.update(n.node_id, {"connectivity_R2": r2, "cluster_accuracy": 0.95})
    tree.update(nodes[3].node_id, {"status": "failed"})
    frame_ = tree.to_frame()
    assert frame_["cfg"].tolist() == ["e_n001", "e_n002", "e_n003", "e_n004"]
    assert frame_["sparsity"].tolist() == ["0.5"] * 4
    assert frame_["classification"].tolist()[0] == "converged"
    tables = exploration_summary(frame_, tmp_path / "e" / "summary", plots=False)
    assert tables["best"]["cfg"].tolist() == ["e_n001"]
    assert tables["classification"].loc[0, "failed"] == 1
    assert tables["sparsity_landscape"].loc[0, "n_converged"] == 1
    out = plot_exploration_tree(frame_, tmp_path / "tree.png")
    assert out.stat().st_size > 1000


def test_nothing_to_plot_writes_no_placeholder(tmp_path):
    from connectome_gnn.aggregate import plots as agg_plots

    one_config = frame(run(cfg="a", sparsity="1", connectivity_R2=0.9, cluster_accuracy=0.9))
    stale = tmp_path / "m.png"
    stale.write_bytes(b"an earlier plot")
    # no training parameter varies: no panel to draw, no file (and no stale one left)
    assert agg_plots.plot_metric_vs_params(one_config, stale, "connectivity_R2") is None
    assert not stale.exists()
    assert agg_plots.plot_exploration_tree(pd.DataFrame(), tmp_path / "t.png") is None
    assert agg_plots.plot_sparsity_landscape(pd.DataFrame(), tmp_path / "l.png") is None
    assert sorted(tmp_path.iterdir()) == []
    exploration_summary(one_config, tmp_path / "s")
    pngs = sorted(p.name for p in (tmp_path / "s").glob("*.png"))
    assert pngs == ["pareto_front.png", "sparsity_landscape.png"]


def test_pareto_plot_colours_by_filling_factor_and_landscape_labels_its_line(tmp_path, monkeypatch):
    from connectome_gnn.aggregate import plots as agg_plots

    kept = []
    real = agg_plots._save
    monkeypatch.setattr(
        agg_plots, "_save", lambda fig, path: (kept.append(fig), real(fig, path))[1]
    )
    rows = [
        run(cfg="a", sparsity="1", connectivity_R2=0.99, cluster_accuracy=0.9),
        run(cfg="b", sparsity="0.1", connectivity_R2=0.5, cluster_accuracy=0.95),
        run(model="B", cfg="c", sparsity="0.05", connectivity_R2=0.7, cluster_accuracy=0.7),
    ]
    runs = frame(*rows)
    agg_plots.plot_pareto_front(runs, pareto_front(runs), tmp_path / "p.png")
    ax, cbar = kept[-1].axes
    assert cbar.get_ylabel() == "filling factor"
    colours = [c.get_array().tolist() for c in ax.collections if c.get_array() is not None]
    assert sorted(v for arr in colours for v in arr) == [0.05, 0.1, 1.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    landscape = sparsity_landscape(runs)
    agg_plots.plot_sparsity_landscape(landscape, tmp_path / "l.png")
    labels = [t.get_text() for t in kept[-1].axes[0].get_legend().get_texts()]
    assert labels[-1] == "0.9" and "A: connectivity_R2" in labels


def test_pareto_front_field_R2_only_compares_runs_that_learn_their_input():
    rows = [
        run(cfg="known", connectivity_R2=0.99, cluster_accuracy=0.99),
        run(cfg="learned", connectivity_R2=0.95, cluster_accuracy=0.95, field_R2=0.9),
        run(cfg="worse", connectivity_R2=0.90, cluster_accuracy=0.90, field_R2=0.8),
        run(model="B", cfg="a", connectivity_R2=0.9, cluster_accuracy=0.9, field_R2=0.5),
        run(model="B", cfg="b", connectivity_R2=0.8, cluster_accuracy=0.8, field_R2=0.7),
    ]
    front = pareto_front(frame(*rows))
    assert "field_R2" in front.attrs["metrics"]
    # model A: a run without field_R2 is kept, and field_R2 is left out of A's comparison
    a = front[front["model"] == "A"]
    assert a["cfg"].tolist() == ["known"]
    assert math.isnan(a["field_R2"].iloc[0]) and "field_R2" not in a["best_in"].iloc[0]
    # model B (all runs learn their input): field_R2 counts
    b = front[front["model"] == "B"]
    assert sorted(b["cfg"]) == ["a", "b"]
    assert b.set_index("cfg").loc["b", "best_in"] == "field_R2"
