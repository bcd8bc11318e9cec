"""The dataset: InterHuman's raw layout, bad files, augmentation, padding and masks."""
import io
import os
import pickle

import numpy as np
import pytest
import torch

import intermoe_min as im
import intersynth
from intermoe_tools import interhuman
from intermoe_tools.interhuman import load_interhuman
from helpers import make_record


def write_raw_clip(root, clip_id, rec, person_arrays=None, captions=None):
    """Write a clip exactly as InterHuman ships it: Z-up positions of 62 joints in columns 0:186 (we fill the
    22 body joints), 51 6D rotations from column 186 (we fill the 21 body joints), one caption a line."""
    for k, person in enumerate(["person1", "person2"]):
        os.makedirs(os.path.join(root, "motions_processed", person), exist_ok=True)
        if person_arrays is not None:
            raw = person_arrays[k]
        else:
            T = rec["joints"].shape[1]
            yup = rec["joints"][k]
            zup = np.stack([yup[..., 0], -yup[..., 2], yup[..., 1]], -1)  # Y up -> Z up
            raw = np.random.default_rng(k).normal(size=(T, 492)).astype(np.float32)  # unused columns: noise
            raw[:, :66] = zup.reshape(T, 66)
            raw[:, 186:312] = rec["rot6d"][k].reshape(T, 126)
        np.save(os.path.join(root, "motions_processed", person, f"{clip_id}.npy"), raw)
    if captions is not False:
        os.makedirs(os.path.join(root, "annots"), exist_ok=True)
        with open(os.path.join(root, "annots", f"{clip_id}.txt"), "w") as f:
            f.write("\n".join(captions or rec["captions"]) + "\n")


@pytest.fixture
def interhuman_root(tmp_path):
    root = str(tmp_path / "interhuman")
    good = [make_record(T=30 + 5 * i, seed=i, clip_id=str(i)) for i in range(3)]
    for rec in good:
        write_raw_clip(root, rec["id"], rec)
    bad = make_record(T=30, seed=9)
    write_raw_clip(root, "wrongshape", bad, person_arrays=[np.zeros((30, 300), np.float32)] * 2)
    nan = np.zeros((30, 492), np.float32)
    nan[3, 5] = np.nan
    write_raw_clip(root, "hasnan", bad, person_arrays=[nan, nan])
    write_raw_clip(root, "nocaption", bad, captions=False)
    write_raw_clip(root, "tooshort", make_record(T=10, seed=3))
    write_raw_clip(root, "ignored", bad)
    with open(os.path.join(root, "train.txt"), "w") as f:
        f.write("0\n1\n2\nwrongshape\nhasnan\nnocaption\ntooshort\nignored\n")
    with open(os.path.join(root, "ignore_list.txt"), "w") as f:
        f.write("ignored\n")
    return root, good


def test_interhuman_loader_reads_the_raw_format(interhuman_root):
    root, good = interhuman_root
    with pytest.warns(UserWarning, match="skipped 4 of 7"):
        records, errors = load_interhuman(root, "train")
    assert [r["id"] for r in records] == ["0", "1", "2"]
    for rec, ref in zip(records, good):
        np.testing.assert_allclose(rec["joints"], ref["joints"], atol=1e-6)  # Z up converted back to Y up
        np.testing.assert_allclose(rec["rot6d"], ref["rot6d"], atol=1e-6)
        assert rec["captions"] == ref["captions"]


def test_bad_interhuman_files_give_errors_naming_the_file(interhuman_root):
    root, _ = interhuman_root
    with pytest.warns(UserWarning):
        _, errors = load_interhuman(root, "train")
    text = "\n".join(errors)
    assert "wrongshape.npy" in text and "(T, 492)" in text
    assert "hasnan.npy" in text and "NaN" in text
    assert "nocaption.txt" in text and "missing" in text
    assert "tooshort" in text and "too short" in text
    with pytest.raises(im.DataError, match="wrongshape"):
        load_interhuman(root, "train", strict=True)
    with pytest.raises(FileNotFoundError, match="test.txt"):
        load_interhuman(root, "test")


def test_unreadable_interhuman_files_name_the_file_and_what_was_expected(tmp_path):
    root, rec = str(tmp_path), make_record(T=30, seed=1)
    archive = io.BytesIO()
    np.savez(archive, a=np.zeros(3))
    not_npy = {"text": b"0.1 0.2 0.3\n", "pickled": pickle.dumps({"joints": [1, 2]}),
               "garbage": bytes(range(256)) * 4, "empty": b"", "archive": archive.getvalue()}
    ids = list(not_npy) + ["latin1caption", "good"]
    for clip_id in ids:
        write_raw_clip(root, clip_id, rec)
    for clip_id, data in not_npy.items():
        with open(os.path.join(root, "motions_processed", "person2", f"{clip_id}.npy"), "wb") as f:
            f.write(data)
    annot = os.path.join(root, "annots", "latin1caption.txt")
    with open(annot, "wb") as f:
        f.write("two people dance in a café\n".encode("latin-1"))
    with open(os.path.join(root, "train.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")
    with pytest.warns(UserWarning, match="skipped 6 of 7"):
        records, errors = load_interhuman(root, "train")
    assert [r["id"] for r in records] == ["good"]
    for clip_id, error in zip(ids, errors):
        if clip_id in not_npy:
            assert os.path.join(root, "motions_processed", "person2", f"{clip_id}.npy") in error, error
            assert f"(T, {interhuman.RAW_DIM})" in error and "np.save" in error, error
    assert annot in errors[-1] and "UTF-8" in errors[-1]
    with pytest.raises(im.DataError, match=r"person2.text\.npy.*expected"):
        load_interhuman(root, "train", strict=True)


def test_load_split_refuses_bad_n_clips():
    with pytest.raises(ValueError, match="n_clips"):
        intersynth.load_split("train", 0)
    with pytest.raises(TypeError, match="n_clips"):
        intersynth.load_split("train", 2.5)


def test_dataset_leaves_out_bad_records_and_names_them():
    good = make_record(T=30, seed=1, clip_id="good")
    nan = make_record(T=30, seed=2, clip_id="nanclip")
    nan["joints"][0, 3, 4, 1] = np.inf
    empty = make_record(T=30, seed=3, clip_id="emptycaps")
    empty["captions"] = ["", "  "]
    with pytest.warns(UserWarning, match="left out 2"):
        ds = im.InteractionDataset([good, nan, empty])
    assert len(ds) == 1 and any("nanclip" in e for e in ds.errors) and any("emptycaps" in e for e in ds.errors)
    with pytest.raises(im.DataError, match="no usable clip"), pytest.warns(UserWarning):
        im.InteractionDataset([nan])


def test_batches_are_padded_and_masked():
    recs = [make_record(T=T, seed=T, clip_id=f"c{T}") for T in (20, 33, 41)]
    ds = im.InteractionDataset(recs, train=False)
    ds.normalizer = ds.fit_normalizer()
    batch = im.collate([ds[i] for i in range(3)])
    assert batch["motion"].shape == (3, 2, 40, 262)  # longest 40 feature frames, a multiple of 4
    assert batch["mask"].sum(1).tolist() == [19, 32, 40]
    assert (batch["motion"][0, :, 19:] == 0).all()
    # normalised statistics of the real frames are about zero mean, unit std
    real = batch["motion"].permute(0, 2, 1, 3)[batch["mask"]]  # (N, 2, 262)
    assert abs(real[..., :66].mean()) < 0.3


def test_augmentation_mirrors_and_swaps_caption_with_motion():
    rec = make_record(T=30, seed=5)
    ds = im.InteractionDataset([rec], train=True, swap_prob=1.0, mirror_prob=1.0, seed=0)
    item = ds[0]
    assert item["swapped"] and item["mirrored"]
    assert "left" not in item["caption"] or "right" in rec["captions"][0]
    expected = im.features_from_joints(im.mirror_joints(rec["joints"][::-1]), im.mirror_rot6d(rec["rot6d"][::-1]))
    np.testing.assert_allclose(item["motion"].numpy(), expected, atol=1e-5)
    caps = {im.mirror_caption(im.swap_caption(c)) for c in rec["captions"]}
    assert item["caption"] in caps


def test_long_clips_are_cropped_to_max_frames():
    ds = im.InteractionDataset([make_record(T=80, seed=1)], max_frames=64, train=True, seed=0)
    assert ds[0]["motion"].shape == (2, 64, 262)


def test_normalizer_round_trip_numpy_and_torch():
    rec = make_record(T=30)
    f = im.features_from_joints(rec["joints"], rec["rot6d"])
    norm = im.Normalizer.fit([f])
    np.testing.assert_allclose(norm.denormalise(norm.normalise(f)), f, atol=1e-5)
    t = torch.from_numpy(f)
    torch.testing.assert_close(norm.denormalise(norm.normalise(t)), t, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="262"):
        im.Normalizer(np.zeros(10), np.ones(10))


def test_normalizer_streams_the_statistics_of_the_concatenation():
    # values near 1e5 with a std of 0.05: a plain float64 sum of squares, sqrt(E[x^2] - E[x]^2), is 0.2 % off
    rng = np.random.default_rng(0)
    arrays = [1e5 + 1e-2 * rng.standard_normal(im.FEAT_DIM) + 0.05 * rng.standard_normal((2, T, im.FEAT_DIM))
              for T in (1, 7, 40, 0, 13)]
    flat = np.concatenate([a.reshape(-1, im.FEAT_DIM) for a in arrays])
    norm = im.Normalizer.fit(a for a in arrays)  # a generator: one array at a time
    np.testing.assert_allclose(norm.mean, flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.std, np.maximum(flat.std(0), im.Normalizer.STD_FLOOR), rtol=1e-6)
    assert (flat.std(0) > im.Normalizer.STD_FLOOR).mean() > 0.5  # most stds are measured, not floored
    with pytest.raises(ValueError, match="no feature frames"):
        im.Normalizer.fit(iter([np.zeros((0, im.FEAT_DIM))]))
