"""Regression tests for what fuzzing the readers found (fuzz/, benchmarks/results/fuzz.md).

Each hostile file must give one clean ValueError naming the file, before any
allocation of the size it declares.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import deltanet as dn
from deltanet.config import ConfigError, loads_config
from deltanet.data.idx import read_idx
from deltanet.data.tabular import load_npz
from deltanet.training.checkpoint import load_state


def npy(descr, shape, payload=b""):
    head = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    head += b" " * (-(len(head) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + payload


def zip_of(members, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def checkpoint(tmp_path):
    X, y = np.random.default_rng(0).normal(size=(16, 3)), np.arange(16) % 2
    t = dn.Trainer(dn.mlp([3, 4, 2], rng=0), epochs=1, batch_size=8, record_layers=False)
    t.fit(X, y)
    path = tmp_path / "c.npz"
    t.save_checkpoint(path)
    with zipfile.ZipFile(path) as z:
        return path, {n: z.read(n) for n in z.namelist()}


def small_peak(fn, limit=16 * 2**20):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < limit, f"{peak / 2**20:.0f} MiB allocated"


def test_an_npz_member_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    p = tmp_path / "d.npz"
    p.write_bytes(zip_of({"X.npy": npy("<f8", (2**31, 2**20)), "y.npy": npy("<i8", (1,), bytes(8))}))

    def load():
        with pytest.raises(ValueError, match=r"d\.npz.*member 'X\.npy' declares shape \(2147483648, 1048576\)"):
            load_npz(p)
    small_peak(load)


def test_an_npz_member_shorter_than_its_shape_is_refused(tmp_path):
    p = tmp_path / "d.npz"
    p.write_bytes(zip_of({"X.npy": npy("<f8", (1000, 1000), bytes(80)), "y.npy": npy("<i8", (1,), bytes(8))}))
    small_peak(lambda: _raises(load_npz, p, "holds 80 bytes"))


def _raises(fn, arg, match):
    with pytest.raises(ValueError, match=match):
        fn(arg)


def test_a_zip_bomb_member_and_duplicate_members_are_refused(tmp_path):
    bomb = npy("<f8", (2, 2), bytes(32 + 8 * 2**20))
    p = tmp_path / "bomb.npz"
    p.write_bytes(zip_of({"X.npy": bomb, "y.npy": npy("<i8", (2,), bytes(16))}, zipfile.ZIP_DEFLATED))
    small_peak(lambda: _raises(load_npz, p, "declares shape"))
    q = tmp_path / "dup.npz"
    with zipfile.ZipFile(q, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("X.npy", npy("<f8", (1, 1), bytes(8)))
        z.writestr("X.npy", npy("<f8", (1, 1), bytes(8)))
    _raises(load_npz, q, r"duplicate member names \['X\.npy'\]")


def test_corrupt_deflate_data_and_unsupported_zip_features_are_clean_errors(tmp_path):
    good = zip_of({"X.npy": npy("<f8", (4, 1), bytes(32)), "y.npy": npy("<i8", (4,), bytes(32))}, zipfile.ZIP_DEFLATED)
    i = good.index(b"X.npy") + 5 + 3  # inside X's compressed data
    p = tmp_path / "bad.npz"
    p.write_bytes(good[:i] + bytes([good[i] ^ 0x55]) + good[i + 1:])
    _raises(load_npz, p, "bad.npz")
    # a central directory that asks for a zip version Python cannot read
    d = bytearray(zip_of({"X.npy": npy("<f8", (4, 1), bytes(32))}))
    central = d.index(b"PK\x01\x02")
    d[central + 6] = 255  # "version needed to extract"
    p.write_bytes(bytes(d))
    _raises(load_npz, p, "bad.npz")
    _raises(load_state, p, "bad.npz' is not a deltanet checkpoint or is damaged")


def test_a_checkpoint_member_declaring_a_huge_shape_is_refused(checkpoint, tmp_path):
    path, members = checkpoint
    name = next(n for n in members if n.startswith("model/"))
    path.write_bytes(zip_of({**members, name: npy("<f4", (2**30, 2**30))}))
    small_peak(lambda: _raises(load_state, path, r"c\.npz' is not a deltanet checkpoint or is damaged: member"))


def _with_meta(path, members, text):
    buf = io.BytesIO()
    np.save(buf, np.array(text))
    path.write_bytes(zip_of({**members, "__meta__.npy": buf.getvalue()}))


def test_a_checkpoint_with_deeply_nested_json_is_a_clean_error(checkpoint):
    path, members = checkpoint
    _with_meta(path, members, "[" * 5000 + "]" * 5000)
    _raises(dn.Trainer.load_checkpoint, path, "is not a deltanet checkpoint or is damaged")


def test_a_checkpoint_describing_a_huge_model_is_refused_before_building_it(checkpoint):
    path, members = checkpoint
    meta = json.loads(str(np.load(io.BytesIO(members["__meta__.npy"]))[()]))
    meta["state"]["model_config"] = {"type": "Sequential", "layers": [{"type": "Linear", "in_features": 10**8,
                                                                        "out_features": 10**8}]}
    _with_meta(path, members, json.dumps(meta))
    small_peak(lambda: _raises(dn.Trainer.load_checkpoint, path, "needs at least 10000000000000000 weights"))


@pytest.mark.parametrize("edit", ["no_trainer", "unknown_setting", "no_rng", "bad_optimizer"])
def test_a_checkpoint_whose_state_is_incomplete_is_one_value_error(checkpoint, edit):
    path, members = checkpoint
    meta = json.loads(str(np.load(io.BytesIO(members["__meta__.npy"]))[()]))
    state = meta["state"]
    if edit == "no_trainer":
        del state["trainer"]
    elif edit == "unknown_setting":
        state["trainer"]["rm_rf"] = True
    elif edit == "no_rng":
        del state["rng"]
    else:
        state["optimizer"]["hyperparameters"] = [1, 2]
    _with_meta(path, members, json.dumps(meta))
    _raises(dn.Trainer.load_checkpoint, path, r"c\.npz'")


def test_a_deeply_nested_toml_value_is_a_config_error():
    with pytest.raises(ConfigError, match="nested too deeply"):
        loads_config("x = " + "[" * 5000 + "]" * 5000, "deep.toml")


def test_a_gzip_bomb_idx_file_is_refused_without_inflating_it(tmp_path):
    p = tmp_path / "bomb.idx.gz"
    p.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4]) + bytes(64 * 2**20), mtime=0))
    small_peak(lambda: _raises(read_idx, p, "unexpected trailing bytes"))
    # a correct gzipped file still reads
    q = tmp_path / "ok.idx.gz"
    q.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])))
    assert read_idx(q).tolist() == [7, 8, 9]


def test_an_npy_header_that_does_not_tokenize_is_a_clean_error(tmp_path):
    head = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,\n"  # an open parenthesis: tokenize.TokenError
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + bytes(16)
    p = tmp_path / "t.npz"
    p.write_bytes(zip_of({"X.npy": member, "y.npy": npy("<i8", (2,), bytes(16))}))
    _raises(load_npz, p, "member 'X.npy' has an unreadable header")
    _raises(load_state, p, "is not a deltanet checkpoint or is damaged: member 'X.npy' has an unreadable header")


@pytest.mark.parametrize("text", [",float16", "(", "f8,,", "[('a', 'f8')", "1e400f8"])
def test_a_dtype_string_numpy_cannot_parse_is_a_config_error(text):
    with pytest.raises(ConfigError, match="dtype"):
        loads_config(f"[model]\ndtype = {json.dumps(text)}\n", "d.toml")
