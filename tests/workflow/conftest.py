import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def snakemake_cmd(workdir: Path, repo: Path, *args: str) -> list[str]:
    """The snakemake command line of the tests (the repository's Snakefile, no profile)."""
    return [
        str(BIN / "snakemake"),
        "--snakefile",
        str(repo / "Snakefile"),
        "--directory",
        str(workdir),
        "--workflow-profile",
        "none",
        *args,
    ]


def snakemake(
    workdir: Path, *args: str, repo: Path, timeout: int = 900
) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(workdir, repo, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def edit_yaml(path: Path, **changes) -> dict:
    """Update top-level keys of a YAML file (a dict value updates that mapping); returns it."""
    data = yaml.safe_load(path.read_text()) or {}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return data


def set_model(work: Path, model: str = "signal_N2", **settings) -> None:
    """Change settings of one simulator instance in the work directory's config.yaml."""
    path = work / "config/config.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"].setdefault(model, {}).update(settings)
    path.write_text(yaml.safe_dump(data))


def make_workdir(tmp: Path, repo: Path, extra_cfgs: dict[str, Path] | None = None, **grid) -> Path:
    """A working directory with a copy of the shipped config (optionally more cfgs / another grid)."""
    shutil.copytree(repo / "config", tmp / "config", symlinks=False)
    cfg = yaml.safe_load((repo / "config/config.yaml").read_text())
    for name, path in (extra_cfgs or {}).items():
        shutil.copy(path, tmp / "config/train" / f"{name}.yaml")
        cfg["grid"]["cfg"].append(name)
    cfg["grid"].update(grid)
    (tmp / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp


@pytest.fixture
def run_snakemake(repo_root):
    def _run(workdir, *args, **kw):
        return snakemake(workdir, *args, repo=repo_root, **kw)

    return _run
