"""The command line: `python -m intersynth` generates and caches the default set and prints a summary (`main` returns
the clips). How physical they are and how they move is measured on the tools side, with the evaluation's functions:
`python -m intermoe_tools.synth_report`."""
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


def main(argv=None, prog: str = "python -m intersynth"):
    ap = argparse.ArgumentParser(prog=prog, description=package_doc.split("\n")[0])
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
    return clips


if __name__ == "__main__":
    main()
