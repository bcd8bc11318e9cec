"""The command line: `python -m intersynth` generates and caches the default set and prints a summary;
--check also measures the physics and how people move (those reports measure with intermoe_eval's
functions, so they live on the tools side, in intermoe_tools/synth_report.py, and only --check loads them)."""
import argparse
import time

import numpy as np

from . import __doc__ as package_doc, dataset
from .body import FPS


def _summary(clips, seconds):
    from collections import Counter
    types = Counter(c["meta"]["type"] for c in clips)
    splits = Counter(dataset.split_of(i) for i in range(len(clips)))
    lengths = np.array([c["joints"].shape[1] for c in clips])
    print(f"{len(clips)} clips, {lengths.sum()} frames ({lengths.sum() / FPS / 60:.1f} min), "
          f"length min/median/max {lengths.min()}/{int(np.median(lengths))}/{lengths.max()}, "
          f"{((lengths >= 60) & (lengths <= 200)).mean() * 100:.0f}% of clips 60-200 frames")
    print("per type:  " + ", ".join(f"{k} {v}" for k, v in sorted(types.items())))
    print("per split: " + ", ".join(f"{k} {splits[k]}" for k in dataset.SPLITS))
    print(f"time {seconds:.1f} s, arrays in memory {dataset.nbytes(clips) / 2 ** 20:.0f} MiB")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m intersynth", description=package_doc.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="measure physical plausibility")
    ap.add_argument("--n", type=int, default=None, help=f"number of clips (default {dataset.DEFAULT_N_CLIPS}, cached)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not 0 <= args.seed < 2 ** 63:  # numpy's generators take seeds >= 0; the cache's name holds it as int64
        ap.error(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
    if args.n is not None:
        try:
            dataset.check_n_clips(args.n, name="--n")
        except ValueError as err:
            ap.error(str(err))  # prints usage and the message, exits with status 2
    t0 = time.time()
    if args.n is None:
        clips = dataset.load_all(dataset.DEFAULT_N_CLIPS, args.seed, verbose=True)
        print(f"cache: {dataset._cache_file(None, dataset.DEFAULT_N_CLIPS, args.seed)}")
    else:
        clips = dataset.generate(args.n, args.seed)
    _summary(clips, time.time() - t0)
    if args.check:
        from intermoe_tools.synth_report import motion_report, physics_report  # tools side: see the docstring
        r = physics_report(clips)
        print("physics report:")
        for k, v in r.items():
            print(f"  {k:28s} {v:.4g}" if isinstance(v, float) else f"  {k:28s} {v}")
        m = motion_report(clips, by_type=True)
        print("motion report (does it move like people?):")
        for k, v in m.items():
            if k != "by_type":
                print(f"  {k:28s} {v:.4g}" if isinstance(v, float) else f"  {k:28s} {v}")
        cols = ("frozen_pct", "jerk_median", "knee_deg_p1", "elbow_deg_p1", "elbow_deg_p99", "wrist_speed_median",
                "pelvis_speed_p90", "slide_cm_p90")
        print(f"  {'type':14s}" + "".join(f"{c:>19s}" for c in cols))
        for kind, mk in m["by_type"].items():
            print(f"  {kind:14s}" + "".join(f"{mk[c]:19.3g}" for c in cols))


if __name__ == "__main__":
    main()
