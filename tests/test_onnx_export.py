"""ONNX export: onnxruntime computes what ``dn.predict`` computes, for every module type, the estimators and the command.

Every graph passes ``onnx.checker.check_model(full_check=True)`` (structure and
shape inference); outputs agree to 1e-5 in float32 and 1e-10 in float64 (max
absolute difference), for several batch sizes from one graph.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys

import numpy as np
import pytest

import deltanet as dn
from deltanet.cli import main
from deltanet.export import DEFAULT_OPSET, to_onnx
from deltanet.inference import model_dtype

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = {"float32": 1e-5, "float64": 1e-10}
DTYPES = ("float32", "float64")


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def randomize(net, seed=0):
    """Give the normalization layers, biases and embeddings values that matter (they start at 0 and 1)."""
    rng = np.random.default_rng(seed)
    for m in net.modules():
        for name, p in m._params.items():
            if name in ("bias", "beta", "token") or (name == "weight" and isinstance(m, dn.PositionalEmbedding)):
                p.value[...] = rng.normal(scale=0.5, size=p.value.shape)
            elif name == "gamma":
                p.value[...] = rng.uniform(0.5, 1.5, size=p.value.shape)
        if isinstance(m, dn.BatchNorm):
            m.running_mean[...] = rng.normal(size=m.num_features)
            m.running_var[...] = rng.uniform(0.3, 2.0, size=m.num_features)
    return net


def check(net, x, *, opset=DEFAULT_OPSET, dtype=None, batches=(None,), **kw):
    """Export, check the graph, and compare onnxruntime with dn.predict; returns the largest difference."""
    proto = to_onnx(net, opset=opset, dtype=dtype, **kw)
    onnx.checker.check_model(proto, full_check=True)
    dtype = np.dtype(dtype or model_dtype(net))
    s = session(proto)
    worst = 0.0
    for n in batches:
        xb = x if n is None else x[:n]
        got = s.run(None, {"input": xb.astype(dtype)})[0]
        want = dn.predict(net, xb)
        assert got.dtype == dtype and got.shape == want.shape
        worst = max(worst, float(np.max(np.abs(got - want))))
    assert worst <= TOL[dtype.name], (worst, dtype)
    return worst


# -- models of every module type --------------------------------------------------------------------------

def _mlp(dt):
    return dn.Sequential(dn.Linear(6, 9, rng=0, dtype=dt), dn.ReLU(), dn.Linear(9, 3, rng=1, dtype=dt)), (6,)


def _activation(act):
    def make(dt):
        return dn.Sequential(dn.Linear(6, 7, rng=0, dtype=dt), act(), dn.Linear(7, 4, rng=1, dtype=dt)), (6,)
    return make


def _softmax_output(dt):
    return dn.Sequential(dn.Linear(6, 5, rng=0, dtype=dt), dn.Softmax()), (6,)


def _no_bias(dt):
    return dn.Sequential(dn.Linear(6, 5, bias=False, rng=0, dtype=dt), dn.Tanh()), (6,)


def _batch_norm(dt):
    return dn.mlp([6, 8, 8, 3], activation="relu", batch_norm=True, dropout=0.2, rng=0, dtype=dt), (6,)


def _batch_norm_on_sequences(dt):
    return dn.Sequential(dn.Reshape([3, 4]), dn.BatchNorm(4, dtype=dt), dn.Linear(4, 2, rng=0, dtype=dt), dn.Reshape([-1])), (12,)


def _layer_norm(dt):
    return dn.Sequential(dn.Linear(6, 8, rng=0, dtype=dt), dn.LayerNorm(8, dtype=dt), dn.GELU(), dn.Linear(8, 2, rng=1, dtype=dt)), (6,)


def _residual(dt):
    block = dn.Sequential(dn.Linear(6, 6, rng=0, dtype=dt), dn.Tanh(), dn.Linear(6, 6, rng=1, dtype=dt))
    widen = dn.Residual(dn.Sequential(dn.Linear(6, 4, rng=2, dtype=dt), dn.ReLU()), dn.Linear(6, 4, bias=False, rng=3, dtype=dt))
    return dn.Sequential(dn.Residual(block), widen), (6,)


def _dense(dt):
    return dn.Sequential(dn.dense_block(6, 3, 3, rng=0, dtype=dt), dn.dense_block(15, 2, 2, activation="tanh", include_input=False,
                                                                            rng=1, dtype=dt)), (6,)


def _reshape_flatten(dt):
    return dn.Sequential(dn.Reshape([4, 3]), dn.Linear(3, 5, rng=0, dtype=dt), dn.Sigmoid(), dn.Reshape([-1]),
                         dn.Linear(20, 2, rng=1, dtype=dt)), (12,)


def _shared_weights(dt):
    lin = dn.Linear(5, 5, rng=0, dtype=dt)
    return dn.Sequential(lin, dn.Tanh(), lin), (5,)


def _attention(causal):
    def make(dt):
        return dn.Sequential(dn.Linear(3, 8, rng=0, dtype=dt), dn.MultiHeadSelfAttention(8, 2, causal=causal, rng=1, dtype=dt),
                             dn.MeanPool()), (5, 3)
    return make


def _transformer_block(activation):
    def make(dt):
        return dn.Sequential(dn.Linear(3, 8, rng=0, dtype=dt),
                             dn.TransformerEncoderBlock(8, 2, d_ff=12, dropout=0.1, activation=activation, rng=1, dtype=dt),
                             dn.TokenPool(-1)), (5, 3)
    return make


def _classifier(positional, pooling, causal=False):
    def make(dt):
        return dn.transformer_classifier(3, 4, 6, d_model=8, n_heads=2, d_ff=16, n_blocks=2, positional=positional,
                                         pooling=pooling, causal=causal, rng=0, dtype=dt), (6, 3)
    return make


def _flat_to_sequence(dt):
    return dn.Sequential(dn.Reshape([6, 2]), dn.transformer_classifier(2, 3, 6, d_model=8, n_heads=4, n_blocks=1, rng=0,
                                                                       dtype=dt)), (12,)


def _mixture(dt):
    return dn.Sequential(
        dn.Linear(6, 8, rng=0, dtype=dt), dn.BatchNorm(8, dtype=dt), dn.LeakyReLU(0.2), dn.Dropout(0.3, rng=0),
        dn.Residual(dn.Sequential(dn.LayerNorm(8, dtype=dt), dn.Linear(8, 8, rng=1, dtype=dt), dn.GELU())),
        dn.DenseBlock([dn.Sequential(dn.Linear(8, 3, rng=2, dtype=dt), dn.Sigmoid()), dn.Sequential(dn.Linear(11, 3, rng=3, dtype=dt), dn.Identity())]),
        dn.Reshape([2, 7]), dn.PositionalEmbedding(2, 7, rng=4, dtype=dt), dn.TransformerEncoderBlock(7, 1, d_ff=5, causal=True, rng=5, dtype=dt),
        dn.Reshape([-1]), dn.Linear(14, 3, rng=6, dtype=dt), dn.Softmax(),
    ), (6,)


MODELS = {
    "mlp": _mlp, "identity": _activation(dn.Identity), "sigmoid": _activation(dn.Sigmoid), "tanh": _activation(dn.Tanh),
    "relu": _activation(dn.ReLU), "leaky_relu": _activation(lambda: dn.LeakyReLU(0.1)), "gelu": _activation(dn.GELU),
    "softmax": _softmax_output, "linear_no_bias": _no_bias, "batch_norm_dropout": _batch_norm,
    "batch_norm_3d": _batch_norm_on_sequences, "layer_norm": _layer_norm, "residual": _residual, "dense_block": _dense,
    "reshape": _reshape_flatten, "shared_weights": _shared_weights, "attention": _attention(False),
    "causal_attention": _attention(True), "transformer_gelu": _transformer_block("gelu"),
    "transformer_relu": _transformer_block("relu"), "classifier_learned_mean": _classifier("learned", "mean"),
    "classifier_sinusoidal_cls": _classifier("sinusoidal", "cls"), "classifier_causal": _classifier("none", "mean", causal=True),
    "flat_to_sequence": _flat_to_sequence, "mixture": _mixture,
}


def _data(shape, dt, n=13, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_equals_predict(name, dt):
    net, sample = MODELS[name](dt)
    randomize(net)
    check(net, _data(sample, dt), batches=(None, 1, 4))    # one graph, any batch size


@pytest.mark.parametrize("opset", [13, 17, 18, 20, 21])
@pytest.mark.parametrize("dt", DTYPES)
def test_every_opset_gives_the_same_outputs(opset, dt):
    """LayerNorm, GELU, ReduceMean and Shape change form with the opset; the outputs do not."""
    for name in ("mixture", "classifier_sinusoidal_cls", "classifier_learned_mean", "layer_norm"):
        net, sample = MODELS[name](dt)
        check(randomize(net), _data(sample, dt), opset=opset)


@pytest.mark.parametrize("opset", [13, DEFAULT_OPSET])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dt", DTYPES)
def test_scaled_dot_product_attention_takes_stacked_q_k_v(dt, causal, opset):
    net = dn.ScaledDotProductAttention(causal=causal)
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 6)).astype(dt)
    proto = to_onnx(net, dtype=dt, opset=opset)             # d_k read from the input at run time
    onnx.checker.check_model(proto, full_check=True)
    got = session(proto).run(None, {"input": x})[0]
    assert np.max(np.abs(got - net.forward(x))) <= TOL[dt]
    fixed = to_onnx(net, dtype=dt, opset=opset, input_shape=(3, None, 5, 6))    # a known d_k: the scale is a constant
    assert np.max(np.abs(session(fixed).run(None, {"input": x})[0] - net.forward(x))) <= TOL[dt]


def test_longer_sequences_than_the_exported_example_work():
    net = randomize(_classifier("sinusoidal", "mean", causal=True)(np.float64)[0])
    s = session(to_onnx(net))
    for t in (1, 6, 40):
        x = _data((t, 3), "float64", n=3)
        assert np.max(np.abs(s.run(None, {"input": x})[0] - dn.predict(net, x))) <= 1e-10


def test_parameter_free_models_use_the_default_dtype_and_pass_the_input_through():
    for net in (dn.Dropout(0.5), dn.Identity(), dn.Sequential(dn.ReLU(), dn.Dropout(0.1))):
        x = _data((4,), "float32")
        check(net, x)
        assert to_onnx(net).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_a_float32_network_exported_in_float64_computes_its_float64_copy():
    net, sample = _mixture("float32")
    randomize(net)
    twin = dn.build(json.loads(json.dumps(net.config()).replace('"float32"', '"float64"')))
    twin.load_state_dict(net.state_dict())
    x = _data(sample, "float64")
    got = session(to_onnx(net, dtype="float64")).run(None, {"input": x})[0]
    assert got.dtype == np.float64 and np.max(np.abs(got - dn.predict(twin, x))) <= 1e-10


def test_graph_interface_dynamic_batch_and_metadata():
    net, _ = _batch_norm("float32")
    proto = to_onnx(net)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = [(d.dim_param, d.dim_value) for d in inp.type.tensor_type.shape.dim]
    assert dims == [("batch", 0), ("", 6)]
    assert [(d.dim_param, d.dim_value) for d in out.type.tensor_type.shape.dim] == [("batch", 0), ("", 3)]
    assert proto.producer_name == "deltanet" and proto.opset_import[0].version == DEFAULT_OPSET
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["deltanet.model"]) == net.config()
    names = {i.name for i in proto.graph.initializer}
    assert {"0.weight", "1.gamma", "1.running_mean", "1.running_var+eps"} <= names   # the model's own tensor names
    ops = {n.op_type for n in proto.graph.node}
    assert {"Gemm", "BatchNormalization", "Relu"} <= ops and "Dropout" not in ops


def test_sequence_models_get_a_dynamic_length():
    proto = to_onnx(_classifier("learned", "cls")("float32")[0])
    dims = [(d.dim_param, d.dim_value) for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [("batch", 0), ("sequence", 0), ("", 3)]


def test_export_onnx_writes_the_file_atomically(tmp_path, monkeypatch):
    net, sample = _mlp("float32")
    path = tmp_path / "m.onnx"
    proto = dn.export_onnx(net, path)
    before = path.read_bytes()
    assert before == proto.SerializeToString()
    x = _data(sample, "float32")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.max(np.abs(got - dn.predict(net, x))) <= 1e-5
    from deltanet import io as dio

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dio.os, "replace", broken_replace)
    with pytest.raises(OSError, match=r"m\.onnx"):
        dn.export_onnx(_mlp("float64")[0], path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.onnx"]


# -- model files and their preprocessing ---------------------------------------------------------------------

def _saved(tmp_path, dt="float32"):
    net = randomize(_batch_norm(dt)[0])
    raw = np.random.default_rng(3).normal(loc=5.0, scale=[1.0, 10.0, 0.1, 2.0, 3.0, 50.0], size=(40, 6))
    scaler = dn.data.Standardizer().fit(raw)
    path = tmp_path / "model.safetensors"
    dn.save(net, path, preprocessing={"standardizer": scaler, "class_names": ["a", "b", "c"]},
            metadata={"feature_names": [f"f{i}" for i in range(6)], "task": "classification"})
    return path, net, scaler, raw


@pytest.mark.parametrize("dt", DTYPES)
def test_a_model_file_exports_with_its_standardization(tmp_path, dt):
    path, net, scaler, raw = _saved(tmp_path, dt)
    proto = to_onnx(path)                                     # the path of a model file
    onnx.checker.check_model(proto, full_check=True)
    got = session(proto).run(None, {"input": raw.astype(dt)})[0]
    want = dn.predict(net, scaler.transform(raw.astype(dt).astype(np.float64)))   # standardized in float64, as predict does
    assert np.max(np.abs(got - want)) <= TOL[dt]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["class_names"]) == ["a", "b", "c"] and json.loads(props["feature_names"])[0] == "f0"
    assert props["task"] == "classification"
    bare = to_onnx(dn.load_model_file(path), preprocessing={})   # the network alone takes standardized features
    z = scaler.transform(raw).astype(dt)
    assert np.max(np.abs(session(bare).run(None, {"input": z})[0] - dn.predict(net, z))) <= TOL[dt]


def test_preprocessing_the_graph_cannot_compute_is_refused(tmp_path):
    net = _mlp("float32")[0]
    with pytest.raises(dn.ExportError, match=r"preprocessing entries \['pca'\]"):
        to_onnx(net, preprocessing={"pca": {"components": [1.0]}})
    scaler = dn.data.Standardizer().fit(np.random.default_rng(0).normal(size=(10, 4)))
    with pytest.raises(dn.ExportError, match=r"standardizer takes \(batch, 4\) features"):
        to_onnx(net, preprocessing={"standardizer": scaler.to_dict()}, input_shape=(None, 6))


# -- the estimators --------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_the_estimators_fitted_networks_export():
    pytest.importorskip("sklearn")
    from deltanet.sklearn import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    clf = MLPClassifier(hidden_layer_sizes=(12, 6), batch_norm=True, dropout=0.1, max_iter=5, random_state=0,
                        dtype="float32").fit(X, y)
    s = session(to_onnx(clf.network_, dtype="float64"))      # the estimators predict with a float64 copy
    z = s.run(None, {"input": X})[0]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert np.max(np.abs(p - clf.predict_proba(X))) <= 1e-10
    assert (clf.classes_[z.argmax(axis=1)] == clf.predict(X)).all()
    z32 = session(to_onnx(clf.network_)).run(None, {"input": X.astype(np.float32)})[0]
    assert np.max(np.abs(z32 - dn.predict(clf.network_, X))) <= 1e-5

    reg = MLPRegressor(hidden_layer_sizes=(10,), activation="tanh", max_iter=5, random_state=0).fit(X, X[:, 0] - X[:, 3])
    out = session(to_onnx(reg.network_, dtype="float64")).run(None, {"input": X})[0]
    assert out.shape == (80, 1) and np.max(np.abs(out.ravel() - reg.predict(X))) <= 1e-10


# -- what cannot be exported -------------------------------------------------------------------------------------

class Cube(dn.Module):
    """A module of the user's own: no converter."""

    registered = False

    def forward(self, x, training=False):
        return x ** 3


class ScaledLinear(dn.Linear):
    registered = False

    def forward(self, x, training=False):
        return 2 * super().forward(x, training)


def test_a_module_without_counterpart_is_named_by_its_path():
    net = dn.Sequential(dn.Linear(4, 4, rng=0), dn.Residual(dn.Sequential(dn.Linear(4, 4, rng=1), Cube())))
    with pytest.raises(dn.ExportError, match=r"module '1\.block\.1' \(Cube\) has no ONNX counterpart") as info:
        to_onnx(net)
    assert "Linear" in str(info.value) and "TransformerEncoderBlock" in str(info.value)   # what does export
    with pytest.raises(dn.ExportError, match=r"the model \(Cube\) has no ONNX counterpart"):
        to_onnx(Cube())
    with pytest.raises(dn.ExportError, match=r"module '0' \(ScaledLinear\)"):     # a subclass may compute something else
        to_onnx(dn.Sequential(ScaledLinear(4, 2, rng=0)))


def test_a_padding_mask_and_a_wrong_input_shape_are_refused():
    net = dn.transformer_classifier(3, 2, 4, d_model=8, n_heads=2, n_blocks=1, rng=0)
    dn.set_mask(net, np.ones((2, 4), dtype=bool))
    with pytest.raises(dn.ExportError, match=r"module '2\.attn' \(MultiHeadSelfAttention\) has a padding mask set"):
        to_onnx(net)
    dn.set_mask(net, None)
    to_onnx(net)
    with pytest.raises(dn.ExportError, match=r"module '0' \(Linear\) takes 3 features .* input has 5"):
        to_onnx(net, input_shape=(None, None, 5))
    with pytest.raises(dn.ExportError, match=r"module '1' \(PositionalEmbedding\) takes sequences"):
        to_onnx(net, input_shape=(None, 3))
    with pytest.raises(ValueError, match="opset must be an int from 13"):
        to_onnx(net, opset=12)


def test_a_missing_onnx_package_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'deltanet\[onnx\]'"):
        dn.export_onnx(_mlp("float32")[0], tmp_path / "m.onnx")
    path, *_ = _saved(tmp_path)
    assert main(["export", str(path), str(tmp_path / "m.onnx")]) == 2
    assert "deltanet[onnx]" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()


# -- the command -------------------------------------------------------------------------------------------------

def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_deltanet_export_gives_the_outputs_of_deltanet_predict(tmp_path, capsys):
    code = main(["train", "--data", "spiral", "--n-samples", "120", "--hidden", "8,8", "--batch-norm", "--dropout", "0.1",
                 "--epochs", "3", "--quiet", "--no-report", "--out-dir", str(tmp_path), "--name", "r"])
    assert code == 0
    run_dir = tmp_path / "r"
    mf = dn.load_model_file(run_dir / "model.safetensors")
    assert mf.preprocessing.get("standardizer")                       # the spiral's features are standardized
    capsys.readouterr()
    assert main(["export", str(run_dir), str(tmp_path / "m.onnx")]) == 0
    err = capsys.readouterr().err
    assert "wrote" in err and "standardized in the graph" in err and "(batch, 2)" in err

    X = np.random.default_rng(5).normal(scale=2.0, size=(25, 2))
    names = mf.metadata["feature_names"]
    data = tmp_path / "new.csv"
    with open(data, "w", newline="") as f:                             # a test's own input file
        w = csv.writer(f)
        w.writerow(names)
        w.writerows(X.tolist())
    assert main(["predict", str(run_dir), "--data", str(data)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    classes = mf.preprocessing["class_names"]
    printed = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])

    s = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    logits = s.run(None, {"input": X.astype(np.float32)})[0]
    assert np.max(np.abs(_softmax(logits.astype(np.float64)) - printed)) <= 1e-5    # predict prints 6 digits
    assert [classes[k] for k in logits.argmax(axis=1)] == [r["prediction"] for r in rows]
    scaler = dn.data.Standardizer.from_dict(mf.preprocessing["standardizer"])
    want = dn.predict(mf.model, scaler.transform(X.astype(np.float32).astype(np.float64)))
    assert np.max(np.abs(logits - want)) <= 1e-5

    assert main(["export", str(run_dir), str(tmp_path / "bare.onnx"), "--no-preprocessing", "--dtype", "float64",
                 "--opset", "20", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    bare = ort.InferenceSession(str(tmp_path / "bare.onnx"), providers=["CPUExecutionProvider"])
    z = scaler.transform(X)
    twin = dn.build(json.loads(json.dumps(mf.model.config()).replace('"float32"', '"float64"')))
    twin.load_state_dict(mf.model.state_dict())
    assert np.max(np.abs(bare.run(None, {"input": z})[0] - dn.predict(twin, z))) <= 1e-10


def test_deltanet_export_errors_are_one_line(tmp_path, capsys):
    path, *_ = _saved(tmp_path)
    cases = [
        (["export", str(tmp_path / "missing.safetensors"), str(tmp_path / "m.onnx")], "model file not found"),
        (["export", str(path), str(path)], "is the model file itself"),
        (["export", str(path), str(tmp_path)], "is a directory"),
        (["export", str(path), str(tmp_path / "m.onnx"), "--opset", "7"], "opset must be an int from 13"),
        (["export", str(path), str(tmp_path / "no" / "m.onnx")], "does not exist"),
        (["export", str(path), str(tmp_path / "m.onnx"), "--dtype", "float16"], "invalid choice: 'float16'"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("deltanet: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "m.onnx").exists()
