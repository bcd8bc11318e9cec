"""Root pytest configuration.

Notebooks read INTERMOE_SMOKE to choose their sizes; under pytest they always run the small smoke size,
whatever the caller's environment says, so the test suite stays fast. nbval's kernels inherit this
process's environment, so setting it here, before any kernel starts, is enough.
"""
import os
import sys

os.environ["INTERMOE_SMOKE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")  # tests draw without a screen; notebooks use their inline backend
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tests"))
