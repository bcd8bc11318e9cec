"""Generating, caching and splitting the dataset: one clip from its seed and index (`make_clip`), many in
worker processes (`generate`), the whole set cached in one .npz under data/cache/ (`load_all`), and its
80/10/10 splits (`load_split`, the loader the rest of the project uses)."""
import json
import os
import sys
import time
import zipfile

import numpy as np
from scipy.ndimage import gaussian_filter1d

import intermoe_min as im
from intermoe_tools.checks import check_int

from .body import FPS, sample_body
from .captions import make_captions
from .interactions import BUILDERS, INTERACTION_TYPES, KEY_NAMES
from .life import add_life
from .solve import solve_limbs, solve_trunk
from .staging import Cast

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # data/cache/ lies there

DEFAULT_N_CLIPS = 3000
CACHE_VERSION = 15          # bump when the generator changes, so stale caches are not reused
SPLITS = {"train": range(0, 8), "val": range(8, 9), "test": range(9, 10)}  # by clip index mod 10
SHORT_CLIP_PROB = 0.1      # share of clips cut short (15-60 frames) around a key event
CLIP_BYTES = 220 * 2 ** 10  # a clip's arrays in memory, measured with nbytes (the default set: ~640 MiB)
PEAK_FACTOR = 3            # generating and packing peaks at ~2.3-2.8x that (measured RSS); 3 to be safe


def _available_memory():
    """Bytes of memory free for use now (Linux's MemAvailable, else the free pages; within a container's
    cgroup limit, if it sets one), or None if unknown."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            free = next((int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")), None)
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):  # not on this platform: no memory check
            return None
    try:  # a container's limit (cgroup v2: Docker, notebook services) can be far below the machine's memory
        with open("/sys/fs/cgroup/memory.max") as f_max, open("/sys/fs/cgroup/memory.current") as f_now:
            limit = f_max.read().strip()
            if limit != "max":
                free = min(free, int(limit) - int(f_now.read()))
    except (OSError, ValueError):
        pass
    return free


def check_n_clips(n_clips, name: str = "n_clips", generating: bool = True) -> int:
    """`n_clips` as an int, or a TypeError / ValueError naming `name` that says what was expected: a whole
    number of clips, at least 1, and (when `generating`) few enough that generating them fits in memory."""
    n = check_int(n_clips, name, low=1)  # the library's check: integer types only, at least 1
    free, per_clip = _available_memory(), CLIP_BYTES * PEAK_FACTOR
    if generating and free is not None and n * per_clip > free:
        raise ValueError(f"{name}={n} is too many: generating them needs about {n * per_clip / 2 ** 30:.1f} GiB "
                         f"of memory ({per_clip // 2 ** 10} KiB a clip at peak) and {free / 2 ** 30:.1f} GiB "
                         f"is available, so at most about {free // per_clip} clips fit")
    return n


def clip_type(seed: int, i: int) -> str:
    """Interaction type of clip i: every block of 14 consecutive clips holds each type once."""
    n = len(INTERACTION_TYPES)
    perm = np.random.default_rng([seed, i // n, 7]).permutation(n)
    return INTERACTION_TYPES[perm[i % n]]


def split_of(i: int) -> str:
    """Deterministic 80/10/10 split by clip index."""
    return next(s for s, r in SPLITS.items() if i % 10 in r)


def make_clip(seed: int, i: int) -> dict:
    """Clip i of the dataset with this seed (independent of how many clips are generated)."""
    rng = np.random.default_rng([seed, i])
    kind = clip_type(seed, i)
    bodies = [sample_body(rng), sample_body(rng)]
    ini = int(rng.integers(2))
    tempo = float(rng.uniform(0.85, 1.2))
    built = BUILDERS[kind](Cast(rng, bodies, ini, tempo))
    built.flags.setdefault("slow", tempo > 1.12)  # captions say "slowly" only where the motion is slow
    built.flags.setdefault("fast", tempo < 0.9)
    touching = np.zeros(built.T)  # contact windows, widened by half a second: the two hold still there
    for t0, t1, *_ in built.contacts + built.holds:
        touching[max(0, t0 - FPS // 2):t1 + FPS // 2 + 1] = 1.0
    free = 1.0 - 0.5 * gaussian_filter1d(touching, 4.0, mode="nearest")  # touching: sway damped, not gone
    for p in (0, 1):
        add_life(built.plans[p], bodies[p], rng, free)
    tors = [solve_trunk(built.plans[p], bodies[p]) for p in (0, 1)]
    built.arms(tors)
    solved = [solve_limbs(tor) for tor in tors]
    joints = np.stack([s[0] for s in solved])                 # (2, T, 22, 3)
    local = np.stack([s[1] for s in solved])                  # (2, T, 22, 3, 3)
    # Crop: long clips to the 300-frame limit, a few to a short window around one key event.
    T = built.T
    s, e = 0, T
    if rng.random() < SHORT_CLIP_PROB:
        kf = int(rng.choice(built.key_frames))
        L = int(rng.integers(im.MIN_FRAMES, 61))
        s = int(np.clip(kf - rng.integers(0, L), 0, max(T - L, 0)))
        e = min(T, s + L)
    if e - s > im.MAX_FRAMES:
        s = int(np.clip(min(built.key_frames) - 30, 0, e - im.MAX_FRAMES))
        e = s + im.MAX_FRAMES
    joints, local = joints[:, s:e], local[:, s:e]
    contacts = [(f - s, pa, ja, pb, jb) for (t0, t1, pa, ja, pb, jb) in built.contacts
                for f in range(t0, t1 + 1) if s <= f < e]
    contacts.sort()
    keys = [(int(f - s), name) for f, name in zip(built.key_frames, KEY_NAMES[kind]) if s <= f < e]
    meta = dict(type=kind, initiator=ini, key_frames=[f for f, _ in keys], key_names=[n for _, n in keys],
                hand=built.hand, direction=built.direction, contacts=contacts,
                heights=[round(b.height, 3) for b in bodies], **built.extra,
                offsets=np.stack([b.offsets for b in bodies]).astype(np.float32),       # (2, 22, 3)
                root_rot6d=im.rot6d_from_matrix(local[:, :, 0]).astype(np.float32))     # (2, T, 6)
    captions, meta["unseen_captions"] = make_captions(rng, kind, built, ini, test=split_of(i) == "test")
    return dict(joints=joints.astype(np.float32),
                rot6d=im.rot6d_from_matrix(local[:, :, 1:]).astype(np.float32),        # (2, T, 21, 6)
                captions=captions, meta=meta, id=f"is{i:06d}")


def _make_range(args):
    seed, i0, i1 = args
    return [make_clip(seed, i) for i in range(i0, i1)]


def generate(n_clips: int, seed: int = 0, workers: int = None) -> list:
    """Generate clips 0..n_clips-1. Deterministic: same seed, same clips, whatever `workers` is, and clip i
    does not depend on n_clips. Uses 2 processes for 400 clips or more (workers=1 to stay in-process).

    Each clip is a dict:
      joints   (2, T, 22, 3) float32  world joint positions of person 0 and 1 (m, Y up, 30 fps, SMPL order)
      rot6d    (2, T, 21, 6) float32  local rotations of joints 1..21 relative to their parents, in
                                      intermoe_min.rot6d_from_matrix layout (the rotations that drove FK)
      captions list of 3 str          InterHuman-style; one names "the first/second person" (index 0/1)
      meta     dict                   type, initiator (0/1), key_frames, key_names, hand ('left'/'right'/None:
                                      the acting hand, or the kicking leg in kick_block), direction
                                      ('clockwise'/'counterclockwise'/None, seen from above), contacts
                                      [(frame, person_a, joint_a, person_b, joint_b)], heights (m),
                                      offsets (2, 22, 3) rest skeletons, root_rot6d (2, T, 6) global pelvis
                                      rotations; some types add distance / gap / target
      id       str                    "is000123"
    `rebuild_joints(clip, person)` turns rot6d + root_rot6d + offsets + pelvis path back into joints.
    A bad n_clips (not a whole number, under 1, or too many to fit in memory) raises before any work."""
    n_clips = check_n_clips(n_clips)
    if workers is None:
        workers = 2 if n_clips >= 400 else 1
    if workers <= 1:
        return _make_range((seed, 0, n_clips))
    import multiprocessing as mp
    # fork is quick and safe on Linux; elsewhere (macOS, Windows) start fresh interpreters, which import
    # this module by its name, intersynth.dataset.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    bounds = np.linspace(0, n_clips, 8 * workers + 1).astype(int)
    jobs = [(seed, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    try:
        with ctx.Pool(workers) as pool:
            parts = pool.map(_make_range, jobs)
    except (OSError, RuntimeError, ImportError) as err:  # e.g. no process support in a sandbox
        print(f"intersynth: worker processes unavailable ({err}); generating in this process")
        return _make_range((seed, 0, n_clips))
    return [c for part in parts for c in part]


def _cache_file(cache_dir, n_clips, seed):
    cache_dir = cache_dir or os.path.join(_REPO, "data", "cache")
    return os.path.join(cache_dir, f"intersynth_v{CACHE_VERSION}_n{n_clips}_s{seed}.npz")


def pack_clips(clips: list) -> dict:
    """Move the clips' per-frame arrays into three flat buffers; each clip then holds views into them.

    One array kind at a time, so memory peaks at the clips plus one buffer. Returns the buffers."""
    kinds = (("joints", lambda c: c, "joints"), ("rot6d", lambda c: c, "rot6d"),
             ("root_rot6d", lambda c: c["meta"], "root_rot6d"))
    buffers = {}
    for name, holder, key in kinds:
        buf = np.concatenate([holder(c)[key].ravel() for c in clips])
        o = 0
        for c in clips:
            a = holder(c)[key]
            holder(c)[key] = buf[o:o + a.size].reshape(a.shape)  # the view replaces (and frees) the array
            o += a.size
        buffers[name] = buf
    return buffers


def save_clips(clips: list, path: str):
    """All clips in one plain .npz: arrays flattened and concatenated, text and metadata as JSON."""
    arrays = pack_clips(clips)
    info = [dict(id=c["id"], captions=c["captions"],
                 meta={k: v for k, v in c["meta"].items() if k not in ("offsets", "root_rot6d")}) for c in clips]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, lengths=np.array([c["joints"].shape[1] for c in clips]),
                 offsets=np.stack([c["meta"]["offsets"] for c in clips]), info=np.array(json.dumps(info)),
                 **arrays)
    os.replace(tmp, path)  # atomic: a reader never sees a half-written file


def load_clips(path: str) -> list:
    """Inverse of save_clips. Clip arrays are views into a few big buffers (no copies).
    A file cut short or corrupted raises a ValueError that names it and says to delete it."""
    try:
        return _read_clips(path)
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: this InterSynth cache file is damaged ({type(err).__name__}: {err}); "
                         "delete it and it will be generated again") from err


def _read_clips(path: str) -> list:
    with np.load(path) as z:
        lengths, offsets, info = z["lengths"], z["offsets"], json.loads(str(z["info"]))
        joints, rot6d, root = z["joints"], z["rot6d"], z["root_rot6d"]
    clips, oj, orr, oroot = [], 0, 0, 0
    for n, T in enumerate(lengths):
        T = int(T)
        meta = info[n]["meta"]
        meta["contacts"] = [tuple(c) for c in meta["contacts"]]
        meta["offsets"] = offsets[n]
        meta["root_rot6d"] = root[oroot:oroot + 2 * T * 6].reshape(2, T, 6)
        clips.append(dict(joints=joints[oj:oj + 2 * T * 66].reshape(2, T, 22, 3),
                          rot6d=rot6d[orr:orr + 2 * T * 126].reshape(2, T, 21, 6),
                          captions=info[n]["captions"], meta=meta, id=info[n]["id"]))
        oj, orr, oroot = oj + 2 * T * 66, orr + 2 * T * 126, oroot + 2 * T * 6
    return clips


# path -> clips, so train/val/test calls in one process read the file once
_LOADED = {}


def _read_or_make(path: str, n_clips: int, seed: int, verbose=False) -> list:
    """The whole set from its cache file; generated and written there first if there is none."""
    if os.path.exists(path):
        return load_clips(path)
    print(f"InterSynth: generating {n_clips} clips once (the default 3000: under a minute on 2 cores), "
          f"then cached in {path}", flush=True)
    t0 = time.time()
    clips = generate(n_clips, seed)
    if verbose:
        print(f"generated {n_clips} clips in {time.time() - t0:.1f} s")
    save_clips(clips, path)  # also packs the clips into the same few buffers a load would give
    return clips


def load_all(n_clips: int = DEFAULT_N_CLIPS, seed: int = 0, cache_dir: str = None, verbose=False) -> list:
    """The whole set: from memory, else from the cache file, else generated and cached."""
    path = _cache_file(cache_dir, n_clips, seed)
    n_clips = check_n_clips(n_clips, generating=not os.path.exists(path))
    if path not in _LOADED:
        _LOADED[path] = _read_or_make(path, n_clips, seed, verbose)
    return _LOADED[path]


def load_split(split: str, n_clips: int | None = None, seed: int = 0, cache_dir: str = None) -> list:
    """Clips of one split ('train', 'val', 'test'; 'all' for everything) of the set of n_clips clips
    (None: DEFAULT_N_CLIPS), generated once and cached under data/cache/ (or cache_dir) in one .npz keyed by
    n_clips and seed. A split is kept in memory in buffers of its own, so a training run holds its 80 % of
    the set, not the whole file. These are the records intermoe_min.InteractionDataset takes."""
    n_clips = DEFAULT_N_CLIPS if n_clips is None else n_clips
    if split == "all":
        return list(load_all(n_clips, seed, cache_dir))
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)} or 'all', not {split!r}")
    path = _cache_file(cache_dir, n_clips, seed)
    n_clips = check_n_clips(n_clips, generating=not os.path.exists(path))
    if (path, split) not in _LOADED:
        clips = _LOADED[path] if path in _LOADED else _read_or_make(path, n_clips, seed)
        mine = [dict(c, meta=dict(c["meta"])) for i, c in enumerate(clips) if split_of(i) == split]
        pack_clips(mine)  # copied into this split's own buffers: the whole set's can be freed
        _LOADED[path, split] = mine
    return list(_LOADED[path, split])


def nbytes(clips: list) -> int:
    """Memory held by the clips' arrays (joints, rot6d and the arrays in meta)."""
    return sum(c["joints"].nbytes + c["rot6d"].nbytes
               + sum(v.nbytes for v in c["meta"].values() if isinstance(v, np.ndarray)) for c in clips)


def rebuild_joints(clip, person: int) -> np.ndarray:
    """Joint positions (T, 22, 3) from a clip's stored rotations, root path and skeleton, via FK."""
    m = clip["meta"]
    local = np.concatenate([im.matrix_from_rot6d(m["root_rot6d"][person].astype(np.float64))[:, None],
                            im.matrix_from_rot6d(clip["rot6d"][person].astype(np.float64))], 1)  # (T, 22, 3, 3)
    return im.forward_kinematics(local, clip["joints"][person, :, 0].astype(np.float64),
                                 m["offsets"][person].astype(np.float64))
