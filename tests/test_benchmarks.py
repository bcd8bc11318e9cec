"""The benchmark scripts are not timed tests, but they must keep running: a smoke run at a tiny size."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_moe_measures_and_reports_every_ratio(capsys):
    bench = load("bench_moe")
    r = bench.bench(d=32, d_expert=48, n_seq=4, T=16, n_rounds=3)
    assert set(r["ratio"]) == set(r["best"]) == {"forward", "fwd+bwd"}
    assert all(len(r["fwd"][k]) == 3 for k in ("moe", "ffn")) and 0 < r["ept"] <= 8
    assert all(x > 0 for x in [*r["ratio"].values(), *r["best"].values(), r["dense"]])
    bench.print_one(r)
    bench.summarise([r, r])
    out = capsys.readouterr().out
    assert out.count("target <= 1.2") == 2 and "target >= 4x" in out  # forward and fwd+bwd, then dense


def test_paired_ratio_is_the_median_of_per_round_ratios():
    bench = load("bench_moe")
    assert bench.paired_ratio([2.0, 9.0, 3.0], [1.0, 1.0, 2.0]) == pytest.approx(2.0)  # ratios 2, 9, 1.5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and os.wait4 (Linux)")
def test_bench_memory_quick_measures_every_phase_in_its_own_process(capsys):
    rows = load("bench_memory").main(["--quick"])  # the nano preset, six phases in five subprocesses
    assert len(rows) == 6 and rows[0]["clips"] > 0 and any("train" in r["phase"] for r in rows)
    assert all(0 < r["before_mib"] <= r["peak_mib"] <= r["process_mib"] for r in rows)
    out = capsys.readouterr().out
    assert "process peak" in out and "ru_maxrss" in out and "target, a lab run under 2048 MiB" in out


def test_bench_compare_loads_a_revision_beside_the_working_tree():
    """bench_compare's old version comes from git, under its own module name, beside the imported one."""
    import intermoe_min as im
    bench = load("bench_compare")
    old = bench.load_revision("HEAD")
    assert old.__name__ == "intermoe_old" and old is not im
    assert old.InterMoEBlock is not im.InterMoEBlock and hasattr(old, "preset")


def test_bench_bodies_prints_the_table_of_reconstructions_and_samples(tmp_path, capsys):
    import torch
    import intermoe_min as im
    from helpers import make_record
    records = [make_record(T=40, seed=i, clip_id=str(i)) for i in range(8)]
    torch.manual_seed(0)
    im.build_model(im.preset("nano"), records).save(str(tmp_path / "m.pt"))
    load("bench_bodies").main(["--ckpt", str(tmp_path / "m.pt"), "--clips", "2", "--physics", "0", "0.05",
                               "--out", str(tmp_path / "b")])
    table = open(tmp_path / "b.md").read()
    for row in ("real clips", "VAE reconstruction, bodies", "generated, physics 0, raw decoder",
                "generated, physics 0.05, bodies"):
        assert f"| {row} |" in table
