"""``deltanet export MODEL OUTPUT.onnx``: a trained model as an ONNX file, for onnxruntime and other tools."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import fail, info
from ._pipeline import load_model, model_path


def add_parser(sub: Any) -> None:
    from ..export import DEFAULT_OPSET

    p = sub.add_parser("export", help="write a trained model as an ONNX file (for onnxruntime and other tools)",
                       description="Write a model as an ONNX graph that computes what 'deltanet predict' computes "
                       "before its CSV: the stored preprocessing (standardization, in float64) and the network in eval "
                       "mode (dropout off, batch norm on its running statistics), for any number of rows. The graph "
                       "has one input 'input' (raw features, shape (batch, features)) and one output 'output' (the "
                       "logits of a classifier: softmax them for the probabilities 'deltanet predict' prints); the "
                       "class and feature names are in the ONNX metadata. Needs the onnx package "
                       "(pip install 'deltanet[onnx]').",
                       epilog="examples:\n  deltanet export runs/20250101-120000 model.onnx\n"
                       "  deltanet export model.safetensors model.onnx --dtype float64 --opset 20")
    p.add_argument("model", metavar="MODEL", help="a model file (model.safetensors) or a run directory")
    p.add_argument("output", metavar="OUTPUT", help="the ONNX file to write (model.onnx)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N",
                   help="ONNX operator set (13 or newer; 17 is the first with LayerNormalization, 20 with Gelu)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="dtype of the graph's input, weights and output (default: the model's)")
    p.add_argument("--no-preprocessing", action="store_true",
                   help="export the network alone: its input is the standardized features, not the raw ones")
    p.add_argument("--quiet", "-q", action="store_true", help="no informational lines on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ExportError

    mf = load_model(args.model)
    target = Path(args.output)
    if target.is_dir():
        fail(f"{target} is a directory; give the ONNX file's name, such as {target / 'model.onnx'}")
    if target.exists() and target.resolve() == model_path(args.model).resolve():
        fail(f"{target} is the model file itself; give another name for the ONNX file, such as model.onnx")
    try:
        from ..export import export_onnx

        proto = export_onnx(mf, target, opset=args.opset, dtype=args.dtype, preprocessing={} if args.no_preprocessing else None)
    except ImportError as exc:
        fail(str(exc))
    except (ExportError, ValueError, TypeError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(str(exc))  # "cannot write <target>: <reason>"
    graph = proto.graph
    scaled = not args.no_preprocessing and (mf.preprocessing or {}).get("standardizer")
    info(args, f"wrote {target}: input {graph.input[0].name!r} {_shape(graph.input[0])}"
               f"{' (raw features, standardized in the graph)' if scaled else ''} -> output {graph.output[0].name!r} "
               f"{_shape(graph.output[0])}, {_dtype(graph.input[0])}, opset {args.opset}, {target.stat().st_size:,} bytes")
    return 0


def _shape(value_info: Any) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "(" + ", ".join(d.dim_param or str(d.dim_value) if (d.dim_param or d.dim_value) else "?" for d in dims) + ")"


def _dtype(value_info: Any) -> str:
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type).name
