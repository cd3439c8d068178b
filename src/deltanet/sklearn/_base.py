"""What the classifier and the regressor share: hyper-parameters, data preparation,
the network, the training run (deltanet's :class:`~deltanet.training.Trainer`),
prediction, and model files.
"""

from __future__ import annotations

import math
import warnings
import weakref
from typing import Any

import numpy
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import backend
from ..architecture import mlp
from ..errors import NonFiniteError
from ..inference import predict
from ..losses import Loss
from ..modules.base import Module, build
from ..modules.linear import Linear
from ..optim import get_optimizer
from ..optim.schedules import CosineAnnealingLR
from ..training import Trainer
from ._params import validate_params
from ._stopping import SklearnConvergence

#: Rows per forward pass in predict (bounds the memory of the activations kept).
PREDICT_CHUNK = 4096
#: Weight initializer when ``weight_init=None``: Glorot/Xavier uniform, scikit-learn's choice (it starts
#: small networks closer to the targets than He's larger variance, at no cost in accuracy).
DEFAULT_INIT = "xavier_uniform"
#: Format tag of the estimator metadata stored in model files.
MODEL_FORMAT = "deltanet.sklearn/1"


class BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor` (not for direct use)."""

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
                 alpha: float = 1e-4, batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 1e-3, power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool | int = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 n_iter_no_change: int = 10, max_fun: int = 15000, rho: float = 0.99, dropout: float = 0.0, batch_norm: bool = False,
                 clip_norm: float | None = None, weight_init: str | None = None, dtype: Any = None,
                 device: str = "cpu") -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.rho = rho
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.clip_norm = clip_norm
        self.weight_init = weight_init
        self.dtype = dtype
        self.device = device

    # -- hooks the subclasses implement -------------------------------------------
    def _encode_targets(self, y: Any, *, first: bool, classes: Any = None) -> Any:
        """Validate ``y`` (already through ``validate_data``), set the target attributes
        on the first call, and return the network's targets."""
        raise NotImplementedError

    def _target_sample_weight(self, y_enc: Any, *, incremental: bool) -> Any:
        """Per-sample factors from the targets (``class_weight``), or None."""
        return None

    def _task(self) -> str:
        raise NotImplementedError

    def _validation_score(self, X: Any, y_enc: Any, sample_weight: Any) -> float:
        raise NotImplementedError

    def _stratify(self, y_enc: Any) -> Any:
        return None

    # -- fitting ------------------------------------------------------------------
    def _fit(self, X: Any, y: Any, sample_weight: Any, *, incremental: bool, classes: Any = None) -> BaseMLP:
        p = self._validated = validate_params(self.get_params(deep=False))
        if incremental and p["early_stopping"]:
            raise ValueError("partial_fit does not support early_stopping=True (there is no held-out set to "
                             "score within one pass); use fit, or set early_stopping=False")
        fitted = hasattr(self, "network_")
        first = not fitted or not (incremental or p["warm_start"])
        if first:   # dtype=None follows the input, as scikit-learn: float32 stays float32, anything else is float64
            dtype = [numpy.float64, numpy.float32] if p["dtype"] is None else p["dtype"]
        else:
            dtype = self._network_dtype()
        X, y = validate_data(self, X, y, reset=first, dtype=dtype, order="C", multi_output=True,
                             y_numeric=self._task() == "regression", accept_sparse=("csr", "csc"))
        self._fit_dtype = numpy.dtype(X.dtype)
        self._warm_fit = not first and not incremental       # fit with warm_start on a fitted estimator
        y_enc = self._encode_targets(y, first=first, classes=classes)
        sw = self._sample_weight(sample_weight, X.shape[0], y_enc, incremental=incremental)
        self._sw_scale = 1.0
        if sw is not None:
            keep = sw > 0                     # a zero weight is an absent sample (also for batch statistics)
            if not keep.all():
                X, y_enc, sw = X[keep], y_enc[keep], sw[keep]
            if numpy.all(sw == sw[0]):
                self._sw_scale = float(sw[0])  # alpha's term is alpha / (2 sum w): keep the common weight
                sw = None                     # equal weights: the plain mean, exactly
        if first:
            self._initialize(X.shape[1], p)
        self._train(X, y_enc, sw, p, incremental=incremental, first=first)
        return self

    def _sample_weight(self, sample_weight: Any, n: int, y_enc: Any, *, incremental: bool) -> Any:
        sw = None
        if sample_weight is not None:
            sw = check_array(sample_weight, ensure_2d=False, dtype=numpy.float64, input_name="sample_weight")
            if sw.ndim != 1 or sw.shape[0] != n:
                raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({n},): one weight per sample")
            if (sw < 0).any():
                raise ValueError("sample_weight must be non-negative; got negative weights")
        cw = self._target_sample_weight(y_enc, incremental=incremental)
        if cw is not None:
            sw = cw if sw is None else sw * cw
        if sw is not None and not sw.sum() > 0:
            raise ValueError("Sample weights must contain at least one non-zero number: "
                             "all weights (sample_weight times class_weight) are zero")
        return sw

    def _initialize(self, n_features: int, p: dict[str, Any]) -> None:
        """A fresh network and fresh fitted attributes."""
        self._random_state = check_random_state(p["random_state"])
        hidden = list(p["hidden_layer_sizes"])
        self.network_ = mlp([n_features, *hidden, self.n_outputs_], activation=p["activation"],
                            dropout=p["dropout"], batch_norm=p["batch_norm"], init=p["weight_init"] or DEFAULT_INIT,
                            output_init=DEFAULT_INIT, rng=self._seed(), dtype=self._fit_dtype.name)
        self.n_layers_ = len(hidden) + 2
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._trainer = None
        self.__dict__.pop("_trainer_state", None)

    def _network_dtype(self) -> numpy.dtype:
        """The dtype of the network (of its weights, its computation and its predictions)."""
        if hasattr(self, "network_"):
            return numpy.dtype(self.network_.parameters()[0].dtype)
        return self._fit_dtype

    def _seed(self) -> int:
        return int(self._random_state.randint(0, 2**31 - 1))

    def _batch_size(self, n: int, p: dict[str, Any]) -> int:
        """``"auto"``: min(200, n); an int larger than n is clipped to n (with a warning).

        With batch normalization a batch needs two rows to estimate a variance: the
        size is at least 2, and a size that would leave a last batch of one row is
        raised by one."""
        if p["batch_norm"] and n < 2:
            raise ValueError(f"batch_norm=True needs at least 2 training samples to estimate batch statistics; "
                             f"got {n} sample (n_samples={n})")
        if p["batch_size"] == "auto":
            size = min(200, n)
        else:
            if p["batch_size"] > n:
                warnings.warn(f"batch_size={p['batch_size']} is larger than the {n} training samples; "
                              f"using batches of {n}", UserWarning, stacklevel=5)
            size = min(p["batch_size"], n)
        if p["batch_norm"]:
            size = max(size, 2)
            while n % size == 1:
                size += 1
        return size

    def _make_optimizer(self, p: dict[str, Any], batch_weight: float) -> Any:
        """The solver, with scikit-learn's L2 convention: the penalty alpha / (2 sum_batch w) ||W||^2
        on the batch's (weighted) mean loss, i.e. a weight decay of alpha / sum_batch w on the weights,
        where ``batch_weight`` is the expected total weight of a batch (its size, without sample weights)."""
        params = self.network_.parameters()
        decay = p["alpha"] / batch_weight
        lr = p["learning_rate_init"]
        if p["solver"] == "sgd":
            return get_optimizer("sgd", params, lr=lr, momentum=p["momentum"],
                                 nesterov=p["nesterovs_momentum"] and p["momentum"] > 0, weight_decay=decay)
        if p["solver"] == "rmsprop":
            return get_optimizer("rmsprop", params, lr=lr, alpha=p["rho"], eps=p["epsilon"], weight_decay=decay)
        return get_optimizer(p["solver"], params, lr=lr, betas=(p["beta_1"], p["beta_2"]), eps=p["epsilon"],
                             weight_decay=decay)

    def _objective_loss(self) -> Loss:
        """The loss whose value and gradient are the objective itself (what a line search needs)."""
        return self._loss()

    def _report_factor(self) -> float:
        """The objective's data term divided by the loss scikit-learn reports (D for the squared error)."""
        return 1.0

    def _check_solver(self) -> bool:
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. lbfgs is not stochastic.")
        return True

    def _train_lbfgs(self, X: Any, y_enc: Any, sw: Any, p: dict[str, Any]) -> None:
        """Full-batch L-BFGS (:class:`deltanet.optim.LBFGS`) on scikit-learn's objective: data loss plus
        alpha / (2 sum w) sum ||W||^2; scikit-learn's ``max_iter``, ``max_fun`` and ``tol`` (as ``gtol``)."""
        from ..optim import LBFGS

        total = X.shape[0] * self._sw_scale if sw is None else float(sw.sum())
        opt = LBFGS(self.network_.parameters(), max_iter=p["max_iter"], max_fun=p["max_fun"], tol=p["tol"],
                    weight_decay=p["alpha"] / total)
        mask = opt._decay_mask()
        factor = self._report_factor()
        lam = opt.weight_decay
        self._trainer = None
        self.validation_scores_ = None
        self.best_validation_score_ = None

        def reported(result: Any) -> float:
            w = result.x[mask]
            l2 = 0.5 * lam * float(w @ w)
            return (float(result.fun) - l2) / factor + l2

        curve: list[float] = []

        def each_iteration(result: Any) -> None:
            curve.append(reported(result))
            if p["verbose"]:
                print(f"Iteration {len(curve)}, loss = {curve[-1]:.8f}")

        result = opt.minimize(self.network_, self._objective_loss(), X, y_enc, sw, callback=each_iteration)
        if not math.isfinite(float(result.fun)):
            raise ValueError(f"{type(self).__name__}: L-BFGS produced non-finite weights. The input data may contain "
                             "large values and need to be preprocessed (e.g. StandardScaler).")
        self.n_iter_ = min(int(result.nit), p["max_iter"])
        self.loss_curve_.extend(curve)
        self.loss_ = reported(result)
        self.best_loss_ = min(self.loss_curve_, default=self.loss_)
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result.status}):\n"
                          f"{result.message}\n\nIncrease the number of iterations (max_iter) or the number of loss "
                          "evaluations (max_fun), or scale the data.", ConvergenceWarning, stacklevel=4)

    def _train(self, X: Any, y_enc: Any, sw: Any, p: dict[str, Any], *, incremental: bool, first: bool) -> None:
        if p["solver"] == "lbfgs":
            return self._train_lbfgs(X, y_enc, sw, p)
        validation = None
        if p["early_stopping"]:
            X, y_enc, sw, validation = self._split(X, y_enc, sw, p)
        n = X.shape[0]
        batch_size = self._batch_size(n, p)
        trainer = self._trainer if incremental else None
        pickled = self.__dict__.pop("_trainer_state", None)   # the training state of an unpickled estimator
        if trainer is None:
            if not incremental:
                pickled = None
            seeds = self._random_state.get_state() if pickled is not None else None
            optimizer = self._make_optimizer(p, batch_size * (1.0 if sw is None else float(sw.mean())))
            schedule = CosineAnnealingLR(optimizer, t_max=p["max_iter"]) if p["learning_rate"] == "cosine" else None
            trainer = Trainer(self.network_, loss=self._loss(), optimizer=optimizer, schedule=schedule,
                              batch_size=batch_size, clip_norm=p["clip_norm"], seed=self._seed(),
                              shuffle=p["shuffle"], record_layers=False, task=self._task(), on_divergence="raise",
                              device=p["device"])
            if pickled is not None and pickled["optimizer"].get("type") == type(optimizer).__name__ \
                    and (pickled["schedule"] is None) == (schedule is None):
                # continue as the pickled estimator would have: its optimizer moments, schedule, shuffle order
                self._random_state.set_state(seeds)   # as if the trainer had never been rebuilt
                trainer.load_state_dict({**pickled, "model": self.network_.state_dict()})
            self._trainer = trainer
        trainer.batch_size = batch_size
        if not incremental:
            self.n_iter_ = 0
            self._no_improvement_count = 0
            if p["early_stopping"]:
                self.validation_scores_ = []
                self.best_validation_score_ = -math.inf
                self.best_loss_ = None
                self._best_state = None
            else:
                self.validation_scores_ = None
                self.best_validation_score_ = None
                self.best_loss_ = math.inf
        elif first or not hasattr(self, "_no_improvement_count"):   # first partial_fit, or after load()
            self._no_improvement_count = 0
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = min(self.loss_curve_, default=math.inf)
        rules = SklearnConvergence(self, n, validation, incremental=incremental)
        trainer.callbacks = [rules]
        try:
            history = trainer.fit(X, y_enc, sample_weight=sw, epochs=1 if incremental else p["max_iter"])
        except NonFiniteError as exc:
            if p["early_stopping"] and self._best_state is not None:
                # as scikit-learn: early stopping ends the run with the weights of the best validation score
                self.network_.load_state_dict(self._best_state)
                self._best_state = None
                best = int(numpy.argmax(self.validation_scores_)) + 1
                warnings.warn(f"Training diverged at iteration {self.n_iter_ + 1} ({exc}); stopped and kept the "
                              f"weights of iteration {best}, the best validation score "
                              f"({self.best_validation_score_:.6g}). learning_rate_init may be too large.",
                              ConvergenceWarning, stacklevel=4)
                return
            raise ValueError(f"{type(self).__name__}: {exc}. The input data may contain large values and need to "
                             "be preprocessed (e.g. StandardScaler), or learning_rate_init may be too large.") from exc
        finally:
            trainer.callbacks = []
        if history.stop_reason == "interrupted":
            warnings.warn("Training interrupted by user.", UserWarning, stacklevel=4)
        if p["early_stopping"] and self._best_state is not None:
            self.network_.load_state_dict(self._best_state)
            self._best_state = None
        if not incremental and not rules.converged and history.stop_reason == "max_epochs":
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({p['max_iter']}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)

    def _split(self, X: Any, y_enc: Any, sw: Any, p: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
        stratify = self._stratify(y_enc)
        arrays = [X, y_enc] if sw is None else [X, y_enc, sw]
        parts = train_test_split(*arrays, test_size=p["validation_fraction"], random_state=self._seed(),
                                 stratify=stratify)
        X_tr, X_val, y_tr, y_val = parts[:4]
        sw_tr, sw_val = (parts[4], parts[5]) if sw is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError(f"The validation set is too small ({X_val.shape[0]} samples). Increase "
                             "'validation_fraction' or the size of your dataset.")
        return X_tr, y_tr, sw_tr, (X_val, y_val, sw_val)

    def _loss(self) -> Loss:
        raise NotImplementedError

    # -- prediction -----------------------------------------------------------------
    def _check_X(self, X: Any) -> Any:
        check_is_fitted(self, "network_")
        return validate_data(self, X, reset=False, dtype=(numpy.float64, numpy.float32), order="C",
                             accept_sparse=("csr", "csc"))

    def _forward(self, X: Any) -> numpy.ndarray:
        """Network outputs (logits) in evaluation mode -- dropout off, batch norm on running
        statistics -- for already validated ``X``, computed in float64 (see :func:`_float64_twin`)."""
        # as in scikit-learn, float32 outputs for float32 data and a float32 network, float64 otherwise
        dtype = numpy.result_type(getattr(X, "dtype", numpy.float64), self._network_dtype())
        if X.shape[0] == 0:
            return numpy.zeros((0, self.n_outputs_), dtype=dtype)
        net = _float64_twin(self.network_)                   # validate_data has tested X for NaN/inf
        return backend.to_numpy(predict(net, X, PREDICT_CHUNK, check_finite=False)).astype(dtype, copy=False)

    # -- inspection -------------------------------------------------------------------
    def _linear_layers(self) -> list[Linear]:
        check_is_fitted(self, "network_")
        return [m for m in self.network_.modules() if isinstance(m, Linear)]

    @property
    def coefs_(self) -> list[numpy.ndarray]:
        """Weight matrices as scikit-learn lays them out: ``coefs_[i]`` has shape ``(n_in, n_out)``.

        Each is a view of the network's weights (``Linear.weight.value`` is the
        column-major ``(n_out, n_in)`` array, so its transpose is a row-major
        ``(n_in, n_out)`` view, no copy): editing it in place edits the network,
        and training updates it in place, as scikit-learn's ``partial_fit`` does.
        A new ``fit`` (also with ``warm_start``) builds a new optimizer, which may
        move the weights into new memory: read ``coefs_`` again after it.
        Assign a list of arrays (same shapes) to set the weights.
        """
        return [_host_view(m.weight.value).T for m in self._linear_layers()]

    @coefs_.setter
    def coefs_(self, coefs: Any) -> None:
        layers = self._linear_layers()
        coefs = self._check_layer_arrays("coefs_", coefs, [(m.in_features, m.out_features) for m in layers])
        for m, c in zip(layers, coefs, strict=True):
            m.weight.value[...] = backend.xp.asarray(c.T)        # into the network's own memory (and the optimizer's)

    @property
    def intercepts_(self) -> list[numpy.ndarray]:
        """Bias vectors, ``intercepts_[i]`` of shape ``(n_out,)``: views of the network's biases, as
        :attr:`coefs_`; a layer without bias (followed by batch norm, whose shift ``beta`` plays
        that role) gives a read-only array of zeros. Assign a list of arrays to set them."""
        out = []
        for m in self._linear_layers():
            if m.bias is not None:
                out.append(_host_view(m.bias.value))
            else:
                zeros = numpy.zeros(m.out_features, dtype=m.dtype)
                zeros.flags.writeable = False
                out.append(zeros)
        return out

    @intercepts_.setter
    def intercepts_(self, intercepts: Any) -> None:
        layers = self._linear_layers()
        intercepts = self._check_layer_arrays("intercepts_", intercepts, [(m.out_features,) for m in layers])
        for i, (m, b) in enumerate(zip(layers, intercepts, strict=True)):
            if m.bias is not None:
                m.bias.value[...] = backend.xp.asarray(b)
            elif numpy.any(b != 0):
                raise ValueError(f"intercepts_[{i}]: layer {i} has no bias (batch normalization follows it; its "
                                 "shift beta plays that role), so its intercept must stay zero")

    def _check_layer_arrays(self, name: str, arrays: Any, shapes: list[tuple[int, ...]]) -> list[numpy.ndarray]:
        dtype = self.network_.parameters()[0].dtype
        try:
            arrays = [numpy.asarray(a, dtype=dtype) for a in arrays]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a list of {len(shapes)} numeric arrays: {exc}") from exc
        if len(arrays) != len(shapes):
            raise ValueError(f"{name} must be a list of {len(shapes)} arrays (one per layer), got {len(arrays)}")
        for i, (a, shape) in enumerate(zip(arrays, shapes, strict=True)):
            if a.shape != shape:
                raise ValueError(f"{name}[{i}] has shape {a.shape}, expected {shape}")
            if not numpy.isfinite(a).all():
                raise ValueError(f"{name}[{i}] contains NaN or infinity")
        return arrays

    # -- model files ------------------------------------------------------------------
    def _metadata(self) -> dict[str, Any]:
        """Everything besides the network needed to predict: JSON-able."""
        meta: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "estimator": type(self).__name__,
            "params": _jsonable_params(self.get_params(deep=False)),
            "n_features_in_": int(self.n_features_in_),
            "n_outputs_": int(self.n_outputs_),
            "n_iter_": int(self.n_iter_),
            "t_": int(self.t_),
            "loss_curve_": [float(v) for v in self.loss_curve_],
            "validation_scores_": self.validation_scores_,
            "best_validation_score_": self.best_validation_score_,
        }
        if hasattr(self, "feature_names_in_"):
            meta["feature_names_in_"] = [str(v) for v in self.feature_names_in_]
        meta.update(self._target_metadata())
        return meta

    def _target_metadata(self) -> dict[str, Any]:
        return {}

    def _restore_target_metadata(self, meta: dict[str, Any]) -> None:
        pass

    def save(self, path: Any) -> None:
        """Write the fitted estimator to a deltanet model file (:func:`deltanet.save`; no pickle).

        The file holds the network's description and arrays and, as JSON, the
        hyper-parameters, the labels (``classes_``, also as the file's
        ``preprocessing["class_names"]`` convention), the feature names and the
        training curve. Read it back with ``type(est).load(path)``; the file is
        also a plain deltanet model file (``deltanet.load(path)`` gives the network).
        """
        from .. import io as dnio

        check_is_fitted(self, "network_")
        dnio.save(self.network_, path, preprocessing=self._preprocessing(), metadata={"sklearn": self._metadata()})

    def _preprocessing(self) -> dict[str, Any]:
        return {}

    # -- pickling ------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """The hyper-parameters, the fitted attributes and the network's description and arrays.

        Not pickled: the trainer itself (its copies of the data, its batch
        buffers, a second copy of the weights) and the network's scratch
        (cached activations, gradients), which made a pickle many times the
        size of the weights. Pickled instead: the trainer's
        :meth:`~deltanet.training.Trainer.state_dict` without the weights (the
        optimizer's moments, schedule, shuffle and dropout generators, epoch),
        from which the first ``partial_fit`` after unpickling rebuilds the
        trainer, so it continues exactly as the pickled estimator would have.
        The pickle is about (1 + k) times the weights' bytes, k the optimizer's
        per-weight state (Adam 2, SGD with momentum 1, plain SGD 0), plus a few
        KB. Predictions are exactly those of the pickled estimator.
        """
        state = dict(super().__getstate__())
        trainer = state.pop("_trainer", None)
        state.pop("_best_state", None)
        if trainer is not None:
            try:
                training = trainer.state_dict()
            except (TypeError, ValueError, NotImplementedError):   # a state that cannot be captured: start afresh
                training = None
            if training is not None:
                training["model"] = None      # the weights travel once, in network_
                state["_trainer_state"] = training
        net = state.get("network_")
        if isinstance(net, Module):
            state["network_"] = _PickledNetwork(
                config=net.config(),
                arrays={name: backend.to_numpy(a) for name, a in net.state_dict().items()},
                generators=[g.bit_generator.state for g in net.generators()])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        net = state.get("network_")
        if isinstance(net, _PickledNetwork):
            state["network_"] = net.rebuild()
        state.setdefault("_trainer", None)
        super().__setstate__(state)

    @classmethod
    def load(cls, path: Any) -> BaseMLP:
        """Read an estimator written by :meth:`save`; it predicts exactly as the saved one did.

        The optimizer state is not stored: ``partial_fit`` on a loaded estimator starts a
        fresh optimizer from the loaded weights.
        """
        from .. import io as dnio

        model_file = dnio.load_model_file(path)
        meta = model_file.metadata.get("sklearn")
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: not written by {cls.__name__}.save (no scikit-learn metadata); "
                             "use deltanet.load for a plain model file")
        if meta.get("format") != MODEL_FORMAT or meta.get("estimator") != cls.__name__:
            raise ValueError(f"{path}: holds a {meta.get('estimator')!r} ({meta.get('format')!r}), "
                             f"expected {cls.__name__} ({MODEL_FORMAT!r})")
        est = cls(**_params_from_json(meta["params"]))
        est.network_ = model_file.model
        est.n_features_in_ = int(meta["n_features_in_"])
        if "feature_names_in_" in meta:
            est.feature_names_in_ = numpy.asarray(meta["feature_names_in_"], dtype=object)
        est.n_outputs_ = int(meta["n_outputs_"])
        est.n_layers_ = len(est._linear_layers()) + 1
        est.n_iter_ = int(meta["n_iter_"])
        est.t_ = int(meta["t_"])
        est.loss_curve_ = [float(v) for v in meta["loss_curve_"]]
        est.loss_ = est.loss_curve_[-1] if est.loss_curve_ else None
        est.validation_scores_ = meta["validation_scores_"]
        est.best_validation_score_ = meta["best_validation_score_"]
        est.best_loss_ = None if est.validation_scores_ is not None else min(est.loss_curve_, default=None)
        est._random_state = check_random_state(est.random_state)
        est._trainer = None
        est._restore_target_metadata(meta)
        return est


def _host_view(a: Any) -> numpy.ndarray:
    """``a`` itself on NumPy (a view, no copy); a host copy on another backend."""
    return a if isinstance(a, numpy.ndarray) else backend.to_numpy(a)


class _PickledNetwork:
    """A network in a pickle: its config, its parameter and buffer arrays and its generators' states."""

    __slots__ = ("arrays", "config", "generators")

    def __init__(self, config: dict[str, Any], arrays: dict[str, Any], generators: list[dict[str, Any]]) -> None:
        self.config = config
        self.arrays = arrays
        self.generators = generators

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "arrays": self.arrays, "generators": self.generators}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config, self.arrays, self.generators = state["config"], state["arrays"], state["generators"]

    def rebuild(self) -> Module:
        net = build(self.config)
        net.load_state_dict(self.arrays)
        gens = net.generators()
        if len(gens) == len(self.generators):
            for g, st in zip(gens, self.generators, strict=True):
                g.bit_generator.state = st
        return net


#: network -> its float64 copy used for prediction (weak keys: dropped with the network).
_TWINS: weakref.WeakKeyDictionary[Module, Module] = weakref.WeakKeyDictionary()


def _float64_twin(net: Module) -> Module:
    """A float64 copy of ``net`` holding its current weights and buffers (``net`` itself if already float64).

    Predictions are computed in float64 even for a float32 network: float32 matrix
    products may round a row differently depending on the other rows of the batch
    (the BLAS kernel and alignment vary with the shape), and scikit-learn expects a
    sample's prediction not to depend on the batch it comes in. The copy is built
    once per network and refreshed from the network's arrays (one copy of the
    weights) on every call, so it always predicts with the current weights.
    """
    if all(getattr(m, "dtype", numpy.float64) == numpy.float64 for m in net.modules()):
        return net
    twin = _TWINS.get(net)
    if twin is None:
        twin = _TWINS[net] = build(_float64_config(net.config()))
    twin.load_state_dict(net.state_dict())
    return twin


def _float64_config(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: "float64" if k == "dtype" else _float64_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_float64_config(v) for v in config]
    return config


def _jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        if isinstance(v, numpy.random.RandomState):
            v = None  # a generator's state is not a hyper-parameter worth keeping
        elif isinstance(v, numpy.dtype) or (isinstance(v, type) and issubclass(v, numpy.generic)):
            v = numpy.dtype(v).name
        elif isinstance(v, tuple):
            v = {"__tuple__": list(v)}
        elif isinstance(v, dict):
            v = {"__dict__": [[_scalar(a), _scalar(b)] for a, b in v.items()]}
        elif isinstance(v, numpy.generic):
            v = v.item()
        elif isinstance(v, float) and math.isinf(v):
            v = {"__float__": "inf"}
        out[k] = v
    return out


def _params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        if isinstance(v, dict) and "__tuple__" in v:
            v = tuple(v["__tuple__"])
        elif isinstance(v, dict) and "__dict__" in v:
            v = {a: b for a, b in v["__dict__"]}
        elif isinstance(v, dict) and "__float__" in v:
            v = float(v["__float__"])
        out[k] = v
    return out


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, numpy.generic) else v
