"""Elementwise activations and softmax, with derivatives from the forward's own output.

Each activation keeps what its derivative needs -- the output ``h``, of which
the derivative is a function (sigmoid, tanh, ReLU, LeakyReLU, softmax) -- so
backward never recomputes the forward pass.

**The Linear's bias, moved here (a fused pair).** For a trainer's fit the fast
path may move the bias of the ``Linear`` layer just before an elementwise
activation into the activation (:func:`deltanet.accel.plan.bias_in_activations`;
:attr:`Activation.bias` is then that bias and the Linear's ``adds_bias`` is
False): the pair computes the same ``h = sigma(z + b)`` and ``dL/db = sum_n
delta``, ``delta = dL/dh * sigma'``, with the compiled one-pass kernels of
:mod:`deltanet.accel.kernels.activation` where they take the arrays, else with
the plain formulas below.
"""

from __future__ import annotations

from typing import Any

import numpy

from .. import accel, backend
from ..parameter import Parameter
from .base import Module


def _as_float_array(module: Module, x: Any) -> Any:
    if not hasattr(x, "dtype"):
        x = numpy.asarray(x)
    if x.dtype.kind != "f":
        if x.dtype.kind not in "iub":
            raise TypeError(f"{module._label()}: expected a numeric array, got dtype {x.dtype}")
        x = backend.xp.asarray(x, dtype=backend.get_default_dtype())
    return x


class Activation(Module):
    """Base of parameter-free elementwise maps h = sigma(z); shape is preserved."""

    registered = False

    def __init__(self) -> None:
        super().__init__()
        self._h: Any = None

    #: Subclasses whose map can write into a given array (``z`` itself included) define
    #: ``apply(z, out=None) -> sigma(z)``, which keeps nothing for backward; their ``forward``
    #: uses it too. :func:`deltanet.predict` applies them in place on a layer's output.
    apply: Any = None
    #: The bias of the Linear layer just before, while the fast path has moved it here (see the module's
    #: docstring; a hook, like ``Linear.input_grad``): ``forward`` maps ``z + b`` and ``backward`` also adds dL/db = sum_n delta to its gradient. None: the
    #: plain map. Only subclasses with a :attr:`kernel_name` take it.
    bias: Parameter | None = None
    #: This map's name in the bias + activation kernels (:data:`deltanet.accel.kernels.activation.CODES`), and
    #: its slope for LeakyReLU; None: it has no kernel and takes no moved bias.
    kernel_name: str | None = None
    kernel_alpha: float = 0.0

    def forward(self, x: Any, training: bool = False) -> Any:
        """h = sigma(x) (sigma(x + b) while a Linear's bias is moved here), kept for :meth:`backward`."""
        self._h = self._activate(x)
        return self._h

    def _activate(self, x: Any) -> Any:
        """sigma(x) by :meth:`apply`; sigma(x + b), in place, while the Linear's bias is moved here."""
        x = _as_float_array(self, x)
        if self.bias is None:
            return self.apply(x)
        kernel = accel.kernel("bias_activation", x)
        if kernel is not None:
            return kernel(x, self.bias.value, self.kernel_name, self.kernel_alpha)   # a new array: see its out
        x += self.bias.value                  # z + b: the Linear's own line, moved here
        return self.apply(x, out=x)

    def _delta(self, grad_out: Any, h: Any) -> Any:
        """dL/dz from dL/dh and the cached output h (the subclasses with :attr:`kernel_name`)."""
        raise NotImplementedError

    def backward(self, grad_out: Any) -> Any:
        h = self._cached()
        self._check_grad(grad_out, h)
        if self.bias is None:
            return self._delta(grad_out, h)
        kernel = accel.kernel("activation_backward_bias", grad_out, h)
        if kernel is not None:
            delta, db = kernel(grad_out, h, self.kernel_name, self.kernel_alpha)
            self.bias.accumulate(db)
            return delta
        delta = self._delta(grad_out, h)
        self.bias.accumulate_sum(delta.reshape(-1, delta.shape[-1]))   # db = sum over the batch of delta
        return delta

    def _cached(self) -> Any:
        if self._h is None:
            raise self._missing_forward()
        return self._h

    def _check_grad(self, grad_out: Any, like: Any) -> None:
        if grad_out.shape != like.shape:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {tuple(like.shape)}")


class Identity(Activation):
    """h = z; dL/dz = dL/dh."""

    def forward(self, x: Any, training: bool = False) -> Any:
        self._h = x = _as_float_array(self, x)
        return x

    def backward(self, grad_out: Any) -> Any:
        self._check_grad(grad_out, self._cached())
        return grad_out


class Sigmoid(Activation):
    r"""sigma(z) = 1 / (1 + e^{-z}), range (0, 1).

    $$\sigma(z) = \frac{1}{1 + e^{-z}}, \qquad \sigma'(z) = \sigma(z)\,\bigl(1 - \sigma(z)\bigr)$$

    Forward, overflow-free for any finite z: with e = exp(-|z|) <= 1,
    sigma(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0.

    Backward: dL/dz = dL/dh * h (1 - h), from the cached output h. The
    derivative is at most 1/4 and vanishes for large |z| -- the reference's
    vanishing-gradient problem.
    """

    kernel_name = "sigmoid"

    def apply(self, z: Any, out: Any = None) -> Any:
        return sigmoid(z, out=out)

    def _delta(self, grad_out: Any, h: Any) -> Any:
        g = grad_out * h
        g *= 1.0 - h                          # sigma' = sigma (1 - sigma)
        return g


class Tanh(Activation):
    r"""tanh(z), range (-1, 1), zero-centred.

    $$h = \tanh(z), \qquad \frac{\partial L}{\partial z} = \frac{\partial L}{\partial h} \odot (1 - h^2)$$

    Backward: dL/dz = dL/dh * (1 - h^2), from the cached output h.
    """

    kernel_name = "tanh"

    def apply(self, z: Any, out: Any = None) -> Any:
        return backend.xp.tanh(z, out=out)

    def _delta(self, grad_out: Any, h: Any) -> Any:
        d = h * h
        backend.xp.subtract(1.0, d, out=d)    # tanh' = 1 - tanh^2
        return grad_out * d


class ReLU(Activation):
    r"""ReLU(z) = max(0, z).

    $$\mathrm{ReLU}(z) = \max(0, z), \qquad \frac{\partial L}{\partial z} = \frac{\partial L}{\partial h} \odot [z > 0]$$

    Backward: dL/dz = dL/dh * [z > 0] (the derivative at 0 is taken as 0, as in
    the reference), using h > 0 <=> z > 0 from the cached output. Units whose
    output is 0 for every sample pass no gradient: the dying-ReLU problem
    (:meth:`dead_fraction` measures it).
    """

    kernel_name = "relu"

    def apply(self, z: Any, out: Any = None) -> Any:
        return backend.xp.maximum(z, 0, out=out)

    def _delta(self, grad_out: Any, h: Any) -> Any:
        return backend.xp.multiply(grad_out, h > 0)   # one product with the 0/1 mask (a where() is ~10x slower)

    def dead_fraction(self) -> float:
        """Fraction of units (last axis) that were 0 for every sample of the last forward batch."""
        h = self._cached()
        active = (h.reshape(-1, h.shape[-1]) > 0).any(axis=0)
        return float(1.0 - active.mean())


class LeakyReLU(Activation):
    r"""LeakyReLU(z) = z for z > 0, alpha z otherwise (alpha = 0.01 by default).

    $$
    \mathrm{LeakyReLU}(z) = \begin{cases} z & z > 0 \\ \alpha z & z \le 0 \end{cases},
    \qquad \frac{\partial h}{\partial z} = \begin{cases} 1 & z > 0 \\ \alpha & z \le 0 \end{cases}
    $$

    Backward: dL/dz = dL/dh * (1 if z > 0 else alpha), using h > 0 <=> z > 0
    (as 0 <= alpha < 1) from the cached output.
    """

    kernel_name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        if not 0.0 <= float(alpha) < 1.0:
            raise ValueError(f"LeakyReLU: alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)

    @property
    def kernel_alpha(self) -> float:          # type: ignore[override]
        return self.alpha

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def apply(self, z: Any, out: Any = None) -> Any:
        return backend.xp.maximum(z, self.alpha * z, out=out)    # = z for z > 0, alpha z otherwise, as 0 <= alpha < 1

    def _delta(self, grad_out: Any, h: Any) -> Any:
        slope = backend.xp.maximum(h > 0, self.alpha, dtype=grad_out.dtype)   # 1 where z > 0, else alpha
        return grad_out * slope

    def dead_fraction(self) -> float:
        """Fraction of units (last axis) that were <= 0 for every sample of the last batch."""
        h = self._cached()
        return float(1.0 - (h.reshape(-1, h.shape[-1]) > 0).any(axis=0).mean())


class Softmax(Activation):
    r"""y_i = e^{z_i} / sum_j e^{z_j} along ``axis`` (default: the last).

    $$
    y_i = \frac{e^{z_i}}{\sum_j e^{z_j}},
    \qquad \frac{\partial L}{\partial z} = y \odot \Bigl(g - \sum_j g_j y_j\Bigr), \quad g = \frac{\partial L}{\partial y}
    $$

    Forward, stable: subtract max_j z_j first (the result is unchanged and no
    exponential overflows).

    Backward, without forming the Jacobian diag(y) - y y^T:
    dL/dz = y * (g - sum_j g_j y_j), with g = dL/dy.

    For classification use :class:`~deltanet.losses.SoftmaxCrossEntropy` on the
    logits instead: the fused pair gives delta = y - t directly and stays
    finite where log(softmax) would not.
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = int(axis)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def forward(self, x: Any, training: bool = False) -> Any:
        self._h = softmax(_as_float_array(self, x), self.axis)
        return self._h

    def backward(self, grad_out: Any) -> Any:
        y = self._cached()
        self._check_grad(grad_out, y)
        g = grad_out * y
        s = g.sum(axis=self.axis, keepdims=True)
        xp = backend.xp
        xp.subtract(grad_out, s, out=g)
        g *= y                                # y * (g - sum_j g_j y_j)
        return g


def sigmoid(z: Any, out: Any = None) -> Any:
    """sigma(z) = 1 / (1 + e^{-z}) elementwise, overflow-free for any finite z (into ``out``, which may be ``z``).

    With e = exp(-|z|) <= 1: sigma(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0.
    """
    xp = backend.get_array_module(z)            # host arrays too (the estimators' float64 outputs)
    e = xp.abs(z)
    xp.negative(e, out=e)
    xp.exp(e, out=e)                          # e = exp(-|z|) in (0, 1]
    h = xp.maximum(e, z >= 0, out=out)        # numerator: 1 for z >= 0 (as e <= 1), e for z < 0
    e += 1.0
    h /= e
    return h


def softmax(z: Any, axis: int = -1) -> Any:
    """Numerically stable softmax of ``z`` along ``axis`` (a new array)."""
    xp = backend.xp
    e = z - z.max(axis=axis, keepdims=True)
    xp.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def log_softmax(z: Any, axis: int = -1) -> Any:
    """log softmax(z) = z - max - log sum exp(z - max), stable for any finite z."""
    xp = backend.xp
    shifted = z - z.max(axis=axis, keepdims=True)
    shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


#: Activation names accepted by builders and config files.
ACTIVATIONS: dict[str, type[Activation]] = {
    "identity": Identity, "sigmoid": Sigmoid, "logistic": Sigmoid, "tanh": Tanh,
    "relu": ReLU, "leaky_relu": LeakyReLU, "softmax": Softmax,
}
