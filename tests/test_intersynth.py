"""Tests for the intersynth package (data/intersynth/), the generated two-person interaction dataset.

Small sets only (28 clips cover every interaction type twice), so the whole file runs in a few seconds.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import intermoe_min as im
import intersynth as S
from intersynth import __main__ as cli, body, captions, dataset as D
from intermoe_tools import synth_report

N = 28  # two blocks of 14: every type appears twice


@pytest.fixture(scope="module")
def clips():
    return S.generate(N, seed=0)


def test_same_seed_same_clips_other_seed_other_clips(clips):
    again = S.generate(6, seed=0)
    for a, b in zip(clips[:6], again):
        assert np.array_equal(a["joints"], b["joints"]) and np.array_equal(a["rot6d"], b["rot6d"])
        assert a["captions"] == b["captions"] and a["meta"]["contacts"] == b["meta"]["contacts"]
    other = S.generate(6, seed=1)
    assert any(a["joints"].shape != b["joints"].shape or not np.allclose(a["joints"], b["joints"])
               for a, b in zip(clips[:6], other))


def test_parallel_generation_matches_serial():
    assert all(np.array_equal(a["joints"], b["joints"])
               for a, b in zip(S.generate(4, seed=3, workers=1), S.generate(4, seed=3, workers=2)))


def test_shapes_dtypes_and_metadata(clips):
    for i, c in enumerate(clips):
        T = c["joints"].shape[1]
        assert c["joints"].shape == (2, T, 22, 3) and c["joints"].dtype == np.float32
        assert c["rot6d"].shape == (2, T, 21, 6) and c["rot6d"].dtype == np.float32
        assert 15 <= T <= 300
        assert c["id"] == f"is{i:06d}"
        m = c["meta"]
        assert m["type"] in S.INTERACTION_TYPES and m["initiator"] in (0, 1)
        assert m["key_frames"] and all(0 <= f < T for f in m["key_frames"])
        assert len(m["key_names"]) == len(m["key_frames"])
        assert set(m["key_names"]) <= set(S.KEY_NAMES[m["type"]])
        assert m["hand"] in (None, "left", "right")
        assert m["direction"] in (None, "clockwise", "counterclockwise")
        assert (m["direction"] is not None) == (m["type"] in ("circle", "dance", "taekwondo"))  # the turning ones
        for f, pa, ja, pb, jb in m["contacts"]:
            assert 0 <= f < T and {pa, pb} == {0, 1} and 0 <= ja < 22 and 0 <= jb < 22


def test_every_type_appears(clips):
    assert len(S.INTERACTION_TYPES) >= 20
    assert {"fencing", "taekwondo", "dance", "conversation", "greet_walk", "tug_of_war"} <= set(S.INTERACTION_TYPES)
    assert len({c["meta"]["type"] for c in clips}) >= 12
    assert len(S.INTERACTION_TYPES) >= 12


def test_lengths_vary_and_mostly_60_to_200():
    lengths = np.array([S.make_clip(0, i)["joints"].shape[1] for i in range(0, 140, 2)])
    assert lengths.min() >= 15 and lengths.max() <= 300 and lengths.std() > 20
    assert ((lengths >= 60) & (lengths <= 200)).mean() > 0.6


def test_rot6d_drives_fk_to_the_stored_joints(clips):
    for c in clips[:14]:
        for p in (0, 1):
            rebuilt = S.rebuild_joints(c, p)
            assert np.abs(rebuilt - c["joints"][p]).max() < 1e-4


def test_bone_lengths_constant_and_bodies_vary(clips):
    heights = [h for c in clips for h in c["meta"]["heights"]]
    assert 1.5 <= min(heights) and max(heights) <= 1.95 and np.std(heights) > 0.03
    parents = np.array(im.SMPL_PARENTS[1:])
    for c in clips:
        L = np.linalg.norm(c["joints"][:, :, 1:] - c["joints"][:, :, parents], axis=-1)  # (2, T, 21)
        assert np.abs(L - L[:, :1]).max() < 1e-4
        assert np.allclose(L[:, 0], np.linalg.norm(c["meta"]["offsets"][:, 1:], axis=-1), atol=1e-4)


def test_physics_targets_hold(clips):
    r = synth_report.physics_report(clips)
    assert r["bone_rel_std_max"] < 1e-3
    assert r["foot_contact_frames"] > 1000 and r["foot_slide_cm_median"] < 0.3
    assert r["floor_penetration_cm"] < 1.0
    assert r["n_contacts"] > 100
    assert r["hand_contact_cm_max"] < 5.0 and r["body_contact_gap_cm_max"] < 5.0
    assert r["torso_overlap_frames"] == 0
    assert r["max_joint_speed_ms"] < 12.0


def test_captions_three_and_roles_recoverable(clips):
    for c in clips:
        caps, ini = c["captions"], c["meta"]["initiator"]
        assert len(caps) == 3 and all(isinstance(s, str) and len(s) > 10 for s in caps)
        assert len(set(caps)) == 3
        named = [s.lower() for s in caps if "first person" in s.lower() or "second person" in s.lower()]
        assert named, caps
        names = ("the first person", "the second person")
        first, other = names[ini], names[1 - ini]
        for s in named:  # the initiator is named before the other person
            assert s.find(first) < s.find(other) or other not in s, s


def test_templates_name_initiator_first_and_use_only_mirrorable_side_words():
    for kind, templates in captions.TEMPLATES.items():
        assert len(templates) >= 5
        for _, t in templates:
            assert t.index("{a}") < t.index("{b}"), t
            assert not re.search(r"\b(left|right|anticlockwise|clockwise|counterclockwise)\b", t), t


def test_side_words_in_captions_agree_with_meta(clips):
    for c in clips:
        m = c["meta"]
        for s in c["captions"]:
            sides = set(re.findall(r"\b(left|right)\b", s.lower()))
            assert sides <= ({m["hand"]} if m["hand"] else set()), (s, m["hand"])
            turns = set(re.findall(r"\b(clockwise|counterclockwise)\b", s.lower()))
            assert turns <= ({m["direction"]} if m["direction"] else set()), (s, m["direction"])
        if m["type"] == "circle":
            assert all(m["direction"] in s for s in c["captions"])


def test_circle_direction_seen_from_above():
    """Counterclockwise seen from above (looking down -Y) means the angle atan2(x, z) grows."""
    done = 0
    for i in range(60):
        if D.clip_type(0, i) != "circle":
            continue
        c = S.make_clip(0, i)
        J = c["joints"][:, :, 0]                                    # (2, T, 3) pelvis paths
        mid = J.mean(0)
        ang = np.unwrap(np.arctan2(J[0, :, 0] - mid[:, 0], J[0, :, 2] - mid[:, 2]))
        turned = ang[-1] - ang[0]
        if abs(turned) < 0.3:  # a clip cut short around its start may barely turn
            continue
        assert (turned > 0) == (c["meta"]["direction"] == "counterclockwise")
        done += 1
    assert done >= 3


def test_hands_meet_where_contacts_say(clips):
    for c in clips:
        rope = c["meta"].get("rope", False)  # a tug of war on a rope: hands grip the rope, not each other
        if rope:
            assert not c["meta"]["contacts"]
        if c["meta"]["type"] in ("handshake", "high_five", "handover", "tug_of_war", "dance", "greet_walk") and not rope:
            assert c["meta"]["contacts"]
            d = synth_report.contact_distances(c)["limb"]
            assert d.max() < 0.05


def test_splits_disjoint_deterministic_80_10_10():
    names = [S.split_of(i) for i in range(1000)]
    assert names == [S.split_of(i) for i in range(1000)]
    counts = {s: names.count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 800, "val": 100, "test": 100}


def test_load_split_caches_and_splits(tmp_path):
    n = 20
    parts = {s: S.load_split(s, n_clips=n, seed=5, cache_dir=str(tmp_path)) for s in ("train", "val", "test")}
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    ids = [set(c["id"] for c in parts[s]) for s in parts]
    assert sum(map(len, ids)) == n and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    D._LOADED.clear()                                             # force a read from the file
    again = S.load_split("val", n_clips=n, seed=5, cache_dir=str(tmp_path))
    fresh = S.generate(n, seed=5)
    for c in again:
        ref = fresh[int(c["id"][2:])]
        assert np.array_equal(c["joints"], ref["joints"]) and np.array_equal(c["rot6d"], ref["rot6d"])
        assert c["captions"] == ref["captions"]
        assert c["meta"]["contacts"] == ref["meta"]["contacts"]
        assert c["meta"]["key_frames"] == ref["meta"]["key_frames"]
    assert D.nbytes(again) > 0
    # each split holds buffers of its own, none of the whole file's: a training run keeps only its split
    whole = S.load_all(n, seed=5, cache_dir=str(tmp_path))
    train = S.load_split("train", n_clips=n, seed=5, cache_dir=str(tmp_path))
    assert not any(np.shares_memory(c["joints"], w["joints"]) for c in train for w in whole)
    assert not any(np.shares_memory(c["rot6d"], v["rot6d"]) for c in train for v in again)


def _no_generation(*args, **kwargs):
    raise AssertionError("generation started for a bad n_clips")


@pytest.mark.parametrize("n, error", [(0, ValueError), (-3, ValueError), (10 ** 12, ValueError),
                                      (2.5, TypeError), (True, TypeError), ("20", TypeError)])
def test_bad_n_clips_refused_before_generating(n, error, monkeypatch, tmp_path):
    monkeypatch.setattr(D, "_make_range", _no_generation)
    with pytest.raises(error, match="n_clips"):
        S.generate(n, workers=1)
    monkeypatch.setattr(D, "generate", _no_generation)
    with pytest.raises(error, match="n_clips"):
        S.load_split("train", n_clips=n, cache_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_n_clips_too_big_for_memory_says_how_many_fit():
    with pytest.raises(ValueError, match=r"memory.*at most about \d+"):
        S.check_n_clips(10 ** 12)
    assert S.check_n_clips(np.int64(20)) == 20 and len(S.generate(np.int32(2), workers=1)) == 2


@pytest.mark.parametrize("n", ["0", "-3", str(10 ** 12)])
def test_command_line_refuses_bad_n(n, monkeypatch, capsys):
    monkeypatch.setattr(D, "generate", _no_generation)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--n", n])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "error: --n" in err and "Traceback" not in err


def test_damaged_cache_file_is_named_and_the_fix_given(tmp_path):
    S.load_all(20, seed=7, cache_dir=str(tmp_path))
    path = D._cache_file(str(tmp_path), 20, 7)
    with open(path, "rb") as f:
        data = f.read()
    for damaged in (data[:len(data) // 2], b"garbage, not a zip archive", b""):
        with open(path, "wb") as f:
            f.write(damaged)
        D._LOADED.pop(path, None)                                 # force a read from the file
        with pytest.raises(ValueError, match=re.escape(path)) as e:
            S.load_split("train", n_clips=20, seed=7, cache_dir=str(tmp_path))
        assert "delete it" in str(e.value)


def test_the_report_command_prints_the_summary_and_both_reports():
    out = subprocess.run([sys.executable, "-m", "intermoe_tools.synth_report", "--n", "14"],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert "14 clips" in out.stdout and "foot_slide_cm_median" in out.stdout and "torso_overlap_frames" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "intermoe_tools.synth_report", "--n", "0"],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert bad.returncode == 2 and "python -m intermoe_tools.synth_report" in bad.stderr and "--n" in bad.stderr


PACKAGE = os.path.dirname(S.__file__)
MODULES = sorted(f[:-3] for f in os.listdir(PACKAGE) if f.endswith(".py"))


# intermoe_tools' modules that import nothing of ours but each other: intermoe_min imports them (captions, argument
# checks, the device and torchrun, the weights' average, files and checkpoints, the vocabulary), so they come with it;
# every other tool imports intermoe_min, never the reverse
LEAVES = ["intermoe_tools", "intermoe_tools.captions", "intermoe_tools.checks", "intermoe_tools.devices",
          "intermoe_tools.ema", "intermoe_tools.files", "intermoe_tools.vocab"]


def test_imports_run_one_way():
    """intermoe_min imports nothing of ours but intermoe_tools' leaves (LEAVES, which import nothing of ours but
    leaves, and not matplotlib); intersynth imports intermoe_min and none of the other tools: the reports that
    measure with the tools live on the tools side (intermoe_tools.synth_report)."""
    code = ("import sys, intermoe_min\n"
            "ours = sorted(m for m in sys.modules if m.startswith(('intersynth', 'intermoe_')))\n"
            f"assert ours == ['intermoe_min'] + {LEAVES!r}, ours\n"
            f"import importlib, intersynth\nfor m in {[m for m in MODULES if m != '__init__']!r}:\n"
            "    importlib.import_module('intersynth.' + m)\n"
            "tools = sorted(m for m in sys.modules if m.startswith('intermoe_tools'))\n"
            f"assert tools == {LEAVES!r}, tools\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    for leaf in LEAVES[1:]:  # each alone brings nothing of ours but leaves
        code = (f"import sys, {leaf}\nours = sorted(m for m in sys.modules if m.startswith(('intersynth', 'intermoe_')))\n"
                f"assert set(ours) <= set({LEAVES!r}), ours\nassert 'matplotlib' not in sys.modules\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
        assert out.returncode == 0, out.stderr


def test_no_import_path_editing_in_the_package_and_no_tool_imported_even_lazily():
    for m in MODULES:
        src = open(os.path.join(PACKAGE, m + ".py")).read()
        assert "sys.path" not in src and "sys.modules" not in src and "importlib" not in src, m
        tools = re.findall(r"^\s*(?:from|import) (intermoe_tools[\w.]*)", src, re.MULTILINE)
        assert set(tools) <= set(LEAVES), (m, tools)  # inside a function too: only the leaves


def test_contact_radius_is_the_evaluations():
    from intermoe_tools import evaluation as ev
    assert body.TORSO_RADIUS == ev.TORSO_RADIUS


def _sample_of_every_type(n=3, seed=0):
    out = []
    for kind in S.INTERACTION_TYPES:
        out += [S.make_clip(seed, i) for i in [i for i in range(400) if D.clip_type(seed, i) == kind][:n]]
    return out


@pytest.fixture(scope="module")
def typed():
    return _sample_of_every_type()


def test_people_are_never_frozen_and_move_like_walkers(typed):
    """The realism targets of docs/intersynth.md: under 2 % frozen frames (no joint moves 1 mm) in every type;
    walking knees nearly straight at heel strike; planted feet do not slide."""
    r = synth_report.motion_report(typed, by_type=True)
    for kind, m in r["by_type"].items():
        assert m["frozen_pct"] < 2.0, (kind, m["frozen_pct"])
        assert m["still_pct"] == 0.0, kind
    assert r["walk_knee_deg_p1"] < 8.0 and r["knee_deg_p99"] > 40.0   # straight in stance, bent in swing
    assert 2.0 <= r["pelvis_bob_cm_median"] <= 6.0
    assert r["slide_cm_median"] < 0.3 and r["wrist_speed_median"] > 0.05


def test_two_people_of_a_clip_have_their_own_manner():
    rng = np.random.default_rng(0)
    bodies = [body.sample_body(rng) for _ in range(40)]
    for field in ("slouch", "arm_relax", "arm_swing", "sway", "tempo"):
        assert np.std([getattr(b, field) for b in bodies]) > 0, field


def test_new_types_carry_their_metadata(typed):
    for c in typed:
        m, T = c["meta"], c["joints"].shape[1]
        if m["type"] in ("dance", "clap_game", "greet_walk", "taekwondo"):
            assert m["contacts"], m["type"]  # hands held or clapped, a handshake, a kick on the block
        if m["type"] == "taekwondo":
            assert T <= 300 and m["hand"] in ("left", "right") and m["direction"]
        if m["type"] in ("fencing", "conversation"):
            assert not m["contacts"]  # blades are not joints; talking touches nothing
        assert set(m["key_names"]) <= set(S.KEY_NAMES[m["type"]])
    r = synth_report.physics_report(typed)
    assert r["hand_contact_cm_max"] < 5.0 and r["torso_overlap_frames"] == 0 and r["floor_penetration_cm"] < 1.0


def test_unseen_templates_appear_only_in_the_test_splits_extra_captions():
    """The last template of each type is held out of every clip's captions; test clips carry one sentence from
    it in meta['unseen_captions'], so a test can tell whether a text encoder generalises beyond the training
    sentences, while the standard evaluation keeps its captions."""
    def pattern(tpl):
        rx = re.escape(tpl)
        rx = re.sub(r"\\\[(.*?)\\\]", lambda m: "(?:" + m.group(1).replace("\\|", "|") + ")", rx)
        return re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+?", rx) + "$", re.IGNORECASE)
    held = {k: pattern(S.heldout_template(k)) for k in S.INTERACTION_TYPES}
    unseen = 0
    for i in range(200):
        c = S.make_clip(0, i)
        assert not [s for s in c["captions"] if held[c["meta"]["type"]].match(s)], i
        extra = c["meta"]["unseen_captions"]
        assert all(held[c["meta"]["type"]].match(s) for s in extra), extra
        assert not extra or S.split_of(i) == "test"
        unseen += len(extra)
    assert unseen >= 15  # of the 20 test clips among the first 200


def test_a_clip_is_the_same_for_its_seed_and_index_whatever_else_is_generated():
    """Idle life, manner and captions are drawn from the clip's own generator: deterministic per (seed, i)."""
    for kind in ("dance", "conversation", "taekwondo", "fencing", "greet_walk", "clap_game"):
        i = next(i for i in range(200) if D.clip_type(0, i) == kind)
        a, b = S.make_clip(0, i), S.make_clip(0, i)
        assert np.array_equal(a["joints"], b["joints"]) and np.array_equal(a["rot6d"], b["rot6d"])
        assert a["captions"] == b["captions"] and a["meta"]["contacts"] == b["meta"]["contacts"]
    other = S.make_clip(1, i)  # another seed: another clip
    assert other["joints"].shape != a["joints"].shape or not np.array_equal(other["joints"], a["joints"])


def test_every_combination_of_flags_leaves_three_captions_to_choose_from():
    """The held-out template and the flags must never leave a type with fewer than three usable templates."""
    import itertools
    for kind, templates in captions.TEMPLATES.items():
        names = sorted({c.lstrip("!") for c, _ in templates if c} | {"slow", "fast"})
        held = S.heldout_template(kind)
        for values in itertools.product([False, True], repeat=len(names)):
            flags = dict(zip(names, values))
            usable = [t for c, t in templates if captions._flag_ok(c, flags) and t != held]
            assert len(usable) >= 3, (kind, flags, len(usable))


def test_the_script_refuses_a_negative_seed_in_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--seed", "-1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--seed must be between 0 and" in err and "Traceback" not in err
