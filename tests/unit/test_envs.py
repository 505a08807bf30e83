"""The conda environments (envs/*.yaml), checked offline: CI reaches no conda channel.

Each env file must parse, use conda-forge only, pin every package exactly to a version listed in
envs/conda-forge-packages.yaml (each verified on its conda-forge feedstock), satisfy pyproject's
requirements, agree in major version with what the test venv runs, leave Snakemake out, and come
with a post-deploy script that installs the library and flyvis. A site checks that the envs
really build with `snakemake --sdm conda --conda-create-envs-only` (README).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
ENV_FILES = [p for p in ENVS if p.name != "conda-forge-packages.yaml"]
VERIFIED = yaml.safe_load((REPO / "envs/conda-forge-packages.yaml").read_text())["packages"]
# conda match spec "name =1.2.3" / "name ==1.2.3" / "name 1.2.3" (no wildcard, no range)
SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?:==?|\s)\s*(?P<version>[0-9][0-9A-Za-z.]*)$")
NOT_IN_JOB_ENVS = ("snakemake", "snakemake-executor-plugin-slurm")


def _deps(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    out = {}
    for dep in env["dependencies"]:
        assert isinstance(dep, str), f"{path.name}: {dep!r}: no pip section (post-deploy instead)"
        m = SPEC.match(dep.strip())
        assert m, f"{path.name}: {dep!r} is not an exact pin"
        out[m["name"]] = m["version"]
    return out


def _pyproject_requirements() -> list[Requirement]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [Requirement(r) for r in data["project"]["dependencies"]]


def test_there_are_a_cpu_and_a_gpu_env():
    assert [p.name for p in ENV_FILES] == ["cpu.yaml", "gpu.yaml"]


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_is_conda_forge_only_and_exactly_pinned_to_verified_versions(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    assert "name" not in env  # Snakemake names its envs by hash
    for name, version in _deps(path).items():
        assert name in VERIFIED, f"{path.name}: {name} is not in envs/conda-forge-packages.yaml"
        assert version == str(VERIFIED[name]["version"]), (path.name, name, version)
        assert name not in NOT_IN_JOB_ENVS


def test_verified_list_names_where_each_version_was_checked():
    for name, entry in VERIFIED.items():
        assert entry["feedstock"].endswith("-feedstock"), name
        assert str(entry["version"])[0].isdigit(), name
        if name not in ("python", "cuda-version"):
            assert re.fullmatch(r"[0-9a-f]{7,40}", str(entry["commit"])), name
    used = {name for path in ENV_FILES for name in _deps(path)}
    assert used == set(VERIFIED), "list and env files disagree"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_provides_every_library_requirement_at_an_allowed_version(path):
    deps = _deps(path)
    by_pypi = {e["pypi"].lower(): n for n, e in VERIFIED.items() if e["pypi"] and n in deps}
    assert ("pytorch-gpu" in deps) == (path.name == "gpu.yaml")
    for req in _pyproject_requirements():
        conda_name = by_pypi.get(req.name.lower())
        assert conda_name, f"{path.name}: nothing provides {req.name}"
        assert req.specifier.contains(deps[conda_name]), (path.name, str(req), deps[conda_name])
    python = Version(deps["python"] + ".0")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Requirement(f"python{requires}").specifier.contains(python)


def test_pins_have_the_major_versions_the_tests_run_with():
    """The env differs from the test venv at most in minor/patch releases (conda-forge can lag
    PyPI); a major version apart would be an untested combination."""
    for name, entry in VERIFIED.items():
        if not entry["pypi"] or name in ("pip", "setuptools"):  # they only install the library
            continue
        try:
            installed = Version(metadata.version(entry["pypi"]))
        except metadata.PackageNotFoundError:
            continue
        pinned = Version(str(entry["version"]))
        if entry.get("major_differs"):  # stated in the list, with the reason
            assert installed.major != pinned.major, f"{name}: drop its major_differs note"
            continue
        assert installed.major == pinned.major, (name, str(installed), str(pinned))
        assert pinned.release[:2] <= installed.release[:2], (name, str(installed), str(pinned))


def test_zarr_3_and_python_agree():
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"
    zarr = next(r for r in _pyproject_requirements() if r.name == "zarr")
    assert zarr.specifier.contains("3.0.0") and not zarr.specifier.contains("2.18.0")
    assert "Python ≥ 3.11" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_post_deploy_script_installs_the_library_and_flyvis(path):
    script = path.with_name(path.stem + ".post-deploy.sh")
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    lines = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    # the repository comes from the environment, never from a path relative to the script
    # (Snakemake runs a copy under .snakemake/conda/)
    assert any("${CONNECTOME_GNN_SOURCE:?" in line for line in lines)
    assert not any(".." in line.split("#")[0] for line in lines)
    installs = [line for line in lines if "pip install" in line]
    assert all("--no-deps" in line for line in installs)
    assert any(line.endswith('-e "$src"') for line in installs)
    assert any(line.endswith("flyvis==1.2.0") for line in installs)
    assert not any(name in line for line in lines for name in NOT_IN_JOB_ENVS)


def test_workflow_tells_the_post_deploy_script_where_the_repository_is():
    common = (REPO / "rules/common.smk").read_text()
    assert 'os.environ.setdefault("CONNECTOME_GNN_SOURCE", str(REPO_DIR))' in common
    for rule_file in ("simulate", "train", "analyze", "aggregate"):
        text = (REPO / f"rules/{rule_file}.smk").read_text()
        for env in re.findall(r'"\.\./(envs/[^"]+)"', text):
            assert (REPO / env).is_file() and (REPO / env).name in {p.name for p in ENV_FILES}
