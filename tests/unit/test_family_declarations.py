"""Family declarations (metric names, score weights, search space): read without torch, the
same as the classes say, and a third family is one new module."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from connectome_gnn import families
from connectome_gnn.config import ConfigError
from connectome_gnn.families import DECLARATIONS, available_families, family_declaration

THIRD_FAMILY = """
from connectome_gnn.families.base import Family


class ThirdFamily(Family):
    name = "third"
    model_schema = "signal.model"
    metric_names = ("gain_R2",)
    headline_metrics = ("gain_R2",)
    score_weights = {"connectivity_R2": 0.2, "test_R2": 0.8}
    {extra}

    def simulate(self, model_cfg, sparsity, seed, out_dir):
        raise NotImplementedError

    def true_dynamics(self, sim):
        raise NotImplementedError

    def build_model(self, sim, train_cfg):
        raise NotImplementedError

    def readouts(self, model, sim):
        raise NotImplementedError
"""


@pytest.fixture
def third_family(tmp_path, monkeypatch):
    """Register family 'third' (module third_family.py in tmp_path); returns a function that
    writes the module with an extra class-body line."""

    def write(extra: str = 'search_space = {"lr_W": {"low": 1e-4, "high": 1e-2, "log": True}}'):
        (tmp_path / "third_family.py").write_text(THIRD_FAMILY.replace("{extra}", extra))
        families._declarations.cache_clear()
        sys.modules.pop("third_family", None)

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(families._REGISTRY, "third", "third_family:ThirdFamily")
    write()
    yield write
    families._declarations.cache_clear()
    sys.modules.pop("third_family", None)


@pytest.mark.parametrize("name", available_families())
def test_declarations_are_the_class_attributes(name):
    cls = type(families.get_family(name))
    for key in DECLARATIONS:
        assert family_declaration(name, key) == getattr(cls, key), (name, key)


def test_declarations_are_read_without_importing_the_family_modules():
    code = textwrap.dedent(
        """
        import sys
        from connectome_gnn.families import DECLARATIONS, available_families, family_declaration
        import connectome_gnn.aggregate, connectome_gnn.explore
        for name in available_families():
            for key in DECLARATIONS:
                family_declaration(name, key)
        loaded = [m for m in ("torch", "connectome_gnn.families.signal",
                              "connectome_gnn.families.flyvis") if m in sys.modules]
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_declarations_are_copies():
    family_declaration("flyvis", "search_space")["lr_W"]["low"] = 1.0
    assert family_declaration("flyvis", "search_space")["lr_W"]["low"] == 1e-4


def test_unknown_family_and_unknown_key():
    with pytest.raises(ConfigError, match=r"here: unknown model family 'nope' \(available: flyvis"):
        family_declaration("nope", "score_weights", source="here")
    with pytest.raises(ValueError, match="not a family declaration"):
        family_declaration("signal", "readouts")


def test_a_third_family_is_one_module(third_family):
    assert family_declaration("third", "score_weights") == {"connectivity_R2": 0.2, "test_R2": 0.8}
    assert family_declaration("third", "metric_names") == ("gain_R2",)
    assert family_declaration("third", "pareto_metrics") == ()  # the base class default
    assert "third_family" not in sys.modules  # read from the source
    third_family("")  # no search space
    with pytest.raises(ConfigError, match="x: model family 'third' declares no search_space"):
        family_declaration("third", "search_space", source="x")


def test_declarations_that_are_not_literals_are_imported(third_family):
    third_family("search_space = dict(lr_W={'low': 1e-4, 'high': 1e-2})")
    assert family_declaration("third", "search_space") == {"lr_W": {"low": 1e-4, "high": 1e-2}}
    assert "third_family" in sys.modules  # imported, the source could not give it
    assert family_declaration("third", "score_weights") == {"connectivity_R2": 0.2, "test_R2": 0.8}


def test_metric_names_of_the_summaries_are_unchanged():
    from connectome_gnn.aggregate.columns import HEADLINE_METRICS, KNOWN_METRICS, PARETO_METRICS
    from connectome_gnn.explore.log import LOG_METRICS

    flyvis = ("tau_R2", "V_rest_R2", "tau_R2_active", "V_rest_R2_active")
    flyvis += ("tau_R2_identifiable", "V_rest_R2_identifiable")
    assert KNOWN_METRICS == (
        "connectivity_R2",
        "connectivity_R2_raw",
        "connectivity_slope",
        "W_pearson",
        "sign_match",
        "MagRatio",
        "in_sum_pearson",
        "out_sum_pearson",
        "cluster_accuracy",
        "cluster_accuracy_single_linkage",
        "test_R2",
        "test_pearson",
        "data_mse_rel",  # the data loss of the learned and the true model (issue 16)
        "data_mse",
        "data_mse_true",
        "field_R2",  # a learned input (issue 17)
        "field_pearson",
        *flyvis,
        "final_loss",
        "training_time_min",
    )
    training = ("test_R2", "test_pearson", "final_loss", "training_time_min")
    assert HEADLINE_METRICS == (
        "connectivity_R2",
        "cluster_accuracy",
        "tau_R2",
        "V_rest_R2",
        "field_R2",
        *training,
    )
    assert PARETO_METRICS == (
        "connectivity_R2",
        "cluster_accuracy",
        "test_R2",
        "tau_R2",
        "V_rest_R2",
        "field_R2",
    )
    assert LOG_METRICS == (
        "connectivity_R2",
        "tau_R2",
        "V_rest_R2",
        "field_R2",
        "cluster_accuracy",
        *training,
    )


# ---------------------------------------------------------------------------------------------
# the aggregator scores every run with the weights of its own family
# ---------------------------------------------------------------------------------------------


def _mixed_grid(root):
    from .test_aggregate import make_run

    return [
        # signal: 0.6 R2 + 0.4 acc -> a 0.54 + 0.20 = 0.74, b 0.42 + 0.38 = 0.80 (best)
        make_run(root, model="signal_N2", cfg="a", connectivity_R2=0.9, cluster_accuracy=0.5),
        make_run(root, model="signal_N2", cfg="b", connectivity_R2=0.7, cluster_accuracy=0.95),
        # flyvis, weights patched to 0.5 R2 + 0.5 tau_R2 -> a 0.45 + 0.40 = 0.85 (best),
        # b 0.35 + 0.10 = 0.45 (with the signal weights b would win: 0.80 against 0.74)
        make_run(
            root,
            model="flyvis_049",
            cfg="a",
            family="flyvis",
            connectivity_R2=0.9,
            cluster_accuracy=0.5,
            tau_R2=0.8,
        ),
        make_run(
            root,
            model="flyvis_049",
            cfg="b",
            family="flyvis",
            connectivity_R2=0.7,
            cluster_accuracy=0.95,
            tau_R2=0.2,
        ),
    ]


@pytest.fixture
def flyvis_weights(monkeypatch):
    """FlyVis scored with 0.5 connectivity_R2 + 0.5 tau_R2 (its real weights equal signal's)."""
    declared = families._declarations("connectome_gnn.families.flyvis", "FlyVisFamily")
    monkeypatch.setitem(declared, "score_weights", {"connectivity_R2": 0.5, "tau_R2": 0.5})


def test_mixed_grid_scores_each_run_by_its_family(tmp_path, flyvis_weights):
    from connectome_gnn.aggregate import aggregate, best_runs, load_runs, row_scores

    runs = load_runs(_mixed_grid(tmp_path))
    scores = dict(zip(runs["model"] + "/" + runs["cfg"], row_scores(runs), strict=True))
    assert scores == pytest.approx(
        {"flyvis_049/a": 0.85, "flyvis_049/b": 0.45, "signal_N2/a": 0.74, "signal_N2/b": 0.80}
    )
    best = best_runs(runs).set_index("model")
    assert best.loc["signal_N2", "cfg"] == "b"
    assert best.loc["signal_N2", "score"] == pytest.approx(0.80)
    assert best.loc["flyvis_049", "cfg"] == "a"
    assert best.loc["flyvis_049", "score"] == pytest.approx(0.85)
    # explicit weights replace the families' for every run
    forced = best_runs(runs, score_weights={"cluster_accuracy": 1.0}).set_index("model")
    assert forced["cfg"].tolist() == ["b", "b"]
    # the rule's entry point and the analysis of the same runs use the same scores
    tables = aggregate(_mixed_grid(tmp_path), tmp_path / "out", analysis_dir=tmp_path / "an")
    assert tables["best"].set_index("model")["score"].to_dict() == pytest.approx(
        {"flyvis_049": 0.85, "signal_N2": 0.80}
    )
    analysis_best = pd.read_csv(tmp_path / "an" / "best.csv").set_index("model")
    assert analysis_best["cfg"].to_dict() == {"flyvis_049": "a", "signal_N2": "b"}


def test_mixed_grid_with_the_real_weights(tmp_path):
    from connectome_gnn.aggregate import best_runs, load_runs

    best = best_runs(load_runs(_mixed_grid(tmp_path))).set_index("model")
    # flyvis declares 0.6 R2 + 0.4 acc too: b wins in both models
    assert best["cfg"].to_dict() == {"flyvis_049": "b", "signal_N2": "b"}
    assert best["score"].tolist() == pytest.approx([0.80, 0.80])


def test_a_third_family_scores_its_runs(tmp_path, third_family):
    from connectome_gnn.aggregate import best_runs, load_runs

    from .test_aggregate import make_run

    paths = [
        # third: 0.2 R2 + 0.8 test_R2 -> a 0.18 + 0.40 = 0.58, b 0.10 + 0.72 = 0.82 (best)
        make_run(tmp_path, model="t", cfg="a", family="third", connectivity_R2=0.9, test_R2=0.5),
        make_run(tmp_path, model="t", cfg="b", family="third", connectivity_R2=0.5, test_R2=0.9),
        # signal: 0.6 * 0.95 + 0.4 * 0.95 = 0.95
        make_run(tmp_path, model="s", cfg="a"),
    ]
    best = best_runs(load_runs(paths)).set_index("model")
    assert best["cfg"].to_dict() == {"s": "a", "t": "b"}
    assert best["score"].to_dict() == pytest.approx({"s": 0.95, "t": 0.82})


def test_unscorable_families_name_the_run(tmp_path, flyvis_weights):
    from connectome_gnn.aggregate import best_runs, load_runs
    from connectome_gnn.errors import DataError

    from .test_aggregate import make_run

    bad = make_run(tmp_path, model="x", family="nope")
    with pytest.raises(ConfigError, match=rf"{bad.parent}: field 'family': unknown model family"):
        best_runs(load_runs([bad]))
    none = make_run(tmp_path, model="y", family=None)
    with pytest.raises(DataError, match=rf"{none.parent}: no 'family' recorded"):
        best_runs(load_runs([none]))
    # a failed run needs no score, so no family; a family cell without a scorable run says
    # which metrics its family weighs
    failed = make_run(tmp_path, model="z", family=None, status="failed")
    no_tau = make_run(tmp_path, model="f", family="flyvis")
    best = best_runs(load_runs([failed, no_tau])).set_index("model")
    assert best.loc["z", "reason"] == "no ok run"
    assert best.loc["f", "reason"] == "no ok run with finite connectivity_R2, tau_R2"


def test_flyvis_metric_names_are_the_parameter_metrics_of_its_analysis():
    """metric_names lists the R2 metrics the analysis reports from the family's
    neuron_parameters and neuron_subsets ({name}_R2, {name}_R2_{mask})."""
    cls = type(families.get_family("flyvis"))
    params, masks = cls.neuron_parameters, cls.neuron_subsets
    reported = [f"{p}_R2" for p in params] + [f"{p}_R2_{m}" for m in masks for p in params]
    assert family_declaration("flyvis", "metric_names") == tuple(reported)
