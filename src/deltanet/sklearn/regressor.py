"""``MLPRegressor``: single- and multi-output regression (mean squared error)."""

from __future__ import annotations

from typing import Any

import numpy
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if

from ..losses import Loss
from ._base import BaseMLP
from ._losses import HalfPoissonDeviance, HalfSquaredError


class MLPRegressor(RegressorMixin, BaseMLP):
    r"""Multi-layer perceptron regressor trained by deltanet's explicit backpropagation.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor` (same parameter
    names where the meaning is the same). The output layer is linear (identity)
    with one unit per target column; with ``loss="squared_error"`` the objective is scikit-learn's, 1/(2n) sum_i sum_j (y_ij - t_ij)^2 plus
    alpha/(2n) sum ||W||^2 (:class:`~deltanet.sklearn._losses.HalfSquaredError`);
    ``loss_curve_`` holds scikit-learn's values (the squared-error part averaged
    over the outputs too, as scikit-learn reports it).

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
    warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
    beta_1, beta_2, epsilon, n_iter_no_change, max_fun, rho, dropout, batch_norm, clip_norm,
    weight_init, dtype, device
        As for :class:`~deltanet.sklearn.MLPClassifier`; with ``early_stopping``
        the validation score is R^2 (:func:`sklearn.metrics.r2_score`) on a
        random (not stratified) split.
    loss : {"squared_error", "poisson"}, default="squared_error"
        ``"poisson"``: half the Poisson deviance with a log link, as scikit-learn's
        (:class:`~deltanet.sklearn._losses.HalfPoissonDeviance`): the network's output z is
        the log of the predicted mean, ``predict`` returns exp(z) (``out_activation_`` is
        ``"exp"``); targets must be >= 0. Keyword-only here (scikit-learn's first positional
        parameter is ``loss``; deltanet's is ``hidden_layer_sizes``).

    Attributes
    ----------
    n_features_in_, feature_names_in_, network_, loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_, n_iter_, t_, n_layers_,
    coefs_, intercepts_
        As for :class:`~deltanet.sklearn.MLPClassifier` (the loss is half the MSE).
    n_outputs_ : int
        Target columns.
    out_activation_ : str
        ``"identity"``.

    Notes
    -----
    ``predict`` returns an array of the shape ``y`` had in ``fit``: (n_samples,)
    for a 1-D ``y``, (n_samples, n_outputs) for a 2-D one. Scale the targets
    (e.g. :class:`sklearn.compose.TransformedTargetRegressor`) when they are far
    from unit size: the network's output layer starts near zero.

    Examples
    --------
    >>> import numpy as np
    >>> from deltanet.sklearn import MLPRegressor
    >>> X = np.linspace(-2, 2, 200)[:, None]
    >>> reg = MLPRegressor((32, 32), max_iter=300, learning_rate_init=1e-2, random_state=0).fit(X, np.sin(2 * X[:, 0]))
    >>> reg.score(X, np.sin(2 * X[:, 0])) > 0.95
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
                 loss: str = "squared_error", device: str = "cpu") -> None:
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
            momentum=momentum, nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, max_fun=max_fun, rho=rho, dropout=dropout, batch_norm=batch_norm, clip_norm=clip_norm,
            weight_init=weight_init, dtype=dtype, device=device)
        self.loss = loss

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags

    @property
    def out_activation_(self) -> str:
        """``"identity"``, or ``"exp"`` for ``loss="poisson"`` (the network's output is the log of the mean)."""
        return "exp" if self.loss == "poisson" else "identity"

    def _poisson(self) -> bool:
        return self.loss == "poisson"

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train on ``X`` of shape (n_samples, n_features) and targets ``y`` of shape
        (n_samples,) or (n_samples, n_outputs).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights: the loss is the weighted mean sum_i w_i l_i / sum_i w_i.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``(X, y)``, continuing the network and the optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> numpy.ndarray:
        """Predicted targets, shaped as ``y`` was in ``fit``."""
        out = self._mean(self._forward(self._check_X(X)))
        return out.ravel() if self._y_ndim == 1 else out

    # -- hooks ---------------------------------------------------------------------------
    def _task(self) -> str:
        return "regression"

    def _loss(self) -> Loss:
        return HalfPoissonDeviance() if self._poisson() else HalfSquaredError()

    def _objective_loss(self) -> Loss:
        return HalfPoissonDeviance() if self._poisson() else HalfSquaredError(report="objective")

    def _report_factor(self) -> float:
        return 1.0 if self._poisson() else float(self.n_outputs_)

    def _encode_targets(self, y: Any, *, first: bool, classes: Any = None) -> Any:
        if y.ndim not in (1, 2):
            raise ValueError(f"y must have shape (n_samples,) or (n_samples, n_outputs); got {y.shape}")
        n_out = 1 if y.ndim == 1 else y.shape[1]
        if self._poisson() and (numpy.asarray(y) < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        if first:
            self._y_ndim = y.ndim
            self.n_outputs_ = n_out
        elif n_out != self.n_outputs_:
            raise ValueError(f"y has {n_out} output columns; {type(self).__name__} was fitted with {self.n_outputs_}")
        return numpy.asarray(y, dtype=self._network_dtype()).reshape(y.shape[0], n_out)

    def _validation_score(self, X: Any, y_enc: Any, sample_weight: Any) -> float:
        return float(r2_score(y_enc, self._mean(self._forward(X)), sample_weight=sample_weight))

    def _mean(self, z: numpy.ndarray) -> numpy.ndarray:
        """The predicted mean from the network's output: exp(z) for Poisson (log link), z otherwise."""
        return numpy.exp(z, out=z) if self._poisson() else z

    def _target_metadata(self) -> dict[str, Any]:
        return {"y_ndim": int(self._y_ndim)}

    def _restore_target_metadata(self, meta: dict[str, Any]) -> None:
        self._y_ndim = int(meta["y_ndim"])
