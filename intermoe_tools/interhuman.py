"""InterHuman's on-disk layout (Liang et al., IJCV 2024) read into intermoe_min's records.

    root/motions_processed/person{1,2}/<id>.npy   raw (T, 492) float array per person, Z up
    root/annots/<id>.txt                           captions, one a line, UTF-8
    root/{train,val,test}.txt                      ids of each split; root/ignore_list.txt (optional) ids to skip

Use it through `load_interhuman(root, split)` (`from intermoe_tools.interhuman import load_interhuman`);
`intermoe_eval.save_interhuman` writes the same layout. Written from the format as InterGen reads it
(tr3e/InterGen's datasets/interhuman.py), not copied.
"""
import os
import warnings

import numpy as np

import intermoe_min as im

RAW_DIM = 492  # 62 joint positions x 3, then 51 local 6D rotations
_RAW_POS, _RAW_ROT = slice(0, 66), slice(186, 312)  # the 22 body joints and their 21 rotations


def zup_to_yup(p: np.ndarray) -> np.ndarray:
    """InterHuman stores Z up; (x, y, z) -> (x, z, -y) makes Y up (InterGen's fixed rotation)."""
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def load_interhuman(root: str, split: str = "train", strict: bool = False):
    """(records, errors) of one split: clips that cannot be used are left out, each described in `errors`
    with the file it came from, and a warning sums them up; strict=True raises at the first instead."""
    split_file = os.path.join(root, f"{split}.txt")
    if not os.path.isfile(split_file):
        raise FileNotFoundError(f"load_interhuman: no split list {split_file}")
    ignore = set()
    if os.path.isfile(os.path.join(root, "ignore_list.txt")):
        ignore = set(open(os.path.join(root, "ignore_list.txt")).read().split())
    ids = [i for i in open(split_file).read().split() if i not in ignore]
    records, errors = [], []
    for clip_id in ids:
        try:
            records.append(read_clip(root, clip_id))
        except (im.DataError, OSError, ValueError) as e:
            if strict:
                raise
            errors.append(str(e))
    if errors:
        warnings.warn(f"load_interhuman: skipped {len(errors)} of {len(ids)} clips:\n  " + "\n  ".join(errors[:20]))
    if not records:
        raise im.DataError(f"load_interhuman: no usable clip in {split_file}"
                           + (f"; first error: {errors[0]}" if errors else ""))
    return records, errors


def read_npy(path: str, expected: str) -> np.ndarray:
    """A float32 array from a .npy file, or a DataError naming the file and what it should hold (`expected`).
    A missing file raises FileNotFoundError, as open() does."""
    with open(path, "rb") as f:
        is_npy = f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX
    if not is_npy:  # text, a pickle, an .npz archive, empty, garbage: np.load would blame pickling
        raise im.DataError(f"{path}: not a .npy file (no .npy header); expected {expected}")
    try:
        return np.load(path, allow_pickle=False).astype(np.float32)
    except (ValueError, EOFError) as err:  # cut short, or an array of objects or strings
        raise im.DataError(f"{path}: cannot be read ({err}); expected {expected}") from err


def read_clip(root: str, clip_id: str) -> dict:
    """One clip's record; a DataError names the file at fault."""
    people, rots = [], []
    for p in ("person1", "person2"):
        path = os.path.join(root, "motions_processed", p, f"{clip_id}.npy")
        raw = read_npy(path, expected=f"a (T, {RAW_DIM}) float array saved with np.save")
        if raw.ndim != 2 or raw.shape[1] != RAW_DIM:
            raise im.DataError(f"{path}: expected shape (T, {RAW_DIM}), got {raw.shape}")
        if not np.isfinite(raw).all():
            raise im.DataError(f"{path}: contains NaN or inf")
        people.append(zup_to_yup(raw[:, _RAW_POS].reshape(-1, im.N_JOINTS, 3)))
        rots.append(raw[:, _RAW_ROT].reshape(-1, im.N_JOINTS - 1, 6))  # relative to the parent, as stored
    if people[0].shape[0] != people[1].shape[0]:
        raise im.DataError(f"{clip_id}: person1 has {people[0].shape[0]} frames, person2 {people[1].shape[0]}")
    annot = os.path.join(root, "annots", f"{clip_id}.txt")
    if not os.path.isfile(annot):
        raise im.DataError(f"{annot}: caption file missing")
    try:
        with open(annot, encoding="utf-8") as f:
            captions = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as err:
        raise im.DataError(f"{annot}: not UTF-8 text ({err}); expected captions in UTF-8, one a line") from err
    rec = {"id": clip_id, "joints": np.stack(people), "rot6d": np.stack(rots), "captions": captions, "meta": {}}
    im.check_record(rec, where=os.path.join(root, "motions_processed", "person*", f"{clip_id}.npy")
                    if captions else annot)
    return rec


def yup_to_zup(p: np.ndarray) -> np.ndarray:
    """The inverse of zup_to_yup: (x, y, z) Y up -> (x, -z, y) as InterHuman stores it."""
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def save_clip(root: str, clip_id: str, joints: np.ndarray, rot6d: np.ndarray, captions: list, split: str) -> None:
    """Write one clip in the layout `load_interhuman` reads: joints (2, T, 22, 3) Y up, local rotations (2, T, 21, 6);
    the raw file's other columns (hand joints and their rotations) are zeros. Adds clip_id to <split>.txt."""
    for p, name in enumerate(("person1", "person2")):
        raw = np.zeros((joints.shape[1], RAW_DIM), dtype=np.float32)
        raw[:, _RAW_POS] = yup_to_zup(joints[p]).reshape(len(raw), -1)
        raw[:, _RAW_ROT] = rot6d[p].reshape(len(raw), -1)
        os.makedirs(os.path.join(root, "motions_processed", name), exist_ok=True)
        np.save(os.path.join(root, "motions_processed", name, f"{clip_id}.npy"), raw)
    os.makedirs(os.path.join(root, "annots"), exist_ok=True)
    with open(os.path.join(root, "annots", f"{clip_id}.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(captions) + "\n")
    split_file = os.path.join(root, f"{split}.txt")
    ids = open(split_file).read().split() if os.path.isfile(split_file) else []
    if clip_id not in ids:
        text = open(split_file).read() if os.path.isfile(split_file) else ""
        with open(split_file, "a") as f:
            f.write(("\n" if text and not text.endswith("\n") else "") + clip_id + "\n")
