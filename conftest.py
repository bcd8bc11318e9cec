"""Root pytest configuration.

Notebooks read INTERMOE_SMOKE to choose their sizes; under pytest they always run the small smoke size,
whatever the caller's environment says, so the test suite stays fast. nbval's kernels inherit this
process's environment, so setting it here, before any kernel starts, is enough (INTERMOE_DEVICE too).
"""
import os

os.environ["INTERMOE_SMOKE"] = "1"
# The suite runs on the CPU even where a GPU is present: several tests compare results with CPU-made ones
# bit for bit. `im.pick_device()` reads this; a test about the GPU passes device="cuda" itself.
os.environ["INTERMOE_DEVICE"] = "cpu"
os.environ.setdefault("MPLBACKEND", "Agg")  # tests draw without a screen; notebooks use their inline backend
