"""The motion representation: features, canonicalisation, mirroring, person swap."""
import numpy as np
import pytest

import intermoe_min as im
from helpers import mirror_features


def test_feature_layout_covers_262_values_once():
    covered = np.zeros(im.FEAT_DIM, int)
    for s in im.FEATURE_SLICES.values():
        covered[s] += 1
    assert (covered == 1).all()


def test_features_to_joints_round_trip(record):
    feats = im.features_from_joints(record["joints"], record["rot6d"])  # (2, T-1, 262)
    assert feats.shape == (2, record["joints"].shape[1] - 1, 262) and feats.dtype == np.float32
    canon = im.canonicalise(record["joints"])
    np.testing.assert_allclose(im.joints_from_features(feats), canon[:, :-1], atol=1e-5)
    vel = feats[..., im.FEATURE_SLICES["velocities"]].reshape(2, -1, 22, 3)
    np.testing.assert_allclose(vel, canon[:, 1:] - canon[:, :-1], atol=1e-5)
    np.testing.assert_allclose(feats[..., im.FEATURE_SLICES["rotations"]],
                               record["rot6d"][:, :-1].reshape(2, -1, 126), atol=1e-6)


def test_canonical_frame_zero_faces_plus_z_root_at_origin_floor_at_zero(record):
    canon = im.canonicalise(record["joints"])
    assert abs(im.facing_yaw(canon[0, 0])) < 1e-5  # person 1 faces +Z
    np.testing.assert_allclose(canon[0, 0, 0, [0, 2]], 0.0, atol=1e-5)  # root at the origin in x, z
    np.testing.assert_allclose(canon[..., 1].min(axis=(1, 2)), 0.0, atol=1e-6)  # each on the floor
    # a rigid motion: distances between the two people are unchanged
    d_after = np.linalg.norm(canon[0, :, 0, [0, 2]] - canon[1, :, 0, [0, 2]], axis=0)
    d_before_xz = np.linalg.norm((record["joints"][0, :, 0] - record["joints"][1, :, 0])[:, [0, 2]], axis=-1)
    np.testing.assert_allclose(d_after, d_before_xz, atol=1e-5)


def test_canonicalisation_ignores_where_the_clip_started(record):
    moved = record["joints"] @ im.yaw_matrix(1.1).T.astype(np.float32) + np.array([3.0, 0.5, -2.0], np.float32)
    np.testing.assert_allclose(im.canonicalise(moved), im.canonicalise(record["joints"]), atol=1e-4)


def test_mirroring_twice_is_identity_for_motion_and_caption(record):
    j, r = record["joints"], record["rot6d"]
    np.testing.assert_allclose(im.mirror_joints(im.mirror_joints(j)), j, atol=1e-6)
    np.testing.assert_allclose(im.mirror_rot6d(im.mirror_rot6d(r)), r, atol=1e-5)
    f = im.features_from_joints(j, r)
    np.testing.assert_allclose(mirror_features(mirror_features(f)), f, atol=1e-5)
    for cap in record["captions"] + ["Left, RIGHT and counterclockwise then Clockwise, leftward"]:
        assert im.mirror_caption(im.mirror_caption(cap)) == cap
    assert im.mirror_caption("raises the left hand, walks clockwise") == "raises the right hand, walks counterclockwise"
    assert im.mirror_caption("circles counterclockwise") == "circles clockwise"


def test_mirrored_features_equal_features_of_mirrored_motion(record):
    j, r = record["joints"], record["rot6d"]
    direct = im.features_from_joints(im.mirror_joints(j), im.mirror_rot6d(r))
    np.testing.assert_allclose(mirror_features(im.features_from_joints(j, r)), direct, atol=1e-4)


def test_mirrored_rotations_still_drive_forward_kinematics_to_the_mirrored_joints(record):
    """The 6D mirror rule is checked against the skeleton itself, not against a copy of its formula."""
    from helpers import REST_OFFSETS
    rng = np.random.default_rng(3)
    T = 5
    local = im.axis_angle_matrix(rng.normal(size=(T, 22, 3)), rng.uniform(-1, 1, size=(T, 22)))
    local[:, 0] = np.eye(3)
    joints = im.forward_kinematics(local, np.zeros((T, 3)), REST_OFFSETS)
    # mirrored skeleton: the rest pose is symmetric, so mirroring rotations + rest = mirrored joints
    mirrored_local = np.concatenate([local[:, :1],
                                     im.matrix_from_rot6d(im.mirror_rot6d(im.rot6d_from_matrix(local[:, 1:])))], 1)
    # matrix_from_rot6d(rot6d(R)) == R for rotations, so this only checks the mirror rule
    mirrored = im.forward_kinematics(mirrored_local, np.zeros((T, 3)), REST_OFFSETS)
    np.testing.assert_allclose(mirrored, im.mirror_joints(joints), atol=1e-6)


def test_rot6d_round_trip():
    rng = np.random.default_rng(0)
    R = im.axis_angle_matrix(rng.normal(size=(10, 3)), rng.uniform(-3, 3, 10))
    np.testing.assert_allclose(im.matrix_from_rot6d(im.rot6d_from_matrix(R)), R, atol=1e-10)


def test_contacts_mark_a_planted_foot(record):
    j = im.canonicalise(record["joints"][0])
    j[:, 10] = [0.1, 0.01, 0.2]  # left toe nailed to the floor
    j[:, 11, 1] = 0.5  # right toe in the air
    c = im.foot_contacts(j)
    assert c.shape == (j.shape[0] - 1, 4)
    assert c[:, 1].all() and not c[:, 3].any()


def test_swap_caption_follows_the_people():
    assert im.swap_caption("The first person pushes the second person.") == "The second person pushes the first person."


def test_bad_shapes_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        im.features_from_joints(np.zeros((10, 21, 3)))
    with pytest.raises(ValueError, match="rot6d"):
        im.features_from_joints(np.zeros((10, 22, 3)), np.zeros((10, 22, 6)))
