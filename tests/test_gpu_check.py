"""benchmarks/gpu_check.py runs: its dry run (NumPy for CuPy, the CUDA kernels compiled as C++) passes every
section and writes its report, and a section that raises is reported as a failure."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from deltanet import backend
from deltanet.accel.kernels.cuda import emulation as cuda_emulation

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("_bench_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gpu_check = _load()


@pytest.mark.skipif(not cuda_emulation.available(), reason="no C++ compiler to emulate the CUDA kernels")
def test_dry_run_passes_every_section_and_writes_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.main(["--dry-run"]) == 0
    assert backend.xp.__name__ == "numpy"
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["dry_run"] is True and result["passed"] is True
    assert list(result["sections"]) == ["0. dispatch", "1. kernel parity", "2. gradient parity", "3. training parity",
                                        "4. throughput"]
    assert all(s["ok"] and s["error"] is None for s in result["sections"].values())
    rows = result["kernel_parity"]
    # 9 optimizer variants x 2 dtypes x 2 decay layouts, dropout 3 x 2, batch norm 3 layouts x 2 dtypes x 2 passes
    assert len(rows) == 36 + 6 + 12 and all(r["ok"] for r in rows)
    assert {r["kernel"] for r in rows} == {"sgd", "adam", "rmsprop", "dropout", "batch_norm forward",
                                           "batch_norm backward"}
    assert all(r["diff"] == 0.0 for r in rows if r["kernel"] in ("sgd", "adam", "rmsprop", "dropout"))
    assert result["gradient_parity"]["worst"] == 0.0 and result["gradient_parity"]["gradcheck_passed"]
    assert [r["weights_diff"] for r in result["training_parity"]] == [0.0, 0.0]
    assert [(r["network"], r["batch"]) for r in result["throughput"]] == [("32-16-10", 64), ("32-16-10", 256)]
    assert all(r["deltanet_s"] > 0 and r["floor_s"] > 0 and r["torch_s"] is None for r in result["throughput"])
    md = (tmp_path / "gpu.md").read_text()
    assert "DRY RUN" in md and "PyTorch CUDA comparison skipped: not run in a dry run" in md
    assert "| network | batch | rows | deltanet (GPU) | PyTorch CUDA eager | cuBLAS floor |" in md
    assert "parity (sections 0-3): **passed**" in md


def test_a_section_that_raises_fails_the_run_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))

    def broken(c):
        raise ValueError("deliberately broken")

    monkeypatch.setattr(gpu_check, "gradient_parity", broken)
    assert gpu_check.main(["--dry-run", "--sections", "2"]) == 1
    md = (tmp_path / "gpu.md").read_text()
    assert "**ERROR in 2. gradient parity: ValueError: deliberately broken**" in md
    assert "2. gradient parity: **FAILED**" in md and "parity (sections 0-3): **FAILED**" in md
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["sections"]["2. gradient parity"]["ok"] is False and result["passed"] is False


def test_without_a_gpu_the_real_run_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUT", str(tmp_path))

    def no_gpu(device):
        raise RuntimeError("device='cuda': no GPU here")

    monkeypatch.setattr(gpu_check.backend, "select_device", no_gpu)
    assert gpu_check.main([]) == 2
    assert "no usable GPU" in capsys.readouterr().err
