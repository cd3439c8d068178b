"""Write the seed corpus of every fuzz target into fuzz/corpus/<target>/ (small files, kept in the repository).

    python fuzz/make_corpus.py

Each folder gets valid files made by deltanet itself and hostile variants of
them: huge declared lengths and shapes, offsets past the end, overlapping
tensors, wrong dtypes, duplicate names, NaN in metadata, deep JSON, gzip and
zip bombs in miniature. Re-running rewrites the same files (fixed seeds).
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import deltanet as dn  # noqa: E402
from deltanet.config import RunConfig, dumps_toml  # noqa: E402
from deltanet.training import Trainer  # noqa: E402

CORPUS = HERE / "corpus"


def put(target: str, name: str, data: bytes) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def safetensors(header: dict, data: bytes = b"", raw_header: bytes | None = None) -> bytes:
    blob = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def split(model_bytes: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", model_bytes[:8])
    return json.loads(model_bytes[8:8 + n]), model_bytes[8 + n:]


def model_corpus(tmp: Path) -> None:
    net = dn.Sequential(dn.Linear(3, 4, rng=0), dn.ReLU(), dn.Linear(4, 2, rng=1))
    dn.save(net, tmp / "m.safetensors", preprocessing={"class_names": ["a", "b"]}, metadata={"epochs": 2})
    good = (tmp / "m.safetensors").read_bytes()
    put("model", "valid_mlp", good)
    bn = dn.Sequential(dn.Linear(2, 3, rng=0), dn.BatchNorm(3), dn.Tanh(), dn.Linear(3, 1, rng=2))
    dn.save(bn, tmp / "b.safetensors")
    put("model", "valid_batchnorm", (tmp / "b.safetensors").read_bytes())
    header, data = split(good)
    meta = header["__metadata__"]
    names = sorted(k for k in header if k != "__metadata__")
    first, second = names[0], names[1]

    def variant(name: str, edit) -> None:
        h = json.loads(json.dumps(header))
        d = edit(h)
        put("model", name, safetensors(h, data if d is None else d))

    put("model", "header_length_huge", struct.pack("<Q", 2**63) + good[8:])
    put("model", "header_length_past_end", struct.pack("<Q", len(good)) + good[8:])
    put("model", "truncated", good[: len(good) - 5])
    put("model", "empty_object", safetensors({}))
    variant("offset_past_end", lambda h: h[first].update(data_offsets=[0, 10**12]))
    variant("shape_huge", lambda h: h[first].update(shape=[2**40, 2**40]))
    variant("shape_negative", lambda h: h[first].update(shape=[-1, 3]))
    variant("overlap", lambda h: h[second].update(data_offsets=h[first]["data_offsets"]))
    variant("wrong_dtype", lambda h: h[first].update(dtype="F16"))
    variant("dtype_object", lambda h: h[first].update(dtype="O"))
    variant("nan_metadata", lambda h: h["__metadata__"].update(metadata='{"loss": NaN}', format_version="NaN"))
    variant("metadata_not_string", lambda h: h["__metadata__"].update(model={"type": "Linear"}))
    variant("huge_layer", lambda h: h["__metadata__"].update(
        model=json.dumps({"type": "Linear", "in_features": 10**9, "out_features": 10**9})))
    variant("unknown_module", lambda h: h["__metadata__"].update(model=json.dumps({"type": "os.system"})))
    variant("deep_model_json", lambda h: h["__metadata__"].update(model="[" * 5_000 + "]" * 5_000))
    blob = json.dumps(header, separators=(",", ":"))
    dup = blob.replace('{"', '{"' + first + '":' + json.dumps(header[first]) + ',"', 1)
    put("model", "duplicate_names", safetensors({}, data, dup.encode()))
    put("model", "deep_header", safetensors({}, b"", b"[" * 5_000 + b"]" * 5_000))
    nan = numpy.frombuffer(data, dtype="<f4").copy()
    nan[0] = numpy.nan
    put("model", "nan_weight", safetensors(header, nan.tobytes()))
    del meta


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    numpy.savez(buf, **arrays)
    return buf.getvalue()


def npy_member(dtype: str, shape: tuple, payload: bytes) -> bytes:
    head = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    head += b" " * (-(len(head) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + payload


def zip_of(members: dict[str, bytes], compress: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def npz_corpus() -> None:
    rng = numpy.random.default_rng(0)
    X, y = rng.normal(size=(6, 3)), numpy.array([0, 1, 0, 1, 1, 0])
    put("npz", "valid", npz_bytes(X=X, y=y))
    put("npz", "valid_names", npz_bytes(X=X, y=y, feature_names=numpy.array(["a", "b", "c"]), class_names=numpy.array(["no", "yes"])))
    buf = io.BytesIO()
    numpy.savez_compressed(buf, X=X, y=y)
    put("npz", "valid_compressed", buf.getvalue())
    put("npz", "shape_huge", zip_of({"X.npy": npy_member("<f8", (2**31, 2**20), b""), "y.npy": npy_member("<i8", (6,), y.tobytes())}))
    put("npz", "shape_bigger_than_data", zip_of({"X.npy": npy_member("<f8", (1000, 1000), X.tobytes()), "y.npy": npy_member("<i8", (6,), y.tobytes())}))
    put("npz", "object_dtype", zip_of({"X.npy": npy_member("|O", (2,), b"\x80\x04N."), "y.npy": npy_member("<i8", (6,), y.tobytes())}))
    put("npz", "structured_dtype", zip_of({"X.npy": npy_member("[('a', '<f8')]", (6,), X[:, 0].tobytes()), "y.npy": npy_member("<i8", (6,), y.tobytes())}))
    bomb = npy_member("<f8", (6, 3), X.tobytes() + bytes(16 * 1024 * 1024))
    put("npz", "zip_bomb", zip_of({"X.npy": bomb, "y.npy": npy_member("<i8", (6,), y.tobytes())}, compress=True))
    put("npz", "nan", npz_bytes(X=numpy.full((3, 2), numpy.nan), y=numpy.array([0, 1, 0])))
    put("npz", "single_npy", npy_member("<f8", (3,), numpy.ones(3).tobytes()))
    put("npz", "duplicate_members", zip_of({"X.npy": npy_member("<f8", (6, 3), X.tobytes()), "y.npy": npy_member("<i8", (6,), y.tobytes())})
        + zip_of({"X.npy": npy_member("<f8", (1, 1), b"\0" * 8)}))


def checkpoint_corpus(tmp: Path) -> None:
    rng = numpy.random.default_rng(0)
    X, y = rng.normal(size=(16, 3)).astype(numpy.float32), numpy.arange(16) % 2
    net = dn.Sequential(dn.Linear(3, 4, rng=0), dn.ReLU(), dn.Linear(4, 2, rng=1))
    t = Trainer(net, epochs=1, batch_size=8, record_layers=False)
    t.fit(X, y)
    t.save_checkpoint(tmp / "c.ckpt")
    good = (tmp / "c.ckpt").read_bytes()
    put("checkpoint", "valid", good)
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta_text = str(numpy.load(io.BytesIO(members["__meta__.npy"]), allow_pickle=False)[()])
    meta = json.loads(meta_text)

    def with_meta(name: str, text: str, **extra: bytes) -> None:
        m = dict(members)
        buf = io.BytesIO()
        numpy.save(buf, numpy.array(text))
        m["__meta__.npy"] = buf.getvalue()
        m.update(extra)
        put("checkpoint", name, zip_of(m))

    with_meta("deep_json", "[" * 5_000 + "]" * 5_000)
    with_meta("meta_not_object", "[1, 2]")
    with_meta("nan_epoch", meta_text.replace('"epoch": 1', '"epoch": NaN'))
    with_meta("missing_state", json.dumps({"format": meta["format"], "version": 1}))
    with_meta("state_empty", json.dumps({"format": meta["format"], "version": 1, "state": {}}))
    with_meta("model_config_huge", json.dumps({**meta, "state": {**meta["state"], "model_config": {
        "type": "Sequential", "layers": [{"type": "Linear", "in_features": 10**8, "out_features": 10**8}]}}}))
    with_meta("unknown_array", json.dumps({**meta, "state": {**meta["state"], "model": {"0.weight": {"__array__": "nope"}}}}))
    first = next(n for n in members if n.startswith("model/"))
    put("checkpoint", "member_shape_huge", zip_of({**members, first: npy_member("<f4", (2**30, 2**30), b"")}))
    put("checkpoint", "member_object", zip_of({**members, first: npy_member("|O", (1,), b"\x80\x04N.")}))
    put("checkpoint", "truncated", good[: len(good) // 2])
    put("checkpoint", "not_zip", b"\x93NUMPY" + good[6:200])


def csv_corpus() -> None:
    put("csv", "valid", b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n")
    put("csv", "valid_regression", b"\xef\xbb\xbfx1; x2; t\n0.5; 1e3; 2.5\n-1; 2; 3\n")
    put("csv", "ragged", b"a,b,c\n1,2\n3,4,5,6\n")
    put("csv", "nan_inf", b"a,b\nnan,1\ninf,2\n")
    put("csv", "duplicate_columns", b"a,a,y\n1,2,3\n4,5,6\n")
    put("csv", "quotes", b'a,b\n"1,2",3\n"unterminated,4\n')
    put("csv", "nul_bytes", b"a,b\n1\x00,2\n")
    put("csv", "not_utf8", b"a,b\n\xff\xfe,1\n")
    put("csv", "long_field", b"a,b\n" + b"9" * 5000 + b",1\n")
    put("csv", "many_columns", b",".join(b"c%d" % i for i in range(300)) + b"\n" + b",".join(b"1" for _ in range(300)) + b"\n")


def idx_bytes(code: int, shape: tuple, payload: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload


def idx_corpus() -> None:
    img = numpy.arange(2 * 3 * 3, dtype=numpy.uint8)
    put("idx", "valid_images", idx_bytes(0x08, (2, 3, 3), img.tobytes()))
    put("idx", "valid_labels", idx_bytes(0x08, (4,), bytes([0, 1, 2, 3])))
    put("idx", "valid_float", idx_bytes(0x0D, (2, 2), numpy.arange(4, dtype=">f4").tobytes()))
    put("idx", "valid_gzip", gzip.compress(idx_bytes(0x08, (2, 3, 3), img.tobytes()), mtime=0))
    put("idx", "shape_huge", idx_bytes(0x0E, (2**32 - 1, 2**32 - 1, 2**32 - 1), b""))
    put("idx", "ndim_255", bytes([0, 0, 0x08, 255]) + b"\xff" * 64)
    put("idx", "bad_type", idx_bytes(0x0A, (2,), b"\0\0"))
    put("idx", "trailing", idx_bytes(0x08, (2,), b"\0\0\0"))
    put("idx", "gzip_bomb", gzip.compress(idx_bytes(0x08, (4,), bytes(16 * 1024 * 1024)), mtime=0))
    put("idx", "gzip_truncated", gzip.compress(idx_bytes(0x08, (4,), b"\0" * 4), mtime=0)[:-6])


def config_corpus() -> None:
    put("config", "default", dumps_toml(RunConfig().to_dict()).encode())
    for example in sorted((HERE.parent / "examples").glob("*.toml")):
        put("config", f"example_{example.stem}", example.read_bytes())
    put("config", "layers", b'[model]\n[[model.layers]]\ntype = "Linear"\nin_features = 4\nout_features = 3\n'
                            b'[[model.layers]]\ntype = "ReLU"\n[train]\nepochs = 3\nlr = 0.01\n')
    put("config", "nan", b"[train]\nlr = nan\nepochs = inf\n")
    put("config", "wrong_types", b'[train]\nepochs = "ten"\nbatch_size = 1.5\n[model]\nhidden = [1, "a"]\n')
    put("config", "unknown", b"[trian]\nepoch = 3\n")
    put("config", "huge_numbers", b"[train]\nepochs = 99999999999999999999\n[model]\nhidden = [1000000000000]\n")
    put("config", "deep", b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n")
    put("config", "deep_tables", b"[" + b".".join(b"a" for _ in range(3000)) + b"]\n")
    put("config", "not_utf8", b"[train]\nname = \"\xff\"\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model_corpus(Path(tmp))
        checkpoint_corpus(Path(tmp))
    npz_corpus()
    csv_corpus()
    idx_corpus()
    config_corpus()
    for folder in sorted(CORPUS.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
