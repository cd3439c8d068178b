"""Full-batch L-BFGS: SciPy's L-BFGS-B over the flat parameter vector, loss and gradient from backprop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy

from .. import backend
from ..constraints import check
from ..errors import NonFiniteError
from ..parameter import Parameter


class LBFGS:
    r"""Limited-memory BFGS on the whole training set: a quasi-Newton method for small data.

    Unlike the mini-batch optimizers (:class:`SGD`, :class:`Adam`, ...), which
    take one step per batch from that batch's gradient, L-BFGS minimizes the
    loss of *all* the data, f(theta) = L(X, y; theta) + lambda/2 sum ||W||^2, over
    the flat vector theta of every parameter. Each evaluation is one forward and
    one backward pass over the whole set (deltanet's own backprop); SciPy's
    ``scipy.optimize.minimize(method="L-BFGS-B")`` builds the curvature model
    from the last ``history_size`` gradient differences and chooses each step by
    a line search (so there is no learning rate). Needs SciPy.

    Parameters
    ----------
    params : iterable of Parameter
    max_iter : int
        Most L-BFGS iterations per :meth:`minimize` (SciPy's ``maxiter``).
    max_fun : int
        Most loss-and-gradient evaluations (SciPy's ``maxfun``).
    tol : float
        Stop when the largest gradient component is at or below ``tol`` (SciPy's ``gtol``).
    history_size : int
        Correction pairs kept (SciPy's ``maxcor``).
    weight_decay : float
        lambda of the L2 term, on parameters marked for decay (weights, not biases).

    Notes
    -----
    Use it by itself::

        opt = LBFGS(net.parameters(), max_iter=200)
        result = opt.minimize(net, dn.SoftmaxCrossEntropy(), X, y)   # scipy.optimize.OptimizeResult

    or through the :class:`~deltanet.training.Trainer` with ``optimizer="lbfgs"``
    (``epochs`` is ``max_iter``; one history record per iteration). The model
    is evaluated in training mode on the whole set: batch normalization uses the
    statistics of all the data; a model with dropout is refused (its objective
    would change from one evaluation to the next, which a line search cannot
    handle). The iterate's memory (the correction pairs) lives inside one
    :meth:`minimize` call: a second call starts from the current weights with an
    empty history.
    """

    #: No learning rate: the line search sets each step. Kept for code that reads ``optimizer.lr``.
    lr = 1.0
    decoupled = False

    def __init__(self, params: Iterable[Parameter], max_iter: int = 200, max_fun: int = 15000, tol: float = 1e-5,
                 history_size: int = 10, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("LBFGS: no parameters to optimize")
        self.max_iter = check("epochs", max_iter, "max_iter")
        self.max_fun = check("epochs", max_fun, "max_fun")
        self.tol = check("min_delta", tol, "tol")
        self.history_size = check("epochs", history_size, "history_size")
        self.weight_decay = check("weight_decay", weight_decay)
        self.step_count = 0
        self.n_evaluations = 0
        #: Norm of the gradient at the last evaluation (at an iteration's end: the accepted point's).
        self.last_grad_norm: float | None = None

    # -- the flat vector ----------------------------------------------------------
    def _sizes(self) -> list[int]:
        return [p.size for p in self.params]

    def get_flat(self) -> numpy.ndarray:
        """theta: every parameter's values, float64, each in column-major (``"F"``) order."""
        return numpy.concatenate([backend.to_numpy(p.value).ravel(order="F").astype(numpy.float64) for p in self.params])

    def set_flat(self, theta: numpy.ndarray) -> None:
        """Write ``theta`` (from :meth:`get_flat`'s layout) into the parameters, in place."""
        start = 0
        for p in self.params:
            end = start + p.size
            p.value[...] = backend.xp.asarray(theta[start:end].reshape(p.shape, order="F"))
            start = end

    def _flat_grad(self) -> numpy.ndarray:
        return numpy.concatenate([backend.to_numpy(p.grad).ravel(order="F").astype(numpy.float64) for p in self.params])

    def _decay_mask(self) -> numpy.ndarray:
        return numpy.concatenate([numpy.full(p.size, bool(p.decay)) for p in self.params])

    # -- the objective --------------------------------------------------------------
    def objective(self, model: Any, loss: Any, X: Any, y: Any, sample_weight: Any = None
                  ) -> Callable[[numpy.ndarray], tuple[float, numpy.ndarray]]:
        """theta -> (f(theta), grad f(theta)): one forward and one backward pass over ``(X, y)``.

        A non-finite loss gives ``(inf, 0)`` (the line search then shortens the step)."""
        mask = self._decay_mask() if self.weight_decay else None
        lam = self.weight_decay

        def fun(theta: numpy.ndarray) -> tuple[float, numpy.ndarray]:
            self.n_evaluations += 1
            self.set_flat(theta)
            try:
                with numpy.errstate(over="ignore", invalid="ignore"):
                    out = model.forward(X, training=True)
                    f = float(loss.forward(out, y, sample_weight))
            except NonFiniteError:
                return math.inf, numpy.zeros_like(theta)
            model.zero_grad()
            model.backward(loss.backward())
            g = self._flat_grad()
            if mask is not None:
                w = theta[mask]
                f += 0.5 * lam * float(w @ w)
                g[mask] += lam * w
            if not (math.isfinite(f) and numpy.isfinite(g).all()):
                return math.inf, numpy.zeros_like(theta)
            self.last_grad_norm = float(numpy.linalg.norm(g))
            return f, g

        return fun

    def minimize(self, model: Any, loss: Any, X: Any, y: Any, sample_weight: Any = None, *,
                 max_iter: int | None = None, callback: Callable[[Any], Any] | None = None) -> Any:
        """Minimize the loss of all of ``(X, y)`` from the current weights; returns SciPy's ``OptimizeResult``.

        Parameters
        ----------
        model : Module
            Holds :attr:`params` (the weights are left at the result's ``x``).
        loss : Loss
        X, y, sample_weight
            The whole training set, as ``model.forward`` and ``loss.forward`` take it.
        max_iter : int, optional
            Overrides :attr:`max_iter` for this call.
        callback : callable, optional
            ``callback(result)`` after every iteration, with ``result.x`` and
            ``result.fun`` (SciPy's intermediate ``OptimizeResult``); raising
            ``StopIteration`` ends the minimization.

        Returns
        -------
        scipy.optimize.OptimizeResult
            ``status`` is 0 when the gradient test (``tol``) or SciPy's
            relative-reduction test ended it, 1 when ``max_iter`` or ``max_fun``
            did; ``nit`` and ``nfev`` count iterations and evaluations.
        """
        try:
            from scipy.optimize import minimize
        except ImportError as exc:  # pragma: no cover - scipy comes with scikit-learn
            raise ImportError("LBFGS needs SciPy: pip install scipy") from exc
        from ..modules.dropout import Dropout
        from ..modules.linear import Linear

        if any(isinstance(m, Dropout) and m.rate > 0 for m in model.modules()):
            raise ValueError("LBFGS: the model has dropout, which makes the full-batch objective random; "
                             "use a mini-batch optimizer (sgd, adam) or dropout=0")
        own = {id(p) for p in self.params}
        if any(id(p) not in own for p in model.parameters()):
            raise ValueError("LBFGS: the optimizer does not hold all of model.parameters()")
        fun = self.objective(model, loss, X, y, sample_weight)
        iterations = self.max_iter if max_iter is None else check("epochs", max_iter, "max_iter")
        start = time.perf_counter()

        def each_iteration(intermediate_result: Any) -> None:   # SciPy passes an OptimizeResult to this name
            if callback is not None:
                callback(intermediate_result)

        first = model
        while first.children():
            first = first.children()[0]
        skip = isinstance(first, Linear) and first.input_grad
        if skip:
            first.input_grad = False          # nothing needs dL/dX, which costs as much as the layer's forward product
        try:
            result = minimize(fun, self.get_flat(), method="L-BFGS-B", jac=True, callback=each_iteration,
                              options={"maxiter": iterations, "maxfun": self.max_fun, "gtol": self.tol,
                                       "maxcor": self.history_size})
        finally:
            if skip:
                first.input_grad = True
        self.set_flat(result.x)
        self.step_count += int(result.nit)
        result.time = time.perf_counter() - start
        return result

    # -- what the trainer and checkpoints read ----------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {"max_iter": self.max_iter, "max_fun": self.max_fun, "tol": self.tol,
                "history_size": self.history_size, "weight_decay": self.weight_decay}

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        """No state between calls (the correction pairs live inside one :meth:`minimize`)."""
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters(),
                "step_count": self.step_count, "state": {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type") != type(self).__name__:
            raise ValueError(f"LBFGS.load_state_dict: state is for {state.get('type')!r}, not LBFGS")
        for k, v in state["hyperparameters"].items():
            setattr(self, k, v)
        self.step_count = int(state["step_count"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"LBFGS({args})"


__all__ = ["LBFGS"]
