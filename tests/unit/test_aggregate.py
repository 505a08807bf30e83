"""Unit tests for connectome_gnn.aggregate: hand-made metrics files, no training."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectome_gnn.aggregate import (
    aggregate,
    best_runs,
    classification_counts,
    classify,
    load_runs,
    replicate_stats,
    to_markdown,
    write_table,
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def make_run(
    root: Path,
    model: str = "signal_N2",
    sparsity: str = "1",
    cfg: str = "default",
    seed: int = 0,
    status: str = "ok",
    run_config: bool = True,
    training: dict | None = None,
    **metrics,
) -> Path:
    """Write results/{model}/{sparsity}/{cfg}/seed{seed}/metrics.json (+ run_config)."""
    run_dir = root / model / sparsity / cfg / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "model": model,
        "sparsity": sparsity,
        "cfg": cfg,
        "seed": seed,
        "family": "signal",
        "status": status,
        "reason": None if status == "ok" else "diverged",
        "connectivity_R2": 0.95,
        "connectivity_R2_raw": 0.9,
        "connectivity_slope": 1.0,
        "W_pearson": 0.97,
        "sign_match": 0.99,
        "MagRatio": 1.01,
        "in_sum_pearson": 0.9,
        "out_sum_pearson": 0.9,
        "cluster_accuracy": 0.95,
        "cluster_accuracy_single_linkage": 0.9,
        "test_R2": 0.8,
        "test_pearson": 0.9,
        "final_loss": 1e-4,
        "training_time_min": 2.0,
        "per_type_R2": {"0": 0.9, "1": 0.8},
    }
    data.update(metrics)
    (run_dir / "metrics.json").write_text(json.dumps(data))
    if run_config:
        (run_dir / "train").mkdir(exist_ok=True)
        cfg_data = {
            "model": model,
            "sparsity": sparsity,
            "cfg": cfg,
            "seed": seed,
            "training": training
            if training is not None
            else {"lr_W": 1e-3, "lr": 1e-4, "batch_size": 8, "n_epochs": 2, "seed": seed},
            "simulation": {"n_neurons": 100, "n_frames": 1000},
        }
        (run_dir / "train" / "run_config.json").write_text(json.dumps(cfg_data))
    return run_dir / "metrics.json"


# ---------------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r2", "acc", "status", "expected"),
    [
        (0.95, 0.95, "ok", "converged"),
        (0.9, 0.95, "ok", "partial-E"),  # 0.9 exactly is not > 0.9
        (0.95, 0.9, "ok", "partial-W"),
        (0.9, 0.9, "ok", "partial"),
        (0.9000001, 0.9000001, "ok", "converged"),
        (0.05, 0.05, "ok", "failed"),
        (0.1, 0.05, "ok", "partial"),  # 0.1 exactly is not < 0.1
        (0.05, 0.1, "ok", "partial"),
        (0.5, 0.5, "ok", "partial"),
        (0.0, 0.95, "ok", "partial-E"),
        (0.99, 0.0, "ok", "partial-W"),
        (0.99, 0.99, "failed", "failed"),
        (None, 0.99, "ok", "failed"),
        (0.99, None, "ok", "failed"),
        (float("nan"), 0.99, "ok", "failed"),
        (0.99, float("inf"), "ok", "failed"),
    ],
)
def test_classify_table(r2, acc, status, expected):
    assert classify(r2, acc, status) == expected


def test_classify_default_status_is_ok():
    assert classify(0.95, 0.95) == "converged"


# ---------------------------------------------------------------------------------------------
# load_runs
# ---------------------------------------------------------------------------------------------


def test_load_runs_flattens_and_sorts(tmp_path):
    paths = [
        make_run(tmp_path, sparsity="1", seed=1),
        make_run(tmp_path, sparsity="0.5", seed=0),
        make_run(tmp_path, sparsity="1", seed=0, per_type_R2={"0": 0.5, "1": 0.6, "10": 0.7}),
        make_run(tmp_path, sparsity="0.25", seed=0, tau_R2=0.77),
    ]
    df = load_runs(paths)
    assert len(df) == 4
    # numeric sparsity order, sparsity stays text
    assert df["sparsity"].tolist() == ["0.25", "0.5", "1", "1"]
    assert df["seed"].tolist() == [0, 0, 0, 1]
    assert df["filling_factor"].tolist() == [0.25, 0.5, 1.0, 1.0]
    assert df["filling_factor"].dtype == np.float64
    # per_type_R2 flattened, natural order of types
    per_type = [c for c in df.columns if c.startswith("per_type_R2_")]
    assert per_type == ["per_type_R2_0", "per_type_R2_1", "per_type_R2_10"]
    row = df[(df["sparsity"] == "1") & (df["seed"] == 0)].iloc[0]
    assert row["per_type_R2_0"] == 0.5 and row["per_type_R2_10"] == 0.7
    assert math.isnan(df.loc[df["sparsity"] == "0.5", "per_type_R2_10"].iloc[0])
    # unknown numeric metric flows through
    assert df.loc[df["sparsity"] == "0.25", "tau_R2"].iloc[0] == 0.77
    # training params by name, collision with a metric/id name -> param_, simulation -> sim_
    assert df["lr_W"].tolist() == [1e-3] * 4
    assert df["batch_size"].tolist() == [8] * 4
    assert df["param_seed"].tolist() == [0, 0, 0, 1]
    assert df["sim_n_neurons"].tolist() == [100] * 4
    assert (df["classification"] == "converged").all()
    assert df["run_dir"].iloc[0] == str(paths[3].parent)
    assert "per_type_R2" not in df.columns


def test_load_runs_param_colliding_with_metric(tmp_path):
    path = make_run(tmp_path, training={"final_loss": 3, "lr": 0.1})
    df = load_runs([path])
    assert df["final_loss"].iloc[0] == 1e-4
    assert df["param_final_loss"].iloc[0] == 3
    assert df["lr"].iloc[0] == 0.1


def test_load_runs_missing_run_config(tmp_path):
    with_cfg = make_run(tmp_path, seed=0)
    without = make_run(tmp_path, seed=1, run_config=False)
    df = load_runs([without])
    assert len(df) == 1
    assert not any(c.startswith("sim_") for c in df.columns)
    assert "lr_W" not in df.columns
    both = load_runs([with_cfg, without])
    assert both["lr_W"].iloc[0] == 1e-3
    assert math.isnan(both["lr_W"].iloc[1])


def test_load_runs_identity_from_path(tmp_path):
    path = make_run(
        tmp_path, model="signal_N2", sparsity="0.5", cfg="fast", seed=7, run_config=False
    )
    data = json.loads(path.read_text())
    for key in ("model", "sparsity", "cfg", "seed"):
        del data[key]
    path.write_text(json.dumps(data))
    row = load_runs([path]).iloc[0]
    assert (row["model"], row["sparsity"], row["cfg"], row["seed"]) == (
        "signal_N2",
        "0.5",
        "fast",
        7,
    )


def test_load_runs_numeric_sparsity_becomes_text(tmp_path):
    path = make_run(tmp_path, sparsity="0.5")
    data = json.loads(path.read_text())
    data["sparsity"] = 0.5
    path.write_text(json.dumps(data))
    df = load_runs([path])
    assert df["sparsity"].iloc[0] == "0.5"
    assert df["filling_factor"].iloc[0] == 0.5


def test_malformed_json_raises_value_error_naming_file(tmp_path):
    good = make_run(tmp_path, seed=0)
    bad = make_run(tmp_path, seed=1)
    bad.write_text('{"model": "signal_N2", "connectivity_R2": 0.9,')
    with pytest.raises(ValueError, match=r"seed1[/\\]metrics\.json.*not valid JSON"):
        load_runs([good, bad])


def test_malformed_run_config_raises(tmp_path):
    path = make_run(tmp_path)
    cfg = path.parent / "train" / "run_config.json"
    cfg.write_text("not json")
    with pytest.raises(ValueError, match="run_config.json"):
        load_runs([path])


def test_non_object_json_and_missing_file_raise(tmp_path):
    path = make_run(tmp_path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="metrics.json.*JSON object"):
        load_runs([path])
    with pytest.raises(ValueError, match="nope.json"):
        load_runs([tmp_path / "nope.json"])


def test_empty_input(tmp_path):
    df = load_runs([])
    assert df.empty and "connectivity_R2" not in df.columns
    tables = aggregate([], tmp_path / "out")
    assert all(t.empty for t in tables.values())
    assert (tmp_path / "out" / "summary.md").is_file()


# ---------------------------------------------------------------------------------------------
# best_runs
# ---------------------------------------------------------------------------------------------


def test_best_runs_hand_computed_scores(tmp_path):
    paths = [
        # 0.6*0.95 + 0.4*0.50 = 0.77
        make_run(tmp_path, cfg="a", seed=0, connectivity_R2=0.95, cluster_accuracy=0.50),
        # 0.6*0.80 + 0.4*0.99 = 0.876  <- best of sparsity 1
        make_run(tmp_path, cfg="b", seed=0, connectivity_R2=0.80, cluster_accuracy=0.99),
        # higher metrics but failed -> cannot be best
        make_run(
            tmp_path, cfg="c", seed=0, status="failed", connectivity_R2=1.0, cluster_accuracy=1.0
        ),
        # missing metric -> cannot be best
        make_run(tmp_path, cfg="d", seed=0, connectivity_R2=None, cluster_accuracy=1.0),
        # sparsity 0.5: only a failed run -> empty failed cell
        make_run(tmp_path, sparsity="0.5", seed=0, status="failed"),
    ]
    runs = load_runs(paths)
    best = best_runs(runs)
    assert best["sparsity"].tolist() == ["0.5", "1"]
    top = best[best["sparsity"] == "1"].iloc[0]
    assert top["cfg"] == "b"
    assert top["score"] == pytest.approx(0.876)
    assert top["n_runs"] == 4 and top["n_ok"] == 3  # cfg d is ok but unscored
    empty = best[best["sparsity"] == "0.5"].iloc[0]
    assert empty["status"] == "failed"
    assert empty["classification"] == "failed"
    assert math.isnan(empty["connectivity_R2"]) and math.isnan(empty["score"])
    assert pd.isna(empty["seed"])
    assert empty["n_runs"] == 1 and empty["n_ok"] == 0

    # custom weights change the winner: only connectivity counts
    best_w = best_runs(runs, score_weights={"connectivity_R2": 1.0})
    top_w = best_w[best_w["sparsity"] == "1"].iloc[0]
    assert top_w["cfg"] == "a"
    assert top_w["score"] == pytest.approx(0.95)


def test_best_runs_ok_but_metric_missing_gives_empty_row(tmp_path):
    runs = load_runs([make_run(tmp_path, cluster_accuracy=None)])
    best = best_runs(runs)
    assert len(best) == 1
    assert best["status"].iloc[0] == "failed"
    assert "cluster_accuracy" in best["reason"].iloc[0]


# ---------------------------------------------------------------------------------------------
# replicate_stats / classification_counts
# ---------------------------------------------------------------------------------------------


def test_replicate_stats_exact_values(tmp_path):
    paths = [
        make_run(tmp_path, seed=0, connectivity_R2=0.9, test_R2=0.5),
        make_run(tmp_path, seed=1, connectivity_R2=1.0, test_R2=None),
        # failed run: excluded from stats, counted in n_runs, present in runs table
        make_run(tmp_path, seed=2, status="failed", connectivity_R2=0.0),
        make_run(
            tmp_path, cfg="single", seed=0, connectivity_R2=0.99, V_rest_R2=0.5, tau_R2_active=0.7
        ),
    ]
    runs = load_runs(paths)
    assert len(runs) == 4
    assert runs.loc[runs["seed"] == 2, "status"].iloc[0] == "failed"
    assert runs.loc[runs["seed"] == 2, "classification"].iloc[0] == "failed"

    rep = replicate_stats(runs)
    assert rep["cfg"].tolist() == ["default", "single"]
    row = rep[rep["cfg"] == "default"].iloc[0]
    assert row["n_runs"] == 3 and row["n_ok"] == 2
    assert row["connectivity_R2_mean"] == pytest.approx(0.95)
    assert row["connectivity_R2_std"] == pytest.approx(0.0707107, abs=1e-7)
    assert row["connectivity_R2_mean_std"] == "0.9500 ± 0.0707"
    assert row["test_R2_mean"] == pytest.approx(0.5)  # None skipped
    assert math.isnan(row["test_R2_std"])
    single = rep[rep["cfg"] == "single"].iloc[0]
    assert single["n_runs"] == 1
    assert math.isnan(single["connectivity_R2_std"])  # ddof=1 with one run
    assert single["connectivity_R2_mean_std"] == "0.9900 ± n/a"
    # known family metric present -> included; core metrics always present
    assert single["V_rest_R2_mean"] == pytest.approx(0.5)
    assert single["tau_R2_active_mean"] == pytest.approx(0.7)
    assert "tau_R2_mean" not in rep.columns
    for m in ("cluster_accuracy", "test_pearson", "final_loss", "training_time_min"):
        assert f"{m}_mean_std" in rep.columns
    # small values keep their magnitude in the text column
    assert row["final_loss_mean_std"].startswith("1.000e-04")


def test_replicate_stats_explicit_metrics_and_all_failed(tmp_path):
    runs = load_runs(
        [
            make_run(tmp_path, seed=0, status="failed"),
            make_run(tmp_path, seed=1, status="failed"),
        ]
    )
    rep = replicate_stats(runs, metrics=["connectivity_R2"])
    assert list(rep.columns[-3:]) == [
        "connectivity_R2_mean",
        "connectivity_R2_std",
        "connectivity_R2_mean_std",
    ]
    assert rep["n_ok"].iloc[0] == 0
    assert math.isnan(rep["connectivity_R2_mean"].iloc[0])
    assert rep["connectivity_R2_mean_std"].iloc[0] == "n/a"


def test_classification_counts(tmp_path):
    paths = [
        make_run(tmp_path, seed=0),  # converged
        make_run(tmp_path, seed=1, cluster_accuracy=0.5),  # partial-W
        make_run(tmp_path, seed=2, status="failed"),  # failed
        make_run(tmp_path, sparsity="0.5", seed=0, connectivity_R2=0.5, cluster_accuracy=0.5),
    ]
    counts = classification_counts(load_runs(paths))
    assert counts["sparsity"].tolist() == ["0.5", "1"]
    one = counts[counts["sparsity"] == "1"].iloc[0]
    assert (
        one["converged"],
        one["partial-W"],
        one["partial-E"],
        one["partial"],
        one["failed"],
    ) == (
        1,
        1,
        0,
        0,
        1,
    )
    assert one["n_runs"] == 3
    half = counts[counts["sparsity"] == "0.5"].iloc[0]
    assert half["partial"] == 1 and half["n_runs"] == 1


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------


def test_to_markdown():
    df = pd.DataFrame({"a": ["x"], "b": [0.123456]})
    md = to_markdown(df)
    assert md.splitlines()[0].startswith("|")
    assert "0.1235" in md
    assert "0.12346" in to_markdown(df, floatfmt=".5f")
    # text that looks numeric stays verbatim; missing values are blank
    md = to_markdown(pd.DataFrame({"sparsity": ["0.5", "1"], "r": [np.nan, 1.0], "t": [None, "x"]}))
    rows = [line.split("|")[1:-1] for line in md.splitlines()[2:]]
    assert [c.strip() for c in rows[0]] == ["0.5", "", ""]
    assert [c.strip() for c in rows[1]] == ["1", "1.0000", "x"]


def test_html_table_is_readable_and_escaped():
    from connectome_gnn.aggregate.output import display_view, to_html

    df = pd.DataFrame(
        {"sparsity": ["0.5", "1"], "R2": [0.123456, np.nan], "reason": ["<b>NaN</b> & co", None]}
    )
    page = to_html(display_view(df), title="All runs", note="2 rows")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "<h1>All runs</h1>" in page and '<p class="note">2 rows</p>' in page
    head = page[page.index("<thead>") : page.index("</thead>")]
    assert [h.split("</th>")[0] for h in head.split("<th>")[1:]] == [
        "filling factor",
        "R2",
        "reason",
    ]
    rows = page[page.index("<tbody>") : page.index("</tbody>")].split("<tr>")[1:]
    assert rows[0].startswith('<td>0.5</td><td class="num">0.1235</td>')
    assert "&lt;b&gt;NaN&lt;/b&gt; &amp; co" in rows[0]  # text is escaped, never markup
    assert rows[1].strip() == '<td>1</td><td class="num"></td><td></td></tr>'


def test_markdown_and_html_views_say_filling_factor_data_files_keep_sparsity(tmp_path):
    from connectome_gnn.aggregate.output import display_view

    both = pd.DataFrame({"sparsity": ["0.5"], "filling_factor": [0.5], "n": [1]})
    assert list(display_view(both).columns) == ["filling factor", "n"]  # not shown twice
    df = pd.DataFrame({"model": ["m"], "sparsity": ["0.5"], "extra": [1.0]})
    paths = write_table(df, tmp_path / "t", markdown_columns=["model", "sparsity"], title="T")
    header = paths["md"].read_text().splitlines()[0].split("|")[1:-1]
    assert [h.strip() for h in header] == ["model", "filling factor"]
    page = paths["html"].read_text()
    assert "<th>filling factor</th>" in page and "extra" not in page and "<h1>T</h1>" in page
    assert list(pd.read_csv(paths["csv"]).columns) == ["model", "sparsity", "extra"]
    assert list(pd.read_parquet(paths["parquet"]).columns) == ["model", "sparsity", "extra"]


def test_plots_are_saved_as_compact_palette_pngs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from connectome_gnn.io import save_png

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.imshow(np.random.default_rng(0).normal(size=(60, 80)), cmap="viridis")
    ax.plot(np.sin(np.linspace(0, 9, 200)) * 20 + 30, color="tab:red")
    fig.savefig(tmp_path / "rgba.png", format="png", dpi=110)
    save_png(fig, tmp_path / "plot.png", dpi=110)
    plt.close(fig)
    with Image.open(tmp_path / "plot.png") as image, Image.open(tmp_path / "rgba.png") as rgba:
        assert image.mode == "P" and image.size == rgba.size
    assert (tmp_path / "plot.png").stat().st_size < 0.6 * (tmp_path / "rgba.png").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "rgba.png"]  # no temporaries


def test_write_table_roundtrip(tmp_path):
    df = pd.DataFrame(
        {
            "model": ["m", "m"],
            "seed": [0, 1],
            "value": [0.5, np.nan],
            "mixed": [1, "text"],  # mixed types must still go to parquet
        }
    )
    paths = write_table(df, tmp_path / "sub" / "table")
    for ext in ("parquet", "csv", "md", "html"):
        assert (tmp_path / "sub" / f"table.{ext}").is_file()
        assert paths[ext] == tmp_path / "sub" / f"table.{ext}"
    back = pd.read_parquet(paths["parquet"])
    pd.testing.assert_frame_equal(
        back[["model", "seed", "value"]], df[["model", "seed", "value"]], check_dtype=False
    )
    assert back["mixed"].tolist() == ["1", "text"]
    assert len(pd.read_csv(paths["csv"])) == 2
    # no temporary files left behind
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [
        "table.csv",
        "table.html",
        "table.md",
        "table.parquet",
    ]


def test_aggregate_writes_everything(tmp_path):
    paths = [
        make_run(tmp_path / "results", seed=0),
        make_run(tmp_path / "results", seed=1, connectivity_R2=0.5),
        make_run(tmp_path / "results", seed=2, status="failed", run_config=False),
        make_run(tmp_path / "results", sparsity="0.5", seed=0, tau_R2=0.3),
    ]
    out = tmp_path / "summary"
    tables = aggregate(paths, out)
    assert set(tables) == {"runs", "best", "replicates", "classification"}
    for name, table in tables.items():
        for ext in ("parquet", "csv", "md", "html"):
            assert (out / f"{name}.{ext}").is_file(), (name, ext)
        back = pd.read_parquet(out / f"{name}.parquet")
        assert list(back.columns) == list(table.columns)
        assert len(back) == len(table)
    runs_back = pd.read_parquet(out / "runs.parquet")
    pd.testing.assert_frame_equal(
        runs_back, tables["runs"].reset_index(drop=True), check_dtype=False
    )
    summary = (out / "summary.md").read_text()
    for heading in (
        "## All runs",
        "## Best run per (model, filling factor)",
        "## Replicates (mean ± std)",
        "## Classification",
    ):
        assert heading in summary
    assert "±" in summary
    page = (out / "runs.html").read_text()
    assert "<h1>All runs</h1>" in page and "<th>filling factor</th>" in page
    assert page.count("<tr>") == 1 + 4  # header + one row per run
    assert len(tables["runs"]) == 4
    assert tables["replicates"]["n_runs"].sum() == 4


def test_aggregate_does_not_import_torch(tmp_path):
    # the aggregate package itself must not pull torch in
    import subprocess

    code = (
        "import sys, connectome_gnn.aggregate as a; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_aggregate_1000_runs_smoke(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(1000):
        model = f"signal_N{i % 4}"
        sparsity = ["1", "0.5", "0.25", "0.1", "0.05"][(i // 4) % 5]
        cfg = f"cfg{(i // 20) % 5}"
        seed = i // 100
        paths.append(
            make_run(
                tmp_path / "results",
                model=model,
                sparsity=sparsity,
                cfg=cfg,
                seed=seed,
                status="failed" if i % 17 == 0 else "ok",
                connectivity_R2=float(rng.uniform()),
                cluster_accuracy=float(rng.uniform()),
                run_config=i % 3 != 0,
            )
        )
    tables = aggregate(paths, tmp_path / "out")
    assert len(tables["runs"]) == 1000
    assert len(tables["best"]) == 4 * 5
    assert tables["classification"]["n_runs"].sum() == 1000
    assert (tmp_path / "out" / "summary.md").is_file()
