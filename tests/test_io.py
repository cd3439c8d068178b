"""Model files: round trips, safetensors compatibility, atomic writes, and refusal of bad files."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import deltanet as dn
import deltanet.io as dio
from deltanet.data import Standardizer


def trained_like(dtype="float32", seed=0):
    """A small network with every kind of state (weights, biases, BN running statistics)."""
    net = dn.Sequential(
        dn.Linear(4, 8, rng=seed, dtype=dtype), dn.BatchNorm(8, dtype=dtype), dn.ReLU(), dn.Dropout(0.2, rng=seed),
        dn.Residual(dn.Sequential(dn.Linear(8, 8, rng=seed + 1, dtype=dtype), dn.Tanh())),
        dn.Linear(8, 3, rng=seed + 2, dtype=dtype),
    )
    x = np.random.default_rng(seed).normal(size=(32, 4)).astype(dtype)
    for _ in range(3):
        net.forward(x, training=True)  # moves the running statistics away from 0 and 1
    return net, x


def read_raw(path):
    """(header dict, data bytes) of a safetensors file, parsed independently of deltanet.io."""
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def write_raw(path, header, data, header_bytes=None):
    h = header_bytes if header_bytes is not None else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


@pytest.fixture
def saved(tmp_path):
    net, x = trained_like()
    path = tmp_path / "model.safetensors"
    dn.save(net, path)
    return path, net, x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_predicts_identically(tmp_path, dtype):
    net, x = trained_like(dtype)
    path = tmp_path / "m.safetensors"
    scaler = Standardizer().fit(x)
    dn.save(net, path, preprocessing={"standardizer": scaler, "class_names": ["a", "b", "c"]},
            metadata={"epochs": np.int64(12), "final_loss": np.float32(0.25), "history": [1.0, 0.5], "data": path})
    mf = dn.load_model_file(path)
    assert mf.format_version == 1
    assert mf.model.config() == net.config()
    for (name, a), (name2, b) in zip(sorted(net.state_dict().items()), sorted(mf.model.state_dict().items()), strict=True):
        assert name == name2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mf.model.forward(x), net.forward(x))  # eval mode: BN running stats used
    assert mf.preprocessing["class_names"] == ["a", "b", "c"]
    np.testing.assert_array_equal(Standardizer.from_dict(mf.preprocessing["standardizer"]).transform(x), scaler.transform(x))
    assert mf.metadata == {"epochs": 12, "final_loss": 0.25, "history": [1.0, 0.5], "data": str(path)}
    assert dn.load(path).config() == net.config()


def test_mlp_helper_round_trip(tmp_path):
    net = dn.mlp([5, 7, 2], activation="tanh", dropout=0.1, batch_norm=True, rng=3)
    dn.save(net, tmp_path / "mlp.st")
    x = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    np.testing.assert_array_equal(dn.load(tmp_path / "mlp.st").forward(x), net.forward(x))


def test_file_opens_with_the_safetensors_package(saved):
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    path, net, _ = saved
    tensors = st.load_file(str(path))
    state = net.state_dict()
    assert sorted(tensors) == sorted(state)
    for name, a in state.items():
        np.testing.assert_array_equal(tensors[name], a)
        assert tensors[name].dtype == a.dtype
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == "deltanet.model" and json.loads(meta["model"]) == net.config()


def test_reads_a_file_written_by_the_safetensors_package(tmp_path, saved):
    st = pytest.importorskip("safetensors.numpy")
    path, net, x = saved
    _, meta = dio.load_tensors(path)
    other = tmp_path / "by_safetensors.safetensors"
    st.save_file({k: np.ascontiguousarray(v) for k, v in net.state_dict().items()}, str(other), metadata=meta)
    np.testing.assert_array_equal(dn.load(other).forward(x), net.forward(x))


def test_weights_load_into_an_equivalent_pytorch_module_by_name(tmp_path):
    """The README's snippet ("Using a deltanet model elsewhere"), step for step."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    net = dn.mlp([4, 16, 16, 3], batch_norm=True, rng=0)
    net.forward(np.random.default_rng(0).normal(size=(64, 4)), training=True)   # running statistics away from 0 and 1
    path = tmp_path / "model.safetensors"
    dn.save(net, path)
    X = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)

    tensors = load_file(str(path))
    state = {name.replace(".gamma", ".weight").replace(".beta", ".bias"): t for name, t in tensors.items()}
    torch_net = torch.nn.Sequential(
        torch.nn.Linear(4, 16, bias=False), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
        torch.nn.Linear(16, 16, bias=False), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
        torch.nn.Linear(16, 3),
    )
    result = torch_net.load_state_dict(state, strict=False)
    assert not result.unexpected_keys and all(k.endswith("num_batches_tracked") for k in result.missing_keys)
    torch_net.eval()
    with torch.no_grad():
        logits = torch_net(torch.from_numpy(X)).numpy()
    assert np.max(np.abs(logits - dn.predict(dn.load(path), X))) <= 1e-5


def test_tensor_container_round_trip(tmp_path):
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.array(7, dtype=np.int64),
               "empty": np.zeros((0, 4)), "v": np.linspace(0, 1, 5)}
    dio.save_tensors(tmp_path / "t.safetensors", tensors, {"k": "v"})
    got, meta = dio.load_tensors(tmp_path / "t.safetensors")
    assert meta == {"k": "v"} and sorted(got) == sorted(tensors)
    for k, a in tensors.items():
        assert got[k].dtype == a.dtype and got[k].shape == a.shape
        np.testing.assert_array_equal(got[k], a)
    _, data = read_raw(tmp_path / "t.safetensors")
    assert (os.path.getsize(tmp_path / "t.safetensors") - len(data)) % 8 == 0  # the data region is 8-byte aligned
    got["w"][0, 0] = 5  # writable


def test_save_refuses_what_cannot_be_stored(tmp_path):
    with pytest.raises(TypeError, match="int32"):
        dio.save_tensors(tmp_path / "x", {"a": np.zeros(2, dtype=np.int32)})
    with pytest.raises(TypeError, match="save expects a deltanet Module"):
        dn.save({"not": "a module"}, tmp_path / "x")
    net, _ = trained_like()
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        dn.save(net, tmp_path / "x", metadata={"f": object()})
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        dn.save(net, tmp_path / "x", metadata={"loss": float("nan")})
    with pytest.raises(TypeError, match="preprocessing must be a dict"):
        dn.save(net, tmp_path / "x", preprocessing=[1, 2])
    net[0].weight.value[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"'0.weight' holds NaN or infinity"):
        dn.save(net, tmp_path / "x")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("interrupt", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_old_file(saved, monkeypatch, interrupt):
    path, _, _ = saved
    before = path.read_bytes()
    other, _ = trained_like(seed=7)
    calls = []

    def failing_memoryview(obj):
        calls.append(1)
        if len(calls) == 3:  # the third tensor: header and two tensors already written
            raise interrupt
        return memoryview(obj)

    monkeypatch.setattr(dio, "memoryview", failing_memoryview, raising=False)
    with pytest.raises(type(interrupt)):
        dn.save(other, path)
    assert len(calls) == 3
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]  # no temporary file left
    monkeypatch.undo()
    dn.save(other, path)  # and a normal save then replaces it
    assert path.read_bytes() != before and os.listdir(path.parent) == [path.name]


def test_atomic_write_failure_before_rename(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def boom(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(dio.os, "fsync", boom)
    with pytest.raises(OSError, match="fsync failed"), dio.atomic_write(target) as f:
        f.write(b"new content")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


# -- refusing bad files -------------------------------------------------------

def mutate(path, fn):
    header, data = read_raw(path)
    out = fn(header, data)
    if out is not None:
        header, data = out
    write_raw(path, header, data)


def set_meta(key, value):
    def fn(h, d):
        h["__metadata__"][key] = value
    return fn


def set_model(change):
    def fn(h, d):
        cfg = json.loads(h["__metadata__"]["model"])
        change(cfg)
        h["__metadata__"]["model"] = json.dumps(cfg)
    return fn


def first_tensor(h):
    return min((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])


def _set_offsets(name_fn, offsets):
    def fn(h, d):
        h[name_fn(h)]["data_offsets"] = offsets(h)
    return fn


def _nan_in_first_weight(h, d):
    b = h["0.weight"]["data_offsets"][0]
    return h, d[:b] + np.array([np.nan], dtype="<f4").tobytes() + d[b + 4:]


def _huge_first_layer(cfg):
    cfg["layers"][0]["in_features"] = 10**7
    cfg["layers"][0]["out_features"] = 10**7


def _overlap_first_weight(h):
    begin = h["0.weight"]["data_offsets"][0]
    return [begin, begin + 32]  # 0.bias (32 bytes) placed on top of 0.weight


CORRUPTIONS = {
    "unknown dtype": (lambda h, d: h["0.bias"].update(dtype="F16"), r"has dtype 'F16'; allowed: F32, F64, I64"),
    "offsets past the end": (_set_offsets(lambda h: "0.bias", lambda h: [10**9, 10**9 + 32]),
                             "past its end"),
    "overlapping offsets": (_set_offsets(lambda h: "0.bias", _overlap_first_weight), "overlaps|leaves a gap"),
    "shape does not match offsets": (lambda h, d: h["0.bias"].update(shape=[9]), r"needs 36 bytes, data_offsets span 32"),
    "negative shape": (lambda h, d: h["0.bias"].update(shape=[-8]), "non-negative integers"),
    "extra key in a tensor entry": (lambda h, d: h["0.bias"].update(extra=1), "expected the keys"),
    "trailing bytes": (lambda h, d: (h, d + b"\0" * 8), "trailing bytes"),
    "metadata not strings": (set_meta("format_version", 1), "must map strings to strings"),
    "not a deltanet file": (lambda h, d: h.update(__metadata__={}), "not a deltanet model file"),
    "newer format": (set_meta("format_version", "2"), "format version 2 is not supported"),
    "bad model json": (set_meta("model", "{not json"), "the model entry is not valid JSON"),
    "model json not an object": (set_meta("model", "[1, 2]"), "the model entry must be a JSON object"),
    "type not a deltanet module": (set_model(lambda c: c["layers"][2].update(type="subprocess.Popen")),
                                   r"unknown module type 'subprocess.Popen'"),
    "bad hyper-parameter": (set_model(lambda c: c["layers"][2].update(colour="red")), "cannot rebuild the model"),
    "shape differs from description": (set_model(lambda c: c["layers"][0].update(in_features=5)),
                                       r"'0.weight' has shape \(8, 4\), the model description implies \(8, 5\)"),
    "dtype differs from description": (set_model(lambda c: c["layers"][0].update(dtype="float64")),
                                       r"'0.weight' is float32, the model description implies float64"),
    "huge layer in description": (set_model(_huge_first_layer), r"needs at least \d{15} weights but the file holds 171"),
    "non-finite weight": (_nan_in_first_weight, r"tensor '0.weight' holds NaN or infinity"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupted_files_are_refused(saved, case):
    path, _, _ = saved
    fn, pattern = CORRUPTIONS[case]
    mutate(path, fn)
    with pytest.raises(ValueError, match=pattern) as info:
        dn.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("change,pattern", [
    (lambda state: state.pop("5.bias"), r"missing \['5.bias'\], unexpected \[\]"),
    (lambda state: state.update(extra=np.zeros(2, np.float32)), r"missing \[\], unexpected \['extra'\]"),
])
def test_tensor_set_must_match_the_description(saved, change, pattern):
    path, _, _ = saved
    state, meta = dio.load_tensors(path)
    change(state)
    dio.save_tensors(path, state, meta)
    with pytest.raises(ValueError, match=pattern):
        dn.load(path)


def test_gap_between_tensors(saved):
    path, _, _ = saved
    header, data = read_raw(path)
    name = first_tensor(header)
    for k, v in header.items():
        if k != "__metadata__" and k != name:
            v["data_offsets"] = [o + 4 for o in v["data_offsets"]]
    e = header[name]["data_offsets"][1]
    write_raw(path, header, data[:e] + b"\0\0\0\0" + data[e:])
    with pytest.raises(ValueError, match="leaves a gap of 4 bytes"):
        dn.load(path)


@pytest.mark.parametrize("cut", [1, 7, 100])
def test_truncated_files_are_refused(saved, cut):
    path, _, _ = saved
    blob = path.read_bytes()
    path.write_bytes(blob[:-cut])
    with pytest.raises(ValueError, match=r"past its end|truncated") as info:
        dn.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("blob,pattern", [
    (b"", "shorter than the 8-byte header length"),
    (b"\x01\x02\x03", "shorter than the 8-byte header length"),
    (struct.pack("<Q", 2**63) + b"{}", "exceeds the limit"),
    (struct.pack("<Q", 10**6) + b"{}", "runs past the end of the file"),
    (struct.pack("<Q", 0), "too small"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "not valid UTF-8 JSON"),
    (struct.pack("<Q", 5) + b"{abc}", "not valid UTF-8 JSON"),
    (struct.pack("<Q", 2) + b"[]", "is a JSON list, expected an object"),
    (struct.pack("<Q", 20) + b'{"a":1,       "a":2}', "duplicate keys"),
    (struct.pack("<Q", 2) + b"{}", "not a deltanet model file"),
    (struct.pack("<Q", 2) + b"{}" + b"\0" * 16, "trailing bytes"),
    (struct.pack("<Q", 40) + b"[" * 20000, "not valid UTF-8 JSON"),
])
def test_hostile_headers_are_refused(tmp_path, blob, pattern):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=pattern) as info:
        dn.load(path)
    assert str(path) in str(info.value)


def test_deeply_nested_header_is_refused(tmp_path):
    path = tmp_path / "deep.safetensors"
    body = b"[" * 100000 + b"]" * 100000
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(ValueError, match="not valid UTF-8 JSON"):
        dn.load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        dn.load(tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match=r"the directory .*nodir does not exist"):
        dn.save(dn.Linear(2, 2), tmp_path / "nodir" / "m.safetensors")
