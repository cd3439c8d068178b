"""``deltanet playground``: the server driven over HTTP (its events carry the model's own numbers), and the page in
a real headless Chromium (Debian's ``chromium`` through Playwright; skipped where it is not installed)."""

from __future__ import annotations

import json
import os
import socket
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.cli import main
from deltanet.playground import start
from deltanet.playground.datasets import features
from deltanet.playground.events import decode_map, encode_map
from deltanet.playground.network import build_network, layers_of
from deltanet.playground.settings import DEFAULTS, normalize

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
#: Where the browser test also writes its screenshots (the README's images: DELTANET_PLAYGROUND_SCREENSHOTS=docs).
SCREENSHOT_DIR = os.environ.get("DELTANET_PLAYGROUND_SCREENSHOTS")


@pytest.fixture
def server():
    srv, _ = start(port=0)
    yield srv
    srv.close()


def get(srv, path):
    with urllib.request.urlopen(srv.url + path.lstrip("/"), timeout=10) as r:
        body = r.read()
        return json.loads(body) if r.headers.get("Content-Type") == "application/json" else body


def post(srv, path, body, raw=False, headers=None):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(srv.url + path.lstrip("/"), data=data, method="POST",
                                 headers={"Content-Type": "application/octet-stream" if raw else "application/json",
                                          **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def post_error(srv, path, body, raw=False):
    with pytest.raises(urllib.error.HTTPError) as info:
        post(srv, path, body, raw)
    return info.value.code, json.loads(info.value.read())["error"]


def frames(srv):
    """The frames of the event stream, as they come."""
    r = urllib.request.urlopen(srv.url + "api/events", timeout=10)
    event = None
    try:
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "frame":
                yield json.loads(line[5:])
    finally:
        r.close()


def model_file(srv, tmp_path, name="model.safetensors"):
    path = tmp_path / name
    path.write_bytes(get(srv, "api/model"))
    return path


def train_inputs(srv):
    d = get(srv, "api/data")
    return features(np.array(d["train"]["x"]), d["features"]), np.array(d["train"]["y"]), d


# -- the server, over HTTP -------------------------------------------------------------------------------------

def test_the_page_and_its_files_are_served(server):
    assert b"deltanet" in get(server, "/") and b"app.js" in get(server, "/")
    assert b"EventSource" in get(server, "app.js") and b"--neg" in get(server, "style.css")
    with pytest.raises(urllib.error.HTTPError) as info:
        get(server, "nothing-here")
    assert info.value.code == 404
    forged = urllib.request.Request(server.url, headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(forged, timeout=10)
    assert info.value.code == 403
    assert server.server_address[0] == "127.0.0.1"


def test_the_static_files_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["deltanet.playground"]
    static = ROOT / "src/deltanet/playground/static"
    shipped = {p for pattern in patterns for p in static.parent.glob(pattern)}
    assert {static / n for n in ("index.html", "app.js", "style.css")} <= shipped


def test_an_event_after_a_step_carries_the_models_losses(server, tmp_path):
    stream = frames(server)
    first = next(stream)                              # the latest frame, at once
    assert first["step"] == 0 and first["task"] == "classification"
    post(server, "api/control", {"action": "step", "steps": 25})
    frame = next(f for f in stream if f["step"] == 25)
    stream.close()
    # the same numbers as Trainer.evaluate and the loss's own forward on the exported model, same test rows
    model = dn.load(model_file(server, tmp_path))
    s = server.session
    X_test, y_test = s.data.test_inputs(), s.data.y_test
    trainer = dn.Trainer(model, loss="cross_entropy")
    assert frame["metrics"]["test_loss"] == trainer.evaluate(X_test, y_test)["loss"]
    assert frame["metrics"]["test_accuracy"] == trainer.evaluate(X_test, y_test)["accuracy"]
    direct = dn.SoftmaxCrossEntropy().forward(model.forward(X_test.astype(np.float32)), y_test)
    assert frame["metrics"]["test_loss"] == pytest.approx(direct, rel=1e-5)
    X_train, y_train, _ = train_inputs(server)
    assert frame["metrics"]["train_loss"] == trainer.evaluate(X_train, y_train)["loss"]
    assert sum(map(sum, frame["confusion"])) == len(y_test)


def test_a_steps_gradient_norms_equal_those_of_the_same_step_redone(server, tmp_path):
    before = dn.load(model_file(server, tmp_path, "before.safetensors"))
    frame = post(server, "api/control", {"action": "step"})
    X, y, _ = train_inputs(server)
    rows = np.array(frame["batch"])
    assert len(rows) == DEFAULTS["batch_size"]
    # the five plain calls on the same batch, from the weights before the step
    loss_fn = dn.SoftmaxCrossEntropy()
    out = before.forward(X[rows].astype(np.float32), training=True)
    loss = loss_fn.forward(out, y[rows])
    before.zero_grad()
    before.backward(loss_fn.backward())
    redone = [float(np.linalg.norm(m.weight.grad)) for m in before.modules() if isinstance(m, dn.Linear)]
    shown = [lay["grad_norm"] for lay in frame["layers"]]
    assert shown == pytest.approx(redone, rel=1e-5)
    assert frame["metrics"]["batch_loss"] == pytest.approx(loss, rel=1e-6)
    # and those of the session's own parameters, after the step
    own = [float(np.linalg.norm(lay.linear.weight.grad)) for lay in server.session.layers]
    assert shown == pytest.approx(own, rel=1e-6)
    grads = [np.array(lay["grad"]) for lay in frame["layers"]]
    for g, lay in zip(grads, server.session.layers, strict=True):
        np.testing.assert_allclose(g, lay.linear.weight.grad, rtol=1e-6)


def test_phases_step_through_forward_loss_backward_update(server):
    post(server, "api/config", {"optimizer": "sgd", "lr": 0.1})
    names = [post(server, "api/control", {"action": "phase"})["phase"] for _ in range(4)]
    assert names == ["forward", "loss", "backward", "update"]
    frame = get(server, "api/state")
    steps = {s["phase"]: s for s in frame["explain"]["steps"]}
    assert set(steps) == {"forward", "loss", "backward", "update"} and frame["step"] == 1
    assert "delta_L = (y - t) / B" in steps["loss"]["equation"]
    assert "delta_l = f'(z_l) * W_{l+1}^T delta_{l+1}" in steps["backward"]["equation"]
    assert "W <- W - eta dL/dW" == steps["update"]["equation"]
    # the loss phase shows the library's delta_L of sample 1: (softmax(z_L) - onehot(t)) / B
    s = server.session
    delta = np.asarray(s.delta_L)[0]
    assert f"{delta[0]:.4g}" in steps["loss"]["lines"][-1]
    # plain SGD: the update is -eta dL/dW, as the optimizer computed it
    for lay in frame["layers"]:
        np.testing.assert_allclose(np.array(lay["update"]), -0.1 * np.array(lay["grad"]), rtol=1e-4, atol=1e-7)
    # f'(z) shown for the last hidden layer, unit 1, sample 1 is the activation's derivative at the recorded h
    h = np.asarray(s.probe.output(s.layers[-2].activation))[0, 0]
    assert f"{1 - h * h:.4g}" in steps["backward"]["lines"][0]          # tanh' = 1 - h^2
    # a whole step from the middle of one finishes it
    post(server, "api/control", {"action": "phase"})
    assert post(server, "api/control", {"action": "step"})["step"] == 2


def test_deep_sigmoid_gradients_vanish_and_residual_relu_ones_do_not(server):
    post(server, "api/preset", {"name": "deep_sigmoid"})
    frame = post(server, "api/control", {"action": "step", "steps": 20})
    norms = [lay["grad_norm"] for lay in frame["layers"]]
    assert len(norms) == 9 and norms[0] / norms[-1] < 1e-3
    assert all(a < b for a, b in zip(norms[:-2], norms[1:-1], strict=True))     # smaller layer by layer going back
    assert len(frame["norm_curve"]["step"]) == 20 and len(frame["norm_curve"]["norms"][0]) == 9
    assert all(lay["saturated"] is not None for lay in frame["layers"][:-1])
    post(server, "api/preset", {"name": "deep_relu_residual"})
    frame = post(server, "api/control", {"action": "step", "steps": 20})
    norms = [lay["grad_norm"] for lay in frame["layers"]]
    assert norms[0] / norms[-1] > 1e-2
    assert all(lay["residual"] for lay in frame["layers"][1:-1]) and all(lay["dead"] is not None for lay in frame["layers"][:-1])


def test_settings_apply_live_or_reset_and_bad_values_are_refused(server):
    post(server, "api/control", {"action": "step", "steps": 3})
    version = get(server, "api/state")["version"]
    frame = post(server, "api/config", {"lr": 0.01, "regularization": "l2", "reg_rate": 0.01, "batch_size": 5})
    assert frame["step"] == 3 and frame["version"] == version and frame["metrics"]["lr"] == 0.01
    assert server.session.optimizer.weight_decay == 0.01
    frame = post(server, "api/config", {"hidden": [3], "activations": ["relu"], "features": ["x1", "x2", "x1x2"],
                                        "optimizer": "momentum", "schedule": "cosine", "dropout": 0.2, "batch_norm": True})
    assert frame["step"] == 0 and frame["version"] > version
    assert [lay["units"] for lay in frame["layers"]] == [3, 2] and frame["layers"][0]["fan_in"] == 3
    assert frame["layers"][0]["batch_norm"] and frame["layers"][0]["dropout"] == 0.2
    frame = post(server, "api/control", {"action": "step", "steps": 50})
    assert frame["step"] == 50 and frame["epoch"] == 1
    assert post_error(server, "api/config", {"lr": -1})[1] == "lr must be between 1e-06 and 10, got -1"
    assert "unknown setting" in post_error(server, "api/config", {"colour": "red"})[1]
    assert post_error(server, "api/control", {"action": "fly"})[0] == 400
    assert get(server, "api/state")["config"]["lr"] == 0.01                   # nothing changed
    frame = post(server, "api/config", {"dataset": "plane", "hidden": [4]})
    assert frame["task"] == "regression" and frame["layers"][-1]["units"] == 1 and frame["confusion"] is None
    assert post(server, "api/control", {"action": "step", "steps": 5})["metrics"]["test_accuracy"] is None


def test_an_uploaded_csv_is_the_data(server):
    rows = "\n".join(f"{a:.3f},{b:.3f},{'in' if a * a + b * b < 1 else 'out'}"
                     for a, b in np.random.default_rng(0).uniform(-2, 2, (120, 2)))
    frame = post(server, "api/upload", f"u,v,label\n{rows}\n".encode(), raw=True, headers={"X-Filename": "ring.csv"})
    assert frame["config"]["dataset"] == "csv" and frame["classes"] == ["in", "out"]
    d = get(server, "api/data")
    assert d["upload"] == "ring.csv" and d["axes"] == ["u", "v"] and len(d["train"]["x"]) + len(d["test"]["x"]) == 120
    assert post(server, "api/control", {"action": "step"})["step"] == 1
    code, message = post_error(server, "api/upload", b"a,b,c,label\n1,2,3,x\n4,5,6,y\n", raw=True)
    assert code == 400 and "exactly 2 feature columns" in message
    assert "line 3" in post_error(server, "api/upload", b"a,b,label\n1,2,x\n4,oops,y\n", raw=True)[1]


def test_the_model_file_exports_and_imports(server, tmp_path):
    post(server, "api/config", {"hidden": [5, 4], "activations": ["tanh", "relu"]})
    post(server, "api/control", {"action": "step", "steps": 30})
    path = model_file(server, tmp_path)
    mf = dn.load_model_file(path)
    assert mf.metadata["playground"]["hidden"] == [5, 4] and mf.preprocessing["features"] == ["x1", "x2"]
    X = server.session.data.test_inputs().astype(np.float32)
    expected = dn.predict(mf.model, X)
    assert main(["summary", str(path)]) == 0                  # the command reads it as its own
    post(server, "api/config", {"hidden": [2], "activations": ["sigmoid"]})
    frame = post(server, "api/model", path.read_bytes(), raw=True, headers={"X-Filename": "model.safetensors"})
    assert frame["config"]["hidden"] == [5, 4] and frame["config"]["activations"] == ["tanh", "relu"]
    np.testing.assert_array_equal(dn.predict(server.session.model, X), expected)
    code, message = post_error(server, "api/model", b"not a model file", raw=True)
    assert code == 400 and message
    assert get(server, "api/state")["config"]["hidden"] == [5, 4]          # the session is unchanged


def test_the_network_of_a_model_file_reads_back_as_the_playgrounds_layers():
    config = normalize({"hidden": [4, 4, 3], "activations": ["relu", "tanh", "sigmoid"], "residual": True,
                        "batch_norm": True, "dropout": 0.1})
    model, layers = build_network(config, 2, 3)
    again = layers_of(dn.build(model.config()))
    assert [(lay.units, lay.activation_name, lay.residual is not None, lay.norm is not None, lay.dropout is not None)
            for lay in again] == [(lay.units, lay.activation_name, lay.residual is not None, lay.norm is not None,
                                   lay.dropout is not None) for lay in layers]
    assert [lay.residual is not None for lay in layers] == [False, True, False, False]


def test_heatmaps_round_trip_through_their_bytes():
    v = np.linspace(-2, 2, 50)
    np.testing.assert_allclose(decode_map(encode_map(v, -2, 2), -2, 2), v, atol=4 / 510 + 1e-12)


def test_the_command_refuses_a_port_in_use(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        code = main(["playground", "--no-browser", "--port", str(s.getsockname()[1])])
    assert code == 2 and "is in use" in capsys.readouterr().err


# -- the page, in headless Chromium -------------------------------------------------------------------------------

def _screenshot(page, tmp_path, name):
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if SCREENSHOT_DIR:
        Path(SCREENSHOT_DIR).mkdir(parents=True, exist_ok=True)
        Path(SCREENSHOT_DIR, name).write_bytes(path.read_bytes())


def test_the_page_trains_and_shows_the_models_numbers(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's chromium is not at {CHROMIUM}; 'sh scripts/install-test-browser.sh' installs it")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "#dataset=spiral&hidden=8,8,6&activations=tanh,tanh,tanh&batch_size=12")
            page.wait_for_function("document.getElementById('test-loss').dataset.value > 0")
            page.wait_for_function("document.getElementById('batch-size-out').textContent === '12'")
            assert server.session.config["batch_size"] == 12                     # the settings in the URL hash
            first = page.text_content("#test-loss")
            page.click("#play")
            page.wait_for_function("Number(document.body.dataset.step) > 2500", timeout=15000)
            page.click("#play")
            page.wait_for_function("!document.getElementById('play').classList.contains('playing')")
            assert page.text_content("#test-loss") != first                      # the view updated
            shown = float(page.get_attribute("#test-loss", "data-value"))
            state = get(server, "api/state")
            assert shown == state["metrics"]["test_loss"]                        # the model's number
            assert int(page.text_content("#step-count")) == state["step"]
            model = dn.load(model_file(server, tmp_path))
            s = server.session
            assert shown == dn.Trainer(model).evaluate(s.data.test_inputs(), s.data.y_test)["loss"]
            assert float(page.text_content("#test-loss")) == pytest.approx(shown, rel=1e-3)   # its text, rounded
            assert state["metrics"]["train_accuracy"] > 0.8                     # the spiral is being learned
            assert page.locator("#nodes .node.hidden").count() == 22 and page.locator("#links path").count() == 2 * 8 + 8 * 8 + 8 * 6 + 6 * 2
            assert "hidden=8%2C8%2C6" in page.url and "batch_size=12" in page.url and "view=forward" in page.url
            _screenshot(page, tmp_path, "playground.png")

            page.click("#view-backward")
            page.click("#preset-deep_sigmoid")
            page.wait_for_function("document.querySelectorAll('#layer-table tr').length === 10")
            for phase in ("forward", "loss", "backward", "update"):
                page.click("#phase")
                page.wait_for_function(f"document.querySelector('#phase-list li.current')?.dataset.phase === '{phase}'")
            assert "view=backward" in page.url and "activations=sigmoid" in page.url
            cells = page.locator("#layer-table td.grad-norm")
            values = [float(cells.nth(i).get_attribute("data-value")) for i in range(cells.count())]
            assert len(values) == 9 and values[0] / values[-1] < 1e-3           # vanishing: orders of magnitude
            state = get(server, "api/state")
            assert values == [lay["grad_norm"] for lay in state["layers"]]
            assert values[0] == pytest.approx(float(np.linalg.norm(server.session.layers[0].linear.weight.grad)), rel=1e-6)
            assert "W" in page.text_content("#phase-list li[data-phase=update] .live")
            page.click("#step")
            page.wait_for_function("Number(document.body.dataset.step) === 2")
            _screenshot(page, tmp_path, "playground-backward.png")
            assert not errors
        finally:
            browser.close()
