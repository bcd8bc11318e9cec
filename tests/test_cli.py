"""The command line: reproducible runs, exact resume across both stages, safe folders, clear errors.

Each training test runs `python intermoe_min.py train --preset nano` in-process with a few steps (seconds)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch

import intermoe_min as im
import intersynth
from intermoe_tools import files
from intermoe_tools import viz, runs, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = ["--vae-steps", "14", "--steps", "14"]  # the nano preset checkpoints every 10 steps


def train(out, *extra):
    cli.main(["train", "--preset", "nano", "--out", str(out), *STEPS, *extra])
    return im.load_checkpoint(os.path.join(out, "model.pt"), "intermoe")["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def straight_dir(tmp_path_factory):
    """The folder of the uninterrupted run every other run is compared with (copy it before changing it)."""
    out = tmp_path_factory.mktemp("straight")
    train(out)
    return out


@pytest.fixture(scope="module")
def straight(straight_dir):
    return im.load_checkpoint(os.path.join(straight_dir, "model.pt"), "intermoe")["model"]


def run_copy(straight_dir, tmp_path):
    """A copy of the straight run's folder, to change."""
    return shutil.copytree(straight_dir, tmp_path / "run")


def script(*argv):
    """`python intermoe_min.py ARGV --threads 1` as a process of its own (not started: Popen's arguments)."""
    return dict(args=[sys.executable, os.path.join(ROOT, "intermoe_min.py"), *map(str, argv), "--threads", "1"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"})


def ctrl_c_heard():
    """A child's Ctrl-C as a terminal gives it, even when these tests run in a background job (whose children
    inherit SIGINT ignored, and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(path, proc, timeout=120):
    """Until `path` exists (True), or proc ends or the time runs out (False)."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return os.path.exists(path)


def test_two_identical_train_commands_give_identical_weights(tmp_path, straight):
    assert_same_weights(straight, train(tmp_path))
    cfg = im.InterMoE.load(str(tmp_path / "model.pt")).cfg  # the model says how long it was trained
    assert (cfg.vae_steps, cfg.steps) == (14, 14) != (im.preset("nano").vae_steps, im.preset("nano").steps)


@pytest.mark.parametrize("stage", ["vae", "denoiser"])
def test_a_kill_in_either_stage_then_the_same_command_equals_the_uninterrupted_run(tmp_path, straight, monkeypatch,
                                                                                   stage):
    real_save = im.save_checkpoint

    def killed_after_step_10(path, state):
        real_save(path, state)
        if state["kind"] == stage and state["step"] == 10:
            raise KeyboardInterrupt  # the process dies right after its checkpoint
    monkeypatch.setattr(im, "save_checkpoint", killed_after_step_10)
    with pytest.raises(SystemExit) as e:  # Ctrl-C ends the command with a line saying how to resume
        train(tmp_path)
    assert e.value.code == 130
    monkeypatch.setattr(im, "save_checkpoint", real_save)
    assert not os.path.exists(tmp_path / "model.pt")
    assert_same_weights(straight, train(tmp_path))  # a fresh process would rebuild the model the same way


def test_stage_2_refuses_to_resume_on_a_vae_that_changed(tmp_path, capsys):
    train(tmp_path)
    vae_before = im.load_checkpoint(str(tmp_path / "vae.pt"))["model"]
    # more VAE steps would train stage 1 further, leaving the stage-2 checkpoint on the old VAE: refused at once
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--preset", "nano", "--out", str(tmp_path), "--vae-steps", "18", "--steps", "14"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "would change that VAE" in err and "Delete" in err and "denoiser.pt" in err and "--vae-steps 14" in err
    assert_same_weights(vae_before, im.load_checkpoint(str(tmp_path / "vae.pt"))["model"])  # stage 1 did not run
    # the library's own guard, for a VAE changed some other way (another vae.pt copied in, say)
    state = im.load_checkpoint(str(tmp_path / "vae.pt"))
    state["model"][next(k for k, v in state["model"].items() if v.is_floating_point())] += 0.01
    im.save_checkpoint(str(tmp_path / "vae.pt"), state)
    with pytest.raises(im.CheckpointError, match="trained on another VAE.*Delete"):
        cli.main(["train", "--preset", "nano", "--out", str(tmp_path), *STEPS, "--debug"])
    (tmp_path / "vae.pt").unlink()
    with pytest.raises(im.CheckpointError, match="which is gone"):
        cli.main(["train", "--preset", "nano", "--out", str(tmp_path), *STEPS, "--debug"])


def test_a_finished_run_run_again_loads_without_preparing_any_data(tmp_path, straight, monkeypatch):
    train(tmp_path)
    monkeypatch.setattr(im, "LatentDataset", lambda *a, **k: pytest.fail("the latent cache was built again"))
    assert_same_weights(straight, train(tmp_path))


def test_a_folder_trained_with_one_seed_refuses_another(tmp_path):
    train(tmp_path)
    with pytest.raises(im.CheckpointError, match="trained with seed 0, this run asks for seed 3"):
        cli.main(["train", "--preset", "nano", "--out", str(tmp_path), *STEPS, "--seed", "3", "--debug"])


def test_quick_demo_and_full_demo_keep_separate_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the folders it names (and locks) are relative: here, not the repository's runs/
    seen = []
    monkeypatch.setattr(cli, "run_training", lambda cfg, out, *a, **kw: seen.append(out) or (None, {}))
    monkeypatch.setattr(cli, "init_distributed", lambda: (1, 2))
    cli.main(["demo", "--quick"])
    cli.main(["demo"])
    assert seen == [os.path.join("runs", "demo-quick"), os.path.join("runs", "demo")]


def test_evaluate_and_ablate_write_to_the_run_not_to_results(tmp_path, monkeypatch):
    ckpt = tmp_path / "run" / "model.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"")
    calls = {}

    def fake_evaluation(model, out, **kw):
        calls["evaluate"] = out
        os.makedirs(out, exist_ok=True)
        open(os.path.join(out, "evaluation.md"), "w").write("table")
        return {"seconds": {"total": 0}}
    monkeypatch.setattr(im.InterMoE, "load", classmethod(lambda cls, path, device=None: None))
    monkeypatch.setattr(cli, "run_evaluation", fake_evaluation)
    monkeypatch.setattr(cli, "run_ablation", lambda out=None, work=None, **kw: calls.setdefault("ablate", (out, work)))
    monkeypatch.setattr(cli, "ablation_markdown", lambda res, cols=None: "table")
    cli.main(["evaluate", "--ckpt", str(ckpt)])
    assert calls["evaluate"] == str(tmp_path / "run")
    cli.main(["ablate", "--work", str(tmp_path / "abl")])
    assert calls["ablate"] == (None, str(tmp_path / "abl"))  # run_ablation writes into work when out is None
    cli.main(["evaluate", "--ckpt", str(ckpt), "--out", str(tmp_path / "elsewhere")])
    assert calls["evaluate"] == str(tmp_path / "elsewhere")


@pytest.mark.parametrize("argv, message", [
    (["sample", "--ckpt", "CKPT", "--prompt", "two people hug", "--length", "400"], "--length must be between 15"),
    (["sample", "--ckpt", "CKPT", "--prompt", " "], "--prompt must not be empty"),
    (["sample", "--ckpt", "missing.pt", "--prompt", "hug"], "--ckpt: no file missing.pt"),
    (["sample", "--ckpt", "CKPT", "--prompt", "hug", "--threads", "0"], "--threads must be at least 1"),
    (["train", "--out", "x", "--steps", "-5"], "--steps must be at least 0"),
    (["train", "--out", "x", "--seed", "-1"], "--seed must be between 0 and"),
    (["ablate", "--seeds", "0", "-2"], "--seeds must be between 0 and"),
    (["sample", "--ckpt", "FOLDER", "--prompt", "hug"], "is a folder; pass the checkpoint in it, e.g."),
    (["evaluate", "--ckpt", "CKPT", "--repeats", "0"], "--repeats must be at least 1"),
    (["sample", "--ckpt", "CKPT", "--prompt", "hug", "--out", "CKPT"], "--out: CKPT is a file, not a folder"),
    (["sample", "--ckpt", "CKPT", "--prompt", "hug", "--out", "CKPT/samples"], "--out: CKPT is a file, not a folder"),
    (["sample", "--ckpt", "CKPT", "--prompt", "hug", "--strip", "FOLDER"], "--strip: FOLDER is a folder"),
    (["sample", "--ckpt", "CKPT", "--prompt", "hug", "--strip", "sheet"], "--strip: sheet has no picture extension"),
    (["sample", "--ckpt", "CKPT", "--prompt", "hug", "--strip", "sheet.xyz"], "--strip: sheet.xyz has no picture"),
    (["train", "--out", "CKPT"], "--out: CKPT is a file, not a folder"),
    (["evaluate", "--ckpt", "CKPT", "--out", "CKPT"], "--out: CKPT is a file, not a folder"),
    (["ablate", "--work", "CKPT"], "--work: CKPT is a file, not a folder"),
])
def test_bad_arguments_are_refused_before_anything_loads(tmp_path, monkeypatch, capsys, argv, message):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    monkeypatch.setattr(im.InterMoE, "load", classmethod(lambda *a, **k: pytest.fail("the model was loaded")))
    monkeypatch.setattr(cli, "run_training", lambda *a, **k: pytest.fail("training started"))
    names = {"CKPT": str(ckpt), "FOLDER": str(tmp_path)}
    with pytest.raises(SystemExit) as e:
        cli.main([re.sub("CKPT|FOLDER", lambda m: names[m.group()], a) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert re.sub("CKPT|FOLDER", lambda m: names[m.group()], message) in err and "Traceback" not in err
    assert f"usage: python intermoe_min.py {argv[0]}" in err  # the command's own usage, not the program's


def test_an_error_prints_its_message_and_the_traceback_only_with_debug(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # sample's default --out, runs/samples, here
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as e:
        cli.main(["sample", "--ckpt", str(ckpt), "--prompt", "two people hug"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a readable checkpoint" in err and "Traceback" not in err
    with pytest.raises(im.CheckpointError):
        cli.main(["sample", "--ckpt", str(ckpt), "--prompt", "two people hug", "--debug"])


def test_threads_sets_torchs_thread_count(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # sample's default --out, runs/samples, here
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"not a checkpoint")
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit):
            cli.main(["sample", "--ckpt", str(ckpt), "--prompt", "hug", "--threads", "2"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_run_as_a_script_the_model_file_loads_once():
    """`python intermoe_min.py ...` hands over to intermoe_tools.cli before it defines anything: the model is
    defined once, in the module intermoe_min that the command line imports, and never in __main__."""
    code = ("import sys\n"
            "sys.argv = ['intermoe_min.py', 'sample', '--help']\n"
            "script = {'__name__': '__main__', '__file__': 'intermoe_min.py'}\n"
            "try:\n"
            "    exec(compile(open('intermoe_min.py').read(), 'intermoe_min.py', 'exec'), script)\n"
            "except SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n"
            "assert 'InterMoE' not in script and 'build_model' not in script, sorted(script)\n"
            "assert hasattr(sys.modules['intermoe_min'], 'InterMoE')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert "usage: python intermoe_min.py sample" in out.stdout


@pytest.mark.parametrize("entry", [["intermoe_min.py"], ["-m", "intermoe_tools.cli"], "intermoe"])
def test_every_entry_point_runs_the_same_command_line(entry):
    """python intermoe_min.py, python -m intermoe_tools.cli and the `intermoe` command pip installs."""
    if entry == "intermoe":
        path = os.path.join(os.path.dirname(sys.executable), "intermoe")
        if not os.path.isfile(path):
            pytest.skip("the intermoe command is not installed here (pip install -e . installs it)")
        args = [path]
    else:
        args = [sys.executable, *entry]
    out = subprocess.run([*args, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert "{demo,train-vae,train,sample,evaluate,ablate}" in out.stdout


def test_the_model_file_reads_in_the_order_the_notebooks_teach():
    """intermoe_min.py's sections come in data-flow order, each named in the module docstring's map, and the
    paper's contribution (the router) starts within the first thousand lines."""
    src = open(im.__file__).read().splitlines()
    heads = [line[2:].split(".")[0] for line in src if re.match(r"# \d[a-d]?\. ", line)]
    assert heads == ["1", "2", "3", "4", "5", "6a", "6b", "6c", "6d", "7", "8", "9"], heads
    router = next(i for i, line in enumerate(src, 1) if line.startswith("class SynergisticRouter"))
    assert router < 1000, router
    for name in ("Causal-Skeletal VAE", "Synergistic", "InterMoE block", "Cooperative", "Training machinery"):
        assert name.lower() in im.__doc__.lower(), name


def test_sample_writes_bvh_files_a_parser_reads(tmp_path):
    bvh = pytest.importorskip("bvh")
    train(tmp_path)
    cli.main(["sample", "--ckpt", str(tmp_path / "model.pt"), "--prompt", "two people hug", "--length", "30",
             "--out", str(tmp_path / "s"), "--bvh"])
    for person in ("p1", "p2"):
        with open(tmp_path / "s" / f"sample_0_{person}.bvh") as f:
            b = bvh.Bvh(f.read())
        assert len(b.get_joints_names()) == 22 and b.nframes == 30 and abs(b.frame_time - 1 / 30) < 1e-6


def test_a_warning_reaches_the_user_as_one_line_and_the_format_is_restored(tmp_path, capsys, monkeypatch):
    import warnings
    before = warnings.formatwarning
    monkeypatch.setattr(cli, "_run", lambda args: warnings.warn("2 word(s) not in the vocabulary"))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", lambda m, c, f, l, file=None, line=None:
                            print(warnings.formatwarning(m, c, f, l, line), end=""))
        cli.main(["sample", "--prompt", "two robots dance", "--out", str(tmp_path)])
    assert capsys.readouterr().out == "warning: 2 word(s) not in the vocabulary\n"
    assert warnings.formatwarning is before


def test_stage_2_starts_from_the_shipped_vae_unless_told_to_train_one(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped_vae.pt"
    cli.main(["train-vae", "--preset", "nano", "--out", str(tmp_path / "maker"), "--vae-steps", "12"])
    os.replace(tmp_path / "maker" / "vae.pt", shipped)
    monkeypatch.setattr(im, "SHIPPED_VAE", str(shipped))
    cfg = im.preset("nano", shipped_vae=True)
    model, log = runs.run_training(cfg, str(tmp_path / "a"), steps=4)
    assert model.cfg.vae_steps == 12 and "shipped" in model.cfg.vae_from and len(log["vae_history"]) > 0
    assert_same_weights({k: v for k, v in im.load_checkpoint(str(shipped), "vae")["model"].items()},
                        model.vae.state_dict())
    own, _ = runs.run_training(cfg, str(tmp_path / "b"), vae_steps=3, steps=4)  # --vae-steps: a VAE of its own
    assert own.cfg.vae_steps == 3 and own.cfg.vae_from.startswith("trained in")


# ---- nothing lost: whole files, one run per folder, clear refusals -------------------------------------------
@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a folder this user cannot write")
def test_an_output_folder_that_cannot_be_written_is_refused_before_anything_loads(tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    monkeypatch.setattr(im.InterMoE, "load", classmethod(lambda *a, **k: pytest.fail("the model was loaded")))
    with pytest.raises(SystemExit) as e:
        cli.main(["sample", "--prompt", "hug", "--out", str(locked / "samples")])
    assert e.value.code == 2 and f"--out: {locked} cannot be written" in capsys.readouterr().err


def test_a_second_train_in_a_folder_in_use_is_refused_naming_the_process_and_ctrl_c_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(**script("train", "--preset", "nano", "--out", out, "--vae-steps", "5000", "--steps", "10"),
                             preexec_fn=ctrl_c_heard)
    try:
        assert wait_for(out / runs.LOCK_FILE, first), "the first run took no lock on its folder"
        second = subprocess.run(**script("train", "--preset", "nano", "--out", out, "--seed", "1"), timeout=120)
        assert second.returncode == 1 and first.poll() is None
        assert second.stderr.count("\n") == 1 and f"process {first.pid}" in second.stderr and str(out) in second.stderr
        while not (out / "vae.pt").exists() and first.poll() is None:  # a checkpoint to resume from
            time.sleep(0.05)
        first.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    last = err.strip().splitlines()[-1]
    assert first.returncode == 130 and "Traceback" not in err, err
    assert str(out / "vae.pt") in last and f"python intermoe_min.py train --preset nano --out {out}" in last
    assert not (out / runs.LOCK_FILE).exists()


def test_a_lock_left_by_a_process_that_is_gone_is_taken_over_with_a_notice(tmp_path, capsys):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    (tmp_path / runs.LOCK_FILE).write_text(f"{pid} {socket.gethostname()} python intermoe_min.py train\n")
    with runs.run_lock(str(tmp_path), "--out"):
        assert (tmp_path / runs.LOCK_FILE).read_text().split()[0] == str(os.getpid())
    assert f"process {pid}" in capsys.readouterr().out and not (tmp_path / runs.LOCK_FILE).exists()


def test_two_commands_that_find_the_same_stale_lock_do_not_both_take_it(tmp_path, monkeypatch):
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    (tmp_path / runs.LOCK_FILE).write_text(f"{gone} {socket.gethostname()} python intermoe_min.py train\n")
    monkeypatch.setattr(runs, "process_alive", lambda pid: time.sleep(0.3) or pid != gone)  # a slow check: a wide window
    results = []

    def take():
        try:
            with runs.run_lock(str(tmp_path), "--out"):
                results.append("held")
                time.sleep(1.0)
        except runs.FolderInUse:
            results.append("refused")
    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["held", "refused"]


def test_two_samples_into_one_folder_at_once_never_mix_their_files(straight_dir, tmp_path):
    out, ckpt = tmp_path / "s", straight_dir / "model.pt"
    prompts = [a for p in ("two people hug", "one person waves") for a in ("--prompt", p)]
    first = subprocess.Popen(**script("sample", "--ckpt", ckpt, *prompts, "--length", "120", "--bvh", "--out", out))
    try:
        assert wait_for(out / runs.LOCK_FILE, first), "the first sample took no lock on its folder"
        second = subprocess.run(**script("sample", "--ckpt", ckpt, "--prompt", "hug", "--length", "119", "--bvh",
                                      "--out", out), timeout=120)
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        first.kill()
    assert second.returncode == 1 and f"process {first.pid}" in second.stderr
    for k in range(2):
        for person in ("p1", "p2"):
            assert "Frames: 120" in (out / f"sample_{k}_{person}.bvh").read_text()


def sample_twice(straight_dir, out, monkeypatch, failure, first):
    """Samples two prompts into out (its files then go into `first`, name -> bytes), then two others whose second
    GIF stops half written with `failure`."""
    cli.main(["sample", "--ckpt", str(straight_dir / "model.pt"), "--prompt", "two people hug", "--prompt",
             "one person waves", "--length", "20", "--bvh", "--out", str(out)])
    first.update({f: (out / f).read_bytes() for f in os.listdir(out)})
    real, calls = viz._record, []

    def half_written(writer, fig, update, frames, path):
        calls.append(path)
        if len(calls) < 2:
            return real(writer, fig, update, frames, path)
        open(path, "wb").write(b"GIF89a")  # the first bytes of sample_1.gif, then the end
        raise failure
    monkeypatch.setattr(viz, "_record", half_written)
    cli.main(["sample", "--ckpt", str(straight_dir / "model.pt"), "--prompt", "they dance", "--prompt",
             "one person pushes the other", "--length", "24", "--seed", "1", "--bvh", "--out", str(out)])


def test_a_sample_killed_while_writing_leaves_the_previous_samples_as_they_were(straight_dir, tmp_path, monkeypatch):
    out, first = tmp_path / "s", {}
    with pytest.raises((KeyboardInterrupt, SystemExit)) as e:
        sample_twice(straight_dir, out, monkeypatch, KeyboardInterrupt(), first)
    assert len(first) == 6  # two GIFs and four BVH files
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == first  # every file of the first run, as it was
    assert e.type is SystemExit and e.value.code == 130


def test_a_full_disk_while_sampling_names_the_file_and_leaves_nothing_partial(straight_dir, tmp_path, monkeypatch,
                                                                              capsys):
    import errno
    out, first = tmp_path / "s", {}
    with pytest.raises(SystemExit) as e:
        sample_twice(straight_dir, out, monkeypatch, OSError(errno.ENOSPC, "No space left on device"), first)
    err = capsys.readouterr().err
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == first
    assert e.value.code == 1 and err.count("\n") == 1, err
    assert f"{out / 'sample_1.gif'}" in err and "the disk is full" in err


def test_the_device_variable_is_named_in_its_error_and_read_in_any_case(tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    monkeypatch.setattr(im.InterMoE, "load", classmethod(lambda *a, **k: pytest.fail("the model was loaded")))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU build, even on a GPU machine
    for value, message in (("banana", "INTERMOE_DEVICE=banana is not a device"),
                           ("cuda", "INTERMOE_DEVICE=cuda, but torch sees no CUDA GPU")):
        monkeypatch.setenv("INTERMOE_DEVICE", value)
        with pytest.raises(SystemExit) as e:
            cli.main(["sample", "--ckpt", str(ckpt), "--prompt", "hug"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err.strip().splitlines()[-1] and "Traceback" not in err, err
    monkeypatch.setenv("INTERMOE_DEVICE", "CPU")
    assert im.pick_device() == torch.device("cpu")


def test_ablate_refuses_a_vae_of_another_preset_before_loading_anything(straight_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(intersynth, "load_split", lambda *a, **k: pytest.fail("the data was loaded"))
    with pytest.raises(SystemExit) as e:
        cli.main(["ablate", "--vae", str(straight_dir / "vae.pt"), "--work", str(tmp_path / "abl")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--vae" in err and "--preset nano" in err and "ablation" in err, err


def test_train_with_another_preset_in_a_run_folder_names_both_presets(straight_dir, tmp_path, monkeypatch, capsys):
    run = run_copy(straight_dir, tmp_path)
    monkeypatch.setattr(intersynth, "load_split", lambda *a, **k: pytest.fail("the data was loaded"))
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--preset", "lab", "--out", str(run)])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1, err
    assert "--preset nano" in err and "--preset lab" in err and "--vae-steps 14 --steps 14" in err


@pytest.mark.parametrize("steps", [["--vae-steps", "10", "--steps", "14"], ["--vae-steps", "14", "--steps", "10"]])
def test_fewer_steps_than_a_run_has_done_leave_its_model_as_it_was(straight_dir, tmp_path, monkeypatch, capsys,
                                                                    steps):
    run = run_copy(straight_dir, tmp_path)
    before = {f: (run / f).read_bytes() for f in os.listdir(run)}
    monkeypatch.setattr(intersynth, "load_split", lambda *a, **k: pytest.fail("the data was loaded"))
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--preset", "nano", "--out", str(run), *steps])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "14 steps" in err and "--vae-steps 14 --steps 14" in err
    assert {f: (run / f).read_bytes() for f in os.listdir(run)} == before


def test_temporary_files_of_a_killed_save_are_removed_by_the_next_run(straight_dir, tmp_path):
    run = run_copy(straight_dir, tmp_path)
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    left = [f"vae.pt.tmp{gone}", f"denoiser.tmp{gone}.pt", f"log.tmp{gone}.json"]
    alive = f"model.tmp{os.getppid()}.pt"  # another process still writing it
    fresh = f"vae.tmp{gone}.pt"  # a dead pid's file written moments ago: maybe another machine's writer
    for name in left + [alive, fresh]:
        (run / name).write_bytes(b"PK partial")
    old = time.time() - 2 * files.STALE_TEMP_S
    for name in left + [alive]:
        os.utime(run / name, (old, old))
    train(run)
    assert not any((run / name).exists() for name in left) and (run / alive).exists() and (run / fresh).exists()


def test_log_times_add_up_across_a_resume(tmp_path, monkeypatch):
    real_save, real_loss = im.save_checkpoint, im._vae_loss_fn

    def killed_after_step_10(path, state):
        real_save(path, state)
        if state["kind"] == "vae" and state["step"] == 10:
            raise KeyboardInterrupt

    def slow_loss(*a, **kw):  # 0.3 s a step: 3 s of training before the kill
        loss_fn = real_loss(*a, **kw)
        return lambda *b: time.sleep(0.3) or loss_fn(*b)
    monkeypatch.setattr(im, "save_checkpoint", killed_after_step_10)
    monkeypatch.setattr(im, "_vae_loss_fn", slow_loss)
    with pytest.raises((KeyboardInterrupt, SystemExit)):  # SystemExit: the command's own end on Ctrl-C
        train(tmp_path)
    monkeypatch.setattr(im, "save_checkpoint", real_save)
    monkeypatch.setattr(im, "_vae_loss_fn", real_loss)
    train(tmp_path)
    log = json.load(open(tmp_path / "log.json"))
    assert log["vae_seconds"] >= 3.0 and log["total_seconds"] >= log["vae_seconds"] + log["denoiser_seconds"]
