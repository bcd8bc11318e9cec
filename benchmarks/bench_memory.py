"""How much memory does a `lab` run need? The peak resident memory of each of its phases, and of the whole run.

    python benchmarks/bench_memory.py           # the lab preset on InterSynth's whole training split (minutes)
    python benchmarks/bench_memory.py --quick   # the nano preset on 40 training clips (seconds): a smoke test

(The run prints how long it took; the measured figures are in docs/speed.md.)

Each phase runs in a fresh subprocess on one torch thread, so no phase's peak hides behind another's:
  data + build_model  load InterSynth's train split, im.build_model(preset, train): vocabulary, normaliser
  stage-1 step        two VAE steps on vae_batch clips of vae_window frames (bench_common.VAEStep, as
                      train_loop runs them): the first allocates AdamW's state, the second runs its forward
                      beside the first's gradients, as every later step does
  stage-2 cache       measure_latent_stats, then the latent cache (LatentDataset over the whole split), as
                      train_denoiser builds them before its first step
  stage-2 step        two denoiser steps on batches of the preset's size from that cache (bench_common.DenoiserStep)
  lab run             `python intermoe_min.py train --preset lab --vae-steps 3 --steps 3` into a temporary
                      folder: all of the above, as the command runs them, in one process
  sampling            as `python intermoe_min.py sample --ckpt` does it: InterMoE.load the run's model.pt (no
                      data loaded), DDIM with guidance (the preset's steps and weight), 8 interactions x 180
                      frames (6 s), pictures left out. After 3 steps the router is untrained (it picks more
                      experts per token than a trained one's ~1), so this errs high

Per phase (MiB): the resident size just before it, its peak, and the peak of its process so far (what a user
running that much needs: the stage-2 step's process has also loaded the data and built the cache). The
peaks are the kernel's high-water mark of resident memory (VmHWM, what ru_maxrss reports), reset before
each phase by writing 5 to /proc/self/clear_refs. The reset lowers ru_maxrss too, so it is read only once,
as a cross-check of the whole run: resource usage of that child as this parent reaps it (os.wait4). After
fork + exec Linux keeps the parent's resident size as the child's ru_maxrss floor, so this parent never
imports torch. Without /proc (not Linux) every figure is ru_maxrss, an upper bound.
"""
import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MIB = 2048                # a lab run fits in 2 GiB
SAMPLE_N, SAMPLE_FRAMES = 8, 180  # 8 interactions of 6 s at 30 fps
RUN_STEPS = 3                    # VAE and denoiser steps of the whole run (its peak comes before and between)
CHILDREN = ("build", "vae", "denoiser", "run", "sample")  # sample reads run's model.pt


# ---- in the child: measuring --------------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


class Meter:
    """Peaks of successive phases in this process; the process's own peak is kept across the resets."""

    def __init__(self):
        self.rows, self.process_kb = [], 0

    def phase(self, name: str, fn):
        gc.collect()
        self.process_kb = max(self.process_kb, _status_kb("VmHWM") or 0)
        before = _status_kb("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # VmHWM := VmRSS (Linux >= 4.0)
            exact = before is not None
        except OSError:
            exact = False
        out = fn()
        peak = _status_kb("VmHWM") if exact else _maxrss_kb()
        self.process_kb = max(self.process_kb, peak)
        self.rows.append({"phase": name, "before_mib": (before or 0) / 1024, "peak_mib": peak / 1024,
                          "process_mib": self.process_kb / 1024, "exact": exact})
        return out


def child(kind: str, preset_name: str, tmp: str) -> list:
    """One subprocess's phases; `tmp` is the run's scratch folder."""
    meter = Meter()
    run_dir = os.path.join(tmp, "run")
    if kind == "run":  # the command itself, in this bare process: torch is imported by it
        sys.argv = ["intermoe_min.py", "train", "--preset", preset_name, "--out", run_dir,
                    "--vae-steps", str(RUN_STEPS), "--steps", str(RUN_STEPS)]
        import runpy

        def script():  # the script ends in SystemExit, with code None or 0 where all went well
            try:
                runpy.run_path(str(ROOT / "intermoe_min.py"), run_name="__main__")
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise
        meter.phase(f"{preset_name} run: intermoe_min.py train, {RUN_STEPS} + {RUN_STEPS} steps", script)
        return meter.rows

    import torch
    torch.set_num_threads(1)
    import bench_common as common  # the training steps as train_loop runs them; it imports intermoe_min as im
    im = common.im
    import intersynth
    from intermoe_tools import cli, pipeline  # the demo's prompts; sampling as the command line samples
    cfg = im.preset(preset_name)
    if kind == "sample":
        model = im.InterMoE.load(os.path.join(run_dir, "model.pt"))
        prompts = (cli.DEMO_PROMPTS * SAMPLE_N)[:SAMPLE_N]
        meter.phase(f"sampling, DDIM-{cfg.sample_steps}, {SAMPLE_N} x {SAMPLE_FRAMES} frames",
                    lambda: pipeline.sample(model, prompts, SAMPLE_FRAMES, seed=0))
        return meter.rows

    def setup():
        records = intersynth.load_split("train", cfg.n_clips)
        torch.manual_seed(0)
        return records, im.build_model(cfg, records)

    if kind == "build":
        records, model = meter.phase("data + build_model", setup)
        meter.rows[-1]["clips"] = len(records)
        return meter.rows
    records, model = setup()
    if kind == "vae":
        batches, _ = common.make_batches(common.vae_data(records, model.normalizer, cfg), im.collate, cfg.vae_batch, 2)
        step = common.VAEStep(model.vae, model.normalizer, cfg)
        meter.phase(f"stage-1 step (batch {cfg.vae_batch})", lambda: [step(b) for b in batches])
    elif kind == "denoiser":
        def cache():
            model.set_latent_stats(*im.measure_latent_stats(model, records))
            return common.latent_data(model, records, cfg)
        data = meter.phase(f"stage-2 latent cache ({len(records)} clips x 4)", cache)
        batches, _ = common.make_batches(data, im.collate, cfg.batch, 2)
        step = common.DenoiserStep(model, cfg)
        meter.phase(f"stage-2 step (batch {cfg.batch})", lambda: [step(b) for b in batches])
    return meter.rows


# ---- in the parent: no torch here (see the docstring) ---------------------------------------------------------
def run_child(kind: str, preset_name: str, tmp: str) -> tuple[list, float]:
    """The child's rows, and its ru_maxrss in MiB as this parent reaps it (os.wait4)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--preset", preset_name, "--tmp", tmp]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if p.returncode:
            raise RuntimeError(f"memory subprocess '{kind}' failed:\n{err.read()[-2000:]}")
        return json.loads(out.read().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the nano preset (seconds): checks the script runs")
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="lab", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.preset, args.tmp)))
        return []

    t_start = time.perf_counter()
    name = "nano" if args.quick else "lab"
    rows, maxrss = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        for kind in CHILDREN:
            more, maxrss[kind] = run_child(kind, name, tmp)
            rows += more
            if kind == "run":
                run = more[-1]["process_mib"]
    clips = rows[0]["clips"]
    how = "VmHWM, reset before each phase" if all(r["exact"] for r in rows) else "ru_maxrss: upper bounds"
    print(f"preset '{name}', InterSynth's train split ({clips} clips); a fresh subprocess per line (the two "
          f"stage-2 lines share one), 1 torch thread; MiB, {how}")
    w = max(len(r["phase"]) for r in rows)
    print(f"\n{'phase':<{w}}  {'before':>7}  {'peak':>7}  {'process peak':>12}")
    for r in rows:
        print(f"{r['phase']:<{w}}  {r['before_mib']:7.0f}  {r['peak_mib']:7.0f}  {r['process_mib']:12.0f}")
    print(f"cross-check: the run's ru_maxrss as this parent reaps it, {maxrss['run']:.0f} MiB (floor: this parent's "
          f"{_maxrss_kb() / 1024:.0f} MiB)")
    if args.quick:
        print(f"\n(--quick: the nano preset; the target, a lab run under {TARGET_MIB} MiB, is judged on a full run)")
    else:
        print(f"\nverdict: a lab run peaks at {run:.0f} MiB: {'MET' if run < TARGET_MIB else 'MISSED'} "
              f"(target < {TARGET_MIB} MiB = 2 GiB)")
    print(f"(bench took {time.perf_counter() - t_start:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
