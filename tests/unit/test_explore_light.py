"""What the exploration's processes import (issue 18): the driver and ``status`` (login node)
never import torch, and the checkpoint scorer, a process started at every score report,
imports torch and the metric functions but not the training stack (torch_geometric) nor
matplotlib."""

import json
import subprocess
import sys

CHECK = """
import json, sys
{imports}
print(json.dumps(sorted(m for m in {watched} if m in sys.modules)))
"""
WATCHED = ["torch", "torch_geometric", "matplotlib", "connectome_gnn.train", "sklearn"]


def _loaded(*imports: str) -> list[str]:
    code = CHECK.format(imports="\n".join(imports), watched=WATCHED)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_driver_and_status_do_not_import_torch():
    assert _loaded("import connectome_gnn.explore.driver, connectome_gnn.explore.status") == []


def test_scorer_imports_only_what_the_score_needs():
    loaded = _loaded(
        "import connectome_gnn.explore.checkpoint_score as cs",
        "import torch",
        "from connectome_gnn.analysis.clustering import kmeans_types",
        "from connectome_gnn.analysis.metrics import connectivity_metrics",
        "from connectome_gnn.families import get_family",
        "get_family('signal')",
    )
    assert loaded == ["sklearn", "torch"]
