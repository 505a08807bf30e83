"""The run layout: formatting and parsing paths, the Snakemake templates, checkpoints set aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectome_gnn import layout
from connectome_gnn.config import ConfigError


@pytest.mark.parametrize(
    ("model", "sparsity", "cfg", "seed", "text"),
    [
        ("signal_N2", 1.0, "default", 0, "1"),
        ("flyvis_049", "0.50", "flyvis_cpu", 3, "0.5"),
        ("m", 0.05, "landscape.v2", 12, "0.05"),  # a dot in the cfg name is not a file suffix
    ],
)
def test_run_dir_round_trip(tmp_path, model, sparsity, cfg, seed, text):
    run = layout.run_dir(tmp_path / "results", model, sparsity, cfg, seed)
    assert run == tmp_path / "results" / model / text / cfg / f"seed{seed}"
    expected = {"model": model, "sparsity": text, "cfg": cfg, "seed": seed}
    assert layout.parse_run_dir(run) == expected
    assert layout.parse_run_dir(run / layout.METRICS) == expected  # a file of the run
    assert layout.parse_run_dir(str(run)) == expected
    assert layout.train_dir(tmp_path / "results", model, sparsity, cfg, seed) == run / "train"


def test_patterns_format_like_the_functions():
    ids = {"model": "m", "sparsity": "0.5", "cfg": "c", "seed": 2}
    assert layout.RUN_PATTERN.format(**ids) == str(layout.run_dir("", "m", 0.5, "c", 2))
    assert layout.TRAIN_PATTERN.format(**ids) == str(layout.train_dir("", "m", 0.5, "c", 2))
    assert layout.SIMULATION_PATTERN.format(**ids) == str(layout.simulation_dir("", "m", 0.5, 2))
    assert layout.run_log_pattern("train").format(**ids) == "logs/train/m/0.5/c/seed2.log"
    assert layout.SIMULATION_LOG_PATTERN.format(**ids) == "logs/simulate/m/0.5/seed2.log"
    assert layout.TRAIN_BENCHMARK_PATTERN.format(**ids) == "benchmarks/train/m/0.5/c/seed2.tsv"


@pytest.mark.parametrize(
    "path",
    [
        "results/m/1/c/default",  # no seed directory
        "results/m/1/c/seedX",
        "results/m/1/c/seed1.5/metrics.json",
        "c/seed0",  # too short for model/sparsity/cfg/seed
        "1/c/seed0/metrics.json",
        "",
    ],
)
def test_parse_run_dir_rejects_other_shapes(path):
    assert layout.parse_run_dir(Path(path)) is None


def test_format_sparsity_rejects_bad_values():
    with pytest.raises(ConfigError):
        layout.run_dir("results", "m", 0, "c", 0)


def test_set_aside_checkpoints_lives_in_layout(tmp_path):
    from connectome_gnn import workflow

    assert workflow.set_aside_checkpoints is layout.set_aside_checkpoints  # still importable
    info = tmp_path / "train" / layout.TRAIN_INFO
    info.parent.mkdir()
    info.write_text("{}")
    (info.parent / layout.CHECKPOINT).write_bytes(b"x")
    moved = layout.set_aside_checkpoints([info, tmp_path / "none" / layout.TRAIN_INFO])
    assert moved == [info.parent / layout.FAILED_CHECKPOINT]
    assert not (info.parent / layout.CHECKPOINT).exists()
