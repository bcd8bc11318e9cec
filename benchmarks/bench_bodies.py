"""Are the people the model makes bodies? The generated-bodies table: real clips, the VAE's reconstructions (raw
decoder output and the bodies that leave the model) and generated clips (with and without physics guidance).

    python benchmarks/bench_bodies.py                         # the shipped model, 96 test clips
    python benchmarks/bench_bodies.py --ckpt runs/lab/model.pt --clips 48 --physics 0 1 4 --out results/bodies

Generated clips: each test clip's first caption at its length, seed 0. Reconstructions: each test clip encoded
and decoded (`pipeline.reconstruct`). Columns: MPJPE and the pelvis-to-pelvis vector's error against the clip
itself (reconstructions only), bone-length change within a clip, foot sliding on contact frames (and its ratio to
the real clips'), floor penetration, interpenetration (% of frames whose torso capsules overlap) and hand contact
(the closest a hand comes to the partner in each touch window; ratio to the real clips'), and the seconds
sampling took. Writes OUT.md and OUT.json when --out is given.
"""
import argparse
import json
import os
import time

import torch

import intermoe_min as im
import intersynth
from intermoe_tools import pipeline
from intermoe_tools import evaluation as ev

COLUMNS = ["MPJPE (cm)", "pelvis-to-pelvis error (cm)", "bone length std / median (%)",
           "bone length range / median (%)", "foot sliding (cm/frame)", "foot sliding / real",
           "floor penetration (cm)", "interpenetration (% frames)", "hand contact (cm)", "hand contact / real",
           "jitter (cm/frame^2)", "sampling (s)"]


def generated_row(model, records, windows, real_physics, physics, bodies, batch=48):
    """Each test clip's first caption, generated at its length (seed 0) -> the table's row."""
    _, real = ev.real_motions(records)
    lengths = [f.shape[1] for f in real]
    captions = [r["captions"][0] for r in records]
    t0, joints = time.time(), []
    for s in range(0, len(records), batch):
        J = pipeline.sample(model, captions[s:s + batch], [max(n, im.MIN_FRAMES) for n in lengths[s:s + batch]],
                            seed=s, physics=physics, bodies=bodies).cpu().numpy()
        joints += [J[k, :, :n] for k, n in enumerate(lengths[s:s + batch])]
    row = {**ev.bone_stretch(joints), **ev.physics_metrics(joints, windows), "sampling (s)": time.time() - t0}
    return _ratios(row, real_physics)


def _ratios(row, real):
    row["foot sliding / real"] = row["foot sliding (cm/frame)"] / real["foot sliding (cm/frame)"]
    row["hand contact / real"] = row["hand contact (cm)"] / real["hand contact (cm)"]
    return row


def markdown(rows: dict) -> str:
    lines = ["| | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join("" if row.get(k) is None else f"{row[k]:.3g}" for k in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", help="model.pt (default: the shipped model)")
    p.add_argument("--clips", type=int, default=96, help="the first N test clips")
    p.add_argument("--physics", type=float, nargs="+", help="physics guidance scales to generate with "
                   "(default: 0 and the model's own)")
    p.add_argument("--reconstruct-only", action="store_true", help="the real and VAE rows only, no generation")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = im.InterMoE.load(a.ckpt) if a.ckpt else im.pretrained()
    records = intersynth.load_split("test", model.cfg.n_clips)[:a.clips]
    records, real = ev.real_motions(records)
    windows = [ev.touch_window(r) for r in records]
    truth = [im.joints_from_features(f) for f in real]
    real_physics = ev.physics_metrics(truth, windows)
    rows = {"real clips": _ratios({**ev.bone_stretch(truth), **real_physics}, real_physics)}
    for bodies in (False, True):
        t0 = time.time()
        recon = [im.joints_from_features(pipeline.reconstruct(model, f, bodies=bodies)) for f in real]
        row = {**ev.reconstruction_errors(recon, truth), **ev.bone_stretch(recon), **ev.physics_metrics(recon, windows)}
        rows[f"VAE reconstruction, {'bodies' if bodies else 'raw decoder'}"] = _ratios(row, real_physics)
        print(f"reconstructions ({'bodies' if bodies else 'raw'}): {time.time() - t0:.0f} s", flush=True)
    for physics in [] if a.reconstruct_only else a.physics or sorted({0.0, model.cfg.physics}):
        for bodies in ((False, True) if physics == 0 else (True,)):
            name = f"generated, physics {physics:g}, {'bodies' if bodies else 'raw decoder'}"
            rows[name] = generated_row(model, records, windows, real_physics, physics, bodies)
            print(f"{name}: {rows[name]['sampling (s)']:.0f} s", flush=True)
    md = markdown(rows)
    print(md)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out + ".md", "w") as f:
            f.write(f"Model: {a.ckpt or os.path.relpath(im.PRETRAINED)}; VAE: {model.cfg.vae_from or 'trained with it'}; first {len(records)} "
                    f"test clips; {torch.get_num_threads()} thread(s).\n\n" + md)
        with open(a.out + ".json", "w") as f:
            json.dump({"model": a.ckpt or im.PRETRAINED, "clips": len(records), "rows": rows}, f, indent=1, default=float)


if __name__ == "__main__":
    main()
