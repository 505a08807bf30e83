#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) right after it created the environment of envs/gpu.yaml, with
# that environment activated and the working directory as current directory. Snakemake runs a
# copy (.snakemake/conda/<hash>.post-deploy.sh), so this script cannot find the repository from
# its own path: rules/common.smk puts it in CONNECTOME_GNN_SOURCE (a directory: installed
# editable, so the jobs run the repository's code; anything else is handed to pip as it is,
# e.g. git+https://github.com/<owner>/connectome-gnn@<tag> for a remote module).
set -euo pipefail
src="${CONNECTOME_GNN_SOURCE:?not set: run Snakemake on this workflow, or set it to this repository}"
if [ -d "$src" ]; then
    python -m pip install --no-deps --no-build-isolation --disable-pip-version-check -e "$src"
else
    python -m pip install --no-deps --no-build-isolation --disable-pip-version-check "$src"
fi
# flyvis (MIT) only for its connectome JSON, read at run time; --no-deps: its dependencies would
# pull another torch (tools/install.sh does the same)
python -m pip install --no-deps --disable-pip-version-check flyvis==1.2.0
python -c "import connectome_gnn, torch; print('connectome-gnn', connectome_gnn.__version__, '| torch', torch.__version__)"
