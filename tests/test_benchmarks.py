"""The benchmark scripts are not timed tests, but they must keep running: a smoke run at a tiny size."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_moe_prints_every_ratio(capsys):
    bench = load("bench_moe")
    bench.bench(d=32, d_expert=48, n_seq=4, T=16, n_rounds=3)
    out = capsys.readouterr().out
    assert out.count("moe / (ffn x experts per token)") == 2  # forward and fwd+bwd
    assert "every expert on every token / moe" in out
    for line in out.splitlines():
        if "paired" in line:
            assert float(line.split("paired")[1].split()[0]) > 0


def test_paired_ratio_is_the_median_of_per_round_ratios():
    bench = load("bench_moe")
    assert bench.paired_ratio([2.0, 9.0, 3.0], [1.0, 1.0, 2.0]) == pytest.approx(2.0)  # ratios 2, 9, 1.5
