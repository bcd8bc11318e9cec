"""intermoe_eval: looking at and judging the motion intermoe_min makes.

   1. Looking at motion: matplotlib animations, GIFs, filmstrips and top views (`show`, `animate`,
      `save_gif`, `filmstrip`, `save_filmstrips`, `plot_trajectories`); getting it out (`save_bvh`,
      `save_interhuman`).
   2. Evaluation: the evaluator (InterGen's protocol), InterGen's metrics, identity (roles, homogenisation)
      and physics measures, `evaluate` and `run_evaluation`.
   3. The paper's ablation table in miniature: `run_ablation`.
   4. The command line: `python intermoe_min.py {demo, train, train-vae, sample, evaluate, ablate}` runs
      `main` here (and `run_training`, a run of both stages into one folder; `choose_preset` for notebooks).

It imports intermoe_min, the model, and the data (intersynth, intermoe_tools); intermoe_min never imports
it, except to run the command line when it is run as a script. Written for this project from the InterMoE
and InterGen papers' descriptions.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import socket
import sys
import textwrap
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

import intermoe_min as im
import intersynth
from intermoe_min import (Checkpointable, DataError, FEATURE_SLICES, FEAT_DIM, FOOT_JOINTS, FPS, InterMoE,
                          InterMoEConfig, InteractionDataset, JOINT_NAMES, LatentDataset,
                          MAX_FRAMES, MIN_FRAMES, N_JOINTS, Normalizer, SMPL_PARENTS, TextConfig,
                          TextEncoder,
                          Vocab, build_model, caption_initiator, collate, facing_yaw, foot_contacts,
                          joints_from_features, load_checkpoint, measure_latent_stats,
                          preset, sinusoidal_embedding,
                          train_loop, train_vae, yaw_matrix)
from intermoe_tools import pipeline
from intermoe_tools.devices import init_distributed, pick_device, rank_world
from intermoe_tools.files import WriteError, atomic_write, process_alive, remove_stale_temps
from intermoe_tools.bodies import CHILDREN, END_SITES, skeleton_rotations
from intermoe_tools.physics import CAPSULES, TOUCH_RE, WRISTS, capsule_overlap, segment_distance
from intermoe_tools import interhuman

# =====================================================================================================
# 1. Looking at motion
# =====================================================================================================

# The skeleton drawn as five polylines (and a dot for the head) instead of 21 separate bones: fewer
# artists, faster frames.
# Each chain is a path down SMPL_PARENTS (a test checks every bone appears exactly once).
BONE_CHAINS = [  # (joints along the chain, side)
    ([0, 3, 6, 9, 12, 15], "centre"),    # pelvis, spine1-3, neck, head
    ([0, 1, 4, 7, 10], "left"),          # left hip, knee, ankle, foot
    ([0, 2, 5, 8, 11], "right"),
    ([9, 13, 16, 18, 20], "left"),       # spine3, left collar, shoulder, elbow, wrist
    ([9, 14, 17, 19, 21], "right"),
]
HEAD = JOINT_NAMES.index("head")
PERSON_COLORS = ["#1f6fb4", "#e0530f"]  # person 1 blue, person 2 orange
FLOOR_GRID = 0.5                        # metres between floor grid lines ...
FLOOR_LINES = 40                        # ... at most this many each way: a larger floor gets 10x, 100x ... wider
HIGHLIGHT_HOLD = 0.3                    # seconds a highlight tag stays up (one frame is too short to see)


def _as_people(joints) -> np.ndarray:
    """Joint positions as a float numpy array (P, T, 22, 3); accepts (T, 22, 3), numpy or torch."""
    if hasattr(joints, "detach"):  # a torch tensor; duck-typed so this section never imports torch
        joints = joints.detach().cpu().float().numpy()
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]  # one person
    ok = x.ndim == 4 and x.shape[0] in (1, 2) and x.shape[1] >= 1 and x.shape[2:] == (N_JOINTS, 3)
    if not ok:
        hint = " (262-value features? take the joint positions out first)" if x.shape[-1] == 262 else ""
        raise ValueError(f"joints should be (T, 22, 3) for one person or (P, T, 22, 3) for P = 1 or 2 "
                         f"people, in metres with Y up; got shape {tuple(np.shape(joints))}{hint}")
    if not np.isfinite(x).all():
        raise ValueError(f"joints contain {int((~np.isfinite(x)).sum())} NaN or infinite values")
    return x


def _to_plot(p: np.ndarray) -> np.ndarray:
    """Data (x, y up, z) -> matplotlib 3D (x, -z, y), so the plot's vertical axis is the data's Y.

    Only swapping y and z would mirror the scene (left and right trade places); negating z as well
    makes it a rotation, so a left hand still looks like a left hand.
    """
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def _shades(color) -> dict:
    """One person's colours: the body in `color`, left limbs lighter, right limbs darker."""
    from matplotlib.colors import to_rgb
    c = np.array(to_rgb(color))
    return {"centre": tuple(c), "left": tuple(c + (1 - c) * 0.45), "right": tuple(c * 0.6)}


def _person_colors(colors, P: int) -> list:
    colors = PERSON_COLORS if colors is None else ([colors] if isinstance(colors, str) else list(colors))
    if len(colors) < P:
        raise ValueError(f"need a colour per person: {P} people, {len(colors)} colours")
    return [_shades(c) for c in colors[:P]]


def _limits(J: np.ndarray, margin: float = 0.25, min_size: float = 2.0) -> np.ndarray:
    """(3, 2) plot-axis limits covering every joint of every frame, with the floor (y=0) in view."""
    p = _to_plot(J).reshape(-1, 3)
    lo, hi = p.min(0), p.max(0)
    centre = (lo + hi) / 2
    half = np.maximum((hi - lo) / 2 + margin, min_size / 2)  # a person standing still is not a close-up
    lims = np.stack([centre - half, centre + half], axis=1)
    lims[2] = [min(lo[2], 0.0), max(hi[2] + margin, min_size)]  # vertical: from the floor up
    return lims


def _facing_xz(J: np.ndarray) -> np.ndarray:
    """(P, T, 22, 3) -> (P, T, 2) unit facing direction on the floor, (x, z), from `facing_yaw`."""
    yaw = facing_yaw(J)
    return np.stack([np.sin(yaw), np.cos(yaw)], axis=-1)


def _wrap(caption, width_in: float, fontsize: float = 9) -> str:
    """The caption in at most three lines, each measured in the font to fit width_in inches, ' ...' where cut."""
    if not caption:
        return ""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath
    font, room = FontProperties(size=fontsize), 0.94 * width_in * 72  # points
    chars = max(8, int(room / (fontsize * 0.5)))
    while True:
        text = textwrap.fill(str(caption), chars, max_lines=3, placeholder=" ...")
        widest = max(TextToPath().get_text_width_height_descent(line, font, ismath=False)[0]
                     for line in text.splitlines())
        if widest <= room or chars <= 8:
            return text
        chars = max(8, min(chars - 1, int(chars * room / widest)))


PLAIN = dict(usetex=False, parse_math=False)  # a caption is text: no TeX or mathtext read into its $ or \


def _highlights(highlight_frames) -> dict:
    """{frame: label}; accepts None, a list of frames, or a dict {frame: label}."""
    if highlight_frames is None:
        return {}
    if isinstance(highlight_frames, dict):
        return {int(f): str(label) for f, label in highlight_frames.items()}
    return {int(f): "key frame" for f in highlight_frames}


def _tag(f: int, marks: dict, hold: int) -> str | None:
    """The label of the highlight shown at frame f: one that happened in the last `hold` frames."""
    hits = [h for h in marks if h <= f < h + hold]
    return marks[max(hits)] if hits else None


def _fit_zoom(box, elev, azim, fill=0.85):
    """Zoom that makes a 3D box of sides `box` fill its (always square) panel from this view.

    matplotlib scales every box so that its diagonal fits whatever the view, which leaves a flat
    floor-sized box small; we project the 8 corners onto the screen's right and up directions
    (orthographic, close enough) and zoom until the larger extent is `fill` of the panel.
    Returns (zoom, height): height is the fraction of the panel's height the box then covers.
    """
    e, a = np.radians(elev), np.radians(azim)
    right = np.array([-np.sin(a), np.cos(a), 0.0])
    up = np.array([-np.cos(a) * np.sin(e), -np.sin(a) * np.sin(e), np.cos(e)])
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, 8).T * np.asarray(box) / 2
    w, h = np.abs(corners @ right).max(), np.abs(corners @ up).max()
    half_diag = np.linalg.norm(box) / 2
    zoom = float(np.clip(fill * half_diag / max(w, h), 1.0, 3.0))
    return zoom, min(1.0, zoom * h / half_diag)


def _scene_height(lims, elev, azim, width: float) -> float:
    """Inches of height a scene `width` inches wide needs. 3D panels are always square, but a floor
    seen from the side and a little above is wide and flat; the empty top and bottom may overlap."""
    return width * min(1.0, _fit_zoom(lims[:, 1] - lims[:, 0], elev, azim)[1] + 0.1)


def _setup_axes(ax, lims, elev, azim):
    """Fixed limits, equal scale, a floor at y=0 with a grid, and +x / +z arrows at the origin."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection
    ax.set_xlim(*lims[0]), ax.set_ylim(*lims[1]), ax.set_zlim(*lims[2])
    box = lims[:, 1] - lims[:, 0]
    ax.set_box_aspect(box, zoom=_fit_zoom(box, elev, azim)[0])  # equal metres on every axis
    ax.patch.set_visible(False)  # no background: panels may overlap (see filmstrip)
    ax.view_init(elev=elev, azim=azim)
    ax.set_axis_off()
    ax.computed_zorder = False  # draw in zorder: floor first, people on top
    (x0, x1), (y0, y1) = lims[0], lims[1]
    ax.add_collection3d(Poly3DCollection([[(x0, y0, 0), (x1, y0, 0), (x1, y1, 0), (x0, y1, 0)]],
                                         facecolor="0.92", edgecolor="0.75", zorder=0))
    step = FLOOR_GRID * 10 ** max(0, math.ceil(math.log10(max(x1 - x0, y1 - y0) / (FLOOR_GRID * FLOOR_LINES))))
    gx = np.arange(np.ceil(x0 / step), np.floor(x1 / step) + 1) * step  # drawing costs the same however far
    gy = np.arange(np.ceil(y0 / step), np.floor(y1 / step) + 1) * step  # the people went
    grid = [[(x, y0, 0), (x, y1, 0)] for x in gx] + [[(x0, y, 0), (x1, y, 0)] for y in gy]
    ax.add_collection3d(Line3DCollection(grid, colors="0.8", linewidths=0.5, zorder=1))
    if x0 < 0 < x1 and y0 < 0 < y1:  # origin arrows (data +x and +z) when the origin is in view
        for (dx, dy), name in [((0.4, 0), "x"), ((0, -0.4), "z")]:
            ax.plot([0, dx], [0, dy], [0, 0], color="0.35", lw=1, zorder=1)
            ax.text(dx * 1.25, dy * 1.25, 0, name, color="0.35", fontsize=7, ha="center", va="center")


class _Figures:
    """The artists of P stick figures in one 3D axes, moved to any frame by .draw(t)."""

    def __init__(self, ax, J, shades, trail=True):
        self.ax, self.J, self.trail = ax, _to_plot(J), trail  # J: (P, T, 22, 3) in plot coordinates
        self.bones, self.heads, self.trails = [], [], []
        for shade in shades:
            self.bones.append([ax.plot([], [], [], color=shade[side], lw=3 if side == "centre" else 2.2,
                                       solid_capstyle="round")[0] for _, side in BONE_CHAINS])
            self.heads.append(ax.plot([], [], [], "o", color=shade["centre"], ms=7)[0])
            self.trails.append(ax.plot([], [], [], color=shade["centre"], lw=1, alpha=0.5, zorder=2)[0])

    def draw(self, t: int) -> list:
        limbs, centres = [], []  # every chain and head, with the point that decides its depth
        for p in range(len(self.J)):
            pts = self.J[p, t]  # (22, 3)
            for line, (chain, _) in zip(self.bones[p], BONE_CHAINS):
                line.set_data(pts[chain, 0], pts[chain, 1])
                line.set_3d_properties(pts[chain, 2])
                limbs.append(line), centres.append(pts[chain].mean(0))
            self.heads[p].set_data(pts[[HEAD], 0], pts[[HEAD], 1])
            self.heads[p].set_3d_properties(pts[[HEAD], 2])
            limbs.append(self.heads[p]), centres.append(pts[HEAD])
            if self.trail:  # the pelvis path so far, on the floor
                root = self.J[p, : t + 1, 0]
                self.trails[p].set_data(root[:, 0], root[:, 1])
                self.trails[p].set_3d_properties(np.zeros(len(root)))
        # Painter's algorithm: matplotlib draws in zorder, so the limb nearest the camera goes last
        # (an arm around a partner's back disappears behind them). The floor stays below at zorder 0-2.
        e, a = np.radians(self.ax.elev), np.radians(self.ax.azim)
        to_camera = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
        for rank, i in enumerate(np.argsort(np.array(centres) @ to_camera)):
            limbs[i].set_zorder(3 + rank / 100)
        return limbs + self.trails


def _legend(fig, shades, row=False, **kw):
    """Who is who, and which shade is the left side: stacked (animation) or in one row (filmstrip)."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=s["centre"], lw=3, label=f"person {i + 1}") for i, s in enumerate(shades)]
    if row:
        handles.append(Line2D([], [], color=shades[0]["left"], lw=3, label="lighter limbs: left side"))
        return fig.legend(handles=handles, fontsize=7, frameon=False, ncol=len(handles), **kw)
    return fig.legend(handles=handles, title="lighter limbs: left side", fontsize=7, title_fontsize=7,
                      frameon=False, **kw)


def _scene(joints, caption=None, fps=FPS, colors=None, stride=1, elev=20.0, azim=-60.0,
           figsize=None, dpi=72, highlight_frames=None, trail=True):
    """The figure of an animation and the function that moves it to frame t.

    Returns (fig, update, frames, interval_ms); animate() wraps these in a FuncAnimation, save_gif()
    steps through them itself.
    """
    import matplotlib.pyplot as plt
    J = _as_people(joints)
    P, T = J.shape[:2]
    stride = max(1, int(stride))
    shades = _person_colors(colors, P)
    lims, W = _limits(J), (figsize or (4.0,))[0]
    title = _wrap(caption, W)
    head = 0.17 * (title.count("\n") + 1) + 0.1 if title else 0.1  # inches: caption above the scene
    foot = 0.45                                                     # frame counter and legend below
    if figsize is None:  # as tall as the scene looks, see _scene_height
        row = _scene_height(lims, elev, azim, W)
        H, rect = head + row + foot, (0.0, foot + row / 2 - W / 2, 1.0, W)
    else:
        H = figsize[1]
        rect = (0.0, foot, 1.0, H - head - foot)
    fig = plt.figure(figsize=(W, H), dpi=dpi)
    ax = fig.add_axes((rect[0], rect[1] / H, rect[2], rect[3] / H), projection="3d")
    _setup_axes(ax, lims, elev, azim)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.04 / H, va="top", **PLAIN)
    _legend(fig, shades, loc="lower right")
    people = _Figures(ax, J, shades, trail=trail)
    inches = fig.dpi_scale_trans  # place the counter and tag in inches from the bottom left
    counter = fig.text(0.08, 0.06, "", fontsize=8, family="monospace", transform=inches)
    tag = fig.text(0.08, 0.24, "", fontsize=9, color="crimson", weight="bold", transform=inches, **PLAIN)
    marks, hold = _highlights(highlight_frames), max(stride, round(HIGHLIGHT_HOLD * fps))

    def update(t):
        label = _tag(t, marks, hold)
        counter.set_text(f"frame {t:3d}/{T - 1}  {t / fps:5.2f} s")
        counter.set_color("crimson" if label else "0.2")
        tag.set_text(f"\u25cf {label}" if label else "")
        return people.draw(t) + [counter, tag]

    return fig, update, list(range(0, T, stride)), 1000 * stride / fps


def animate(joints, caption=None, fps=FPS, colors=None, stride=1, elev=20.0, azim=-60.0,
            figsize=None, dpi=72, highlight_frames=None, trail=True):
    """A 3D stick-figure animation of one or two people.

    joints: (P, T, 22, 3) or (T, 22, 3) positions, metres, Y up (numpy or torch).
    caption: the text prompt, shown as the (wrapped) title.
    fps: the data's frame rate. Playback is real time whatever `stride` is: stride=2 draws every
        second frame, each shown twice as long, which halves the work for long clips.
    colors: one matplotlib colour per person (default blue, orange); left limbs are drawn lighter and
        right limbs darker, so left and right can be told apart.
    elev, azim: camera angles in degrees (matplotlib's); the default looks at the front of someone
        facing +Z, slightly from above. The floor grid is FLOOR_GRID metres (wider on a floor of
        more than FLOOR_LINES lines); the arrows at the origin are +x and +z.
    highlight_frames: frames of key events, a list [40, 95] or a dict {40: "contact"}; the frame
        counter turns red and the label appears for HIGHLIGHT_HOLD seconds from that frame.
    trail: draw each pelvis's path so far on the floor.
    figsize: (width, height) inches; None: 4 inches wide and only as tall as the scene needs.
    returns a matplotlib FuncAnimation. Its figure belongs to pyplot: in a notebook use show()
    (which closes it), in a script plt.show() or save_gif().
    """
    from matplotlib.animation import FuncAnimation
    fig, update, frames, interval = _scene(joints, caption, fps, colors, stride, elev, azim, figsize,
                                           dpi, highlight_frames, trail)
    return FuncAnimation(fig, update, frames=frames, interval=interval, cache_frame_data=False)


def _record(writer, fig, update, frames, path):
    """Draw each frame once into a matplotlib movie writer (Animation.save would draw each twice)."""
    with writer.saving(fig, path, dpi=fig.dpi):
        for t in frames:
            update(t)
            writer.grab_frame()


def show(joints, caption=None, stride=2, **kw):
    """Notebook convenience: animate, render to an inline player, close the figure (so the notebook
    does not also print a still image). Returns IPython.display.HTML, or the HTML string without IPython.

    stride=2 by default: the page holds every drawn frame as a PNG (a 150-frame clip at stride 2:
    75 frames, ~1.6 MB, a few seconds to render). Other keyword arguments are animate()'s.
    """
    import tempfile

    import matplotlib.pyplot as plt
    from matplotlib.animation import HTMLWriter
    fig, update, frames, interval = _scene(joints, caption, stride=stride, **kw)
    try:  # what anim.to_jshtml() does, drawing each frame once
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "player.html")
            _record(HTMLWriter(fps=1000 / interval, embed_frames=True, default_mode="loop"),
                    fig, update, frames, path)
            with open(path, encoding="utf-8") as f:
                html = f.read()
    finally:
        plt.close(fig)
    try:
        from IPython.display import HTML
    except ImportError:
        return html
    return HTML(html)


def save_gif(joints, path, caption=None, fps=FPS, stride=2, **kw):
    """Write the animation to `path` as a GIF through Pillow (no ffmpeg), whole or not at all (`atomic_write`),
    creating parent folders.

    stride=2 by default: 15 drawn frames a second look smooth enough and take half the time.
    Playback is real time, up to GIF's clock: frame times are whole 1/100 s, so 33 ms becomes 30 ms
    and 67 ms becomes 60 ms (a 10% fast replay). Keyword arguments are animate()'s. Returns the path.
    """
    return atomic_write(os.fspath(path), _gif_writer(joints, caption, fps, stride, **kw))


def _gif_writer(joints, caption=None, fps=FPS, stride=2, **kw):
    """A function that writes the GIF of save_gif to the path it is given (the joints checked now)."""
    _as_people(joints)

    def write(path):
        import matplotlib.pyplot as plt
        from matplotlib.animation import PillowWriter
        fig, update, frames, interval = _scene(joints, caption, fps=fps, stride=stride, **kw)
        try:
            _record(PillowWriter(fps=1000 / interval), fig, update, frames, path)
        finally:
            plt.close(fig)
    return write


def filmstrip(joints, n=6, caption=None, frames=None, ax_size=2.0, fps=FPS, colors=None, elev=20.0,
              azim=-60.0, dpi=80, highlight_frames=None, trail=True):
    """Still 3D frames side by side: n evenly spaced ones, or the given `frames`.

    All panels share one set of limits, so positions compare across panels; under each panel are
    the frame index and time. Panels at a highlighted frame get a red label.
    Returns the Figure. Like any pyplot figure, a notebook shows it at the end of the cell, and shows
    it twice if it is also the cell's value: write `fig = filmstrip(...)` or end the line with `;`.
    """
    import matplotlib.pyplot as plt
    J = _as_people(joints)
    T = J.shape[1]
    if frames is None:
        frames = np.unique(np.linspace(0, T - 1, max(1, min(int(n), T))).round().astype(int))
    frames = [int(f) for f in frames]
    if not frames or min(frames) < 0 or max(frames) >= T:
        raise ValueError(f"frames must be a non-empty list of indices in [0, {T - 1}], got {frames}")
    shades, lims, marks = _person_colors(colors, J.shape[0]), _limits(J), _highlights(highlight_frames)
    title = _wrap(caption, ax_size * len(frames), fontsize=10)
    n = len(frames)
    row = _scene_height(lims, elev, azim, ax_size)  # the square panels overlap above and below
    head = 0.2 * (title.count("\n") + 1) + 0.1 if title else 0.05  # inches above the panels
    foot = 0.5                                                       # frame labels, then the legend
    H = head + row + foot
    fig = plt.figure(figsize=(ax_size * n, H), dpi=dpi)
    for i, f in enumerate(frames):
        ax = fig.add_axes((i / n, (foot + row / 2 - ax_size / 2) / H, 1 / n, ax_size / H), projection="3d")
        _setup_axes(ax, lims, elev, azim)
        _Figures(ax, J, shades, trail=trail).draw(f)
        label = f"frame {f}  {f / fps:.2f} s" + (f"  \u25cf {marks[f]}" if f in marks else "")
        fig.text((i + 0.5) / n, (foot - 0.02) / H, label, ha="center", va="top", fontsize=8,
                 color="crimson" if f in marks else "0.2", weight="bold" if f in marks else "normal", **PLAIN)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.05 / H, va="top", **PLAIN)
    _legend(fig, shades, row=True, loc="lower center", bbox_to_anchor=(0.5, 0.0))
    return fig


def save_filmstrips(clips, captions, path: str, **kw) -> str:
    """One PNG of `filmstrip` rows, one per clip (e.g. a model's samples for several prompts), whole or not at all.
    Returns path."""
    return atomic_write(os.fspath(path), _filmstrips_writer(clips, captions, **kw))


def _filmstrips_writer(clips, captions, **kw):
    """A function that writes the sheet of save_filmstrips to the path it is given (the sheet drawn now)."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image
    rows = []
    for joints, caption in zip(clips, captions):
        fig = filmstrip(joints, caption=caption, **kw)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        rows.append(Image.open(buf).convert("RGB"))
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return sheet.save


def plot_trajectories(joints, caption=None, fps=FPS, colors=None, ax=None, figsize=(4.0, 4.0), dpi=80,
                      dots_every=1.0, arrows_every=None):
    """Top view of the floor: each pelvis's path, the way each person faces at the start (arrow),
    start (circle) and end (square), and a dot every `dots_every` seconds (dots far apart = fast).
    Handy for circling, following, approaching. arrows_every=s adds a facing arrow every s seconds.

    Seen from above with x to the right, +z points down the page (the true view from above; putting
    +z up would mirror the scene and turn clockwise into anticlockwise).
    Draws into `ax` if given; returns the Figure (in a notebook: `fig = ...` or `;`, see filmstrip).
    """
    import matplotlib.pyplot as plt
    J = _as_people(joints)
    P, T = J.shape[:2]
    shades = _person_colors(colors, P)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, dpi=dpi)
    fig = ax.figure
    root, face = J[:, :, 0, [0, 2]], _facing_xz(J)  # (P, T, 2) pelvis on the floor, facing (x, z)
    arrow_len = 0.35  # metres
    for p in range(P):
        c = shades[p]["centre"]
        ax.plot(*root[p].T, color=c, lw=1.8, label=f"person {p + 1}")
        ax.plot(*root[p, 0], "o", color=c, ms=7, mfc="white", mew=2)
        ax.plot(*root[p, -1], "s", color=c, ms=6)
        if dots_every:
            ax.plot(*root[p, :: max(1, round(dots_every * fps))].T, ".", color=c, ms=5)
        every = max(1, round(arrows_every * fps)) if arrows_every else T  # T: only the first frame
        for t in range(0, T, every):
            ax.annotate("", xy=root[p, t] + arrow_len * face[p, t], xytext=root[p, t],
                        arrowprops=dict(arrowstyle="-|>", color=c, lw=1.5 if t else 2.2))
    ax.plot(0, 0, "+", color="0.4", ms=8)  # the origin
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(0.15)
    if not ax.yaxis_inverted():
        ax.invert_yaxis()  # +z down: the view from above (see docstring)
    ax.set_xlabel("x (m)", fontsize=8)
    ax.set_ylabel("z (m), seen from above", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, lw=0.4, color="0.85")
    ax.legend(fontsize=7, frameon=False, title="o start  \u25a0 end  \u2192 facing", title_fontsize=7)
    if caption:
        ax.set_title(_wrap(caption, fig.get_figwidth()), fontsize=9, **PLAIN)
    return fig


# ---- 1b. Getting motion out: BVH for Blender and friends, InterHuman's raw layout ----------------------------
# BVH stores a skeleton (each joint's offset from its parent in a rest pose, a T-pose facing +Z) and, per frame,
# the root's position and every joint's rotation relative to its parent: `skeleton_rotations` (intermoe_tools.bodies) solves them
# from the positions. The model's output is already rigid (intermoe_tools.bodies.rigid_bodies), so the file gives it back exactly.


def _euler_zxy(R):
    """(..., 3, 3) -> degrees (z, x, y) with R = Rz(z) Rx(x) Ry(y), BVH's 'Zrotation Xrotation Yrotation'."""
    x = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    lock = np.sqrt(R[..., 0, 1] ** 2 + R[..., 1, 1] ** 2) < 1e-8     # x = +-90 deg: only z + -y is defined
    z = np.where(lock, np.arctan2(R[..., 1, 0], R[..., 0, 0]), np.arctan2(-R[..., 0, 1], R[..., 1, 1]))
    y = np.where(lock, 0.0, np.arctan2(-R[..., 2, 0], R[..., 2, 2]))
    return np.degrees(np.stack([z, x, y], -1))


def save_bvh(motion, path: str, fps: int = FPS) -> list:
    """Two people's joints (2, T, 22, 3) metres, or features (2, T, 262), -> one BVH file each, `path` with
    '_p1' / '_p2' before '.bvh', both written or neither (`atomic_write`); returns their paths. Centimetres,
    Y up, 'Zrotation Xrotation Yrotation'."""
    paths, writers = _bvh_writers(motion, path, fps)
    return atomic_write(paths, writers)


def _bvh_writers(motion, path: str, fps: int = FPS) -> tuple[list, list]:
    """save_bvh's file names and, for each, a function that writes its text to the path it is given."""
    J = np.asarray(motion, dtype=np.float64)
    if J.ndim == 3 and J.shape[-1] == FEAT_DIM:
        J = joints_from_features(J)
    if J.ndim == 4 and J.shape[0] != 2 or J.ndim not in (3, 4) or J.shape[-2:] != (N_JOINTS, 3) or J.shape[-3] < 2:
        raise ValueError(f"save_bvh: expected joints (2, T, 22, 3) or (T, 22, 3), or features (2, T, {FEAT_DIM}), "
                         f"with T >= 2 frames; got {np.shape(motion)}")
    if not np.isfinite(J).all():
        raise ValueError(f"save_bvh: the joints contain {int((~np.isfinite(J)).sum())} NaN or inf values; "
                         f"a BVH file cannot hold them")
    people = J if J.ndim == 4 else J[None]
    stem = path[:-4] if path.lower().endswith(".bvh") else path
    paths, writers = [], []
    for n, person in enumerate(people):
        local, offsets = skeleton_rotations(person)
        lines = ["HIERARCHY"]

        def write(j, depth):
            pad = "  " * depth
            lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {JOINT_NAMES[j]}")
            lines.append(pad + "{")
            lines.append(f"{pad}  OFFSET {' '.join(f'{100 * v:.4f}' for v in (offsets[j] if j else np.zeros(3)))}")
            lines.append(f"{pad}  CHANNELS " + ("6 Xposition Yposition Zposition " if j == 0 else "3 ")
                         + "Zrotation Xrotation Yrotation")
            for c in CHILDREN[j]:
                write(c, depth + 1)
            if not CHILDREN[j]:  # the tip of the head, hand or toes, scaled to the person's own last bone
                tip = np.asarray(END_SITES[j]) * np.linalg.norm(offsets[j]) / np.linalg.norm(im.REST_OFFSETS[j])
                lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {' '.join(f'{100 * v:.4f}' for v in tip)}",
                              pad + "  }"])
            lines.append(pad + "}")
        write(0, 0)
        angles = _euler_zxy(local)                                          # (T, 22, 3)
        order = [j for j in _dfs_order()]
        rows = np.concatenate([100 * person[:, 0], angles[:, order].reshape(len(person), -1)], 1)
        lines += ["MOTION", f"Frames: {len(person)}", f"Frame Time: {1.0 / fps:.8f}"]
        lines += [" ".join(f"{v:.5f}" for v in row) for row in rows]
        paths.append(f"{stem}_p{n + 1}.bvh")
        writers.append(lambda p, text="\n".join(lines) + "\n": _write_text(p, text))
    return paths, writers


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _dfs_order(j: int = 0) -> list:
    """Joints in the order a BVH file lists them (depth first, children in SMPL order)."""
    return [j] + [k for c in CHILDREN[j] for k in _dfs_order(c)]


def save_interhuman(root: str, clip_id: str, joints, captions, split: str = "test", rot6d=None) -> str:
    """Two people's joints (2, T, 22, 3) and captions -> InterHuman's raw files under `root` (the layout
    intermoe_tools.interhuman.load_interhuman reads). rot6d (2, T, 21, 6): the local rotations, e.g. a
    clip's own; None: solved from the positions (`skeleton_rotations`, no twist). Adds clip_id to root/<split>.txt."""
    J = np.asarray(joints, dtype=np.float64)
    if J.ndim != 4 or J.shape[0] != 2 or J.shape[2:] != (N_JOINTS, 3):
        raise ValueError(f"save_interhuman: expected joints of shape (2, T, 22, 3), got {J.shape}")
    if rot6d is None:
        rot6d = np.stack([im.rot6d_from_matrix(skeleton_rotations(p)[0][:, 1:]) for p in J])  # (2, T, 21, 6)
    elif np.shape(rot6d) != J.shape[:2] + (N_JOINTS - 1, 6):
        raise ValueError(f"save_interhuman: rot6d must have shape {J.shape[:2] + (N_JOINTS - 1, 6)}, got {np.shape(rot6d)}")
    interhuman.save_clip(root, clip_id, J, rot6d, list(captions), split)
    return root


# =====================================================================================================
# 2. Evaluation: InterGen's protocol, identity metrics, physics
# =====================================================================================================
# The paper's claims are numbers, so the numbers must be reproducible (InterGen's tools/eval.py; docs/results.md):
#   2.1 The evaluator (InterGen's "InterCLIP"): a text encoder and a two-person motion encoder trained
#        contrastively on the training split. Every InterGen metric is a distance in its embedding space.
#   2.2 InterGen's metrics: FID, R-Precision, MM-Dist, Diversity, MultiModality, mean +- 95% interval.
#   2.3 Identity (new): does each person keep the role the caption gives it, and do the two people stay
#        different from each other? A role classifier trained on ground truth judges the first.
#   2.4 Physics: foot sliding, floor penetration, interpenetration of the two bodies, hand contact.
#   2.5 `evaluate(model, records, evaluator, ...)`: all of the above, repeated with fresh generations;
#        `evaluate(None, ...)` gives the real-vs-real row.
# Motion comes in as InterHuman features, (2, T, 262) per clip, de-normalised: what
# InteractionDataset.features returns and what InterMoE.sample(..., return_features=True) returns.

# ---- 2.1 The evaluator ------------------------------------------------------------------------------

EMBED_SCALE = 6.0  # InterGen's embeddings are unit vectors times a learnt scale (about 6 once trained, the
                   # learnt latent_scale of datasets/evaluator_models.py). We fix it at 6, so FID, MM-Dist, Diversity and MultiModality come
                   # out on InterGen's numeric scale. R-Precision does not depend on it.
MOTION_IN = FEATURE_SLICES["contacts"].start  # 258: a person's feature without its 4 foot-contact bits


@dataclass
class EvaluatorConfig:
    """Sizes and training of the evaluator; the role classifier (11.3) reuses the motion branch and this config."""
    d_model: int = 128     # token width of both transformers (InterGen: 768 text, 1024 motion; ours trains on a CPU)
    n_layers: int = 2      # transformer layers per branch (InterGen: 8)
    n_heads: int = 4       # attention heads, 32 channels each
    dropout: float = 0.1
    patch: int = 8         # frames per motion token: 300 frames -> 38 tokens. Nothing is dropped (8 frames of
                           # 2 x 258 values are concatenated into one token); 4 was no better for 2x the time
    d_embed: int = 64      # embedding width (InterGen: 512). FID estimates a d_embed x d_embed covariance
                           # from a few hundred test clips; a small embedding keeps that estimate meaningful
    max_frames: int = MAX_FRAMES  # longest motion it reads
    steps: int = 600       # training steps: ~2-3 min on one CPU thread (InterSynth's 2400 training clips)
    batch: int = 32        # pairs per InfoNCE batch: 31 negatives for every positive (64: no better, 2x slower)
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup: int = 60


def _motion_input(features, lengths, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and convert a motion batch: features (B, 2, T, 262) numpy or torch, lengths (B,) in 1..T."""
    x = torch.as_tensor(features, dtype=torch.float32, device=device)
    if x.ndim != 4 or x.shape[1] != 2 or x.shape[-1] != FEAT_DIM:
        raise ValueError(f"expected features of shape (B, 2, T, {FEAT_DIM}): both people's de-normalised "
                         f"features, got {tuple(x.shape)}")
    n = torch.as_tensor(lengths, device=device).long().reshape(-1)
    if n.shape[0] != x.shape[0] or bool((n < 1).any()) or bool((n > x.shape[2]).any()):
        raise ValueError(f"expected {x.shape[0]} lengths in 1..{x.shape[2]} (frames of each clip), got {n.tolist()}")
    return x, n


class MotionEncoder(nn.Module):
    """Two people's motion -> one vector: InterGen's evaluator motion branch (datasets/evaluator_models.py).

    features (B, 2, T, 262) de-normalised, lengths (B,) -> (B, d_out). The features are normalised with
    the encoder's own statistics and lose the foot contacts (2 x 258 values per frame); every `patch`
    frames become one token (Linear); a learnable query token goes first, sinusoidal positions are added;
    a transformer (padding masked) -> LayerNorm -> the query token's feature -> Linear.
    """

    def __init__(self, cfg: EvaluatorConfig, normalizer: Normalizer, d_out: int):
        super().__init__()
        self.normalizer, self.patch, self.max_frames = normalizer, cfg.patch, cfg.max_frames
        self.embed = nn.Linear(cfg.patch * 2 * MOTION_IN, cfg.d_model)
        self.query = nn.Parameter(0.02 * torch.randn(cfg.d_model))
        n_tokens = 1 + math.ceil(cfg.max_frames / cfg.patch)
        self.register_buffer("positions", sinusoidal_embedding(torch.arange(n_tokens), cfg.d_model),
                             persistent=False)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, d_out)

    def forward(self, features, lengths) -> torch.Tensor:
        x, lengths = _motion_input(features, lengths, self.out.weight.device)
        B, P, T, _ = x.shape  # batch, people, frames, 262
        if T > self.max_frames:
            raise ValueError(f"motion of {T} frames is longer than this encoder reads ({self.max_frames})")
        k = self.patch
        N = math.ceil(T / k)  # tokens
        x = F.pad(x, (0, 0, 0, N * k - T))  # (B, 2, N*k, 262)
        mask = torch.arange(N * k, device=x.device)[None] < lengths[:, None]  # (B, N*k) real frames
        x = self.normalizer.normalise(x)[..., :MOTION_IN] * mask[:, None, :, None]  # (B, 2, N*k, 258), padding 0
        x = rearrange(x, "b p (n k) f -> b n (k p f)", k=k)  # (B, N, k*2*258): one token per k frames
        h = torch.cat([self.query.expand(B, 1, -1), self.embed(x)], 1) + self.positions[:N + 1]  # (B, 1+N, d)
        keep = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=x.device), mask[:, ::k]], 1)  # (B, 1+N)
        h = self.norm(self.transformer(h, src_key_padding_mask=~keep))  # (B, 1+N, d)
        return self.out(h[:, 0])  # (B, d_out): the query token's feature


class Evaluator(Checkpointable, nn.Module):
    """InterGen's evaluator ("InterCLIP"): captions and two-person motions -> points of one embedding space.

    motion: MotionEncoder -> L2-normalised;  text: TextEncoder (intermoe_min section 4: words -> transformer -> <eos>
    token -> Linear) -> L2-normalised; both scaled by EMBED_SCALE. Trained with symmetric InfoNCE and a
    learnable temperature (CLIP, Radford et al. 2021); a matching caption and motion end up close.

        ev = Evaluator(EvaluatorConfig(), vocab, normalizer)
        t = ev.encode_text(["two people hug"])           # (1, d_embed)
        m = ev.encode_motion(features, lengths)          # (B, d_embed), features (B, 2, T, 262)
    """
    KINDS = ("evaluator",)
    config_from_dict = staticmethod(lambda d: EvaluatorConfig(**d))

    def __init__(self, cfg: EvaluatorConfig, vocab: Vocab, normalizer: Normalizer):
        super().__init__()
        self.cfg, self.vocab, self.normalizer = cfg, vocab, normalizer
        self.motion = MotionEncoder(cfg, normalizer, cfg.d_embed)
        self.text = TextEncoder(vocab, TextConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                                  dropout=cfg.dropout, d_cond=cfg.d_embed))
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's starting 0.07

    def forward(self, features, lengths, captions: list[str]):
        """Symmetric InfoNCE on B matching (motion, caption) pairs: cross-entropy of each motion against all
        B captions and of each caption against all B motions, the diagonal being right (CLIP, Fig. 3).
        Returns (loss, logs)."""
        m = F.normalize(self.motion(features, lengths), dim=-1)  # (B, d_embed)
        t = F.normalize(self.text(list(captions))[0], dim=-1)   # (B, d_embed)
        scale = self.log_inv_temperature.clamp(max=math.log(100.0)).exp()  # 1 / temperature, at most 100 (CLIP)
        logits = scale * m @ t.T  # (B, B) motion i against caption j
        target = torch.arange(len(logits), device=logits.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        return loss, {"acc": (logits.argmax(1) == target).float().mean(), "temperature": 1 / scale.detach()}

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """B captions -> (B, d_embed) embeddings of norm EMBED_SCALE."""
        return EMBED_SCALE * F.normalize(self.text(list(captions))[0], dim=-1)

    @torch.no_grad()
    def encode_motion(self, features, lengths) -> torch.Tensor:
        """features (B, 2, T, 262) de-normalised, lengths (B,) -> (B, d_embed) embeddings of norm EMBED_SCALE."""
        return EMBED_SCALE * F.normalize(self.motion(features, lengths), dim=-1)


def _train(cls, build, loss_fn, data, collate_fn, steps, batch, seed, ckpt_path, progress, device):
    """Build an evaluation network (`build()`), or read it from ckpt_path, and train it with train_loop, which
    resumes an interrupted run and just reads a finished one. Returns (network in eval mode, loss history)."""
    if ckpt_path and os.path.isfile(ckpt_path):
        net = cls.load(ckpt_path, device="cpu").train()  # the checkpoint's config and statistics win
    else:
        torch.manual_seed(seed)
        net = build()
    cfg = net.cfg
    steps = cfg.steps if steps is None else steps
    history = train_loop(net, loss_fn, data, collate_fn, steps=steps,
                         batch_size=min(cfg.batch if batch is None else batch, len(data)), lr=cfg.lr,
                         weight_decay=cfg.weight_decay, warmup=max(1, min(cfg.warmup, steps // 10)), grad_clip=1.0,
                         ckpt_path=ckpt_path, ckpt_every=200, seed=seed, kind=cls.KINDS[0],
                         extra_state=net.checkpoint_state, device=device, progress=progress)
    return net.eval(), history


def train_evaluator(train_records: list[dict], val_records: list[dict] | None = None,
                    cfg: EvaluatorConfig | None = None, steps: int | None = None, batch: int | None = None,
                    seed: int = 0, ckpt_path: str | None = None, progress: bool = True, device=None,
                    normalizer: Normalizer | None = None):
    """Train the evaluator on ground-truth clips; returns (evaluator, report).

    Each step draws `batch` clips, each with one of its captions, person-swapped and mirrored at random with
    the caption following (InteractionDataset). With ckpt_path the run is cached: a finished checkpoint is
    just read, an interrupted one resumes (the checkpoint's own config, vocabulary and statistics win).
    report: 'seconds', 'history' (losses), and with val_records the evaluator's own retrieval accuracy on
    them (`retrieval_accuracy`), the real-data level generated clips are compared with.
    normalizer: statistics of the training clips' features, fitted here if not given (~30 s for 2400 clips);
    InterMoE's own (model.normalizer, built from the same clips) is the same thing.
    """
    t0 = time.time()
    data = InteractionDataset(train_records, train=True, seed=seed)  # no normaliser: features stay de-normalised

    def build():
        return Evaluator(cfg or EvaluatorConfig(), Vocab.for_records(data.records), normalizer or data.fit_normalizer())

    def loss_fn(net, b, dev):
        return net(b["motion"].to(dev), b["lengths"].to(dev), b["captions"])

    evaluator, history = _train(Evaluator, build, loss_fn, data, collate, steps, batch, seed, ckpt_path,
                                progress, device)
    report = {"seconds": round(time.time() - t0, 1), "history": history}
    if val_records:
        report.update(retrieval_accuracy(evaluator, val_records, seed=seed))
    return evaluator, report


# ---- 2.2 InterGen's metrics ---------------------------------------------------------------------------
# All on embeddings from Evaluator.encode_* (norm EMBED_SCALE = 6, InterGen's scale), numpy (N, D) arrays.

def _emb(x, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or not np.isfinite(a).all():
        raise ValueError(f"{name}: expected a finite (N, D) array of embeddings, got shape {a.shape}")
    return a


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """Frechet distance between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982; FID, Heusel et al. 2017):

        d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2)

    tr((S1 S2)^1/2) is computed as tr((S1^1/2 S2 S1^1/2)^1/2): S1 S2 and S1^1/2 S2 S1^1/2 are similar (same
    eigenvalues) and the second is symmetric positive semi-definite, so two symmetric eigendecompositions
    suffice, in float64. Nothing is inverted: a near-singular covariance (fewer samples than dimensions)
    simply has zero eigenvalues; negative round-off eigenvalues are clipped to 0, and so is the result.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    D = mu1.shape[0]
    if mu1.shape != (D,) or mu2.shape != (D,) or cov1.shape != (D, D) or cov2.shape != (D, D):
        raise ValueError(f"frechet_distance: means (D,) and covariances (D, D) must agree, got "
                         f"{mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}")
    w, V = np.linalg.eigh(cov1)
    root1 = (V * np.sqrt(np.clip(w, 0, None))) @ V.T  # S1^1/2
    M = root1 @ cov2 @ root1
    tr_root = np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (M + M.T)), 0, None)).sum()  # tr((S1 S2)^1/2)
    return max(0.0, float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_root))


def frechet_distance(feats_a, feats_b) -> float:
    """FID between two sets of embeddings, (N, D) and (M, D): each set's mean and covariance (N - 1 in the
    denominator, as InterGen's np.cov), then `frechet_distance_from_stats`. Identical sets give 0."""
    a, b = _emb(feats_a, "frechet_distance feats_a"), _emb(feats_b, "frechet_distance feats_b")
    if a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance: need two sets of at least 2 embeddings of the same width, "
                         f"got {a.shape} and {b.shape}")
    return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (M, D) -> (N, M) Euclidean distances."""
    return np.linalg.norm(a[:, None] - b[None], axis=-1)


def r_precision(text_emb, motion_emb, batch: int = 96, top_k: int = 3, rng=None) -> np.ndarray:
    """R-Precision top-1..top_k (InterGen's protocol): pairs (text i, motion i) are shuffled into batches of
    `batch`; within a batch each text ranks the batch's motions by Euclidean distance, and top-k is the share
    of texts whose own motion is among the k nearest. The last incomplete batch is left out (InterGen's
    loader drops it); fewer pairs than `batch` make one batch of all of them. Chance: k / batch.
    A motion exactly as close as the right one does not push it down (ties count for the text).
    Returns (top_k,) shares."""
    t, m = _emb(text_emb, "r_precision text_emb"), _emb(motion_emb, "r_precision motion_emb")
    if t.shape != m.shape:
        raise ValueError(f"r_precision: text and motion embeddings must pair up, got {t.shape} and {m.shape}")
    rng = rng if rng is not None else np.random.default_rng(0)
    order = rng.permutation(len(t))
    size = min(batch, len(t))
    hits = np.zeros(top_k)
    for s in range(0, len(t) - size + 1, size):
        idx = order[s:s + size]
        d = _distances(t[idx], m[idx])  # (size, size) text i to motion j
        closer = (d < d.diagonal()[:, None]).sum(1)  # (size,) motions nearer than the right one
        hits += (closer[:, None] < np.arange(1, top_k + 1)).sum(0)
    return hits / (len(t) // size * size)


def mm_dist(text_emb, motion_emb) -> float:
    """MM-Dist: mean Euclidean distance between each text and its own motion."""
    t, m = _emb(text_emb, "mm_dist text_emb"), _emb(motion_emb, "mm_dist motion_emb")
    if t.shape != m.shape:
        raise ValueError(f"mm_dist: text and motion embeddings must pair up, got {t.shape} and {m.shape}")
    return float(np.linalg.norm(t - m, axis=-1).mean())


def diversity(emb, n_pairs: int = 300, rng=None) -> float:
    """Diversity: mean distance between n_pairs random pairs of different embeddings (InterGen: 300 pairs).
    Unlike InterGen, a row is never paired with itself, so N equidistant points give exactly that distance."""
    e = _emb(emb, "diversity")
    if len(e) < 2:
        raise ValueError(f"diversity: need at least 2 embeddings, got {len(e)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    i = rng.integers(len(e), size=n_pairs)
    j = (i + rng.integers(1, len(e), size=n_pairs)) % len(e)  # any other row
    return float(np.linalg.norm(e[i] - e[j], axis=-1).mean())


def multimodality(emb_groups, n_pairs: int = 10, rng=None) -> float:
    """MultiModality: (C, R, D) embeddings of R generations for each of C captions (InterGen: 100 x 30) ->
    the mean over captions of the diversity of its generations (InterGen: 10 pairs per caption)."""
    g = np.asarray(emb_groups, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] < 2:
        raise ValueError(f"multimodality: expected (captions, generations >= 2, D) embeddings, got shape {g.shape}")
    rng = rng if rng is not None else np.random.default_rng(0)
    return float(np.mean([diversity(x, n_pairs, rng) for x in g]))


_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]  # Student t, 97.5%, dof 1..10


def mean_ci(values, student_t: bool = False) -> tuple[float, float]:
    """(mean, 95% half-interval) of repeated measurements; NaNs (a repeat that could not measure) left out,
    fewer than two values give NaN. Default: InterGen's 1.96 std / sqrt(n) (std over n), to compare with
    published numbers. student_t=True, for a few seeds: t(n - 1) s / sqrt(n) with the sample std s (with 3
    seeds 4.30 s / sqrt(3): the 1.96 rule would claim an interval about 2.7 times too narrow)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float(v.mean()) if len(v) else float("nan")), float("nan")
    if not student_t:
        return float(v.mean()), float(1.96 * v.std() / np.sqrt(len(v)))
    t = _T975[len(v) - 2] if len(v) - 1 <= len(_T975) else 1.96
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(len(v)))


# ---- 2.3 Identity: roles and homogenisation -----------------------------------------------------------
# InterSynth records who initiates (meta['initiator']), and one caption of each clip names the people by
# index, initiator first ("the first person ... the second person"). So for a caption that names roles,
# a classifier trained on ground truth can tell whether a generated clip gives each person its role.
# Roles are only scored where the two people do different things. In the other types (handshake, high five,
# hug, wave, circle, bow, dance, clapping game, conversation, greet and walk) both do the same thing and the
# initiator merely starts a little earlier: a 15-60 frame crop (10% of clips) can show no difference at all.
ASYMMETRIC_TYPES = ("punch_dodge",   # one punches, the other dodges
                    "push",          # one pushes, the other stumbles back
                    "follow",        # one leads, the other follows
                    "handover",      # one gives, the other takes
                    "tug_of_war",    # one wins and drags the other
                    "kick_block",    # one kicks, the other blocks
                    "point_look",    # one points, the other looks
                    "shoulder_pat",  # one pats, the other turns round
                    "fencing",       # one lunges, the other parries
                    "taekwondo")     # one kicks, the other blocks
ROLE_CONFIDENCE = 0.75  # a clip counts for a role when the classifier gives it this probability or more


def is_asymmetric(record: dict) -> bool:
    meta = record.get("meta") or {}
    return meta.get("type") in ASYMMETRIC_TYPES and meta.get("initiator") in (0, 1)


class RoleClassifier(Checkpointable, nn.Module):
    """Which of the two people initiates? features (B, 2, T, 262) de-normalised, lengths (B,) -> logit (B,)
    of 'person 0 initiates'. The evaluator's motion branch with one output, trained on ground-truth clips
    of ASYMMETRIC_TYPES, swapped (the label flips) and mirrored (it does not) at random."""
    KINDS, STORED = ("role_classifier",), ("config", "normalizer")
    config_from_dict = staticmethod(lambda d: EvaluatorConfig(**d))

    def __init__(self, cfg: EvaluatorConfig, normalizer: Normalizer):
        super().__init__()
        self.cfg, self.normalizer = cfg, normalizer
        self.motion = MotionEncoder(cfg, normalizer, 1)

    def forward(self, features, lengths) -> torch.Tensor:
        return self.motion(features, lengths)[:, 0]

    @torch.no_grad()
    def predict(self, features, lengths) -> torch.Tensor:
        """(B,) probability that person 0 is the initiator."""
        return torch.sigmoid(self(features, lengths))


def train_role_classifier(train_records: list[dict], val_records: list[dict] | None = None,
                          cfg: EvaluatorConfig | None = None, steps: int | None = None, batch: int | None = None,
                          seed: int = 0, ckpt_path: str | None = None, progress: bool = True, device=None,
                          normalizer: Normalizer | None = None):
    """Train the role classifier on the asymmetric clips of train_records; returns (classifier, report).
    Cached/resumed through ckpt_path, and `normalizer` reused, as in `train_evaluator`. report: 'seconds',
    'history', and with val_records `role_report` on them (real clips near 1, person-swapped ones near 0)."""
    t0 = time.time()
    asym = [r for r in train_records if is_asymmetric(r)]
    if not asym:
        raise DataError("train_role_classifier: no clip of an asymmetric type (ASYMMETRIC_TYPES) with "
                        "meta['initiator'] among the training records")
    data = InteractionDataset(asym, train=True, seed=seed)
    initiator = {r["id"]: int(r["meta"]["initiator"]) for r in data.records}

    def build():
        return RoleClassifier(cfg or EvaluatorConfig(), normalizer or data.fit_normalizer())

    def collate_roles(items):  # the label follows a person swap
        b = collate(items)
        b["first_initiates"] = torch.tensor([float((initiator[it["id"]] ^ it["swapped"]) == 0) for it in items])
        return b

    def loss_fn(net, b, dev):
        logit, target = net(b["motion"].to(dev), b["lengths"].to(dev)), b["first_initiates"].to(dev)
        acc = ((logit > 0).float() == target).float().mean()
        return F.binary_cross_entropy_with_logits(logit, target), {"acc": acc}

    clf, history = _train(RoleClassifier, build, loss_fn, data, collate_roles, steps, batch, seed, ckpt_path,
                          progress, device)
    report = {"seconds": round(time.time() - t0, 1), "history": history}
    if val_records:
        report.update(role_report(clf, val_records))
    return clf, report


def role_scores(p_first, initiator) -> dict:
    """p_first (N,): the classifier's P(person 0 initiates); initiator (N,): who should. Returns
    'role accuracy': share of clips where the right person gets the role with probability >= ROLE_CONFIDENCE;
    'role swap rate': share where the other one does. The rest are undecided. A generator that ignores
    roles scores accuracy = swap rate; real data scores near 1 and 0."""
    p, ini = np.asarray(p_first, np.float64), np.asarray(initiator)
    if len(p) == 0:
        return {"role accuracy": float("nan"), "role swap rate": float("nan")}
    p_right = np.where(ini == 0, p, 1 - p)  # probability given to the caption's initiator
    return {"role accuracy": float((p_right >= ROLE_CONFIDENCE).mean()),
            "role swap rate": float((p_right <= 1 - ROLE_CONFIDENCE).mean())}


def role_accuracy(role_classifier: RoleClassifier, features: list, captions: list[str], batch: int = 96) -> dict:
    """Role accuracy and role-swap rate (`role_scores`) of clips, judged against their captions: only
    captions that name roles count (`caption_initiator`). features: (2, T_i, 262) per clip (e.g. generated
    from those captions). Pass clips of ASYMMETRIC_TYPES only. Adds 'role clips': how many counted."""
    keep = [i for i, c in enumerate(captions) if caption_initiator(c) is not None]
    role_classifier.eval()
    p = _batched(role_classifier.predict, [features[i] for i in keep], batch) if keep else []
    return {**role_scores(p, [caption_initiator(captions[i]) for i in keep]), "role clips": len(keep)}


def role_report(role_classifier: RoleClassifier, records: list[dict], batch: int = 96) -> dict:
    """The classifier checked against InterSynth's metadata on the asymmetric clips of `records`, as recorded
    and with the two people swapped (the roles then disagree with meta['initiator'])."""
    data = InteractionDataset([r for r in records if is_asymmetric(r)], train=False)
    ini = [r["meta"]["initiator"] for r in data.records]
    role_classifier.eval()
    out = {"role clips": len(data)}
    for name, swap in (("real", False), ("swapped", True)):
        p = _batched(role_classifier.predict, [data.features(i, swap=swap) for i in range(len(data))], batch)
        out.update({f"{k} ({name})": v for k, v in role_scores(p, ini).items()})
    return out


def pose_descriptor(joints: np.ndarray) -> np.ndarray:
    """(..., T, 22, 3) -> (..., T, 22, 3): each frame's pose relative to the pelvis, turned about Y so that
    the person faces +Z (facing_yaw of that frame): where a person is and which way it looks drop out."""
    J = np.asarray(joints, dtype=np.float64)
    yaw = np.array([facing_yaw(f) for f in J.reshape(-1, N_JOINTS, 3)]).reshape(J.shape[:-2])  # (..., T)
    R = yaw_matrix(-yaw)  # (..., T, 3, 3) turns each frame's facing onto +Z
    return (J - J[..., :1, :]) @ np.swapaxes(R, -1, -2)


def person_difference(joints: np.ndarray) -> float:
    """(2, T, 22, 3) -> mean distance (m) between the two people's `pose_descriptor`s, joint by joint and
    frame by frame: how differently the two move at each moment."""
    d = pose_descriptor(joints)  # (2, T, 22, 3)
    return float(np.linalg.norm(d[0] - d[1], axis=-1).mean())


def homogenisation_gap(real_joints: list, generated_joints: list) -> float:
    """How much more alike the two generated people are than the two real people (cm): the mean
    `person_difference` of real clips minus that of generated clips. 0 when they differ as much as real
    people do; positive when the generator makes the two people converge; negative when they differ more
    than real people (e.g. one of them is noise)."""
    real = np.mean([person_difference(j) for j in real_joints])
    gen = np.mean([person_difference(j) for j in generated_joints])
    return float(100 * (real - gen))


# ---- 2.4 Physics ----------------------------------------------------------------------------------------
# General functions of joint positions (metres, Y up, floor at y = 0); InterSynth's physics report
# (intermoe_tools/synth_report.py) measures its own clips with the same functions.

TORSO_RADIUS = CAPSULES[0][2]  # the torso capsule's radius (m), pelvis -> neck
NECK = JOINT_NAMES.index("neck")
TOUCH_MARGIN = 30    # frames (1 s) either side of the recorded contacts in which a generated clip may touch


def foot_sliding(joints: np.ndarray) -> np.ndarray:
    """(..., T, 22, 3) -> horizontal displacement (m per frame) of every foot joint on every frame it is in
    contact (InterGen's rule, `foot_contacts`), flattened. A planted foot should not move: ideally all 0."""
    J = np.asarray(joints, dtype=np.float64)
    out = []
    for person in J.reshape(-1, *J.shape[-3:]):  # (T, 22, 3) each
        feet = person[:, FOOT_JOINTS]  # (T, 4, 3)
        step = np.linalg.norm(feet[1:, :, [0, 2]] - feet[:-1, :, [0, 2]], axis=-1)  # (T-1, 4)
        out.append(step[foot_contacts(person) > 0])
    return np.concatenate(out)


def floor_penetration(joints: np.ndarray) -> np.ndarray:
    """(..., T, 22, 3) -> (..., T) depth (m) of each frame's lowest joint below the floor y = 0 (0 above)."""
    return np.maximum(0.0, -np.asarray(joints, dtype=np.float64)[..., 1].min(-1))


def interpenetration(joints: np.ndarray) -> np.ndarray:
    """(2, T, 22, 3) -> (T,) how deep the two bodies overlap (m): the deepest overlap of a torso capsule with
    the partner's torso or limb capsules (CAPSULES, the ones stage 2's capsule loss uses), 0 when apart."""
    depth = capsule_overlap(torch.as_tensor(np.asarray(joints, dtype=np.float64)))  # (T, pairs)
    return depth.max(-1).values.numpy()


def hand_distance(joints: np.ndarray) -> np.ndarray:
    """(2, T, 22, 3) -> (2, T): for each person and frame, the distance (m) from its nearer wrist to the
    partner's body: the partner's nearest joint, or the surface of its torso capsule if that is nearer."""
    J = np.asarray(joints, dtype=np.float64)
    P, T = J.shape[:2]
    hands, other = J[:, :, WRISTS], J[::-1]  # (2, T, 2, 3) own wrists; (2, T, 22, 3) the partner
    to_joints = np.linalg.norm(hands[:, :, :, None] - other[:, :, None], axis=-1).min(-1)  # (2, T, 2)
    axis_a = np.broadcast_to(other[:, :, None, 0], hands.shape).reshape(-1, 3)  # (2*T*2, 3) partner pelvis
    axis_b = np.broadcast_to(other[:, :, None, NECK], hands.shape).reshape(-1, 3)  # partner neck
    flat = hands.reshape(-1, 3)
    to_torso = (segment_distance(flat, flat, axis_a, axis_b) - TORSO_RADIUS).reshape(P, T, 2)
    return np.minimum(to_joints, np.maximum(to_torso, 0.0)).min(-1)


def touch_window(record: dict) -> slice | None:
    """Frames in which the two people of this clip should touch: InterSynth's recorded contact frames
    +- TOUCH_MARGIN; for data without contact labels (no meta['contacts']), the whole clip if a caption
    speaks of touching (handshake, hug, push, pat, ...); else None."""
    meta = record.get("meta") or {}
    if "contacts" in meta:
        frames = [c[0] for c in meta["contacts"]]
        return slice(max(0, min(frames) - TOUCH_MARGIN), max(frames) + TOUCH_MARGIN + 1) if frames else None
    return slice(None) if any(TOUCH_RE.search(c) for c in record["captions"]) else None


def physics_metrics(joints: list, windows: list | None = None) -> dict:
    """The physics entries of the results table for a set of clips, each (2, T_i, 22, 3):
    foot sliding (cm/frame, over all foot contacts), floor penetration (cm, mean over frames and people),
    interpenetration (% of frames whose torsos overlap) and its depth (cm, mean over those frames), hand
    contact (cm: per clip with a touch window (`touch_window`), the closest a hand comes to the partner in
    it; mean over those clips), jitter (cm/frame^2: the second difference of every joint in time, mean over
    joints, frames and people; real motion's is a fraction of a centimetre)."""
    slide = np.concatenate([foot_sliding(j) for j in joints])
    floor = np.concatenate([floor_penetration(j).ravel() for j in joints])
    depth = np.concatenate([interpenetration(j) for j in joints])
    windows = windows if windows is not None else [None] * len(joints)
    jitter = np.concatenate([np.zeros(0)] + [np.linalg.norm(np.diff(np.asarray(j, dtype=np.float64), 2, axis=-3),
                                                            axis=-1).ravel() for j in joints if np.shape(j)[-3] > 2])
    touch = [d.min() for d in (hand_distance(j)[:, w] for j, w in zip(joints, windows) if w is not None) if d.size]
    nan = float("nan")
    return {"foot sliding (cm/frame)": 100 * float(slide.mean()) if len(slide) else nan,
            "floor penetration (cm)": 100 * float(floor.mean()),
            "interpenetration (% frames)": 100 * float((depth > 0).mean()),
            "interpenetration depth (cm)": 100 * float(depth[depth > 0].mean()) if (depth > 0).any() else 0.0,
            "hand contact (cm)": 100 * float(np.mean(touch)) if touch else nan,
            "jitter (cm/frame^2)": 100 * float(jitter.mean()) if len(jitter) else nan}


def bone_stretch(joints: np.ndarray) -> dict:
    """Clips' joints, a list of (2, T_i, 22, 3) -> how much bones change length within a clip: the std / median
    of each bone's length (mean over bones, people and clips) and (max - min) / median (median over them)."""
    ratio, span = [], []
    for j in joints:
        length = np.linalg.norm(np.asarray(j)[..., 1:, :] - np.asarray(j)[..., SMPL_PARENTS[1:], :], axis=-1)  # (2, T, 21)
        med = np.maximum(np.median(length, axis=1), 1e-9)  # (2, 21)
        ratio.append(length.std(1) / med)
        span.append((length.max(1) - length.min(1)) / med)
    return {"bone length std / median (%)": 100 * float(np.mean(ratio)),
            "bone length range / median (%)": 100 * float(np.median(np.concatenate(span)))}


def reconstruction_errors(joints: list, truth: list) -> dict:
    """Reconstructed and true clips, lists of (2, T_i, 22, 3) -> MPJPE (cm, every joint, person and frame), the
    wrists' and feet's, and the error of the pelvis-to-pelvis vector (cm): where the people stand to each other."""
    err = [np.linalg.norm(np.asarray(j) - t, axis=-1) for j, t in zip(joints, truth)]  # (2, T, 22) each
    vec = [np.linalg.norm((j[1, :, 0] - j[0, :, 0]) - (t[1, :, 0] - t[0, :, 0]), axis=-1) for j, t in zip(joints, truth)]
    return {"MPJPE (cm)": 100 * float(np.concatenate([e.ravel() for e in err]).mean()),
            "MPJPE wrists (cm)": 100 * float(np.concatenate([e[..., WRISTS].ravel() for e in err]).mean()),
            "MPJPE feet (cm)": 100 * float(np.concatenate([e[..., FOOT_JOINTS].ravel() for e in err]).mean()),
            "pelvis-to-pelvis error (cm)": 100 * float(np.concatenate(vec).mean())}


def vae_ceiling(model, records: list[dict], bodies: bool = True) -> dict:
    """What the model's VAE lets through: every test clip encoded and decoded (`InterMoE.reconstruct`), against
    the clip itself -> `reconstruction_errors`, `bone_stretch` and `physics_metrics`, each real clip's own value
    beside it under "real ..." for the ratios (foot sliding and hand contact are judged against real motion)."""
    records, real = real_motions(records)
    truth = [joints_from_features(f) for f in real]
    recon = [joints_from_features(pipeline.reconstruct(model, f, bodies=bodies)) for f in real]
    windows = [touch_window(r) for r in records]
    out = {**reconstruction_errors(recon, truth), **bone_stretch(recon), **physics_metrics(recon, windows)}
    out.update({f"real {k}": v for k, v in physics_metrics(truth, windows).items()})
    return out


# ---- 2.5 evaluate: every metric, repeated with fresh generations ----------------------------------------

METRICS = ["FID", "R-Precision top-1", "R-Precision top-2", "R-Precision top-3", "MM-Dist", "Diversity",
           "MultiModality", "role accuracy", "role swap rate", "homogenisation gap (cm)",
           "foot sliding (cm/frame)", "floor penetration (cm)", "interpenetration (% frames)",
           "interpenetration depth (cm)", "hand contact (cm)", "jitter (cm/frame^2)"]  # the results table's columns


def _batched(fn, feats: list, batch: int = 96) -> np.ndarray:
    """fn(motion (b, 2, T, 262), lengths (b,)) -> (b, ...) applied to a list of (2, T_i, 262) arrays, `batch`
    at a time, clips of similar length together (less padding). Rows come back in input order."""
    order = np.argsort([f.shape[1] for f in feats], kind="stable")
    rows = [None] * len(feats)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        b = collate([{"motion": torch.as_tensor(np.asarray(feats[i], dtype=np.float32)), "length": feats[i].shape[1],
                      "caption": "", "id": ""} for i in idx])
        out = fn(b["motion"], b["lengths"]).cpu().numpy()
        for k, i in enumerate(idx):
            rows[i] = out[k]
    return np.stack(rows)


def embed_motions(evaluator: Evaluator, feats: list, batch: int = 96) -> np.ndarray:
    """(2, T_i, 262) de-normalised features per clip -> (N, d_embed) evaluator embeddings."""
    evaluator.eval()
    return _batched(evaluator.encode_motion, feats, batch)


def embed_texts(evaluator: Evaluator, captions: list[str], batch: int = 96) -> np.ndarray:
    """N captions -> (N, d_embed) evaluator embeddings."""
    evaluator.eval()
    return np.concatenate([evaluator.encode_text(captions[s:s + batch]).cpu().numpy()
                           for s in range(0, len(captions), batch)])


def real_motions(records: list[dict]) -> tuple[list[dict], list[np.ndarray]]:
    """(usable records, their (2, T-1, 262) features as recorded). Bad records are left out with a warning."""
    data = InteractionDataset(records, train=False)
    return data.records, [data.features(i) for i in range(len(data))]


def pick_captions(records: list[dict], rng) -> list[str]:
    """One of each clip's captions, at random (InterGen's test loader does the same)."""
    return [r["captions"][int(rng.integers(len(r["captions"])))] for r in records]


def retrieval_accuracy(evaluator: Evaluator, records: list[dict], batch: int = 96, seed: int = 0) -> dict:
    """The evaluator's own accuracy on ground truth: R-Precision top-1..3 and MM-Dist of the records' real
    motions against one of their captions each (a random one, seeded). Also 'distinct captions': a caption
    shared by several clips (templated data) caps top-1 below 1, which is fine but worth knowing."""
    records, feats = real_motions(records)
    captions = pick_captions(records, np.random.default_rng(seed))
    t, m = embed_texts(evaluator, captions, batch), embed_motions(evaluator, feats, batch)
    top = r_precision(t, m, batch, 3, np.random.default_rng(seed))
    return {**{f"R-Precision top-{k + 1}": float(top[k]) for k in range(3)}, "MM-Dist": mm_dist(t, m),
            "clips": len(records), "distinct captions": len(set(c.lower() for c in captions))}


def reference_first(feats: np.ndarray) -> np.ndarray:
    """(2, T, 262) features -> the same two people, ordered so that person 1 is the reference person.

    Why: the cooperative denoiser is exactly symmetric (swapping its inputs swaps its outputs) and the two
    starting noises are alike in distribution, so which output slot holds which person is a coin toss, for
    InterGen as for InterMoE. The representation itself says who person 1 is: the one whose frame-0 root is
    at the origin facing +Z (InteractionDataset canonicalises every clip so). A model that learnt the data
    puts one person there, and that one is "the first person" of the caption. So generated clips are put in
    that order before any metric: the person nearer the canonical start (root distance in metres plus
    1 - cos(facing yaw)) comes first. Real clips are already in it. Without this, the evaluator would see
    half the clips in an order it never saw in training. (`generate_features` keeps the slots when the
    model read the caption per person (`InterMoE.reads_roles`) and the caption names the roles: then the
    model was told which slot is the first person, and role accuracy measures whether it listened.)"""
    joints0 = joints_from_features(feats[:, :1])[:, 0]  # (2, 22, 3): both people at frame 0
    score = [np.hypot(j[0, 0], j[0, 2]) + 1 - math.cos(facing_yaw(j)) for j in joints0]
    return feats if score[0] <= score[1] else feats[::-1].copy()


@torch.no_grad()
def generate_features(model, captions: list[str], lengths: list[int], seed: int = 0, batch: int = 96) -> list:
    """model.sample for many captions, `batch` at a time, similar lengths together (less padding).
    Returns (2, n_i, 262) de-normalised features per caption, in order, the reference person first
    (`reference_first`) unless the caption assigned the slots (see there). A clip shorter than MIN_FRAMES (a 15-frame recording has 14 feature frames) is
    generated at MIN_FRAMES and cut."""
    order = np.argsort(lengths, kind="stable")
    out = [None] * len(captions)
    for c, s in enumerate(range(0, len(order), batch)):
        idx = order[s:s + batch]
        _, feats = pipeline.sample(model, [captions[i] for i in idx], [max(int(lengths[i]), MIN_FRAMES) for i in idx],
                                   seed=seed + c, return_features=True)  # feats (b, 2, T, 262)
        for k, i in enumerate(idx):
            f = feats[k, :, :int(lengths[i])].cpu().numpy()  # (2, n_i, 262)
            # a caption that names roles told a model that reads it per person which slot is which: keep its slots
            told = getattr(model, "reads_roles", False) and caption_initiator(captions[i]) is not None
            out[i] = f if told else reference_first(f)
    return out


def evaluate(model, records: list[dict], evaluator: Evaluator, role_classifier: RoleClassifier | None = None, *,
             reference: list[dict] | None = None, repeats: int = 20, batch: int = 96, mm_captions: int = 100,
             mm_repeats: int = 30, seed: int = 0, progress: bool = True, reconstruct: bool = False) -> dict:
    """Every metric of the results table (METRICS), each as (mean, 95% half-interval) over `repeats` runs.

    model: an InterMoE, sampled as intermoe_tools.pipeline.sample does (physics guidance, bodies), or None for
           the real-vs-real row: the "generated" clips are then the real ones.
    reconstruct: the "VAE ceiling" row: the "generated" clips are the model's VAE's encodings and decodings of
           the real ones (intermoe_tools.pipeline.reconstruct, as bodies), the best its denoiser could do through this decoder.
    records: the test clips. Each run draws one caption per clip and generates a clip of the same length
           for it (`generate_features`, `batch` at a time); FID compares those with the real test clips,
           R-Precision and MM-Dist pair them with their captions (batches of `batch`; InterGen's: 96).
    reference: for the real row only, other real clips (e.g. the val split): its FID compares a random
           len(records) of them with the test clips, the floor finite samples give. Without it, NaN.
    MultiModality: mm_captions clips x mm_repeats generations each (NaN for the real row, or mm_captions=0).
    role_classifier: role accuracy / swap rate over clips of ASYMMETRIC_TYPES whose drawn caption names
           roles (about a third of them); without it, NaN.
    homogenisation gap: real minus generated `person_difference` (0 for the real row by definition).
    Physics: `physics_metrics` of the generated clips, hand contact in each test clip's touch window.
    """
    from tqdm.auto import tqdm
    records, real = real_motions(records)
    lengths = [f.shape[1] for f in real]
    real_emb = embed_motions(evaluator, real, batch)
    real_joints = [joints_from_features(f) for f in real]
    windows = [touch_window(r) for r in records]
    asym = [i for i, r in enumerate(records) if is_asymmetric(r)]
    ref_emb = embed_motions(evaluator, real_motions(reference)[1], batch) if model is None and reference else None
    fixed = real if model is None else [pipeline.reconstruct(model, f) for f in real] if reconstruct else None  # not drawn
    fixed_emb = real_emb if model is None else embed_motions(evaluator, fixed, batch) if reconstruct else None
    rows = {k: [] for k in METRICS}
    nan = float("nan")
    for r in tqdm(range(repeats), desc="evaluate", disable=not progress):
        rng = np.random.default_rng([seed, r])
        captions = pick_captions(records, rng)
        gen_seed = int(rng.integers(2 ** 31))
        feats = fixed if fixed is not None else generate_features(model, captions, lengths, gen_seed, batch)
        emb = fixed_emb if fixed is not None else embed_motions(evaluator, feats, batch)
        text = embed_texts(evaluator, captions, batch)
        if model is not None:
            rows["FID"].append(frechet_distance(emb, real_emb))
        elif ref_emb is not None:
            rows["FID"].append(frechet_distance(ref_emb[rng.permutation(len(ref_emb))[:len(real_emb)]], real_emb))
        else:
            rows["FID"].append(nan)
        top = r_precision(text, emb, batch, 3, rng)
        for k in range(3):
            rows[f"R-Precision top-{k + 1}"].append(top[k])
        rows["MM-Dist"].append(mm_dist(text, emb))
        rows["Diversity"].append(diversity(emb, 300, rng))
        mm = nan
        if fixed is None and mm_captions > 0:
            pick = rng.choice(len(records), min(mm_captions, len(records)), replace=False)
            caps = [c for c in pick_captions([records[i] for i in pick], rng) for _ in range(mm_repeats)]
            mm_feats = generate_features(model, caps, [lengths[i] for i in pick for _ in range(mm_repeats)],
                                         gen_seed + 1_000_003, batch)
            mm = multimodality(embed_motions(evaluator, mm_feats, batch).reshape(len(pick), mm_repeats, -1), 10, rng)
        rows["MultiModality"].append(mm)
        roles = {"role accuracy": nan, "role swap rate": nan}
        if role_classifier is not None:
            roles = role_accuracy(role_classifier, [feats[i] for i in asym], [captions[i] for i in asym], batch)
        rows["role accuracy"].append(roles["role accuracy"])
        rows["role swap rate"].append(roles["role swap rate"])
        joints = real_joints if model is None else [joints_from_features(f) for f in feats]
        rows["homogenisation gap (cm)"].append(0.0 if model is None else homogenisation_gap(real_joints, joints))
        for k, v in physics_metrics(joints, windows).items():
            rows[k].append(v)
    return {k: mean_ci(rows[k]) for k in METRICS}


def _json_text(obj) -> str:
    return json.dumps(obj, indent=1, default=float)


def _write_json(path: str, obj) -> None:
    atomic_write(path, lambda p: _write_text(p, _json_text(obj)))


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def _machine() -> str:
    import platform
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads, device {pick_device()}"


def _fmt(mean_ci_pair, digits: int = 3) -> str:
    m, ci = mean_ci_pair
    if m != m:
        return "n/a"
    return f"{m:.{digits}f}" if ci != ci else f"{m:.{digits}f} ± {ci:.{digits}f}"  # no interval from one value


def run_evaluation(model: "InterMoE", out: str, work: str = os.path.join("runs", "evaluator"),
                   repeats: int = 5, mm_captions: int = 20, mm_repeats: int = 10, seed: int = 0,
                   progress: bool = True) -> dict:
    """The results table (docs/results.md) for one trained model: trains (or reads, from `work`) the evaluator and the
    role classifier on InterSynth's train split, then `evaluate`s the real test clips against the val clips
    and the model's generations for the test captions. Writes {out}/evaluation.md and .json (the command line
    passes the model's own folder; the repository's published table is results/, written only on request).

    Fewer repeats than InterGen's 20 x (100 captions x 30 for MultiModality): on a CPU a generated clip costs
    ~0.4 s, so the full protocol would take hours; the interval printed beside each mean says how much the
    smaller count costs in precision."""
    t0 = time.time()
    n_clips = model.cfg.n_clips
    train, val, test = (intersynth.load_split(split, n_clips) for split in ("train", "val", "test"))
    os.makedirs(work, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    remove_stale_temps(work)  # of a cached evaluator's save that was killed
    evaluator, ev_report = train_evaluator(train, val, ckpt_path=os.path.join(work, "evaluator.pt"),
                                           normalizer=model.normalizer, progress=progress)
    roles, role_rep = train_role_classifier(train, val, ckpt_path=os.path.join(work, "roles.pt"),
                                            normalizer=model.normalizer, progress=progress)
    t = time.time()
    real = evaluate(None, test, evaluator, roles, reference=val, repeats=repeats, progress=progress, seed=seed)
    t_real = time.time() - t
    t = time.time()
    ceiling = evaluate(model, test, evaluator, roles, repeats=repeats, progress=progress, seed=seed, reconstruct=True)
    t_ceiling = time.time() - t
    t = time.time()
    gen = evaluate(model, test, evaluator, roles, repeats=repeats, mm_captions=mm_captions,
                   mm_repeats=mm_repeats, progress=progress, seed=seed)
    vae = {"from": model.cfg.vae_from or "trained with this model", "weights": im.vae_fingerprint(model.vae)}
    results = {"real": real, "vae ceiling": ceiling, "generated": gen, "vae": vae, "physics guidance":
               model.cfg.physics, "repeats": repeats, "mm": [mm_captions, mm_repeats],
               "test clips": len(test), "evaluator": {k: v for k, v in ev_report.items() if k != "history"},
               "role classifier": {k: v for k, v in role_rep.items() if k != "history"},
               "seconds": {"real row": round(t_real, 1), "vae ceiling row": round(t_ceiling, 1),
                           "generated row": round(time.time() - t, 1),
                           "total": round(time.time() - t0, 1)}, "machine": _machine()}
    rows = [("real test clips (vs val)", real), ("VAE ceiling (test clips encoded, decoded)", ceiling),
            ("generated", gen)]
    md = ["| | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    md += [f"| {name} | " + " | ".join(_fmt(r[k]) for k in METRICS) + " |" for name, r in rows]
    md += ["", f"VAE: {vae['from']} (weights {vae['weights']}); physics guidance {model.cfg.physics}."]
    atomic_write([os.path.join(out, "evaluation.json"), os.path.join(out, "evaluation.md")],  # one unit
                    [lambda p: _write_text(p, _json_text(results)), lambda p: _write_text(p, "\n".join(md) + "\n")])
    return results


# =====================================================================================================
# 3. The paper's ablation table in miniature
# =====================================================================================================
# Every variant trains the same denoiser budget (steps, batch, data, seeds) on the same frozen VAE and is
# judged by the same evaluator; only the InterMoE block's switches differ. The paper's ablation table gives its
# rows (InterHuman, full-size models, ~100k steps); ours are InterSynth and minutes on a CPU, so compare
# the direction of each difference, not the values.

ABLATIONS = {  # name -> (the paper's row it stands for, changes to the denoiser config)
    "full InterMoE": ("Full InterMoE", {}),
    "FFN baseline": ("Baseline (InterGen + CS-VAE, FFN instead of MoE)", {"ffn_type": "ffn"}),
    "motion-only router": ("w/o motion & text router", {"router_mode": "motion"}),
    "text-only router": ("w/o motion & text router", {"router_mode": "text"}),
    "per-sample routing": ("w/o batch-level routing", {"routing": "sample"}),
    "fixed top-k": ("w/o dynamic selection (fixed top-k)", {"selection": "topk"}),
    # not in the paper: both people read the same caption, as the paper's denoiser does (egocentric_text,
    # role_embedding off)
    "shared caption": (None, {"egocentric_text": False, "role_embedding": False}),
    # not in the paper's table: its future work, the router's motion/text mix alpha learnt instead of 0.5
    "learnable alpha": (None, {"learn_alpha": True}),
    # not in the paper: stage 2's training levers (InterMoEConfig; the lever screen of docs/results.md)
    "EMA": (None, {"ema_decay": 0.999}),
    "length buckets": (None, {"bucket": True}),
    "decoded losses": (None, {"geo_weight": 1.0}),
    "capsule loss": (None, {"pen_weight": 100.0}),
    "decoded + capsule": (None, {"geo_weight": 1.0, "pen_weight": 100.0}),
    "decoded + capsule, light": (None, {"geo_weight": 0.3, "pen_weight": 30.0}),
    # the second round: the same losses only where the x0 prediction is sharp (t <= 300, not InterGen's 700)
    "capsule loss, t <= 300": (None, {"pen_weight": 100.0, "geo_t_max": 300}),
    "decoded + capsule, t <= 300": (None, {"geo_weight": 1.0, "pen_weight": 100.0, "geo_t_max": 300}),
}
LEVERS = ["full InterMoE", "EMA", "decoded losses", "capsule loss", "decoded + capsule",  # the lever screen
          "capsule loss, t <= 300", "decoded + capsule, t <= 300"]
PAPER_VARIANTS = [name for name, (row, _) in ABLATIONS.items() if row]  # the study's default: the paper's rows
PAPER_ABLATION = {  # the paper's ablation table: FID, R@1, MM-Dist on InterHuman
    "Baseline (InterGen + CS-VAE, FFN instead of MoE)": (5.251, 0.489, 3.771),
    "w/o motion & text router": (4.782, 0.503, 3.766),
    "w/o batch-level routing": (6.036, 0.492, 3.774),
    "w/o dynamic selection (fixed top-k)": (6.242, 0.498, 3.772),
    "Full InterMoE": (4.677, 0.512, 3.762),
}
LEVER_METRICS = ("FID", "R-Precision top-3", "MM-Dist", "role accuracy", "role swap rate", "foot sliding (cm/frame)",
                 "interpenetration (% frames)", "hand contact (cm)")  # the lever screen's columns
ABLATION_METRICS = ("FID", "R-Precision top-1", "R-Precision top-3", "MM-Dist", "Diversity", "role accuracy",
                    "role swap rate", "homogenisation gap (cm)", "interpenetration (% frames)")


def ablation_config(cfg: InterMoEConfig, name: str) -> InterMoEConfig:
    """cfg with the denoiser switches of ablation `name` (a key of ABLATIONS)."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from {list(ABLATIONS)}")
    changes = dict(ABLATIONS[name][1])
    own = {f.name for f in fields(InterMoEConfig)} - {"denoiser"}
    top = {k: changes.pop(k) for k in list(changes) if k in own}  # InterMoEConfig's; the rest the denoiser's
    cfg = replace(cfg, **top)
    den = cfg.denoiser
    if "ffn_type" in changes:
        den = replace(den, ffn_type=changes.pop("ffn_type"), d_ffn=den.moe.d_expert)  # one expert's size
    return replace(cfg, denoiser=replace(den, moe=replace(den.moe, **changes)))


def ablation_preset(smoke: bool = False, name: str = "ablation") -> InterMoEConfig:
    """The study's model, preset(name); smoke: the nano preset, for tests and the notebook's quick run."""
    return preset("nano", n_clips=96, steps=6) if smoke else preset(name)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


@torch.no_grad()
def expert_load(model, records: list[dict], n: int = 32, seed: int = 0, t_bins: int = 10, around: int = 8) -> dict:
    """How the experts share the work while `model` generates for the first n `records` (each its first caption
    and its own length, DDIM with guidance, as `sample` runs): per MoE layer, the share of real tokens each
    expert takes (the shares sum to the experts per token); experts per token by noise step t (t_bins equal
    bins of the diffusion's steps); and experts per token by latent frame from the clip's first key event
    (meta['key_frames'], -around..around latent frames; clips without one count elsewhere only). Guidance's
    unconditional half counts in the shares and the noise curve, not around the key events."""
    blocks = model.denoiser.moe_blocks()
    if not blocks:
        raise ValueError("expert_load: this model has no MoE blocks (the FFN baseline has no experts to load)")
    recs = records[:n]
    B, L, E, A = len(recs), len(blocks), blocks[0].n_experts, 2 * around + 1
    lengths = [int(np.clip(r["joints"].shape[1], im.MIN_FRAMES, im.MAX_FRAMES)) for r in recs]
    Tz = -(-max(lengths) // 4)
    key = torch.tensor([min(r["meta"].get("key_frames") or [-10 ** 6]) // 4 for r in recs])  # (B,) latent frame
    offset = torch.arange(Tz)[None] - key[:, None] + around  # (B, Tz): 0..A-1 within reach of the key event
    real = torch.arange(Tz)[None] < torch.tensor([-(-n_ // 4) for n_ in lengths])[:, None]  # (B, Tz)
    near = F.one_hot(offset.clamp(0, A - 1), A).float() * ((offset >= 0) & (offset < A) & real)[..., None].float()
    counts, tokens = torch.zeros(L, E), torch.zeros(L)
    by_t, tok_t = torch.zeros(L, t_bins), torch.zeros(L, t_bins)
    by_key, tok_key = torch.zeros(L, A), torch.zeros(L, A)
    now = {}
    n_steps = model.diffusion.n_steps

    def on_denoiser(module, args):
        now["bin"] = min(int(args[2][0]) * t_bins // n_steps, t_bins - 1)  # args: x_a, x_b, t (2B,), ...

    def on_block(layer):
        def hook(module, args, out):
            sel = module.last_selection.cpu()  # (2 * 2B, Tz, E): rows person-major, conditional samples first
            picked, S = sel.sum((0, 1)).float(), float(module.last_tokens)
            counts[layer] += picked
            tokens[layer] += S
            by_t[layer, now["bin"]] += picked.sum()
            tok_t[layer, now["bin"]] += S
            per_frame = rearrange(sel, "(p b) t e -> b p t e", p=2)[:B].sum((1, 3)).float()  # (B, Tz), both people
            by_key[layer] += torch.einsum("bt,bta->a", per_frame, near)
            tok_key[layer] += 2 * near.sum((0, 1))
        return hook
    handles = [model.denoiser.register_forward_pre_hook(on_denoiser)]
    handles += [b.register_forward_hook(on_block(i)) for i, b in enumerate(blocks)]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*not in the vocabulary")
            model.sample([r["captions"][0] for r in recs], lengths, seed=seed)
    finally:
        for h in handles:
            h.remove()
    edges = [round(k * n_steps / t_bins) for k in range(t_bins + 1)]
    return {"clips": B, "experts": E, "share": (counts / tokens[:, None]).tolist(),  # (L, E)
            "experts per token": (counts.sum(1) / tokens).tolist(),  # (L,)
            "t bins": edges, "by t": (by_t / tok_t).tolist(),  # (L, t_bins), NaN where no DDIM step fell
            "offsets": list(range(-around, around + 1)), "around key event": (by_key / tok_key).tolist(),  # (L, A)
            "key event clips": int((key >= 0).sum())}


def run_ablation(out: str | None = None, work: str = os.path.join("runs", "ablation"), variants=None,
                 seeds=(0, 1, 2), steps: int | None = None, vae_ckpt: str | None = None, repeats: int = 2,
                 n_test: int = 96, smoke: bool = False, progress: bool = True,
                 preset_name: str = "ablation", report: str = "ablation", cached_only: bool = False) -> dict:
    """Train and evaluate every ablation variant x seed; write {out}/{report}.md and {out}/{report}.json
    (out defaults to `work`; the repository's published table is results/, written only on request).
    preset_name: the model every variant changes; report "levers" writes the lever screen's page.

    Shared by all runs: the data, one VAE (trained into {work}/vae.pt, or read from vae_ckpt, e.g. the lab
    demo's runs/demo/vae.pt), its latent cache, the evaluator and the role classifier (trained once into
    runs/evaluator/, the ones `run_evaluation` uses; into {work} for the smoke study). Per run: a fresh text encoder + denoiser (initialised by the seed) trained for the same `steps`,
    then `evaluate` with `repeats` fresh generations of the first n_test test clips (0: all; MultiModality left
    out: 30 generations per caption would triple the study's time) and `expert_load` on 32 of them. Everything is cached in {work}: an interrupted study
    rerun with the same arguments picks up where it stopped. cached_only: train nothing, report the runs finished
    so far (a long study's progress). Returns the results dict written to JSON.
    """
    t_start = time.time()
    out = work if out is None else out
    cfg = ablation_preset(smoke, preset_name)
    steps = cfg.steps if steps is None else steps
    variants = PAPER_VARIANTS if variants is None else list(variants)
    vae_state = check_vae(vae_ckpt, cfg, "--smoke (--preset nano)" if smoke else f"--preset {preset_name}") \
        if vae_ckpt else None
    if cached_only:  # checked before anything loads or trains
        done = [_read_json(p) for p in (os.path.join(work, f"{_slug(n)}_s{s}.json") for n in variants for s in seeds)
                if os.path.isfile(p)]
        if not done:
            raise ValueError(f"--cached-only: no finished run in {work} for variants {variants} and seeds {list(seeds)}")
        other = sorted({r["steps"] for r in done} - {steps})
        if other:  # e.g. without the study's --preset or --steps: the report would mislabel its runs
            raise ValueError(f"runs in {work} were trained for {other} denoiser steps, not {steps}: pass the study's "
                             f"--preset / --steps")
    os.makedirs(work, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    train, val, test = (intersynth.load_split(split, cfg.n_clips) for split in ("train", "val", "test"))
    base = build_model(cfg, train, seed=0)  # the shared VAE's initial weights: the same study every time
    if vae_state:
        base.vae.load_state_dict(vae_state["model"])
    else:
        train_vae(base, train, ckpt_path=os.path.join(work, "vae.pt"), progress=progress)
    device = pick_device()
    base.to(device).set_latent_stats(*measure_latent_stats(base, train, device=device))
    latents = []  # the shared latent cache, built when the first run that needs training starts

    def cache():
        if not latents:
            latents.append(LatentDataset(base, train, train=True, max_frames=cfg.max_frames, progress=progress))
        return latents[0]
    ev_dir = work if smoke else os.path.join("runs", "evaluator")  # the one `run_evaluation` uses too
    os.makedirs(ev_dir, exist_ok=True)
    evaluator, ev_report = train_evaluator(train, val, ckpt_path=os.path.join(ev_dir, "evaluator.pt"),
                                           normalizer=base.normalizer, progress=progress, **_smoke_eval(smoke))
    roles, role_report_ = train_role_classifier(train, val, ckpt_path=os.path.join(ev_dir, "roles.pt"),
                                                normalizer=base.normalizer, progress=progress, **_smoke_eval(smoke))
    test = test[:n_test] if n_test else test  # default one batch of 96: generation is most of a run's evaluation
    batch = min(96, len(test))
    eval_kw = dict(repeats=repeats, batch=batch, mm_captions=0, progress=progress)
    real_path = os.path.join(work, "real.json")
    if not os.path.isfile(real_path):
        real = evaluate(None, test, evaluator, roles, reference=val, **eval_kw)
        _write_json(real_path, real)
    real = _read_json(real_path)
    runs = []
    for name in variants:
        for seed in seeds:
            path = os.path.join(work, f"{_slug(name)}_s{seed}")
            if not os.path.isfile(path + ".json"):
                if cached_only:
                    continue  # not run yet
                torch.manual_seed(seed)  # this run's initial weights
                model = InterMoE(ablation_config(cfg, name), base.vocab, base.normalizer).to(device)
                model.vae.load_state_dict(base.vae.state_dict())
                model.set_latent_stats(base.latent_mean, base.latent_scale)
                t = time.time()
                history = pipeline.train_denoiser(model, train, steps=steps, ckpt_path=path + ".pt", seed=seed,
                                                  device=device, progress=progress, latents=cache())
                train_seconds = round(time.time() - t, 1)
                t = time.time()
                metrics = evaluate(model, test, evaluator, roles, seed=seed, **eval_kw)
                load = expert_load(model, test, n=min(32, len(test)), seed=seed) if model.denoiser.moe_blocks() else None
                _write_json(path + ".json", {"variant": name, "seed": seed, "steps": steps, "checkpoint": path + ".pt",
                                             "final loss": history[-1]["loss"] if history else None,
                                             "train seconds": train_seconds,
                                             "eval seconds": round(time.time() - t, 1), "metrics": metrics,
                                             "load": load})
            runs.append(_read_json(path + ".json"))
    results = {"config": asdict(cfg), "steps": steps, "seeds": list(seeds), "repeats": repeats, "test clips": len(test),
               "evaluator": {k: v for k, v in ev_report.items() if k != "history"},
               "role classifier": {k: v for k, v in role_report_.items() if k != "history"},
               "real": real, "runs": runs, "preset": preset_name,
               "summary": _summarise(runs, [n for n in variants if any(r["variant"] == n for r in runs)]),
               "seconds": round(time.time() - t_start, 1), "cached only": cached_only, "machine": _machine()}
    page = ablation_markdown(results, LEVER_METRICS if report == "levers" else ABLATION_METRICS)  # before any file
    atomic_write([os.path.join(out, f"{report}.json"), os.path.join(out, f"{report}.md")],  # one unit
                    [lambda p: _write_text(p, _json_text(results)), lambda p: _write_text(p, page)])
    return results


def _smoke_eval(smoke: bool) -> dict:
    return {"steps": 20, "batch": 16} if smoke else {}


def _summarise(runs: list[dict], variants: list[str]) -> dict:
    """Per variant and metric: the seeds' means combined into a mean with its Student-t interval; and for every
    variant after the first, "paired": its difference from the first variant seed by seed (the same seed
    gives both the same data order and noise), as a mean with its Student-t interval."""
    # the metrics every run measured (runs cached before a column existed lack it: the column reads n/a)
    out, metrics = {}, [k for k in METRICS if k != "MultiModality" and all(k in r["metrics"] for r in runs)]
    ref = {r["seed"]: r for r in runs if r["variant"] == variants[0]}
    for name in variants:
        mine = [r for r in runs if r["variant"] == name]
        out[name] = {k: mean_ci([r["metrics"][k][0] for r in mine], student_t=True) for k in metrics}
        out[name]["train seconds"] = float(np.mean([r["train seconds"] for r in mine]))
        loads = [r["load"] for r in mine if r.get("load")]
        if loads:  # the experts' load, mean over the seeds that measured it
            out[name]["load"] = {k: np.mean([ld[k] for ld in loads], 0).tolist()
                                 for k in ("share", "experts per token", "by t", "around key event")}
            out[name]["load"].update({k: loads[0][k] for k in ("t bins", "offsets")})
        pairs = [(r, ref[r["seed"]]) for r in mine if r["seed"] in ref]
        if name != variants[0] and pairs:
            out[name]["paired"] = {k: mean_ci([r["metrics"][k][0] - f["metrics"][k][0] for r, f in pairs],
                                              student_t=True) for k in metrics}
    return out


def ablation_markdown(results: dict, cols=ABLATION_METRICS) -> str:
    """The study as a Markdown page: our table (mean ± 95% interval over seeds), each variant's paired
    difference from the first, and the paper's table where a variant has a row in it."""
    levers = cols == LEVER_METRICS
    model = results.get("preset") or "ablation"  # a results file without a preset: the study's own
    clips = f" ({results['test clips']} clips)" if "test clips" in results else ""  # a results file may lack it
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in results["runs"]}))
    n_seeds = {name: sum(r["variant"] == name for r in results["runs"]) for name in results["summary"]}
    nan = (float("nan"), float("nan"))  # a column a results file may lack
    lines = ["# " + ("Stage 2's training levers, screened" if levers else
                     f"Ablation study: InterMoE's switches on the `{model}` model, {results['steps']} denoiser steps a run"), "",
             f"InterSynth test split{clips}; {len(results['runs'])} runs (seeds {seeds}), "
             f"{results['steps']} denoiser steps each on one "
             f"shared VAE; each run evaluated on {results['repeats']} fresh generations; mean ± 95% interval over "
             f"seeds (Student's t, n - 1 degrees of freedom: 12.7 s / sqrt(2) for 2 seeds, 4.30 s / sqrt(3) for 3); the real row: mean ± 1.96 std / sqrt(repeats). The runs took {sum(r['train seconds'] + r['eval seconds'] for r in results['runs']) / 60:.0f}"
             f" min of training and evaluation on {results['machine']} (shared models and caches aside).", "",
             "| variant | seeds | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|",
             "| real test clips (vs val) | | " + " | ".join(_fmt(results["real"][k]) for k in cols) + " |"]
    for name, row in results["summary"].items():
        lines.append(f"| {name} | {n_seeds[name]} | " + " | ".join(_fmt(row.get(k, nan)) for k in cols) + " |")
    first = next(iter(results["summary"]))
    paired = [(name, row["paired"]) for name, row in results["summary"].items() if "paired" in row]
    if paired:
        lines += ["", f"Each variant minus {first}, seed by seed (mean ± 95% Student-t interval over the seeds; an "
                  "interval that holds 0 separates nothing):", "",
                  "| variant | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(_fmt(d.get(k, nan)) for k in cols) + " |" for name, d in paired]
    lines += ["", "Every run (wall time on the machine above, which other jobs may have shared):", "",
              "| variant | seed | denoiser steps | final loss | training (min) | evaluation (min) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['seed']} | {r['steps']} | {r['final loss']:.4f} | {r['train seconds'] / 60:.1f} | "
              f"{r['eval seconds'] / 60:.1f} |" for r in results["runs"]]
    loads = [(name, row["load"]) for name, row in results["summary"].items() if "load" in row]
    if loads:
        lines += ["", "The experts' load while generating 32 test clips (mean over seeds; per layer, first to last): "
                  "experts per token; the busiest expert's share of the tokens over the mean share (1 = even); "
                  "experts per token at the noisiest tenth of the steps and the cleanest; and at the key event's "
                  "latent frame against 8 latent frames (32 frames) before it:", "",
                  "| variant | experts per token | busiest / mean share | at t >= 900 | at t < 100 | at the key event "
                  "| 8 latent frames before |", "|---|---|---|---|---|---|---|"]
        for name, ld in loads:
            share = np.array(ld["share"])
            by_t, key = np.array(ld["by t"]), np.array(ld["around key event"])
            cells = [share.sum(1), share.max(1) / share.mean(1), by_t[:, -1], by_t[:, 0],
                     key[:, ld["offsets"].index(0)], key[:, 0]]
            lines.append(f"| {name} | " + " | ".join(" / ".join(f"{v:.2f}" for v in c) for c in cells) + " |")
    if levers:
        return "\n".join(lines + [""])
    lines += ["", "Beside the paper's ablation table (InterHuman, full-size models). Compare directions, not "
              "values: the data, the evaluator and the scale differ.", "",
              "| our variant | paper's row | FID: paper | ours | R@1: paper | ours | MM-Dist: paper | ours |",
              "|---|---|---|---|---|---|---|---|"]
    for name, mine in results["summary"].items():
        row = ABLATIONS[name][0]
        ours = [_fmt(mine.get(k, nan)) for k in ("FID", "R-Precision top-1", "MM-Dist")]
        paper = PAPER_ABLATION[row] if row else ("", "", "")
        cells = [f"{p} | {o}" for p, o in zip(paper, ours)]
        lines.append(f"| {name} | {row or '(not in the paper: ours)'} | " + " | ".join(cells) + " |")
    ev = results["evaluator"]
    lines += ["", "Evaluator's own retrieval on real val clips: " +
              ", ".join(f"{k} {v:.3f}" for k, v in ev.items() if k.startswith("R-Precision")) + ".", ""]
    return "\n".join(lines)


# =====================================================================================================
# 4. The command line: python intermoe_min.py {demo, train, train-vae, sample, evaluate, ablate}
# =====================================================================================================
# intermoe_min.py, run as a script, calls `main` (the model file itself imports nothing of this file).

DEMO_PROMPTS = [
    "two people shake hands with their right hands",
    "one person punches and the other dodges",
    "the two people circle each other clockwise",
    "one person waves from afar and the other waves back",
]


def choose_preset(device) -> tuple[str, dict, str]:
    """What a notebook trains on `device` -> (preset name, overrides, why): `paper` sizes on a CUDA GPU with
    bf16 and 24 GiB (training takes 14-17 GiB), cut to a lab's steps; `lab` everywhere else."""
    device = torch.device(device)
    if device.type != "cuda":
        return "lab", {}, f"the lab preset on {device.type.upper()}"
    props = torch.cuda.get_device_properties(device)
    gib, bf16 = props.total_memory / 2 ** 30, torch.cuda.is_bf16_supported(including_emulation=False)
    if gib >= 24 and bf16:
        return "paper", dict(vae_steps=2000, steps=5000, warmup=250), \
            (f"paper sizes on {props.name} ({gib:.0f} GiB, bf16), cut to 2,000 + 5,000 steps; the paper's "
             f"schedule is 30,000 + 100,000: im.preset('paper')")
    return "lab", {}, (f"the lab preset on {props.name} ({gib:.0f} GiB{', bf16' if bf16 else ', no bf16'}): "
                       f"paper sizes need 24 GiB and bf16")


def _stage_paths(out: str) -> dict:
    """The files of a run folder: one checkpoint per stage, the whole model and the log."""
    return {"vae": os.path.join(out, "vae.pt"), "denoiser": os.path.join(out, "denoiser.pt"),
            "model": os.path.join(out, "model.pt"), "log": os.path.join(out, "log.json")}


def _fits(weights: dict, cfg, part: str) -> bool:
    """Whether a checkpoint's weights hold the VAE (part 'vae') or the denoiser ('denoiser') of cfg's sizes: their
    shapes against the network built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        net = im.CausalSkeletalVAE(cfg.vae) if part == "vae" else im.CooperativeDenoiser(cfg.denoiser)
    prefix = f"{part}." if any(k.startswith(f"{part}.") for k in weights) else ""
    held = {k[len(prefix):]: tuple(v.shape) for k, v in weights.items() if k.startswith(prefix)}
    return held == {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _presets_of(held: dict) -> list:
    """The presets whose sizes every checkpoint in held ({part: checkpoint}) has."""
    return [n for n in im.PRESETS if all(_fits(state["model"], im.preset(n), part) for part, state in held.items())]


def check_vae(path: str, cfg, study: str) -> dict:
    """The stage-1 checkpoint at path, refused (CheckpointError) unless its VAE has cfg's sizes; study names cfg."""
    state = im.load_checkpoint(path, "vae")
    if not _fits(state["model"], cfg, "vae"):
        names = _presets_of({"vae": state})
        raise im.CheckpointError(f"{path} holds a VAE of {'--preset ' + ' or '.join(names) if names else 'no preset'}"
                                 f"'s size, not of {study}'s: pass a vae.pt trained with {study}, or none to train one")
    return state


def _check_run_folder(out: str, cfg, name: str | None) -> None:
    """Before anything loads, a run folder's checkpoints against the run asked for (cfg, of preset `name`): of its
    sizes; trained no further than it asks (a model is never relabelled with fewer steps than it has); stage 1 not
    trained further under a begun stage 2. Each refusal says the command that resumes the folder's own run."""
    paths = _stage_paths(out)
    held = {part: im.load_checkpoint(paths[part], part) for part in ("vae", "denoiser") if os.path.isfile(paths[part])}
    if not held:
        return
    done = {part: state["step"] for part, state in held.items()}
    theirs = held["denoiser" if "denoiser" in held else "vae"]["config"]  # the run's own targets, as it recorded them
    names = _presets_of(held)
    own = name if name in names else (names or [None])[0]
    resume = "python intermoe_min.py train" + (f" --preset {own}" if own else "") + f" --out {shlex.quote(out)}" + \
        ("" if theirs.get("vae_from", "").startswith("the shipped VAE") else f" --vae-steps {theirs['vae_steps']}") + \
        f" --steps {theirs['steps']}" + (f" --seed {held_seed}" if (held_seed := next(iter(held.values())).get("seed", 0))
                                          else "")
    if not all(_fits(state["model"], cfg, part) for part, state in held.items()):
        raise im.CheckpointError(
            f"{out} holds a run of {'--preset ' + ' or '.join(names) if names else 'sizes no preset has'} "
            f"({', '.join(paths[p] for p in held)}), not of {f'--preset {name}' if name else 'this configuration'}: "
            f"resume it with {resume}, or pass another --out")
    for part, flag, want in (("vae", "--vae-steps", cfg.vae_steps), ("denoiser", "--steps", cfg.steps)):
        if done.get(part, 0) > want:
            raise im.CheckpointError(
                f"{paths[part]} was trained for {done[part]} steps, more than the {want} asked ({flag} {want}): the "
                f"run stays as it was. Resume or extend it with {resume} (or more steps), or pass another --out")
    if "denoiser" in held:  # stage 2 has begun: stage 1 must not change the VAE under it
        if "vae" not in held:
            raise im.CheckpointError(f"{paths['denoiser']} was trained on the VAE in {paths['vae']}, which is gone: "
                                     f"a new one would not be the same. Delete {paths['denoiser']} too, or use "
                                     f"another output folder.")
        if done["vae"] < cfg.vae_steps:
            raise im.CheckpointError(
                f"{paths['denoiser']} was trained on the VAE in {paths['vae']} ({done['vae']} steps); training stage 1 "
                f"to {cfg.vae_steps} steps would change that VAE under it. Delete {paths['denoiser']} to train stage 2 "
                f"afresh on a longer-trained VAE, keep the VAE as it is (--vae-steps {done['vae']}), or use another "
                f"output folder.")


def _stage_seconds(history: list, t0: float, own: bool = True) -> float:
    """A stage's training seconds, summed over every run that trained it (its history's last 'seconds', which the
    checkpoints carry across resumes); this run's own time where that is more, or where own is False."""
    return round(max(time.time() - t0, history[-1]["seconds"] if own and history else 0.0), 1)


def run_training(cfg, out: str, vae_steps=None, steps=None, seed: int = 0, stages=("vae", "denoiser"),
                 name: str | None = None):
    """The `train` command: the stages into the folder `out` -> (model, log of losses and timings). Run it
    again after an interruption and it resumes; a folder of another preset (name: this run's, for messages), one
    trained for more steps than asked, or stage 1 trained further under a begun stage 2 are refused before
    anything loads. Under torchrun every rank trains; rank 0 generates the data first and writes the files."""
    rank, world = rank_world()
    paths = _stage_paths(out)
    # the model records the steps it is trained for (its schedule's length), not the preset's defaults
    cfg = replace(cfg, **{k: v for k, v in (("vae_steps", vae_steps), ("steps", steps)) if v is not None})
    shipped = cfg.shipped_vae and vae_steps is None and seed == 0  # stage 1: the VAE that ships
    if shipped:
        cfg = im.shipped_vae_config(cfg, paths["vae"])
    elif cfg.shipped_vae:
        cfg = replace(cfg, vae_from=f"trained in {out} ({cfg.vae_steps} steps)")
    _check_run_folder(out, cfg, name)
    os.makedirs(out, exist_ok=True)
    log = {}
    if shipped:
        print(f"stage 1: {cfg.vae_from}; --vae-steps N trains one")
    t = time.time()
    if rank == 0:  # one process writes the data cache; the others read it afterwards
        train = intersynth.load_split("train", cfg.n_clips, seed)
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        train = intersynth.load_split("train", cfg.n_clips, seed)
    log["data_seconds"] = round(time.time() - t, 2)
    log["train_clips"] = len(train)
    model = im.build_model(cfg, train, seed)  # a resumed run rebuilds the same vocabulary, normaliser and weights
    if shipped and rank == 0:
        im.start_from_shipped_vae(model, paths["vae"])
    if world > 1:
        torch.distributed.barrier()
    if os.path.isfile(paths["vae"]):  # features are normalised as the VAE learnt them (the shipped VAE's own)
        model.normalizer = im.Normalizer.from_state_dict(im.load_checkpoint(paths["vae"], "vae")["normalizer"])
    t = time.time()
    log["vae_history"] = im.train_vae(model, train, steps=vae_steps, ckpt_path=paths["vae"], seed=seed)
    log["vae_seconds"] = _stage_seconds(log["vae_history"], t, own=not shipped)
    log["earlier_seconds"] = round(log["vae_seconds"] - (time.time() - t), 1)  # training in runs this one resumed
    if "denoiser" in stages:
        t = time.time()
        log["denoiser_history"] = pipeline.train_denoiser(model, train, steps=steps, ckpt_path=paths["denoiser"], seed=seed)
        log["denoiser_seconds"] = _stage_seconds(log["denoiser_history"], t)
        log["earlier_seconds"] = round(log["earlier_seconds"] + log["denoiser_seconds"] - (time.time() - t), 1)
        if rank == 0:
            model.save(paths["model"])
    return model, log


# ---- one run in a folder at a time ----------------------------------------------------------------------------
LOCK_FILE = ".lock"  # in a folder a command works in: "pid host command" of the process that holds it


class FolderInUse(RuntimeError):
    """A folder that another running command holds (`run_lock`)."""


@contextlib.contextmanager
def run_lock(folder: str, arg: str = "--out", command: str = "python intermoe_min.py"):
    """Holds `folder` for this process while the block runs: a lock file created only if there is none (O_EXCL),
    holding this process's id, host and command, removed at the end. Another command on the folder is refused
    (FolderInUse, naming the process that holds it and `arg`, the option that chose the folder); a lock whose
    process is gone (killed) is taken over with a notice. Then the temporary files of killed writes are removed."""
    os.makedirs(folder, exist_ok=True)
    path, host = os.path.join(folder, LOCK_FILE), socket.gethostname()
    me = f"{os.getpid()} {host} {command}\n"
    with _folder_mutex(folder):  # one command at a time reads, takes over and writes the lock
        _take_lock(folder, path, host, me, arg)
    removed = remove_stale_temps(folder)
    if removed:
        print(f"{folder}: removed {len(removed)} temporary file(s) of a killed run: {', '.join(removed)}")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(path, encoding="utf-8") as f:
                mine = f.read() == me
            if mine:
                os.remove(path)


@contextlib.contextmanager
def _folder_mutex(folder: str):
    """An OS lock on the folder itself (flock, released when the process ends, however it ends) around the
    check-and-take of `run_lock`, so two commands that find the same stale lock cannot both take it over. Where
    there is no flock (Windows), the O_EXCL create alone refuses a live holder."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _take_lock(folder: str, path: str, host: str, me: str, arg: str) -> None:
    """`run_lock`'s lock file created and written (a stale one removed first), or FolderInUse."""
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as f:
                    pid, their_host, their_command = (f.read().strip().split(" ", 2) + ["", "", ""])[:3]
                age = time.time() - os.path.getmtime(path)
            except FileNotFoundError:  # its holder just let it go
                continue
            gone = their_host == host and pid.isdigit() and not process_alive(int(pid)) or not pid and age > 10
            if not gone:
                where = f"process {pid}" + ("" if their_host == host else f" on {their_host}") if pid else "a starting run"
                raise FolderInUse(f"{folder} is in use by {where} ({their_command or 'its command'}): wait for it to "
                                  f"end, or pass another {arg} (if no such run is going on, delete {path})")
            print(f"{folder}: taking over the lock of process {pid or '?'} ({their_command}), which is no longer running")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(me)


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, where it has one."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python intermoe_min.py", description=im.__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)  # options every command takes
    common.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's, one per core, the "
                        "fastest on an idle machine; on a machine other jobs share, use 1)")
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, helptext):  # p.commands[name]: the command's own parser, for its errors
        p.commands[name] = sub.add_parser(name, parents=[common], help=helptext, formatter_class=_ShowDefaults)
        return p.commands[name]
    p.commands = {}
    d = add("demo", "generate data, train both stages, sample prompts to GIFs")
    d.add_argument("--preset", default="lab", choices=list(im.PRESETS))
    d.add_argument("--quick", action="store_true", help="a short run (minutes) to check everything works")
    d.add_argument("--out", help="run folder (default runs/demo, or runs/demo-quick with --quick)")
    d.add_argument("--seed", type=int, default=0, help="data, initial weights, training and samples")
    for name, helptext in (("train-vae", "stage 1 only"), ("train", "both stages (stage 1 is skipped when done)")):
        s = add(name, helptext)
        s.add_argument("--preset", default="lab", choices=list(im.PRESETS))
        s.add_argument("--out", required=True)
        s.add_argument("--vae-steps", type=int)
        s.add_argument("--steps", type=int)
        s.add_argument("--seed", type=int, default=0, help="data, initial weights and training")
    s = add("sample", "generate from a trained model")
    s.add_argument("--ckpt", help="model.pt written by train or demo (default: the shipped model, im.pretrained())")
    s.add_argument("--prompt", action="append", required=True, help="repeat for several")
    s.add_argument("--length", type=int, default=120, help=f"frames at 30 fps ({im.MIN_FRAMES}..{im.MAX_FRAMES})")
    s.add_argument("--seed", type=int, default=0, help="the starting noise")
    s.add_argument("--physics", type=float, help="physics guidance scale (default: the model's; 0: off, the paper's "
                   "sampler): pushes overlapping bodies apart and, when the prompt asks for touch, a hand to the partner")
    s.add_argument("--out", default=os.path.join("runs", "samples"), help="folder for the GIFs (sample_0.gif, ...)")
    s.add_argument("--strip", help="also write one PNG with a filmstrip of every prompt, one row each")
    s.add_argument("--bvh", action="store_true", help="also write each sample as two BVH files (one per person, "
                   "for Blender and other tools) next to its GIF: sample_0_p1.bvh, sample_0_p2.bvh, ...")
    e = add("evaluate", "the results table of a trained model (evaluator and role classifier trained once, "
                        "cached in runs/evaluator)")
    e.add_argument("--ckpt", required=True, help="model.pt written by train or demo")
    e.add_argument("--repeats", type=int, default=5, help="fresh generations of the test set (InterGen: 20)")
    e.add_argument("--mm", type=int, nargs=2, default=[20, 10], metavar=("CAPTIONS", "GENERATIONS"),
                   help="MultiModality: captions x generations each (InterGen: 100 30)")
    e.add_argument("--out", help="where evaluation.md and .json go (default: the checkpoint's folder; the "
                   "repository's published table: --out results)")
    a = add("ablate", "the paper's ablation table (the default: in miniature, about an hour)")
    a.add_argument("--work", default=os.path.join("runs", "ablation"), help="cache of models and runs (resumable)")
    a.add_argument("--out", help="where ablation.md and ablation.json go (default: --work; the repository's "
                   "published table: --out results)")
    a.add_argument("--vae", help="a trained vae.pt of the lab preset to share (default: train one)")
    a.add_argument("--steps", type=int, help="denoiser steps per run (default: the study's 300)")
    a.add_argument("--variants", nargs="+", metavar="NAME",
                   help="default: the paper's variants; any of: " + ", ".join(ABLATIONS))
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per variant and seed")
    a.add_argument("--repeats", type=int, default=2, help="fresh generations of the test batch per run")
    a.add_argument("--test-clips", type=int, default=96, help="test clips each run is judged on (0: the whole split)")
    a.add_argument("--smoke", action="store_true", help="a tiny study (seconds) to check the pipeline")
    a.add_argument("--cached-only", action="store_true",
                   help="train no run: write the report from the runs finished so far (a long study's progress; "
                        "give the study's own arguments)")
    a.add_argument("--preset", default="ablation", choices=list(im.PRESETS), help="the model every variant changes")
    a.add_argument("--report", default="ablation", choices=["ablation", "levers"],
                   help="the page's name and columns: the paper's ablation, or the lever screen")
    return p


def _check_args(p: argparse.ArgumentParser, args) -> None:
    """Refuse bad values before anything slow (loading a model, generating data) starts."""
    p = p.commands[args.cmd]  # errors show the command's own usage line
    def positive(name, low=1):
        v = getattr(args, name, None)
        if v is not None and v < low:
            p.error(f"--{name.replace('_', '-')} must be at least {low}, got {v}")
    positive("threads")
    for seed in [args.seed] if hasattr(args, "seed") else getattr(args, "seeds", []):
        if not 0 <= seed <= im.MAX_SEED:
            p.error(f"--{'seed' if hasattr(args, 'seed') else 'seeds'} must be between 0 and 2**63 - 1, got {seed}")
    for name in ("repeats", "vae_steps", "steps", "test_clips"):
        positive(name, 0 if name.endswith("steps") or name == "test_clips" else 1)
    if args.cmd == "ablate" and args.variants:
        unknown = [v for v in args.variants if v not in ABLATIONS]
        if unknown:
            p.error(f"--variants: unknown {unknown}; choose from {list(ABLATIONS)}")
    if args.cmd == "evaluate" and min(args.mm) < 1:
        p.error(f"--mm takes two counts of at least 1, got {args.mm[0]} {args.mm[1]}")
    if args.cmd == "sample":
        if not im.MIN_FRAMES <= args.length <= im.MAX_FRAMES:
            p.error(f"--length must be between {im.MIN_FRAMES} and {im.MAX_FRAMES} frames (30 fps), got {args.length}")
        if any(not prompt.strip() for prompt in args.prompt):
            p.error("--prompt must not be empty")
        if args.physics is not None and not (math.isfinite(args.physics) and args.physics >= 0):
            p.error(f"--physics must be a number >= 0 (0: off), got {args.physics}")
    for name in ("ckpt", "vae"):
        path = getattr(args, name, None)
        if path is not None and os.path.isdir(path):
            p.error(f"--{name}: {path} is a folder; pass the checkpoint in it"
                    + (f", e.g. {os.path.join(path, 'model.pt')}" if name == "ckpt" else ""))
        if path is not None and not os.path.isfile(path):
            p.error(f"--{name}: no file {path}")
    for name in ("out", "work"):  # folders a command writes into
        if getattr(args, name, None) is not None:
            _check_writable(p, f"--{name}", args.__dict__[name], folder=True)
    if getattr(args, "strip", None) is not None:
        _check_writable(p, "--strip", args.strip, folder=False)
        from PIL import Image
        Image.init()
        kinds = {ext for ext, kind in Image.registered_extensions().items() if kind in Image.SAVE}
        if os.path.splitext(args.strip)[1].lower() not in kinds:
            p.error(f"--strip: {args.strip} has no picture extension Pillow writes (.png, .jpg, ...): e.g. "
                    f"{os.path.splitext(args.strip)[0]}.png")
    try:
        pick_device()  # $INTERMOE_DEVICE, if set, names a device that is there
    except ValueError as e:
        p.error(str(e))
    if args.cmd == "ablate" and args.vae:
        study = "--smoke (--preset nano)" if args.smoke else f"--preset {args.preset}"
        try:
            check_vae(args.vae, ablation_preset(args.smoke, args.preset), study)
        except im.CheckpointError as e:
            p.error(f"--vae: {e}")


def _check_writable(p, arg: str, path: str, folder: bool) -> None:
    """A path a command will write (a folder, or a file when folder is False): refused now, naming `arg`, if it is a
    file where a folder is needed (or the reverse), lies under a file, or its nearest existing folder cannot be
    written."""
    if folder and os.path.isfile(path):
        p.error(f"{arg}: {path} is a file, not a folder; pass a folder")
    if not folder and os.path.isdir(path):
        p.error(f"{arg}: {path} is a folder; pass a file name, e.g. {os.path.join(path, 'strip.png')}")
    above = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        p.error(f"{arg}: {os.path.relpath(above) if not os.path.isabs(path) else above} is a file, not a folder; "
                f"pass a path under a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        p.error(f"{arg}: {above} cannot be written (no permission there); pass another path")


def main(argv=None):
    p = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    args.command = "python intermoe_min.py " + shlex.join(argv)  # the command again: resumes, names a lock's holder
    _check_args(p, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    shown = warnings.formatwarning
    if not args.debug:  # a warning is a line for the user (e.g. words the model does not know), not a traceback
        warnings.formatwarning = lambda message, *rest, **kw: f"warning: {message}\n"
    try:
        _run(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, what was kept and how to go on
        if args.debug:
            raise
        from tqdm import tqdm
        for bar in list(getattr(tqdm, "_instances", [])):  # ended now, not drawn again after the message
            bar.close()
        print(f"interrupted: {_after_interrupt(args)}", file=sys.stderr)
        raise SystemExit(130) from None
    except (ValueError, TypeError, OSError, FloatingPointError, im.CheckpointError, im.DataError, FolderInUse) as e:
        if args.debug:
            raise
        ours = isinstance(e, (im.CheckpointError, im.DataError, WriteError, FolderInUse))  # say all there is
        hint = "" if ours else "\n(run again with --debug to see where it happened)"
        print(f"error: {e}{hint}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        warnings.formatwarning = shown  # main() may be called in-process (tests, notebooks)


def _after_interrupt(args) -> str:
    """What an interrupted command kept, and the command that goes on from there."""
    if args.cmd == "sample":
        return f"no sample was written; {args.out} holds the earlier samples as they were"
    if args.cmd in ("evaluate", "ablate"):
        return f"finished parts are cached; the same command goes on from them: {args.command}"
    paths = _stage_paths(_run_folder(args))
    last = [paths[k] for k in ("denoiser", "vae") if os.path.isfile(paths[k])]
    return (f"the last checkpoint is {last[0]}; the same command resumes from it: {args.command}" if last else
            f"before the first checkpoint; the same command starts again: {args.command}")


def _run_folder(args) -> str:
    """The folder a command works in (and locks)."""
    if args.cmd == "demo":  # a quick run keeps its own folder: resuming a full run from it would mix the two
        return args.out or os.path.join("runs", "demo-quick" if args.quick else "demo")
    if args.cmd == "evaluate":
        return args.out or os.path.dirname(os.path.abspath(args.ckpt))
    return args.work if args.cmd == "ablate" else args.out


def _run(args) -> None:
    if int(os.environ.get("RANK", 0)):  # a torchrun rank other than the first: rank 0 holds the folder
        return _command(args)
    with run_lock(_run_folder(args), "--work" if args.cmd == "ablate" else "--out", args.command):
        return _command(args)


def _command(args) -> None:
    out = _run_folder(args)
    if args.cmd == "evaluate":
        res = run_evaluation(im.InterMoE.load(args.ckpt), out=out, repeats=args.repeats,
                             mm_captions=args.mm[0], mm_repeats=args.mm[1])
        print(open(os.path.join(out, "evaluation.md")).read())
        print(f"done in {res['seconds']['total']} s; {os.path.join(out, 'evaluation.json')}")
        return
    if args.cmd == "ablate":
        res = run_ablation(out=args.out, work=args.work, variants=args.variants, seeds=tuple(args.seeds),
                           steps=args.steps, vae_ckpt=args.vae, repeats=args.repeats, smoke=args.smoke,
                           preset_name=args.preset, report=args.report, n_test=args.test_clips,
                           cached_only=args.cached_only)
        print(ablation_markdown(res, LEVER_METRICS if args.report == "levers" else ABLATION_METRICS))
        print(f"written to {os.path.join(args.out or args.work, args.report + '.md')} and {args.report}.json")
        return
    if args.cmd == "sample":
        return _sample(args)
    rank, _ = init_distributed()  # (0, 1) unless launched by torchrun
    cfg = im.preset(args.preset)
    vae_steps, steps = (args.vae_steps, args.steps) if args.cmd != "demo" else (None, None)
    if args.cmd == "demo" and args.quick:  # a tenth of the steps; stage 1 stays the shipped VAE where the preset has one
        vae_steps, steps = None if cfg.shipped_vae else max(1, cfg.vae_steps // 10), max(1, cfg.steps // 10)
    t0 = time.time()
    stages = ("vae",) if args.cmd == "train-vae" else ("vae", "denoiser")
    model, log = run_training(cfg, out, vae_steps, steps, args.seed, stages, name=args.preset)
    if rank != 0:
        return
    files, writers = [], []
    if args.cmd == "demo":
        t = time.time()
        joints = pipeline.sample(model, DEMO_PROMPTS, 150, seed=args.seed, progress=True).cpu().numpy()
        log["sample_seconds"] = round(time.time() - t, 2)
        files = [os.path.join(out, f"demo_{k}.gif") for k in range(len(DEMO_PROMPTS))]
        writers = [_gif_writer(joints[k], caption=c, stride=2) for k, c in enumerate(DEMO_PROMPTS)]
        log["gifs"], log["prompts"] = files, DEMO_PROMPTS
    # seconds across resumes: this command's, and the training that runs it resumed did before it
    log["total_seconds"] = round(time.time() - t0 + log.pop("earlier_seconds"), 1)
    log["preset"], log["device"], log["threads"] = args.preset, str(pick_device()), torch.get_num_threads()
    log_path = _stage_paths(out)["log"]
    atomic_write(files + [log_path], writers + [lambda p: _write_text(p, json.dumps(log, indent=1))])
    print(f"done in {log['total_seconds']} s; model {_stage_paths(out)['model']}, log {log_path}"
          + (f", GIFs {', '.join(log['gifs'])}" if args.cmd == "demo" else ""))


SAMPLE_FILE = re.compile(r"sample_\d+(\.gif|_p[12]\.bvh)$")  # the files `sample` writes into its --out folder


def _sample(args) -> None:
    """The `sample` command: every file of its samples (GIFs, BVH pairs, the strip) written as one unit; files of
    earlier samples in --out that this run does not replace are removed, so the folder holds one run's samples."""
    model = im.InterMoE.load(args.ckpt) if args.ckpt else im.pretrained()
    if not args.ckpt:
        print(f"no --ckpt: sampling the shipped model, {im.PRETRAINED} (docs/results.md)")
    joints = pipeline.sample(model, args.prompt, args.length, seed=args.seed, progress=True,
                             physics=args.physics).cpu().numpy()
    files, writers = [], []
    for k, prompt in enumerate(args.prompt):
        files.append(os.path.join(args.out, f"sample_{k}.gif"))
        writers.append(_gif_writer(joints[k], caption=prompt))
        if args.bvh:
            names, write = _bvh_writers(joints[k], os.path.join(args.out, f"sample_{k}.bvh"))
            files, writers = files + names, writers + write
    if args.strip:
        files.append(args.strip)
        writers.append(_filmstrips_writer(joints, args.prompt))
    atomic_write(files, writers)
    ours = {os.path.basename(f) for f in files}
    older = sorted(f for f in os.listdir(args.out) if SAMPLE_FILE.match(f) and f not in ours)
    for f in older:
        os.remove(os.path.join(args.out, f))
    print("wrote", ", ".join(files) + (f"; removed {len(older)} file(s) of earlier samples" if older else ""))
