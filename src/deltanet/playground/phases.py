"""The course text's equation of each phase of a step, with the live numbers of the step in progress.

:func:`explain` reads a :class:`~deltanet.playground.session.Session` after a
phase and writes, for the phases done so far in this step, the equation and
the same equation with numbers: those of the first sample of the batch and
the first unit of a layer. Every number is one the library computed (the
weights, z and h from the modules' forward outputs, delta_L from the loss's
``backward``, f'(z) from the activation's ``backward`` applied to ones, the
deltas from what each module's ``backward`` received, dL/dW from the
parameters' gradients, the new weights from the optimizer's step); the terms
of a sum are listed so that the reader can redo the arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy

from .. import backend
from ..modules.activations import softmax

EQUATIONS = {
    "forward": "z_l = W_l h_{l-1} + b_l,   h_l = f(z_l)",
    "loss": "L = -(1/B) sum_b log y_b[t_b],   y = softmax(z_L),   delta_L = (y - t) / B",
    "loss_mse": "L = (1/B) sum_b (y_b - t_b)^2,   delta_L = 2 (y - t) / B",
    "backward": "delta_l = f'(z_l) * W_{l+1}^T delta_{l+1},   dL/dW_l = delta_l h_{l-1}^T",
    "update": "W <- W - eta dL/dW",
}


def n(v: Any) -> str:
    """A number as the page shows it (4 significant digits)."""
    v = float(v)
    return f"{v:.4g}" if v >= 0 else f"({v:.4g})"


def vec(a: Any, k: int = 4) -> str:
    a = numpy.asarray(a, dtype=numpy.float64).ravel()
    items = ", ".join(f"{v:.4g}" for v in a[:k])
    return f"[{items}{', ...' if a.size > k else ''}]"


def _np(a: Any) -> numpy.ndarray:
    return numpy.asarray(backend.to_numpy(a), dtype=numpy.float64)


def _act(name: str) -> str:
    return {"leaky_relu": "leakyReLU", "relu": "ReLU", "identity": "id"}.get(name, name)


def _layer_input(s: Any, i: int) -> numpy.ndarray:
    """h_{l-1} of layer i (0-based) for the batch: the batch itself, or the previous layer's output."""
    if i == 0:
        return _np(s.batch[1])
    return _np(s.probe.output(s.layers[i - 1].out))


def _forward(s: Any) -> list[str]:
    lines = []
    for i, lay in enumerate(s.layers):
        z = _np(s.probe.output(lay.linear))
        l = lay.index
        if i == 0 or lay.is_output:          # the first and the last layer: the sum written out
            h_prev = _layer_input(s, i)
            if s.before is not None:         # after the update: the weights the forward pass used
                W, bias = s.before[i], s.before_bias[i]
            else:
                W, bias = _np(lay.linear.weight.value), lay.linear.bias.value if lay.linear.bias is not None else None
            b = float(_np(bias)[0]) if bias is not None else 0.0
            k = W.shape[1]
            terms = " + ".join(f"{n(W[0, j])}*{n(h_prev[0, j])}" for j in range(min(k, 4))) + (" + ..." if k > 4 else "")
            lines.append(f"z_{l}[1] = W_{l}[1,:] h_{l - 1} + b_{l}[1] = {terms} + {n(b)} = {n(z[0, 0])}")
        if lay.is_output:
            lines.append(f"z_{l} (the network's output, sample 1) = {vec(z[0])}")
            continue
        a = _np(s.probe.output(lay.activation))
        f = _act(lay.activation_name)
        if lay.norm is not None:
            bn = n(_np(s.probe.output(lay.norm))[0, 0])
            text = f"BN(z_{l})[1] = {bn},  h_{l}[1] = {f}({bn}) = {n(a[0, 0])}"
        else:
            text = f"h_{l}[1] = {f}(z_{l}[1]) = {n(a[0, 0])}"
        if i > 0:
            text = f"z_{l}[1] = {n(z[0, 0])},  " + text
        if lay.residual is not None:
            text += f",  + h_{l - 1}[1] (skip) = {n(_np(s.probe.output(lay.residual))[0, 0])}"
        if lay.dropout is not None:
            text += f",  after dropout {n(_np(s.probe.output(lay.dropout))[0, 0])}"
        lines.append(text)
    return lines


def _loss(s: Any) -> list[str]:
    out = _np(s.out)
    d = _np(s.delta_L)
    t = _np(s.batch[2])
    B = out.shape[0]
    lines = []
    if s.data.task == "classification":
        y = softmax(out[:1], axis=-1)[0]
        cls = int(t[0])
        onehot = numpy.zeros_like(y)
        onehot[cls] = 1.0
        name = s.data.class_names[cls] if s.data.class_names else cls
        lines.append(f"B = {B};  sample 1: y = softmax(z_L) = {vec(y)},  t = class {name},  -log y[t] = {n(-numpy.log(y[cls]))}")
        lines.append(f"L = {n(s.batch_loss)} (mean over the batch)")
        lines.append(f"delta_L[1] = (y - t) / B = ({vec(y)} - {vec(onehot)}) / {B} = {vec(d[0])}")
    else:
        lines.append(f"B = {B};  sample 1: y = {n(out[0, 0])},  t = {n(t.ravel()[0])}")
        lines.append(f"L = {n(s.batch_loss)} (mean over the batch)")
        lines.append(f"delta_L[1] = 2 (y - t) / B = 2 ({n(out[0, 0])} - {n(t.ravel()[0])}) / {B} = {n(d[0, 0])}")
    reg = s.config["regularization"]
    if reg != "none":
        term = "lambda sum |W|" if reg == "l1" else "lambda/2 sum ||W||^2"
        lines.append(f"objective L + {term} = {n(s.batch_loss)} + {n(s.objective - s.batch_loss)} = {n(s.objective)}"
                     f"  (lambda = {n(s.config['reg_rate'])})")
    return lines


def _fprime(s: Any, lay: Any) -> numpy.ndarray:
    """f'(z) of a layer's activation for the batch: the activation's own backward applied to ones."""
    h = s.probe.output(lay.activation)
    s.probe.recording = False
    try:
        return _np(lay.activation.backward(backend.xp.ones_like(h)))
    finally:
        s.probe.recording = True


def _backward(s: Any) -> list[str]:
    lines = []
    L = len(s.layers)
    if L > 1:
        lay, above = s.layers[-2], s.layers[-1]
        l = lay.index
        fp = _fprime(s, lay)[0, 0]
        dh = _np(s.probe.delta(lay.activation))[0, 0]
        delta = _np(s.probe.delta(lay.linear))[0, 0]
        plain = lay.residual is None and lay.dropout is None
        incoming = f"(W_{l + 1}^T delta_{l + 1})[1]" if plain else f"dL/dh_{l}[1]"
        if lay.norm is None:
            text = f"delta_{l}[1] = f'(z_{l}[1]) * {incoming} = {n(fp)} * {n(dh)} = {n(delta)}"
        else:
            text = (f"dL/dBN(z_{l})[1] = f'(BN(z_{l})[1]) * {incoming} = {n(fp)} * {n(dh)} = {n(fp * dh)};  through batch "
                    f"norm's backward (it mixes the batch): delta_{l}[1] = {n(delta)}")
        lines.append(text)
        del above
    means = [float(numpy.abs(_np(s.probe.delta(lay.linear))).mean()) for lay in s.layers]
    lines.append("mean |delta_l| over units and batch: " + ",  ".join(f"l={i + 1}: {v:.3g}" for i, v in enumerate(means)))
    for i in sorted({L - 1, 0}, reverse=True):
        lay = s.layers[i]
        l = lay.index
        g = _np(lay.linear.weight.grad)[0, 0]
        text = f"dL/dW_{l}[1,1] = sum_b delta_{l}[b,1] h_{l - 1}[b,1] = {n(g)}"
        if s.grads_before_l1 is not None:
            g0 = float(s.grads_before_l1[i][0, 0])
            text = (f"dL/dW_{l}[1,1] = sum_b delta_{l}[b,1] h_{l - 1}[b,1] + lambda sign(W) = {n(g0)} + "
                    f"{n(g - g0)} = {n(g)}")
        lines.append(text)
    lines.append("||dL/dW_l||: " + ",  ".join(f"l={i + 1}: {v:.3g}" for i, v in enumerate(s.layer_norms or [])))
    return lines


def _update(s: Any) -> list[str]:
    lines = []
    c = s.config
    eta = s.step_lr
    decay = c["regularization"] == "l2" and float(c["reg_rate"]) > 0
    for i in sorted({len(s.layers) - 1, 0}, reverse=True):
        lay = s.layers[i]
        l = lay.index
        w0 = float(s.before[i][0, 0])
        w1 = float(_np(lay.linear.weight.value)[0, 0])
        g = float(_np(lay.linear.weight.grad)[0, 0])
        if c["optimizer"] == "sgd":
            grad = f"({n(g)} + {n(c['reg_rate'])}*{n(w0)})" if decay else n(g)
            lines.append(f"W_{l}[1,1] <- {n(w0)} - {n(eta)} * {grad} = {n(w1)}")
        else:
            rule = {"momentum": "momentum 0.9: v <- 0.9 v + dL/dW, W <- W - eta v",
                    "adam": "Adam: W <- W - eta m_hat / (sqrt(v_hat) + eps)",
                    "rmsprop": "RMSprop: W <- W - eta g / (sqrt(E[g^2]) + eps)"}[c["optimizer"]]
            lines.append(f"W_{l}[1,1]: {rule}, eta = {n(eta)}, dL/dW = {n(g)}:  {n(w0)} -> {n(w1)}  (change {n(w1 - w0)})")
    names = [w.name for w in s.weights]
    lines.append("update/weight ratio ||dW_l|| / ||W_l||: "
                 + ",  ".join(f"l={i + 1}: {s.ratios.get(name, float('nan')):.3g}" for i, name in enumerate(names)))
    return lines


def explain(s: Any) -> dict[str, Any]:
    """``{"phase": name or None, "steps": [{"phase", "equation", "lines"}, ...], "equations": {phase: equation}}``:
    the phases done in this step, with their numbers, and every phase's equation."""
    from .session import PHASES

    equations = {p: EQUATIONS["loss_mse"] if p == "loss" and s.data.task != "classification" else EQUATIONS[p]
                 for p in PHASES}
    if s.phase is None:
        return {"phase": None, "step": s.step_count, "steps": [], "equations": equations}
    steps = []
    builders = (_forward, _loss, _backward, _update)
    for p in range(s.phase + 1):
        name = PHASES[p]
        with numpy.errstate(all="ignore"):
            steps.append({"phase": name, "equation": equations[name], "lines": builders[p](s)})
    return {"phase": PHASES[s.phase], "step": s.step_count, "steps": steps, "equations": equations}


__all__ = ["EQUATIONS", "explain"]
