"""``MLPRegressor``: single- and multi-output regression (mean squared error)."""

from __future__ import annotations

from typing import Any

import numpy
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score

from ..losses import Loss, MeanSquaredError
from ._base import BaseMLP


class MLPRegressor(RegressorMixin, BaseMLP):
    r"""Multi-layer perceptron regressor trained by deltanet's explicit backpropagation.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor` (same parameter
    names where the meaning is the same; the squared error is the only loss).
    The output layer is linear (identity) with one unit per target column;
    the loss is :class:`~deltanet.MeanSquaredError`, the mean over samples and
    outputs of (y - t)^2 (scikit-learn reports half of it).

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
    warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
    beta_1, beta_2, epsilon, n_iter_no_change, rho, dropout, batch_norm, clip_norm,
    weight_init, dtype, device
        As for :class:`~deltanet.sklearn.MLPClassifier`; with ``early_stopping``
        the validation score is R^2 (:func:`sklearn.metrics.r2_score`) on a
        random (not stratified) split.

    Attributes
    ----------
    n_features_in_, feature_names_in_, network_, loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_, n_iter_, t_, n_layers_,
    coefs_, intercepts_
        As for :class:`~deltanet.sklearn.MLPClassifier` (the loss is the MSE).
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

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    out_activation_ = "identity"

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

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``(X, y)``, continuing the network and the optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> numpy.ndarray:
        """Predicted targets, shaped as ``y`` was in ``fit``."""
        out = self._forward(self._check_X(X))
        return out.ravel() if self._y_ndim == 1 else out

    # -- hooks ---------------------------------------------------------------------------
    def _task(self) -> str:
        return "regression"

    def _loss(self) -> Loss:
        return MeanSquaredError()

    def _encode_targets(self, y: Any, *, first: bool, classes: Any = None) -> Any:
        if y.ndim not in (1, 2):
            raise ValueError(f"y must have shape (n_samples,) or (n_samples, n_outputs); got {y.shape}")
        n_out = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self._y_ndim = y.ndim
            self.n_outputs_ = n_out
        elif n_out != self.n_outputs_:
            raise ValueError(f"y has {n_out} output columns; {type(self).__name__} was fitted with {self.n_outputs_}")
        return numpy.asarray(y, dtype=self._network_dtype()).reshape(y.shape[0], n_out)

    def _validation_score(self, X: Any, y_enc: Any, sample_weight: Any) -> float:
        return float(r2_score(y_enc, self._forward(X), sample_weight=sample_weight))

    def _target_metadata(self) -> dict[str, Any]:
        return {"y_ndim": int(self._y_ndim)}

    def _restore_target_metadata(self, meta: dict[str, Any]) -> None:
        self._y_ndim = int(meta["y_ndim"])
