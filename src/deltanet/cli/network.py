"""``deltanet summary MODEL|CONFIG`` and ``deltanet gradcheck [CONFIG]``: look at a network without training it."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

from ..modules.base import Module
from ._common import add_config_options, apply_overrides, fail
from ._pipeline import (
    build_model,
    check_heuristic_widths,
    input_width,
    known_shape,
    load_config_or_fail,
    load_data,
    load_model,
    n_outputs,
    parameter_count,
    split_and_scale,
)

#: Above this many bytes of weights ``summary`` counts from the widths instead of building the network.
SUMMARY_BUILD_LIMIT = 256 * 2**20


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("summary", help="layers, output shapes, parameters and FLOPs of a model or a configuration",
                       description="Show a network layer by layer: output shapes, parameter counts and FLOPs per sample "
                       "(2 x multiply-adds of the matrix products). SOURCE is a model file, a run directory or a TOML "
                       "configuration (default: the default job's configuration); a configuration's hidden widths are "
                       "shown as chosen, e.g. by the heuristic d_l = sqrt(d_(l-1) d_(l+1)) for --layers N.",
                       epilog="examples:\n  deltanet summary\n  deltanet summary --data mnist --layers 3\n"
                       "  deltanet summary runs/20250101-120000")
    p.add_argument("source", nargs="?", metavar="MODEL|CONFIG", help="a model file, a run directory or a .toml configuration")
    add_config_options(p, ["model", "data"])
    p.set_defaults(func=run_summary)

    g = sub.add_parser("gradcheck", help="check every layer's backward pass against finite differences",
                       description="Build the configured network, copy it to float64, run a small random batch of the "
                       "configured data through it and compare each layer's analytical gradients (backward) with "
                       "central finite differences. Prints the worst relative error per layer; exits 1 when one "
                       "exceeds --tol.",
                       epilog="examples:\n  deltanet gradcheck\n  deltanet gradcheck --data spiral --hidden 16,16 "
                       "--batch-norm --dropout 0.2")
    g.add_argument("config", nargs="?", metavar="CONFIG.toml", help="a TOML configuration (default: the default job's)")
    add_config_options(g, ["model", "data"])
    own = g.add_argument_group("gradient check")
    own.add_argument("--batch-size", type=int, default=8, metavar="N", help="rows in the random batch")
    own.add_argument("--tol", type=float, default=1e-6, metavar="X", help="largest accepted relative error")
    own.add_argument("--max-entries", type=int, default=200, metavar="N", help="entries checked per tensor (sampled)")
    own.add_argument("--eps", type=float, default=1e-6, metavar="X", help="finite-difference step")
    own.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the weights, the batch and the entries checked")
    own.add_argument("--eval", action="store_true", help="check evaluation mode (running statistics, no dropout) "
                     "instead of training mode")
    g.set_defaults(func=run_gradcheck)


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------

@dataclass
class Row:
    path: str
    depth: int
    text: str
    shape: tuple[int, ...]
    params: int
    flops: int
    container: bool


def describe(m: Module) -> str:
    """A short description of one module: ``Linear(64 -> 256)``, ``Dropout(rate=0.1)``, ``ReLU``."""
    from ..modules.linear import Linear

    if isinstance(m, Linear):
        return f"Linear({m.in_features} -> {m.out_features}{'' if m.bias is not None else ', no bias'})"
    try:
        defaults = {k: p.default for k, p in inspect.signature(type(m).__init__).parameters.items()}
    except (TypeError, ValueError):
        defaults = {}
    cfg = {k: v for k, v in m.get_config().items()
           if k != "dtype" and not isinstance(v, (list, dict)) and v is not None and defaults.get(k, object()) != v}
    args = ", ".join(f"{k}={v}" for k, v in cfg.items())
    return f"{type(m).__name__}({args})" if args else type(m).__name__


def layer_rows(net: Module, input_shape: tuple[int, ...]) -> list[Row]:
    """One row per module below ``net`` (containers too, then their children, indented)."""
    rows: list[Row] = []

    def walk(m: Module, shape: tuple[int, ...], path: str, depth: int) -> None:
        children = m._child_shapes(shape)        # the children whose input shapes the module knows, in order
        names = {id(child): name for name, child in m.named_children()}
        total_params = sum(p.size for p in m.parameters())
        out_shape = m.output_shape(shape)
        if depth >= 0:
            rows.append(Row(path, depth, describe(m), out_shape, total_params,
                            m.flops(shape), bool(children)))
        for child, child_shape in children:
            name = names[id(child)]
            walk(child, child_shape, f"{path}.{name}" if path else name, depth + 1)

    walk(net, input_shape, "", -1)
    return rows


def format_summary(net: Module, n_in: int) -> str:
    rows = layer_rows(net, (1, n_in))

    def shape_text(shape: tuple[int, ...]) -> str:
        return "(B, " + ", ".join(str(d) for d in shape[1:]) + ")"

    w_path = max([5, *(len(r.path) for r in rows)])
    w_text = max([5, *(len(r.text) + 2 * r.depth for r in rows)])
    header = f"{'#':<{w_path}}  {'layer':<{w_text}}  {'output shape':<14}  {'parameters':>11}  {'FLOPs/sample':>13}"
    lines = [header, "-" * len(header)]
    for r in rows:
        params = f"{r.params:,}" if r.params else "-"
        flops = f"{r.flops:,}" if r.flops else "-"
        if r.container:  # totals of a block are shown on its children; keep the block's own line light
            params, flops = f"({params})", f"({flops})"
        lines.append(f"{r.path:<{w_path}}  {'  ' * r.depth + r.text:<{w_text}}  {shape_text(r.shape):<14}  {params:>11}  {flops:>13}")
    lines.append("-" * len(header))
    total_flops = net.flops((1, n_in))
    lines.append(f"{'total':<{w_path}}  {'':<{w_text}}  {shape_text(net.output_shape((1, n_in))):<14}  "
                 f"{net.num_parameters():>11,}  {total_flops:>13,}")
    return "\n".join(lines)


def format_widths(sizes: list[int], dtype: str) -> str:
    """The Linear layers of an MLP counted from its widths alone (no weights allocated)."""
    lines = [f"{'layer':<28}  {'parameters':>15}  {'FLOPs/sample':>15}"]
    total = flops = 0
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        n, f = a * b + b, 2 * a * b
        total, flops = total + n, flops + f
        lines.append(f"{f'Linear({a} -> {b})':<28}  {n:>15,}  {f:>15,}")
    size = total * numpy.dtype(dtype).itemsize
    lines.append(f"{'total':<28}  {total:>15,}  {flops:>15,}")
    lines.append(f"(counted from the widths; the weights alone take {size / 2**30:,.2f} GiB in {dtype}, "
                 "so the network was not built)")
    return "\n".join(lines)


def run_summary(args: argparse.Namespace) -> int:
    source = args.source
    is_config = source is None or source.lower().endswith(".toml")
    if not is_config:
        return _summary_of_model(args, source)
    config = apply_overrides(load_config_or_fail(source), args)
    heading = [f"configuration: {source or 'default job (no file)'}"]
    if config.model.explicit:
        n_in = _explicit_input_width(config)
        net = _build_explicit(config, n_in)
        heading.append(f"input: {n_in} features (from the first layer)")
    else:
        shape = known_shape(config.data)  # a named dataset's widths are known without its files
        if shape is not None:
            n_in, n_out, task_kind = shape
            data_name = (config.data.name or "digits").lower()
        else:
            ds = load_data(config.data)
            n_in, n_out, task_kind, data_name = ds.n_features, n_outputs(ds), ds.task, ds.name
        check_heuristic_widths(config.model, n_in, n_out)
        hidden = config.model.hidden_sizes(n_in, n_out)
        if config.model.hidden is not None:
            why = "as configured"
        elif config.model.layers is not None:
            why = (f"chosen for {config.model.layers} hidden layers by the heuristic d_l = sqrt(d_(l-1) d_(l+1)), "
                   f"a geometric progression from {n_in} to {n_out}")
        else:
            why = "the default"
        task = f"{n_out} classes" if task_kind == "classification" else f"{n_out} output(s), regression"
        heading.append(f"data: {data_name}: {n_in} features -> {task}")
        heading.append(f"hidden widths: {hidden} ({why})")
        heading.append(f"activation: {config.model.activation}, dropout {config.model.dropout:g}, "
                       f"batch norm {'on' if config.model.batch_norm else 'off'}; output: logits "
                       f"({'softmax cross-entropy' if task_kind == 'classification' else 'identity'})")
        sizes = [n_in, *hidden, n_out]
        n_params = parameter_count(sizes, config.model.batch_norm)
        if n_params * numpy.dtype(config.model.dtype).itemsize > SUMMARY_BUILD_LIMIT:
            print("\n".join(heading))
            print(format_widths(sizes, config.model.dtype))
            return 0
        net = build_model(config.model, n_in, n_out, 0)
    print("\n".join(heading))
    print(format_summary(net, n_in))
    return 0


def _explicit_input_width(config: Any) -> int:
    from ..modules.base import build

    try:
        net = build({"type": "Sequential", "layers": config.model.layers})
    except (ValueError, TypeError) as exc:
        fail(f"[[model.layers]]: {exc}")
    width = input_width(net)
    if width is None:
        fail("[[model.layers]]: cannot tell the input width (no layer with in_features)")
    return width


def _build_explicit(config: Any, n_in: int) -> Module:
    from ..modules.base import build

    try:
        net = build({"type": "Sequential", "layers": config.model.layers})
        net.output_shape((1, n_in))
    except (ValueError, TypeError) as exc:
        fail(f"[[model.layers]]: {exc}")
    return net


def _summary_of_model(args: argparse.Namespace, source: str) -> int:
    mf = load_model(source)
    net = mf.model
    meta = mf.metadata or {}
    n_in = input_width(net)
    names = meta.get("feature_names")
    if isinstance(names, list) and names:
        n_in = len(names)
    if n_in is None:
        fail(f"{source}: cannot tell the model's input width")
    lines = [f"model: {Path(source)}"]
    if meta.get("dataset"):
        lines.append(f"trained on: {meta['dataset']} ({meta.get('task', '?')})")
    metrics = meta.get("metrics") or {}
    if "test_accuracy" in metrics:
        lines.append(f"test accuracy: {100 * metrics['test_accuracy']:.2f}% on {metrics.get('test_samples', '?')} samples")
    pre = mf.preprocessing or {}
    lines.append(f"preprocessing: {'standardize ' + str(n_in) + ' features' if pre.get('standardizer') else 'none'}")
    print("\n".join(lines))
    print(format_summary(net, n_in))
    return 0


# ---------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------

def _has_batch_norm(config: Any) -> bool:
    if not config.model.explicit:
        return bool(config.model.batch_norm)
    return "BatchNorm" in repr(config.model.layers)


def _layer_of(name: str) -> str:
    return name.split(".", 1)[0] if name != "input" else "input"


def run_gradcheck(args: argparse.Namespace) -> int:
    from ..gradcheck import gradcheck
    from ..losses import get_loss

    for flag, value, low in (("--batch-size", args.batch_size, 1), ("--max-entries", args.max_entries, 1)):
        if value < low:
            fail(f"{flag} must be >= {low}, got {value}")
    for flag, value in (("--tol", args.tol), ("--eps", args.eps)):
        if not value > 0:
            fail(f"{flag} must be > 0, got {value}")
    config = apply_overrides(load_config_or_fail(args.config), args)
    if args.batch_size == 1 and not args.eval and _has_batch_norm(config):
        fail("--batch-size 1 with batch normalization in training mode: the batch statistics of one row are that row "
             "(variance 0), so every output is 0 and there is no gradient to check; use --batch-size 2 or more, or --eval")
    ds = load_data(config.data)
    parts, _ = split_and_scale(ds, config.data)
    n_in, n_out = ds.n_features, n_outputs(ds)
    net = build_model(config.model, n_in, n_out, args.seed)
    rng = numpy.random.default_rng(args.seed)
    idx = rng.choice(len(parts.X_train), size=min(args.batch_size, len(parts.X_train)), replace=False)
    x = numpy.asarray(parts.X_train[idx], dtype=numpy.float64)
    y = parts.y_train[idx]
    training = not args.eval
    result = gradcheck(net, x, training=training, eps=args.eps, tol=args.tol, max_entries=args.max_entries,
                       seed=args.seed, raise_on_fail=False)
    children = dict(net.named_children())

    print(f"gradient check of {net.num_parameters():,} parameters in float64 on {len(x)} samples of {ds.name} "
          f"({'training' if training else 'evaluation'} mode), central differences, eps {args.eps:g}")
    per_layer: dict[str, tuple[float, int, list[str]]] = {}
    for name, err in result.errors.items():
        layer = _layer_of(name)
        worst, count, tensors = per_layer.get(layer, (0.0, 0, []))
        per_layer[layer] = (max(worst, err), count + result.checked.get(name, 0), [*tensors, name.split(".", 1)[-1]])
    rows = [("input", "dL/dx of the network input", *per_layer.pop("input", (0.0, 0, [])))]
    for layer in sorted(per_layer, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)):
        module = children.get(layer)
        rows.append((layer, describe(module) if module is not None else layer, *per_layer[layer]))
    loss_fn = get_loss(config.train.loss_name(ds.task))
    out = numpy.asarray(net.forward(numpy.asarray(x, dtype=numpy.float32), training=False), dtype=numpy.float64)
    target = y if ds.task == "classification" else numpy.asarray(y, dtype=numpy.float64).reshape(out.shape)
    loss_result = gradcheck(loss_fn, out, target, eps=args.eps, tol=args.tol, max_entries=args.max_entries,
                            seed=args.seed, raise_on_fail=False)
    rows.append(("loss", f"{type(loss_fn).__name__} (dL/d output)", loss_result.worst, loss_result.checked.get("input", 0), ["input"]))

    w = max(len(r[1]) for r in rows)
    print(f"{'layer':<6}  {'module':<{w}}  {'entries':>7}  {'worst rel. error':>16}")
    failed = False
    for layer, text, worst, count, _ in rows:
        ok = worst <= args.tol
        failed |= not ok
        print(f"{layer:<6}  {text:<{w}}  {count:>7}  {worst:>16.2e}  {'ok' if ok else 'FAIL'}")
    worst_all = max(result.worst, loss_result.worst)
    print(f"worst {worst_all:.2e} (tolerance {args.tol:g}): {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0
