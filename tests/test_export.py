"""Getting motion out: BVH files (for Blender and other tools) and InterHuman's raw layout, both round-tripped."""
import os

import numpy as np
import pytest

import intermoe_min as im
import intersynth
from intermoe_tools import export
from intermoe_tools.interhuman import load_interhuman
from intermoe_tools.bodies import skeleton_rotations
from helpers import make_record, read_bvh_positions


@pytest.fixture(scope="module")
def clip():
    return intersynth.make_clip(0, 3)


def test_rotations_solved_from_positions_give_the_positions_back(clip):
    for person in clip["joints"].astype(np.float64):
        local, offsets = skeleton_rotations(person)
        np.testing.assert_allclose(im.forward_kinematics(local, person[:, 0], offsets), person, atol=1e-6)


def test_a_bvh_file_read_back_gives_the_motion_within_a_centimetre(clip, tmp_path):
    paths = export.save_bvh(clip["joints"], str(tmp_path / "clip.bvh"))
    assert [os.path.basename(p) for p in paths] == ["clip_p1.bvh", "clip_p2.bvh"]
    for person, path in zip(clip["joints"], paths):
        names, P = read_bvh_positions(path)
        P = P[:, [names.index(n) for n in im.JOINT_NAMES]]  # the file's order -> SMPL's
        assert np.abs(P - person).max() < 0.01


def test_a_bvh_file_opens_in_a_parser_we_did_not_write(clip, tmp_path):
    bvh = pytest.importorskip("bvh")  # the 'bvh' package from PyPI, used only here
    path = export.save_bvh(clip["joints"], str(tmp_path / "clip.bvh"))[0]
    with open(path) as f:
        b = bvh.Bvh(f.read())
    assert sorted(b.get_joints_names()) == sorted(im.JOINT_NAMES)
    assert b.nframes == clip["joints"].shape[1] and abs(b.frame_time - 1 / im.FPS) < 1e-6
    assert len(b.joint_channels("pelvis")) == 6 and len(b.joint_channels("left_knee")) == 3


def test_features_export_like_joints_and_bad_input_is_refused(clip, tmp_path):
    feats = im.features_from_joints(clip["joints"], clip["rot6d"])  # (2, T-1, 262)
    a = export.save_bvh(feats, str(tmp_path / "from_features"))
    names, P = read_bvh_positions(a[0])
    assert P.shape == (feats.shape[1], 22, 3)
    with pytest.raises(ValueError, match=r"save_bvh: expected joints .* got \(3, 10, 22, 3\)"):
        export.save_bvh(np.zeros((3, 10, 22, 3)), str(tmp_path / "x.bvh"))


def test_an_interhuman_file_we_write_loads_through_load_interhuman(tmp_path):
    rec = make_record(T=40, seed=1, clip_id="c7")
    export.save_interhuman(str(tmp_path), "c7", rec["joints"], rec["captions"], split="train")
    records, errors = load_interhuman(str(tmp_path), "train", strict=True)
    assert not errors and records[0]["captions"] == rec["captions"]
    np.testing.assert_allclose(records[0]["joints"], rec["joints"], atol=1e-5)
    offsets = [skeleton_rotations(p)[1] for p in rec["joints"]]
    for p in range(2):  # the stored rotations drive the skeleton back to the positions
        local = np.concatenate([skeleton_rotations(rec["joints"][p])[0][:, :1],
                                im.matrix_from_rot6d(records[0]["rot6d"][p].astype(np.float64))], 1)
        back = im.forward_kinematics(local, rec["joints"][p][:, 0].astype(np.float64), offsets[p])
        assert np.abs(back - rec["joints"][p]).max() < 0.01


def test_a_bad_frame_does_not_spoil_the_file(clip, tmp_path):
    J = clip["joints"].astype(np.float64).copy()
    J[0, 5] = 0.0                          # one frame of person 1 all at the origin: zero-length bones
    J[0, 7, 18] = J[0, 7, 16]              # an elbow on its shoulder
    J[0, 9, 18:21:2] = J[0, 9, 16] - (J[0, 9, 18] - J[0, 9, 16])  # an arm turned exactly round
    for path in export.save_bvh(J, str(tmp_path / "bad.bvh")):
        assert "nan" not in open(path).read().lower()


def test_euler_angles_survive_gimbal_lock():
    R = im.axis_angle_matrix(np.array([1.0, 0.0, 0.0]), np.pi / 2) @ im.axis_angle_matrix(np.array([0.0, 1.0, 0.0]), 0.3)
    z, x, y = np.radians(export._euler_zxy(R[None]))[0]
    rz, rx, ry = (im.axis_angle_matrix(np.eye(3)[k], a) for k, a in ((2, z), (0, x), (1, y)))
    np.testing.assert_allclose(rz @ rx @ ry, R, atol=1e-6)


@pytest.mark.parametrize("where", ["one NaN", "all NaN", "inf"])
def test_non_finite_joints_are_refused_and_no_file_is_written(clip, tmp_path, where):
    J = clip["joints"].astype(np.float64).copy()
    if where == "one NaN":
        J[1, 3, 7, 2] = np.nan
    else:
        J[:] = np.nan if where == "all NaN" else np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        export.save_bvh(J, str(tmp_path / "x.bvh"))
    assert os.listdir(tmp_path) == []


def test_a_clip_of_one_frame_is_refused_saying_two_are_needed(clip, tmp_path):
    with pytest.raises(ValueError, match=r"T >= 2 frames.*got \(2, 1, 22, 3\)"):
        export.save_bvh(clip["joints"][:, :1], str(tmp_path / "x.bvh"))
