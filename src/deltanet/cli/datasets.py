"""``deltanet datasets``: what data is available and where it comes from."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("datasets", help="list the available datasets and where they come from",
                       description="List the named datasets (generated, bundled, or read from files you provide), "
                       "whether each is ready on this machine, and how to use your own CSV or NPZ files.")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import list_datasets
    from ._pipeline import cli_terms

    infos = list_datasets()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=1))
        return 0
    w = max(len(i.name) for i in infos)
    print(f"{'name':<{w}}  {'task':<14}  {'samples':<24}  {'features':>8}  {'classes':>7}  status")
    for i in infos:
        classes = "-" if i.n_classes is None else str(i.n_classes)
        print(f"{i.name:<{w}}  {i.task:<14}  {i.n_samples:<24}  {i.n_features:>8}  {classes:>7}  {cli_terms(i.status())}")
    print()
    print("where they come from:")
    for i in infos:
        options = f" (options: {', '.join(o for o in i.options if o != 'path')})" if i.kind == "synthetic" else ""
        print(f"  {i.name:<{w}}  {i.description}; {i.source}{options}")
    print()
    print("your own data: --data table.csv [--target COLUMN] (a header line, numeric features; the target may be text),")
    print("               --data arrays.npz (arrays X and y). Examples: deltanet train --data spiral --n-samples 500")
    return 0
