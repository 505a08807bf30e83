import pytest

from connectome_gnn.config import (
    ConfigError,
    format_sparsity,
    load_train_config,
    load_yaml,
    validate,
)
from connectome_gnn.families.workflow_config import load_workflow_config


def _wf(**over):
    cfg = {
        "models": {"m": {"family": "signal", "n_neurons": 10}},
        "grid": {"model": ["m"], "sparsity": [1.0], "cfg": ["default"], "seed": [0]},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    return cfg


def test_defaults_are_filled():
    cfg = load_workflow_config(_wf())
    assert cfg["device"] == "auto" and cfg["train_config_dir"] == "config/train"
    m = cfg["models"]["m"]
    assert m["n_types"] == 4 and m["dt"] == 0.01 and m["params"][1] == [10.0, 2.0, 1.0]
    t = validate({}, "train")
    assert t["batch_size"] == 8 and t["coeff_W_L1"] == 0.0


@pytest.mark.parametrize(
    "cfg, field, text",
    [
        (_wf(grid__sparsity=[0.5, 1.5]), "grid.sparsity[1]", "maximum"),
        (_wf(grid__sparsity=[0.0]), "grid.sparsity[0]", "less than or equal"),
        (_wf(grid__seed=[-1]), "grid.seed[0]", "minimum"),
        (_wf(grid__seed=["a"]), "grid.seed[0]", "not of type"),
        (_wf(grid__cfg=["simulation"]), "grid.cfg[0]", "does not match"),
        (_wf(grid__model=["nope"]), "grid.model", "not defined"),
        (_wf(colour="blue"), "<top level>", "unknown key"),
        (_wf(models={"m": {"family": "signal", "n_neurons": 0}}), "n_neurons", "minimum"),
        (_wf(models={"m": {"family": "signal", "n_neurons": "ten"}}), "n_neurons", "not of type"),
        (_wf(models={"m": {"family": "signal", "typo": 1}}), "models.m", "unknown key"),
        (_wf(models={"m": {"family": "nope"}}), "models.m.family", "unknown model family"),
        (_wf(models={"m": {"family": "signal", "n_types": 3}}), "params", "n_types is 3"),
        (_wf(models={"m": {"family": "signal", "dt": float("nan")}}), "dt", "not a finite"),
        (_wf(device="gpu0"), "device", "does not match"),
    ],
)
def test_bad_workflow_config_names_the_field(cfg, field, text):
    with pytest.raises(ConfigError) as info:
        load_workflow_config(cfg, source="cfg.yaml")
    msg = str(info.value)
    assert msg.startswith("cfg.yaml") and field in msg and text in msg


@pytest.mark.parametrize(
    "content, text",
    [
        ("lr_W: -1\n", "field 'lr_W'"),
        ("lr_W: fast\n", "field 'lr_W'"),
        ("batch_size: 0\n", "field 'batch_size'"),
        ("learning_rate: 1\n", "unknown key"),
        ("lr_W: [1, 2\n", "malformed YAML (line"),
        ("- a\n- b\n", "expected a mapping"),
        ("loss: huber\n", "field 'loss'"),
    ],
)
def test_bad_train_config(tmp_path, content, text):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    assert str(path) in str(info.value) and text in str(info.value)


def test_empty_train_config_gets_all_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_train_config(path)["lr_W"] == 1e-3


def test_missing_file():
    with pytest.raises(ConfigError, match="nothere.yaml: file not found"):
        load_yaml("nothere.yaml")


def test_shipped_configs_are_valid(repo_root):
    cfg = load_workflow_config(load_yaml(repo_root / "config/config.yaml"))
    for name in cfg["grid"]["cfg"]:
        load_train_config(repo_root / "config/train" / f"{name}.yaml")
    for path in (repo_root / "config/train").glob("*.yaml"):
        load_train_config(path)


def test_format_sparsity():
    assert format_sparsity(1.0) == "1" and format_sparsity("0.50") == "0.5"
    assert format_sparsity(0.05) == "0.05"
    for bad in (0, 1.2, "x"):
        with pytest.raises(ConfigError):
            format_sparsity(bad)


def test_rerun_failed_sets_failed_checkpoints_aside(tmp_path):
    from connectome_gnn.cli import failed_runs, set_aside_checkpoints

    for name, status in (("ok", "ok"), ("bad", "failed")):
        train = tmp_path / f"m/1/{name}/seed0/train"
        train.mkdir(parents=True)
        (train / "train_info.json").write_text(f'{{"status": "{status}"}}')
        (train / "checkpoint.pt").write_bytes(b"x")
    failed = failed_runs(tmp_path)
    assert [p.parts[-4] for p in failed] == ["bad"]
    set_aside_checkpoints(failed)
    assert (tmp_path / "m/1/bad/seed0/train/checkpoint.failed.pt").is_file()
    assert not (tmp_path / "m/1/bad/seed0/train/checkpoint.pt").exists()
    assert (tmp_path / "m/1/ok/seed0/train/checkpoint.pt").is_file()


def test_cli_version_and_help_for_every_option(capsys):
    import argparse

    from connectome_gnn import __version__, cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert (
        exc.value.code == 0 and capsys.readouterr().out.strip() == f"connectome-gnn {__version__}"
    )
    # every option and positional of every subcommand says what it is
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subs) >= {"failed", "rerun-failed", "regenerate", "explore", "explore-report"}
    for name, sub in subs.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"connectome-gnn {name}: {action.dest} has no help text"
