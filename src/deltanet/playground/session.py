"""One playground run: data, network, loss, optimizer and schedule from deltanet, trained by the five plain calls.

A training step is the course's loop, split into the phases the page can step
through one at a time (:meth:`Session.advance`)::

    out = model.forward(xb, training=True)      # forward   z = W h + b, h = f(z)
    loss = loss_fn.forward(out, yb)             # loss      delta_L = (y - t) / B
    model.zero_grad()
    model.backward(loss_fn.backward())          # backward  delta_l = f'(z_l) * W_{l+1}^T delta_{l+1}, dL/dW = delta h^T
    optimizer.step()                            # update    W <- W - eta dL/dW

Every number a frame shows is read from the library's objects: the weights
and gradients from the parameters, the deltas from what each module's
``backward`` received (:class:`~deltanet.playground.probe.Probe`), f'(z) from
the activation's own ``backward``, the losses and accuracies from
:func:`deltanet.training.metrics.evaluate_prepared` (what ``Trainer.evaluate``
runs), dead and saturated units from :func:`~deltanet.training.metrics.unit_health`,
update/weight ratios from :func:`~deltanet.training.metrics.update_ratios`.
Evaluation and heatmaps run on a *viewer*, a copy of the model rebuilt from its
description with the current weights, so they never disturb what the model's
modules cached for the next phase.

Regularization: L2 is the optimizer's weight decay (lambda W added to the
weight gradients inside the step, as the ``Trainer``'s ``l2`` does, and
lambda/2 sum ||W||^2 in the objective); L1 adds its subgradient lambda sign(W)
to the weight gradients after the backward pass (lambda sum |W| in the objective).
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from typing import Any

import numpy

from .. import backend
from ..errors import NonFiniteError
from ..inference import predict
from ..io import atomic_write, load_model_file, save
from ..losses import MeanSquaredError, SoftmaxCrossEntropy
from ..modules.activations import softmax
from ..modules.base import build
from ..optim import SGD, get_optimizer, get_schedule
from ..optim.clipping import grad_norm
from ..report import confusion_matrix
from ..training.data import prepare_data
from ..training.metrics import MONITOR_ROWS, evaluate_prepared, unit_health, update_ratios
from . import phases
from .datasets import NEURON_GRID, OUTPUT_GRID, PlaygroundData, Uploaded, make_data
from .events import encode_map
from .network import PRESETS, build_network, config_of, layers_of
from .probe import Probe
from .settings import DEFAULTS, LIVE, normalize

PHASES = ("forward", "loss", "backward", "update")
#: Points kept per curve; past twice this many, every other point goes and the recording stride doubles.
CURVE_POINTS = 400

#: Schedule name -> arguments (the schedule is stepped once per epoch with the epoch's mean batch loss).
SCHEDULE_ARGS: dict[str, dict[str, Any]] = {
    "constant": {},
    "step": {"step_size": 20, "gamma": 0.5},
    "exponential": {"gamma": 0.97},
    "cosine": {"t_max": 100},
    "plateau": {"factor": 0.5, "patience": 5},
}


class Series:
    """A thinned time series of at most ``2 * CURVE_POINTS`` points: past that, every other point goes.

    ``every_step``: the caller offers a value at every step, and after each thinning only every ``stride``-th
    step is kept (the points stay evenly spaced); otherwise every value offered is kept until the next thinning.
    """

    def __init__(self, every_step: bool = False) -> None:
        self.steps: list[int] = []
        self.values: list[Any] = []
        self.stride = 1
        self.every_step = every_step

    def add(self, step: int, value: Any) -> None:
        if self.every_step and step % self.stride:
            return
        if self.steps and self.steps[-1] == step:
            self.values[-1] = value
            return
        self.steps.append(step)
        self.values.append(value)
        if len(self.steps) > 2 * CURVE_POINTS:
            self.steps, self.values = self.steps[::2], self.values[::2]
            self.stride *= 2


class Session:
    """The state of the playground: configuration, data, model, optimizer, and the step in progress.

    All public methods take :attr:`lock` (the HTTP handlers and the play loop share the session).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.lock = threading.RLock()
        self.upload: Uploaded | None = None
        self.version = 0
        self.config = normalize(config or {}, DEFAULTS)
        self.reset()

    # -- building ---------------------------------------------------------------------
    def reset(self, config: dict[str, Any] | None = None) -> None:
        """A new run: data, network, optimizer and schedule from the configuration (or ``config``)."""
        with self.lock:
            if config is not None:
                self.config = config
            self.data: PlaygroundData = make_data(self.config, self.upload)
            model, layers = build_network(self.config, len(self.config["features"]), self.data.n_outputs)
            self._adopt(model, layers)

    def _adopt(self, model: Any, layers: list[Any]) -> None:
        if getattr(self, "probe", None) is not None:
            self.probe.remove()
        self.version += 1
        self.model, self.layers = model, layers
        self.params = model.parameters()
        self.weights = [lay.linear.weight for lay in layers]
        task = self.data.task
        self.loss_fn = SoftmaxCrossEntropy() if task == "classification" else MeanSquaredError()
        self.eval_loss = SoftmaxCrossEntropy() if task == "classification" else MeanSquaredError()
        self.train = prepare_data(model, self.data.train_inputs(), self.data.y_train, task)
        self.test = prepare_data(model, self.data.test_inputs(), self.data.y_test, task)
        watched = []
        for lay in layers:
            watched += [m for m in (lay.linear, lay.norm, lay.activation, lay.dropout, lay.residual, lay.out) if m is not None]
        self.probe = Probe(watched)
        self.viewer = build(model.config())
        self.viewer_layers = layers_of(self.viewer)
        self.viewer_probe = Probe([lay.out for lay in self.viewer_layers])
        self.viewer_paths = {id(m): path for path, m in self.viewer.named_modules()}
        self.output_grid = self.data.inputs(self.data.grid(OUTPUT_GRID))
        self.neuron_grid = self.data.inputs(self.data.grid(NEURON_GRID))
        self.rng = numpy.random.default_rng(int(self.config["seed"]) + 1)
        self.step_count = 0
        self.epoch = 0
        self.batches: list[Any] = []
        self.cursor = 0
        self.epoch_loss = self.epoch_rows = 0.0
        self.phase: int | None = None          # index in PHASES of the last completed phase
        self.batch: tuple[Any, Any, Any] | None = None   # (rows, xb, yb)
        self.out = self.delta_L = None
        self.batch_loss = self.objective = None
        self.grads_before_l1: list[Any] | None = None
        self.before: list[Any] | None = None
        self.before_bias: list[Any] | None = None
        self.step_lr = float(self.config["lr"])
        self.updates: list[Any] | None = None
        self.ratios: dict[str, float] = {}
        self.layer_norms: list[float] | None = None
        self.total_norm: float | None = None
        self.loss_curve = Series()
        self.norm_curve = Series(every_step=True)
        self.notice: str | None = None
        self._build_optimizer()
        self._record_losses(force=True)

    def _build_optimizer(self) -> None:
        c = self.config
        decay = float(c["reg_rate"]) if c["regularization"] == "l2" else 0.0
        if c["optimizer"] == "momentum":
            self.optimizer = SGD(self.params, lr=float(c["lr"]), momentum=0.9, weight_decay=decay)
        else:
            self.optimizer = get_optimizer(c["optimizer"], self.params, lr=float(c["lr"]), weight_decay=decay)
        self._build_schedule()

    def _build_schedule(self) -> None:
        name = self.config["schedule"]
        self.schedule = None if name == "constant" else get_schedule(name, self.optimizer, **SCHEDULE_ARGS[name])

    # -- configuration ------------------------------------------------------------------
    def configure(self, changes: dict[str, Any]) -> bool:
        """Apply a partial configuration; returns whether the run was reset (any key outside :data:`LIVE`)."""
        with self.lock:
            new = normalize(changes, self.config)
            changed = {k for k in new if new[k] != self.config[k]}
            if not changed:
                return False
            if changed <= LIVE:
                self.config = new
                self.optimizer.weight_decay = float(new["reg_rate"]) if new["regularization"] == "l2" else 0.0
                if "lr" in changed:
                    self.optimizer.lr = float(new["lr"])
                    self._build_schedule()                  # a new rate restarts the schedule from it
                return False
            if new["dataset"] == "csv" and self.upload is None:
                raise ValueError("upload a CSV file first (two feature columns and a target column)")
            self.reset(new)
            return True

    def preset(self, name: str) -> None:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        with self.lock:
            self.reset(normalize(PRESETS[name], self.config))

    def set_upload(self, upload: Uploaded) -> None:
        """Use an uploaded table as the data set (a new run)."""
        with self.lock:
            self.upload = upload
            self.reset(normalize({"dataset": "csv"}, self.config))

    # -- the training step, phase by phase ---------------------------------------------------
    def _next_batch(self) -> tuple[Any, Any, Any]:
        n = len(self.train)
        if self.cursor >= len(self.batches):
            perm = self.rng.permutation(n)
            bs = min(int(self.config["batch_size"]), n)
            self.batches = [perm[s:s + bs] for s in range(0, n, bs)]
            if len(self.batches) > 1 and len(self.batches[-1]) < 2 and self.config["batch_norm"]:
                self.batches[-2:] = [numpy.concatenate(self.batches[-2:])]   # batch norm needs 2 rows
            self.cursor = 0
        rows = self.batches[self.cursor]
        self.cursor += 1
        return rows, self.train.X[rows], self.train.y[rows]

    def _forward(self) -> None:
        self.batch = self._next_batch()
        self.probe.clear()
        self.out = self.model.forward(self.batch[1], training=True)
        self.batch_loss = self.objective = self.delta_L = None
        self.updates = self.before = None

    def _loss(self) -> None:
        self.batch_loss = self.loss_fn.forward(self.out, self.batch[2])
        self.objective = self.batch_loss + self.penalty()
        self.delta_L = self.loss_fn.backward()

    def penalty(self) -> float:
        """The regularization term of the objective: lambda sum |W| (L1) or lambda/2 sum ||W||^2 (L2), weights only."""
        c = self.config
        lam = float(c["reg_rate"])
        if c["regularization"] == "l1":
            return lam * sum(float(numpy.abs(p.value).sum()) for p in self.params if p.decay)
        if c["regularization"] == "l2":
            return 0.5 * lam * sum(backend.sum_of_squares(p.value) for p in self.params if p.decay)
        return 0.0

    def _backward(self) -> None:
        self.model.zero_grad()
        self.model.backward(self.delta_L)
        self.grads_before_l1 = None
        if self.config["regularization"] == "l1" and float(self.config["reg_rate"]) > 0:
            self.grads_before_l1 = [numpy.array(w.grad, copy=True) for w in self.weights]
            lam = float(self.config["reg_rate"])
            for p in self.params:
                if p.decay:
                    p.accumulate(lam * numpy.sign(p.value))      # the subgradient of lambda |W|
        self.layer_norms = [math.sqrt(backend.sum_of_squares(w.grad)) for w in self.weights]
        self.total_norm = grad_norm(self.params)

    def _update(self) -> None:
        self.before = [numpy.array(w.value, copy=True) for w in self.weights]
        self.before_bias = [numpy.array(lay.linear.bias.value, copy=True) if lay.linear.bias is not None else None
                            for lay in self.layers]
        self.step_lr = float(self.optimizer.lr)
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step_batch()
        self.updates = [w.value - b for w, b in zip(self.weights, self.before, strict=True)]
        self.ratios = update_ratios(self.weights, self.before)
        self.step_count += 1
        rows = len(self.batch[0])
        self.epoch_loss += self.batch_loss * rows
        self.epoch_rows += rows
        self.norm_curve.add(self.step_count, list(self.layer_norms or []))
        if self.cursor >= len(self.batches):               # the epoch's last batch
            self.epoch += 1
            if self.schedule is not None:
                self.schedule.step(self.epoch_loss / self.epoch_rows)
            self.epoch_loss = self.epoch_rows = 0.0

    def advance(self) -> str:
        """Run the next phase of the step in progress (a new step after an update); returns its name."""
        with self.lock:
            nxt = 0 if self.phase is None or self.phase == len(PHASES) - 1 else self.phase + 1
            try:
                with numpy.errstate(over="ignore", invalid="ignore"):
                    getattr(self, "_" + PHASES[nxt])()
            except NonFiniteError as exc:
                raise NonFiniteError(f"training diverged in the {PHASES[nxt]} phase ({exc}); choose a smaller "
                                     "learning rate and reset") from None
            self.phase = nxt
            return PHASES[nxt]

    def step(self, n: int = 1) -> None:
        """``n`` whole steps (the first one finishes the step in progress, if a phase was stepped)."""
        with self.lock:
            for _ in range(n):
                self.advance()
                while self.phase != len(PHASES) - 1:
                    self.advance()

    def train_for(self, seconds: float, max_steps: int = 10_000) -> int:
        """Whole steps for about ``seconds`` (at least one); the number run."""
        end = time.perf_counter() + seconds
        done = 0
        with self.lock:
            while done < max_steps:
                self.step()
                done += 1
                if time.perf_counter() >= end:
                    break
        return done

    # -- reading the state ----------------------------------------------------------------------
    def _sync_viewer(self) -> None:
        self.viewer.load_state_dict(self.model.state_dict())

    def evaluate(self, part: str) -> dict[str, float]:
        """Loss (eval mode, no penalty) and accuracy on the training or test part, as ``Trainer.evaluate`` computes them."""
        with self.lock:
            self._sync_viewer()
            data = self.train if part == "train" else self.test
            return evaluate_prepared(self.viewer, self.eval_loss, self.data.task, data, 1024)

    def _record_losses(self, force: bool = False) -> dict[str, dict[str, float]]:
        train, test = self.evaluate("train"), self.evaluate("test")
        if force or not self.loss_curve.steps or self.loss_curve.steps[-1] != self.step_count:
            self.loss_curve.add(self.step_count, [train["loss"], test["loss"]])
        self._last_eval = {"train": train, "test": test}
        return self._last_eval

    def neuron_maps(self) -> list[list[numpy.ndarray]]:
        """Per hidden layer, each unit's output h over the neuron grid (eval mode)."""
        self.viewer_probe.clear()
        self.viewer.forward(self.neuron_grid, training=False)
        maps = []
        for lay in self.viewer_layers[:-1]:
            h = backend.to_numpy(self.viewer_probe.output(lay.out))
            maps.append([h[:, j] for j in range(h.shape[1])])
        return maps

    def output_map(self) -> tuple[list[str], float, float]:
        """The output over the output grid: class probabilities (classification) or the prediction (regression)."""
        z = backend.to_numpy(predict(self.viewer, self.output_grid, 4096))
        if self.data.task == "classification":
            p = softmax(z.astype(numpy.float64), axis=-1)
            return [encode_map(p[:, k], 0.0, 1.0) for k in range(p.shape[1])], 0.0, 1.0
        lo, hi = self._target_range()
        return [encode_map(z[:, 0], lo, hi)], lo, hi

    def _target_range(self) -> tuple[float, float]:
        y = numpy.asarray(self.data.y_train, dtype=numpy.float64)
        m = max(abs(float(y.min())), abs(float(y.max())), 1e-9)
        return -m, m

    def health(self) -> list[dict[str, int | None]]:
        """Per hidden layer: dead (ReLU-like) and saturated (tanh, sigmoid) unit counts on a fixed training sample."""
        units = unit_health(self.viewer, self.train.X[:MONITOR_ROWS])
        out = []
        for lay in self.viewer_layers[:-1]:
            h = units.get(self.viewer_paths.get(id(lay.activation), ""), {})
            out.append({"dead": round(h["dead"] * lay.units) if "dead" in h else None,
                        "saturated": round(h["saturated"] * lay.units) if "saturated" in h else None})
        return out

    def frame(self) -> dict[str, Any]:
        """Everything the page draws, as JSON-ready values (heatmaps base64-encoded)."""
        with self.lock:
            ev = self._record_losses()
            classify = self.data.task == "classification"
            confusion = None
            if classify:
                pred = backend.to_numpy(predict(self.viewer, self.test.X, 1024)).argmax(axis=1)
                confusion = confusion_matrix(backend.to_numpy(self.test.y), pred, self.data.n_classes).tolist()
            maps = self.neuron_maps()
            health = self.health()
            out_maps, out_lo, out_hi = self.output_map()
            layers = []
            for i, lay in enumerate(self.layers):
                w = lay.linear.weight
                delta = self.probe.delta(lay.linear) if self.phase is not None and self.phase >= 2 else None
                entry: dict[str, Any] = {
                    "index": lay.index, "units": lay.units, "fan_in": lay.linear.in_features,
                    "activation": lay.activation_name if not lay.is_output else "output",
                    "residual": lay.residual is not None, "batch_norm": lay.norm is not None,
                    "dropout": lay.dropout.rate if lay.dropout is not None else 0.0,
                    "name": w.name,
                    "weight": backend.to_numpy(w.value),
                    "bias": backend.to_numpy(lay.linear.bias.value) if lay.linear.bias is not None else None,
                    "grad": backend.to_numpy(w.grad) if self.layer_norms is not None else None,
                    "update": self.updates[i] if self.updates is not None else None,
                    "grad_norm": self.layer_norms[i] if self.layer_norms is not None else None,
                    "update_ratio": self.ratios.get(w.name) if self.updates is not None else None,
                    "delta": numpy.abs(backend.to_numpy(delta)).mean(axis=0) if delta is not None else None,
                }
                if not lay.is_output:
                    scales = [float(numpy.abs(m).max()) or 1.0 for m in maps[i]]
                    entry["maps"] = [encode_map(m, -s, s) for m, s in zip(maps[i], scales, strict=True)]
                    entry["map_scale"] = scales
                    entry.update(health[i])
                layers.append(entry)
            return {
                "version": self.version, "step": self.step_count, "epoch": self.epoch,
                "phase": PHASES[self.phase] if self.phase is not None else None,
                "batch": self.batch[0] if self.batch is not None else None,
                "config": self.config, "task": self.data.task, "classes": self.data.class_names,
                "inputs": self.config["features"],
                "metrics": {"train_loss": ev["train"]["loss"], "test_loss": ev["test"]["loss"],
                            "train_accuracy": ev["train"].get("accuracy"), "test_accuracy": ev["test"].get("accuracy"),
                            "batch_loss": self.batch_loss, "objective": self.objective, "lr": float(self.optimizer.lr),
                            "grad_norm": self.total_norm},
                "confusion": confusion,
                "layers": layers,
                "output_map": {"size": OUTPUT_GRID, "maps": out_maps, "lo": out_lo, "hi": out_hi},
                "neuron_grid": NEURON_GRID,
                "loss_curve": {"step": self.loss_curve.steps, "train": [v[0] for v in self.loss_curve.values],
                               "test": [v[1] for v in self.loss_curve.values]},
                "norm_curve": {"step": self.norm_curve.steps, "norms": self.norm_curve.values},
                "explain": phases.explain(self),
                "notice": self.notice,
            }

    def data_view(self) -> dict[str, Any]:
        """The points (train and test), the plane's domain and the input features' heatmaps."""
        with self.lock:
            d = self.data
            lo, hi = self._target_range() if d.task == "regression" else (0.0, 1.0)
            fmaps = d.feature_maps(NEURON_GRID)
            scales = [float(numpy.abs(m).max()) or 1.0 for m in fmaps]
            return {"version": self.version, "task": d.task, "classes": d.class_names, "domain": d.domain,
                    "axes": d.axis_names, "features": d.feature_names, "target_range": [lo, hi],
                    "train": {"x": d.X_train, "y": d.y_train}, "test": {"x": d.X_test, "y": d.y_test},
                    "feature_maps": [encode_map(m, -s, s) for m, s in zip(fmaps, scales, strict=True)],
                    "feature_scale": scales, "neuron_grid": NEURON_GRID, "upload": d.name == "csv" and self.upload.name}

    # -- model files --------------------------------------------------------------------------
    def model_bytes(self) -> bytes:
        """The model file (:meth:`save_model`) as bytes, for a download."""
        with tempfile.TemporaryDirectory(prefix="deltanet-playground-") as tmp:
            path = os.path.join(tmp, "playground.safetensors")
            self.save_model(path)
            with open(path, "rb") as f:
                return f.read()

    def load_model_bytes(self, data: bytes, name: str = "the model file") -> None:
        """:meth:`load_model` of an uploaded file's bytes (messages name the file ``name``)."""
        if not data:
            raise ValueError("no model file in the request")
        with tempfile.TemporaryDirectory(prefix="deltanet-playground-") as tmp:
            path = os.path.join(tmp, "upload.safetensors")
            with atomic_write(path) as f:
                f.write(data)
            try:
                self.load_model(path)
            except ValueError as exc:
                raise ValueError(str(exc).replace(path, name)) from None

    def save_model(self, path: str) -> None:
        """Write the model file ``deltanet`` writes (safetensors layout), with what the playground needs to reload it."""
        with self.lock:
            d = self.data
            preprocessing: dict[str, Any] = {"features": d.feature_names}
            if d.scaler is not None:
                preprocessing["standardizer"] = d.scaler.to_dict()
            if d.class_names is not None:
                preprocessing["class_names"] = d.class_names
            metadata = {"task": d.task, "dataset": d.name, "feature_names": d.feature_names, "class_names": d.class_names,
                        "playground": self.config, "step": self.step_count, "epoch": self.epoch}
            save(self.model, path, preprocessing=preprocessing, metadata=metadata)

    def load_model(self, path: str) -> None:
        """Adopt the network and weights of a model file; its playground settings (data, features) come with it."""
        mf = load_model_file(path)
        layers = layers_of(mf.model)
        with self.lock:
            saved = mf.metadata.get("playground") if isinstance(mf.metadata.get("playground"), dict) else {}
            saved = {k: v for k, v in saved.items() if k in DEFAULTS}
            feats = mf.preprocessing.get("features") or saved.get("features") or self.config["features"]
            config = normalize({**saved, "features": feats, **config_of(layers)}, self.config)
            if config["dataset"] == "csv" and self.upload is None:
                config = normalize({"dataset": self.config["dataset"] if self.config["dataset"] != "csv" else "spiral"}, config)
            data = make_data(config, self.upload)
            if layers[0].linear.in_features != len(config["features"]):
                raise ValueError(f"the model takes {layers[0].linear.in_features} inputs, the features "
                                 f"{config['features']} are {len(config['features'])}")
            if layers[-1].units != data.n_outputs:
                raise ValueError(f"the model has {layers[-1].units} outputs, the data set {data.name} needs {data.n_outputs}")
            self.config, self.data = config, data
            self._adopt(mf.model, layers)


__all__ = ["PHASES", "Session"]
