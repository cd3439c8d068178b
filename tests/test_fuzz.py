"""The fuzz targets of fuzz/ in CI: every seed of the corpus replayed, then each target fuzzed for a second or two.

Only clean deltanet errors (``ValueError`` with a message) may come out of a
reader, and no seed may make it allocate much more than the file's size.
The long runs are described in fuzz/README.md; their figures are in
benchmarks/results/fuzz.md.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
TARGETS = ["model", "checkpoint", "config", "csv", "npz", "idx"]
sys.path.insert(0, str(FUZZ))


def seeds(target):
    return sorted((FUZZ / "corpus" / target).iterdir())


@pytest.mark.parametrize("target", TARGETS)
def test_every_seed_gives_a_result_or_a_clean_error_without_a_huge_allocation(target):
    one_input = importlib.import_module(f"fuzz_{target}").one_input
    files = seeds(target)
    assert len(files) >= 8, "the seed corpus is missing: python fuzz/make_corpus.py"
    for path in files:
        data = path.read_bytes()
        tracemalloc.start()
        try:
            one_input(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 32 * 2**20 + 50 * len(data), f"{path.name}: {peak / 2**20:.0f} MiB for a {len(data)}-byte file"


atheris = pytest.importorskip("atheris", reason="atheris has wheels for Linux, Python < 3.13 only")


def test_a_short_fuzzing_run_of_every_target_finds_no_crash(tmp_path):
    """Each target for a second, all at once (one interpreter start each is most of the time)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    runs = {}
    for target in TARGETS:
        new = tmp_path / target
        new.mkdir()
        runs[target] = subprocess.Popen(
            [sys.executable, str(FUZZ / f"fuzz_{target}.py"), str(new), str(FUZZ / "corpus" / target), "-max_total_time=1",
             "-timeout=10", f"-artifact_prefix={tmp_path}/{target}-", "-print_final_stats=1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    for target, proc in runs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"fuzz_{target}: {err[-3000:]}"
        assert "stat::number_of_executed_units" in err, f"fuzz_{target}: {err[-3000:]}"
