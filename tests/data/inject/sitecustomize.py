"""Test-only fault injection: the first train job of a workflow dies as if its node failed.

Put this directory on PYTHONPATH; set CONNECTOME_GNN_FAIL_ONCE to a marker path.  The first
Python process running Snakemake's copy of scripts/train.py creates the marker and exits 75
(EX_TEMPFAIL): before doing anything, or, with CONNECTOME_GNN_FAIL_AT=end, after the script
has done its work (its outputs written, as when a pack dies after one of its members finished).
Later attempts run normally.
"""

import atexit
import os
import sys

_marker = os.environ.get("CONNECTOME_GNN_FAIL_ONCE")
if _marker and any(arg.endswith("train.py") for arg in sys.argv) and not os.path.exists(_marker):
    open(_marker, "w").close()
    if os.environ.get("CONNECTOME_GNN_FAIL_AT", "start") == "end":
        atexit.register(os._exit, 75)
    else:
        sys.exit(75)
