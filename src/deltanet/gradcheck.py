"""Finite-difference gradient checking, a public tool for users' own modules too."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy

from . import backend
from .errors import GradcheckError
from .losses import Loss
from .modules.base import Module, build


@dataclass
class GradcheckResult:
    """Worst relative error per tensor (``"input"`` and each parameter's qualified name).

    The relative error of a tensor is max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|)
    between the analytical gradient a (from ``backward``) and the central
    difference n -- an infinity-norm relative error, which does not blow up on
    entries that are (nearly) zero.
    """

    errors: dict[str, float]
    tol: float
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def passed(self) -> bool:
        return self.worst <= self.tol

    def __str__(self) -> str:
        width = max((len(k) for k in self.errors), default=5)
        lines = [f"{'tensor':<{width}}  entries  rel. error"]
        for k, v in self.errors.items():
            flag = "" if v <= self.tol else "  FAIL"
            lines.append(f"{k:<{width}}  {self.checked.get(k, 0):>7}  {v:.2e}{flag}")
        lines.append(f"worst {self.worst:.2e} (tolerance {self.tol:.0e}): {'passed' if self.passed else 'FAILED'}")
        return "\n".join(lines)


def _float64_copy(module: Module) -> Module:
    if all(p.value.dtype == numpy.float64 for p in module.parameters()):
        return module
    try:
        config = _with_float64(module.config())
        clone = build(config)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise TypeError(f"gradcheck needs float64 parameters; build {type(module).__name__} with dtype='float64' ({exc})") from exc
    clone.load_state_dict({k: backend.to_numpy(v).astype(numpy.float64) for k, v in module.state_dict().items()})
    return clone


def _with_float64(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: ("float64" if k == "dtype" else _with_float64(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [_with_float64(v) for v in config]
    return config


def _rel_error(a: numpy.ndarray, n: numpy.ndarray) -> float:
    scale = max(float(numpy.max(numpy.abs(a), initial=0.0)), float(numpy.max(numpy.abs(n), initial=0.0)))
    diff = float(numpy.max(numpy.abs(a - n), initial=0.0))
    return diff / scale if scale > 1e-12 else diff


def gradcheck(target: Module | Loss, x: Any, y: Any = None, *, training: bool = False, eps: float = 1e-6,
              tol: float = 1e-6, max_entries: int | None = 200, seed: int = 0,
              raise_on_fail: bool = True) -> GradcheckResult:
    """Compare a module's or a loss's backward with central finite differences in float64.

    Parameters
    ----------
    target : Module or Loss
        A module (checked: the input gradient and every parameter gradient) or
        a loss (checked: the gradient with respect to the output). A float32
        module is checked through a float64 copy rebuilt from its config.
    x : array
        The module's input, or the loss's output argument.
    y : array, optional
        The loss's target (losses only).
    training : bool
        Forward mode for modules (batch statistics, dropout masks). Random
        generators and buffers are restored before every evaluation, so a
        training-mode dropout uses one fixed mask throughout.
    eps : float
        Finite-difference step: n_i = (f(v + eps e_i) - f(v - eps e_i)) / (2 eps).
    tol : float
        Largest accepted relative error.
    max_entries : int or None
        Check at most this many randomly chosen entries per tensor (None: all).
    seed : int
        Seed of the upstream gradient and of the entry sample.
    raise_on_fail : bool
        Raise :class:`~deltanet.errors.GradcheckError` when an error exceeds ``tol``.

    Returns
    -------
    GradcheckResult

    Raises
    ------
    ValueError
        ``eps`` or ``tol`` is not a positive finite number, or ``max_entries`` is not a positive int.

    Notes
    -----
    For a module the scalar checked is f(x) = sum(forward(x) * G) for a fixed
    random G, so backward(G) must return df/dx and leave df/dtheta in each
    parameter's ``grad``. For a loss, f(z) = loss.forward(z, y) and backward()
    must return df/dz. Keep inputs away from kinks (ReLU at 0): the derivative
    is not defined there and a difference quotient straddling it is wrong.
    """
    for what, v in (("eps", eps), ("tol", tol)):
        if isinstance(v, bool) or not isinstance(v, (int, float, numpy.integer, numpy.floating)) or not (math.isfinite(v) and v > 0):
            hint = " (the finite-difference step; 1e-6 suits float64)" if what == "eps" else ""
            raise ValueError(f"gradcheck: {what} must be a positive finite number{hint}, got {v!r}")
    if max_entries is not None and (isinstance(max_entries, bool) or not isinstance(max_entries, (int, numpy.integer))
                                    or max_entries < 1):
        raise ValueError(f"gradcheck: max_entries must be a positive int or None, got {max_entries!r}")
    # a stream of its own (not default_rng(seed)): an upstream gradient equal to data drawn with the same
    # seed makes some true gradients vanish (LayerNorm's does for G = x), leaving only round-off to compare
    rng = numpy.random.default_rng([seed, 0x6772616463686B])
    # the checked tensors live in the active namespace (a device under CuPy); what is compared goes to the host:
    # gradcheck is a diagnostic, its per-entry host reads are the point of it (never in a training loop)
    xp, host = backend.xp, backend.to_numpy
    x = xp.array(x, dtype=numpy.float64)
    if y is not None and hasattr(y, "shape"):
        y = xp.asarray(y)
    errors: dict[str, float] = {}
    checked: dict[str, int] = {}

    if isinstance(target, Loss):
        def f() -> float:
            return float(target.forward(x, y))

        f()
        analytic = {"input": numpy.array(host(target.backward()), dtype=numpy.float64)}
        tensors = {"input": x}
    elif isinstance(target, Module):
        module = _float64_copy(target)
        if y is not None:
            raise TypeError("gradcheck: y is for losses; a module is checked with a random upstream gradient")
        gen_states = [g.bit_generator.state for g in module.generators()]
        buffers = {k: xp.array(v, copy=True) for k, v in module.named_buffers()}

        def restore() -> None:
            for g, s in zip(module.generators(), gen_states, strict=True):
                g.bit_generator.state = s
            for k, v in module.named_buffers():
                v[...] = buffers[k]

        restore()
        out = module.forward(x, training=training)
        upstream = xp.asarray(rng.standard_normal(out.shape))

        def f() -> float:
            restore()
            return float(xp.sum(module.forward(x, training=training) * upstream))

        restore()
        module.zero_grad()
        module.forward(x, training=training)
        grad_x = module.backward(upstream.copy())
        analytic = {"input": numpy.array(host(grad_x), dtype=numpy.float64)}
        tensors = {"input": x}
        for name, p in module.named_parameters():
            analytic[name] = numpy.array(host(p.grad), dtype=numpy.float64)
            tensors[name] = p.value
        restore()
    else:
        raise TypeError(f"gradcheck: expected a Module or a Loss, got {type(target).__name__}")

    for name, value in tensors.items():
        idx = numpy.arange(value.size)
        if max_entries is not None and value.size > max_entries:
            idx = numpy.sort(rng.choice(value.size, size=max_entries, replace=False))
        numeric = numpy.empty(idx.size)
        for j, i in enumerate(idx):
            at = numpy.unravel_index(i, value.shape)      # in place whatever the memory order (weights are column-major)
            old = float(value[at])
            value[at] = old + eps
            fp = f()
            value[at] = old - eps
            fm = f()
            value[at] = old
            numeric[j] = (fp - fm) / (2 * eps)
        errors[name] = _rel_error(analytic[name].reshape(-1)[idx], numeric)
        checked[name] = int(idx.size)
    if isinstance(target, Module):
        restore()  # leave running statistics and random generators as they were

    result = GradcheckResult(errors=errors, tol=tol, checked=checked)
    if raise_on_fail and not result.passed:
        raise GradcheckError(f"gradient check failed for {type(target).__name__}:\n{result}")
    return result
