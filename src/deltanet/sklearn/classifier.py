"""``MLPClassifier``: binary, multiclass (softmax) and multi-label (sigmoid) classification."""

from __future__ import annotations

from typing import Any

import numpy
from sklearn.base import ClassifierMixin
from sklearn.utils import column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target

from ..losses import Loss, SoftmaxCrossEntropy
from ..modules.activations import sigmoid
from ._base import BaseMLP
from ._losses import MultilabelLogLoss

_SUPPORTED = ("binary", "multiclass", "multilabel-indicator")


class MLPClassifier(ClassifierMixin, BaseMLP):
    r"""Multi-layer perceptron classifier trained by deltanet's explicit backpropagation.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` (same parameter
    names where the meaning is the same) with deltanet's training: the solvers
    ``sgd``, ``adam``, ``adamw``, ``rmsprop`` and full-batch ``lbfgs``, dropout,
    batch normalization, gradient clipping, learning-rate schedules, sparse input,
    float32 when the data are float32.

    Targets: 1-D labels (multiclass: a softmax output over the classes,
    :class:`~deltanet.SoftmaxCrossEntropy`; binary: one logistic output unit, the
    logit of ``classes_[1]``), or a 2-D 0/1 indicator matrix (multi-label: one
    sigmoid output per label). Binary and multi-label targets train on the
    log-loss summed over the outputs and averaged over the samples
    (:class:`~deltanet.sklearn._losses.MultilabelLogLoss`), scikit-learn's objective.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Width of each hidden layer; ``()`` gives a linear model.
    activation : {"identity", "logistic", "tanh", "relu", "leaky_relu"}, default="relu"
        Hidden activation (``leaky_relu`` has slope 0.01 for negative inputs; ``sigmoid`` is
        accepted as another name of ``logistic``).
    solver : {"adam", "adamw", "sgd", "rmsprop", "lbfgs"}, default="adam"
        Optimizer. ``lbfgs`` is full-batch L-BFGS (:class:`deltanet.optim.LBFGS`, SciPy's
        L-BFGS-B over the flat parameter vector, scikit-learn's choice for small data; no
        ``partial_fit``, no dropout); the others train on shuffled mini-batches.
    alpha : float, default=1e-4
        L2 strength, as in scikit-learn: the penalty ``alpha / (2 n_batch) * sum ||W||^2``
        over weight matrices (not biases or batch-norm parameters) is added to each
        batch's mean loss, i.e. a weight decay of ``alpha / n_batch``. With
        ``solver="adamw"`` that same coefficient is applied as decoupled weight decay.
    batch_size : int or "auto", default="auto"
        Rows per mini-batch; ``"auto"`` is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive", "cosine"}, default="constant"
        Schedule of the step size, for every solver (scikit-learn applies it to
        ``sgd`` only): ``invscaling`` sets ``learning_rate_init / (t + 1)**power_t``
        after each epoch (t = samples seen); ``adaptive`` divides the rate by 5
        each time ``n_iter_no_change`` epochs pass without an improvement of
        ``tol`` (and stops once it is at or below 1e-6); ``cosine`` anneals it
        to 0 over ``max_iter`` epochs.
    learning_rate_init : float > 0, default=1e-3
        Initial step size.
    power_t : float, default=0.5
        Exponent of ``invscaling``.
    max_iter : int, default=200
        Maximum number of epochs (passes over the data). Reaching it without
        converging warns with :class:`~sklearn.exceptions.ConvergenceWarning`.
    shuffle : bool, default=True
        Shuffle the rows before every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, the dropout masks and the validation
        split; an int gives the same model on every fit.
    tol : float, default=1e-4
        Convergence tolerance: training stops when the training loss (or, with
        ``early_stopping``, the validation score) has not improved by ``tol`` for
        ``n_iter_no_change`` consecutive epochs.
    verbose : bool or int, default=False
        Print the loss after each epoch.
    warm_start : bool, default=False
        ``fit`` continues from the fitted network instead of starting anew (a
        fresh optimizer, the same weights).
    momentum : float in [0, 1), default=0.9
        Momentum of ``sgd``.
    nesterovs_momentum : bool, default=True
        Nesterov momentum for ``sgd`` (when ``momentum > 0``).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified by class, for binary and
        multiclass targets too; a class with fewer than 2 members, or fewer held-out rows
        than classes, is refused with scikit-learn's error), score it
        (accuracy) after each epoch, stop when it stops improving and keep the
        weights of the best epoch.
    validation_fraction : float in [0, 1), default=0.1
        Held-out fraction for ``early_stopping`` (which needs it > 0).
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Decay rates of the moment estimates of ``adam`` / ``adamw``.
    epsilon : float > 0, default=1e-8
        Stabilizer of ``adam`` / ``adamw`` / ``rmsprop``.
    n_iter_no_change : int or numpy.inf, default=10
        Epochs without an improvement of ``tol`` before stopping.
    max_fun : int, default=15000
        ``lbfgs`` only: the most loss-and-gradient evaluations (``max_iter`` is its most
        iterations, ``tol`` its gradient tolerance). Reaching either limit warns with
        :class:`~sklearn.exceptions.ConvergenceWarning`.
    rho : float in [0, 1), default=0.99
        Decay rate of ``rmsprop``'s running mean of squared gradients.
    dropout : float in [0, 1), default=0.0
        Dropout rate after each hidden activation (training only: off in predict).
    batch_norm : bool, default=False
        Batch normalization between each hidden linear layer and its activation
        (batch statistics in training, running statistics in predict).
    clip_norm : float or None, default=None
        Clip the global gradient norm of each batch to this value.
    weight_init : str or None, default=None
        Initializer of the hidden layers' weights (``he_normal``, ``he_uniform``,
        ``xavier_normal``, ``xavier_uniform``); None: ``xavier_uniform``, as
        scikit-learn does, for every activation. The output layer is always
        ``xavier_uniform``; biases start at 0.
    dtype : {"float32", "float64"} or None, default=None
        Precision of the network, of the computation and of the predictions. None
        follows the data, as scikit-learn: float32 ``X`` trains a float32 network
        (about twice as fast), anything else (float64, integers, ...) a float64
        one; ``coefs_``, ``intercepts_`` and ``predict_proba`` / ``predict`` (the
        regressor's) have that dtype. Later ``partial_fit`` / warm-start data are
        converted to the network's dtype.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``; ``"balanced"``
        uses ``n_samples / (n_classes * bincount(y))``. Not for multi-label targets.
    device : {"cpu", "cuda"}, default="cpu"
        Where the network trains: ``"cuda"`` is an NVIDIA GPU through CuPy
        (``pip install 'deltanet[gpu]'``; a ``RuntimeError`` without it).
        Predictions, ``coefs_`` and saved files are NumPy arrays either way.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (for multi-label targets: the column indices ``0..K-1``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Present when ``X`` had string column names (a pandas DataFrame).
    network_ : deltanet.Sequential
        The fitted deltanet network (outputs logits); inspect it, plot it,
        save it with :func:`deltanet.save`, or call
        ``network_.forward(X, training=False)``.
    loss_ : float
        Training loss of the last epoch (its mean over the batches, L2 term included, as in scikit-learn).
    loss_curve_ : list of float
        Training loss of every epoch (``lbfgs``: of every iteration).
    best_loss_ : float or None
        Lowest training loss (None with ``early_stopping``).
    validation_scores_ : list of float or None
        Validation accuracy of every epoch (``early_stopping`` only).
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last ``fit`` (counted across ``partial_fit`` calls).
    t_ : int
        Training samples seen.
    n_layers_ : int
        Layers including input and output, as in scikit-learn.
    n_outputs_ : int
        Output units: classes (1 for a binary target, as in scikit-learn), or labels for multi-label targets.
    out_activation_ : str
        ``"softmax"`` or ``"logistic"`` (binary, multi-label).
    coefs_, intercepts_ : lists of ndarray
        The linear layers' weights ``(n_in, n_out)`` and biases, as in scikit-learn: views of the
        network's arrays (in-place edits change the network), settable with lists of arrays.

    Notes
    -----
    Differences from scikit-learn's MLP: a row with zero ``sample_weight`` is dropped before
    training (it is absent, also from the batch-norm statistics); the learning
    rate schedules apply to every solver.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from deltanet.sklearn import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), MLPClassifier((64,), dropout=0.1, batch_norm=True,
    ...                                                     solver="adamw", random_state=0))
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    """

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
                 alpha: float = 1e-4, batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 1e-3, power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool | int = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 n_iter_no_change: int = 10, max_fun: int = 15000, rho: float = 0.99, dropout: float = 0.0, batch_norm: bool = False,
                 clip_norm: float | None = None, weight_init: str | None = None, dtype: Any = None,
                 class_weight: Any = None, device: str = "cpu") -> None:
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
            momentum=momentum, nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, max_fun=max_fun, rho=rho, dropout=dropout, batch_norm=batch_norm, clip_norm=clip_norm,
            weight_init=weight_init, dtype=dtype, device=device)
        self.class_weight = class_weight

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags

    # -- public API ------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train on ``X`` of shape (n_samples, n_features) and labels ``y`` of shape
        (n_samples,) or a 0/1 indicator matrix (n_samples, n_labels).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights: the loss is the weighted mean sum_i w_i l_i / sum_i w_i.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> MLPClassifier:
        """One epoch over ``(X, y)``, continuing the network and the optimizer state.

        ``classes`` (every label that will ever appear) is required on the first call.
        """
        if not hasattr(self, "network_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit (all the labels that will "
                             "appear in later calls)")
        if classes is not None and hasattr(self, "network_"):
            given = numpy.unique(numpy.asarray(classes))
            if not getattr(self, "_multilabel", False) and not numpy.array_equal(given, self.classes_):
                raise ValueError(f"classes={given!r} is not the same as on the first call to partial_fit, "
                                 f"which was {self.classes_!r}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X: Any) -> numpy.ndarray:
        """Class probabilities, shape (n_samples, n_classes): softmax of the network's logits
        (multi-label: the sigmoid of each label's logit, shape (n_samples, n_labels))."""
        z = self._forward(self._check_X(X))
        if self._multilabel:
            return sigmoid(z, out=z)
        if self._binary:
            p = sigmoid(z[:, 0])
            return numpy.stack([1.0 - p, p], axis=1)
        z -= z.max(axis=1, keepdims=True)
        numpy.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def predict_log_proba(self, X: Any) -> numpy.ndarray:
        """``log(predict_proba(X))``, as scikit-learn computes it (``-inf`` where a probability underflows
        to 0, so the two methods always agree)."""
        with numpy.errstate(divide="ignore"):
            return numpy.log(self.predict_proba(X))

    def predict(self, X: Any) -> numpy.ndarray:
        """Predicted labels, shape (n_samples,) (multi-label: a 0/1 matrix (n_samples, n_labels))."""
        z = self._forward(self._check_X(X))
        if self._multilabel:
            return (z > 0).astype(numpy.int64)
        if self._binary:
            return self.classes_[(z[:, 0] > 0).astype(numpy.intp)]
        return self.classes_[z.argmax(axis=1)]

    # -- hooks -------------------------------------------------------------------------
    @property
    def _binary(self) -> bool:
        """Two classes, single-label: one logistic output unit, as in scikit-learn."""
        # (a model file of an earlier version holds a two-output softmax network for two classes: n_outputs_ == 2)
        return not getattr(self, "_multilabel", True) and len(self.classes_) == 2 and getattr(self, "n_outputs_", 1) == 1

    def _task(self) -> str:
        return "multilabel" if getattr(self, "_multilabel", False) or self._binary else "classification"

    def _loss(self) -> Loss:
        return MultilabelLogLoss() if self._multilabel or self._binary else SoftmaxCrossEntropy()

    @property
    def out_activation_(self) -> str:
        """The output activation as scikit-learn names it: ``"softmax"`` or ``"logistic"`` (binary, multi-label)."""
        return "logistic" if self._multilabel or self._binary else "softmax"

    def _encode_targets(self, y: Any, *, first: bool, classes: Any = None) -> Any:
        name = type(self).__name__
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        kind = type_of_target(y, input_name="y")
        if kind not in _SUPPORTED:
            if kind.startswith("continuous") or kind == "unknown":
                raise ValueError(f"Unknown label type: {kind!r}. {name} needs class labels (or a 0/1 indicator "
                                 "matrix); for continuous targets use MLPRegressor")
            raise ValueError(f"{name} supports {', '.join(_SUPPORTED)} targets; got {kind!r}")
        multilabel = kind == "multilabel-indicator"
        if first:
            self._multilabel = multilabel
            if multilabel:
                labels = numpy.arange(y.shape[1]) if classes is None else numpy.asarray(classes)
                if labels.shape != (y.shape[1],):
                    raise ValueError(f"multi-label y has {y.shape[1]} columns but classes has {labels.shape[0]} entries")
                self.classes_ = labels
            else:
                self.classes_ = numpy.unique(y if classes is None else numpy.asarray(classes))
                if self.classes_.shape[0] < 2:
                    raise ValueError(f"{name} needs samples of at least 2 classes in the data, but the data contains "
                                     f"only 1 class: {self.classes_[0]!r}")
            self.n_outputs_ = 1 if len(self.classes_) == 2 and not multilabel else len(self.classes_)
        elif multilabel != self._multilabel:
            fitted_on = "multi-label" if self._multilabel else "single-label"
            raise ValueError(f"{name} was fitted on {fitted_on} targets; got {kind!r} targets now")
        if multilabel:
            if y.shape[1] != self.n_outputs_:
                raise ValueError(f"y has {y.shape[1]} label columns; {name} was fitted with {self.n_outputs_}")
            return y.astype(self._network_dtype(), copy=False)
        if getattr(self, "_warm_fit", False):
            labels = numpy.unique(y)
            if set(labels.tolist()) != set(self.classes_.tolist()):
                raise ValueError("warm_start can only be used where `y` has the same classes as in the previous call "
                                 f"to fit. Previously got {self.classes_}, `y` has {labels}")
        idx = numpy.searchsorted(self.classes_, y)
        idx[idx == len(self.classes_)] = 0
        unknown = self.classes_[idx] != y
        if unknown.any():
            raise ValueError(f"y contains labels not in classes_ {self.classes_!r}: {numpy.unique(y[unknown])!r}")
        if self._binary:
            return idx.astype(self._network_dtype()).reshape(-1, 1)
        return idx.astype(numpy.int64)

    def _class_index(self, y_enc: Any) -> Any:
        """Class indices of encoded single-label targets."""
        return y_enc[:, 0].astype(numpy.int64) if self._binary else y_enc

    def _target_sample_weight(self, y_enc: Any, *, incremental: bool) -> Any:
        cw = self._validated["class_weight"]
        if cw is None:
            return None
        if self._multilabel:
            raise ValueError("class_weight is not supported for multi-label targets; pass sample_weight instead")
        if isinstance(cw, str) and incremental:
            raise ValueError("class_weight='balanced' is not supported for partial_fit (one batch's class "
                             "frequencies are not the data's); pass a dict computed from all the data")
        idx = self._class_index(y_enc)
        weights = compute_class_weight(cw, classes=self.classes_, y=self.classes_[idx])
        return weights[idx]

    def _stratify(self, y_enc: Any) -> Any:
        if self._multilabel:
            return None
        # every class in both parts; too few members of a class is scikit-learn's (train_test_split's) error
        return self._class_index(y_enc)

    def _validation_score(self, X: Any, y_enc: Any, sample_weight: Any) -> float:
        z = self._forward(X)
        if self._multilabel or self._binary:
            correct = ((z > 0) == (y_enc > 0.5)).all(axis=1)
        else:
            correct = z.argmax(axis=1) == y_enc
        return float(numpy.average(correct, weights=sample_weight))

    def _target_metadata(self) -> dict[str, Any]:
        return {"classes_": self.classes_.tolist(), "classes_dtype": self.classes_.dtype.str,
                "multilabel": bool(self._multilabel)}

    def _preprocessing(self) -> dict[str, Any]:
        # the labels of the outputs: a binary network has one output (the logit of classes_[1])
        return {} if self._multilabel or self._binary else {"class_names": [str(c) for c in self.classes_]}

    def _restore_target_metadata(self, meta: dict[str, Any]) -> None:
        dtype = numpy.dtype(meta["classes_dtype"])
        self.classes_ = numpy.asarray(meta["classes_"], dtype=dtype if dtype.kind != "O" else object)
        self._multilabel = bool(meta["multilabel"])

