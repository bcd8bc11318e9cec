"""Tests for looking at motion (intermoe_tools/viz.py).

Tiny clips and low dpi keep every test well under a second or two on a laptop CPU.
"""
import gc
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: tests never need a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from intermoe_tools import viz  # noqa: E402
from intermoe_min import N_JOINTS, SMPL_PARENTS, yaw_matrix  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

SMALL = dict(figsize=(2.0, 2.0), dpi=30)  # what every test draws at
# Tests step animations by hand (anim._func) instead of playing them; matplotlib warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:Animation was deleted")

# A standing SMPL-like pose, metres, Y up, facing +Z, left side at +X.
REST = np.array([
    [0, .95, 0], [.09, .87, 0], [-.09, .87, 0], [0, 1.06, -.01], [.11, .50, .01], [-.11, .50, .01],
    [0, 1.20, 0], [.12, .08, -.03], [-.12, .08, -.03], [0, 1.26, .01], [.13, .02, .09], [-.13, .02, .09],
    [0, 1.48, -.01], [.07, 1.40, 0], [-.07, 1.40, 0], [0, 1.62, .04], [.18, 1.42, -.01], [-.18, 1.42, -.01],
    [.22, 1.16, -.02], [-.22, 1.16, -.02], [.24, .92, .02], [-.24, .92, .02]])


def random_walk(P=2, T=20, seed=0):
    """(P, T, 22, 3): the rest pose drifting on the floor, plus joint jitter; people start 1.5 m apart."""
    rng = np.random.default_rng(seed)
    step = rng.normal(0, 0.03, (P, T, 1, 3)) * [1, 0, 1]
    start = np.array([[-0.75, 0, 0], [0.75, 0, 0]])[:P, None, None]
    return REST + start + np.cumsum(step, axis=1) + rng.normal(0, 0.01, (P, T, N_JOINTS, 3))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(autouse=True, scope="module")
def _collect_animations():
    yield
    gc.collect()  # animations sit in reference cycles: collect them here, under the filter above


def test_bone_chains_draw_every_bone_once():
    bones = [(a, b) for chain, _ in viz.BONE_CHAINS for a, b in zip(chain, chain[1:])]
    assert all(SMPL_PARENTS[child] == parent for parent, child in bones)
    assert sorted(child for _, child in bones) == list(range(1, N_JOINTS))


def test_plot_axes_are_a_rotation_of_the_data_axes():
    M = viz._to_plot(np.eye(3))  # rows: where data x, y, z go
    assert np.linalg.det(M) == pytest.approx(1.0)  # not a mirror: left stays left
    assert M[1] @ [0, 0, 1] == 1.0  # data Y is the plot's vertical


def test_limits_cover_the_clip_and_the_floor():
    J = random_walk(T=30) + [0, 0.5, 0]  # lifted: the floor must still be in view
    lims = viz._limits(J)
    p = viz._to_plot(J).reshape(-1, 3)
    assert (p >= lims[:, 0]).all() and (p <= lims[:, 1]).all()
    assert lims[2, 0] <= 0.0


def test_facing_of_rest_pose_and_after_a_yaw():
    assert viz._facing_xz(REST[None, None])[0, 0] == pytest.approx([0, 1], abs=1e-6)  # faces +Z
    turned = REST @ yaw_matrix(np.pi / 2).T  # +90 degrees about +Y turns +Z into +X
    assert viz._facing_xz(turned[None, None])[0, 0] == pytest.approx([1, 0], abs=1e-6)


def test_animate_updates_artists_to_the_right_frame():
    J = random_walk()
    anim = viz.animate(J, caption="two people wander about " * 6, highlight_frames={5: "touch"}, **SMALL)
    for t in (0, 5, 19):
        artists = anim._func(t)
        counter, tag = artists[-2:]
        artists[0].figure.canvas.draw()  # really render the frame
        assert f"{t:3d}/19" in counter.get_text()
        assert ("touch" in tag.get_text()) == (t == 5)
    # the first chain of person 1 (pelvis ... head) sits where the data says, in plot coordinates
    x, y, z = artists[0].get_data_3d()
    np.testing.assert_allclose(np.stack([x, y, z], -1), viz._to_plot(J[0, 19, viz.BONE_CHAINS[0][0]]))


def test_highlight_stays_up_long_enough_and_survives_stride():
    J = random_walk(T=30)
    anim = viz.animate(J, highlight_frames=[7], stride=4, **SMALL)  # drawn frames 0, 4, 8, ...: 7 is skipped
    assert "key frame" in anim._func(8)[-1].get_text()
    assert anim._func(20)[-1].get_text() == ""


def test_to_html_and_show_on_a_tiny_clip():
    J = random_walk(T=3)
    html = viz.animate(J, caption="tiny", **SMALL).to_jshtml()  # the notebook player, self-contained
    assert "<script" in html and "img" in html.lower()
    n_open = len(plt.get_fignums())
    shown = viz.show(J, caption="tiny", **SMALL)
    assert "<script" in getattr(shown, "data", shown)
    assert len(plt.get_fignums()) == n_open  # show() closed its figure


def test_save_gif_frames_and_folders(tmp_path):
    J = random_walk(T=10)
    path = viz.save_gif(J, tmp_path / "new" / "dir" / "clip.gif", caption="gif", stride=3, **SMALL)
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.n_frames == len(range(0, 10, 3))
        assert im.info["duration"] == pytest.approx(100, abs=10)  # 3 frames at 30 fps: real time
    assert plt.get_fignums() == []


def test_filmstrip_panels_and_labels():
    J = random_walk(T=20)
    fig = viz.filmstrip(J, n=4, caption="four frames", dpi=30, highlight_frames={19: "end"})
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 4 and all(ax.name == "3d" for ax in fig.axes)
    texts = [t.get_text() for t in fig.texts]
    assert any("frame 0 " in t for t in texts) and any("frame 19" in t and "end" in t for t in texts)
    lims = {tuple(ax.get_xlim()) for ax in fig.axes}
    assert len(lims) == 1  # one set of limits for all panels
    fig.canvas.draw()
    assert len(viz.filmstrip(J, frames=[3, 11], dpi=30).axes) == 2
    assert len(viz.filmstrip(J[:, :3], n=6, dpi=30).axes) == 3  # fewer frames than panels
    with pytest.raises(ValueError, match="frames"):
        viz.filmstrip(J, frames=[0, 20])


def test_save_filmstrips_stacks_one_row_per_clip(tmp_path):
    clips = [random_walk(T=12, seed=s) for s in range(2)]
    path = viz.save_filmstrips(clips, ["first", "second"], str(tmp_path / "sub" / "strips.png"), n=3, dpi=30)
    one = viz.filmstrip(clips[0], n=3, caption="first", dpi=30)
    w, h = one.canvas.get_width_height()
    plt.close(one)
    with Image.open(path) as img:
        assert img.size == (w, 2 * h)  # two rows of the same size, one above the other


def test_plot_trajectories_top_view():
    J = random_walk(T=40)
    fig = viz.plot_trajectories(J, caption="wander", arrows_every=0.5, dpi=30)
    ax = fig.axes[0]
    assert ax.yaxis_inverted()  # +z down the page: seen from above, not mirrored
    np.testing.assert_allclose(ax.lines[0].get_xydata(), J[0, :, 0][:, [0, 2]])
    assert len(ax.texts) == 2 * len(range(0, 40, 15))  # facing arrows (annotations), both people
    fig.canvas.draw()


def test_one_person_and_torch_inputs():
    one = random_walk(P=1, T=6)[0]  # (T, 22, 3)
    anim = viz.animate(one, dpi=20)  # default figsize: 4 inches wide, as tall as the scene needs
    artists = anim._func(2)
    assert len(artists) == len(viz.BONE_CHAINS) + 4  # chains, head, trail, counter, tag
    fig = artists[0].figure
    assert fig.get_figwidth() == 4.0 and 2.0 < fig.get_figheight() < 6.0
    fig.canvas.draw()
    tensor = torch.tensor(random_walk(T=6), dtype=torch.float32, requires_grad=True)
    viz.animate(tensor, **SMALL)._func(5)
    assert len(viz.filmstrip(tensor, n=2, dpi=30).axes) == 2
    viz.plot_trajectories(tensor[1].to(torch.bfloat16), dpi=30)  # half precision converts too


@pytest.mark.parametrize("shape", [(20, 22), (3, 20, 22, 3), (2, 20, 24, 3), (2, 0, 22, 3), (20, 262)])
def test_bad_shapes_raise_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"\(T, 22, 3\).*got shape"):
        viz.animate(np.zeros(shape))


def test_nan_and_colour_count_raise():
    J = random_walk(T=4)
    J[0, 1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        viz.filmstrip(J)
    with pytest.raises(ValueError, match="colour"):
        viz.filmstrip(random_walk(T=4), colors=["red"])


def test_script_without_display_gets_agg_and_no_pyplot_at_import():
    code = ("import sys; from intermoe_tools import viz, export, evaluation, ablation, cli; "
            "assert 'matplotlib.pyplot' not in sys.modules; "
            "import numpy as np; fig = viz.filmstrip(np.zeros((2, 22, 3)), n=1, dpi=20); "
            "import matplotlib; print(matplotlib.get_backend())")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "agg"


@pytest.mark.parametrize("caption", [r"one person pays $\frac{1}{$ to the other", "$5 and then $10"])
def test_captions_are_text_whatever_they_hold(tmp_path, caption):
    """A caption is drawn as written: matplotlib reads no TeX or mathtext in it."""
    J = random_walk(T=3)
    viz.save_gif(J, tmp_path / "clip.gif", caption=caption, highlight_frames={1: caption}, **SMALL)
    fig = viz.filmstrip(J, n=2, caption=caption, highlight_frames={1: caption}, dpi=30)
    top = viz.plot_trajectories(J, caption=caption, dpi=30)
    texts = [fig._suptitle, top.axes[0].title] + [t for t in fig.texts if caption in t.get_text()]
    assert len(texts) == 3
    for t in texts:
        assert t._preprocess_math(t.get_text()) == (t.get_text(), False) and caption in t.get_text()
    fig.canvas.draw()
    top.canvas.draw()


def test_a_very_long_caption_is_wrapped_inside_the_figure():
    J = random_walk(T=3)
    for caption in ("one person waves and the other walks round them " * 200, "W" * 10_000):
        fig = viz.animate(J, caption=caption, **SMALL)._fig
        fig.canvas.draw()
        box = fig._suptitle.get_window_extent()
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width and fig._suptitle.get_text().endswith("...")


def test_the_floor_grid_has_a_few_lines_however_large_the_scene():
    """Drawing costs the same for a clip that wandered 500 m off as for one on the spot."""
    J = random_walk(T=3)
    J[1] += np.array([500.0, 0.0, 300.0])
    fig = viz.filmstrip(J, n=1, dpi=30)
    grid = [c for c in fig.axes[0].collections if type(c).__name__ == "Line3DCollection"]
    assert 0 < sum(len(c._segments3d) for c in grid) <= 100
