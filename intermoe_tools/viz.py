"""intermoe_tools.viz: looking at motion.

matplotlib animations, GIFs, filmstrips and top views of one or two people's joints: `show`, `animate`,
`save_gif`, `filmstrip`, `save_filmstrips`, `plot_trajectories`; and the notebooks' widgets, `prompt_box` (type
a prompt, see the motion) and `clip_browser`. matplotlib and ipywidgets are imported inside the functions that
use them, so importing this module (or the evaluation) loads no plotting backend.
"""
from __future__ import annotations

import math
import os
import textwrap
import warnings

import numpy as np

import intermoe_min as im
from intermoe_min import FPS, JOINT_NAMES, N_JOINTS, facing_yaw
from intermoe_tools import pipeline
from intermoe_tools.files import atomic_write


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


# ---- widgets for the notebooks ------------------------------------------------------------------------------
def prompt_box(models: dict, prompt: str, seed: int = 0, stride: int = 2):
    """A prompt box for `models` (a dict name -> model): prompt (starting as `prompt`), length, which model,
    Generate. It shows itself and returns its widgets and `last`, a dict of what the last click made (model,
    prompt, unknown words, joints or error), so code can press the button and check the result."""
    import difflib
    from types import SimpleNamespace

    import ipywidgets as W
    from IPython.display import display
    text = W.Text(value=prompt, description="prompt", layout=W.Layout(width="34em"))
    frames = W.IntSlider(value=150, min=im.MIN_FRAMES, max=im.MAX_FRAMES, step=15, description="frames")
    which = W.Dropdown(options=list(models), description="model")
    button, out = W.Button(description="Generate", button_style="primary"), W.Output()
    last = {}

    def on_generate(_):
        with out:
            out.clear_output(wait=True)
            name, prompt = which.value, text.value.strip()
            vocab = models[name].vocab
            unknown = vocab.unknown_words([prompt])
            last.clear()
            last.update(model=name, prompt=prompt, unknown=unknown)
            for word in unknown:
                near = difflib.get_close_matches(word, vocab.itos[3:], n=3)
                print(f"'{word}' is not in the vocabulary (read as <unk>)"
                      + (f"; known words like it: {', '.join(near)}" if near else ""))
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", ".*not in the vocabulary")  # said above, every time
                    j = pipeline.sample(models[name], [prompt], frames.value, seed=seed)[0].cpu()  # (2, T, 22, 3)
            except Exception as e:  # a bad input must not kill the widget: say what went wrong
                last["error"] = f"{type(e).__name__}: {e}"
                print("could not sample:", last["error"])
                return
            last["joints"] = j
            display(show(j, caption=f"{name}: {prompt or '(no prompt: unconditional)'}", stride=stride))

    button.on_click(on_generate)
    display(W.VBox([W.HBox([text, button]), W.HBox([frames, which]), out]))
    return SimpleNamespace(text=text, frames=frames, which=which, button=button, out=out, last=last)


def clip_browser(clips: list, meta_keys=()):
    """A browser of clips: a menu of interaction types, a slider for the clip of that type and one for the frame;
    each change draws that frame (a one-frame filmstrip) and prints the clip's meta entries named in meta_keys.
    Returns the widget (a notebook shows it)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    by_type = {}
    for c in clips:
        by_type.setdefault(c["meta"]["type"], []).append(c)
    kind_w = W.Dropdown(options=sorted(by_type), description="type")
    clip_w = W.IntSlider(0, 0, len(by_type[kind_w.value]) - 1, description="clip")
    frame_w = W.IntSlider(0, 0, im.MAX_FRAMES - 1, description="frame")

    def on_kind(change):
        clip_w.max = len(by_type[kind_w.value]) - 1
        clip_w.value = 0
    kind_w.observe(on_kind, names="value")

    def draw(kind, k, frame):
        c = by_type[kind][min(k, len(by_type[kind]) - 1)]
        frame = min(frame, c["joints"].shape[1] - 1)
        filmstrip(c["joints"], frames=[frame], caption=c["captions"][0], highlight_frames=c["meta"]["key_frames"])
        plt.show()
        print({key: c["meta"][key] for key in meta_keys})

    out = W.interactive_output(draw, {"kind": kind_w, "k": clip_w, "frame": frame_w})
    return W.VBox([W.HBox([kind_w, clip_w, frame_w]), out])
