"""What every command shares: the parser class, user errors, the options generated from the config table."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..config import ConfigError, RunConfig, Spec, section_specs

PROG = "deltanet"


class UsageError(Exception):
    """A mistake of the user's (a missing file, a bad option or value): one line on stderr, exit code 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default; keeps the descriptions' line breaks (examples)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # "(default: None)" / "(default: False)" on optional arguments and flags says nothing: leave it out
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS:
            return action.help
        if isinstance(default, FromConfig) and default.shown is None:  # the help text says what "unset" means
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``deltanet: error: ...``), raised as :class:`UsageError`.

    An unknown option gets the closest known one suggested.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        match = re.match(r"unrecognized arguments: (.*)", message)
        if match:
            unknown = match.group(1).split()
            options = [s for a in self._actions for s in a.option_strings]
            hints = []
            for u in unknown:
                close = difflib.get_close_matches(u.split("=")[0], options, n=1, cutoff=0.75) if u.startswith("-") else []
                if close:
                    hints.append(f"{u} (did you mean {close[0]}?)")
                else:
                    hints.append(u)
            message = f"unrecognized arguments: {' '.join(hints)}"
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            close = difflib.get_close_matches(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)), n=1,
                                              cutoff=0.75)
            if close:
                message = message.replace(f"'{choice.group(1)}' (choose", f"'{choice.group(1)}' (did you mean {close[0]!r}? choose")
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f"; see '{PROG} {command} --help'" if command else f"; see '{PROG} --help'"
        raise UsageError(message + hint)


def plural(n: int, word: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


def warn(message: str) -> None:
    """A warning line on stderr (shown even with ``--quiet``)."""
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    raise UsageError(message)


def info(args: argparse.Namespace, message: str) -> None:
    """A progress line on stderr, unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Options generated from the configuration table
# ---------------------------------------------------------------------------

class FromConfig:
    """The default of an override option: "not given", shown in ``--help`` as the table's default."""

    def __init__(self, shown: Any) -> None:
        self.shown = shown

    def __str__(self) -> str:
        if isinstance(self.shown, bool):
            return str(self.shown).lower()
        if isinstance(self.shown, list):
            return ",".join(str(v) for v in self.shown)
        return str(self.shown)

    __repr__ = __str__


def _number(kind: type, spec: Spec) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        return value

    parse.__name__ = kind.__name__
    return parse


def parse_int_list(text: str) -> list[int]:
    """``"256,128"`` -> ``[256, 128]``."""
    parts = [p.strip() for p in text.strip().replace(" ", ",").split(",")]
    if any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 256,128 (no empty "
                                         f"entries), got {text!r}")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 256,128, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 256,128, got {text!r}")
    return values


#: (section, key) -> option name, where it is not ``--key-with-dashes``.
_RENAMES = {("data", "seed"): "--data-seed", ("model", "layers"): "--layers"}
_METAVARS = {"target": "COLUMN", "data_dir": "DIR"}
#: Keys set by a dedicated option instead (``--data NAME|PATH``).
_SKIP = {("data", "name"), ("data", "path")}


def option_name(section: str, key: str) -> str:
    return _RENAMES.get((section, key), "--" + key.replace("_", "-"))


def add_config_options(parser: argparse.ArgumentParser, sections: Sequence[str]) -> None:
    """Add one option per field of the configuration table's ``sections``; they override the config file."""
    titles = {"model": "model (override [model] of the config)", "data": "data (override [data])",
              "train": "training (override [train])"}
    for section in sections:
        group = parser.add_argument_group(titles[section])
        if section == "data":
            group.add_argument("--data", dest="data_source", metavar="NAME|PATH", default=FromConfig("digits"),
                               help="a dataset name (see 'deltanet datasets') or a .csv/.npz file")
        for key, (spec, default) in section_specs(section).items():
            if (section, key) in _SKIP:
                continue
            flag = option_name(section, key)
            dest = f"cfg__{section}__{key}"
            help_text = spec.help + (f"; {spec.range_text()}" if spec.range_text() and not spec.choices else "")
            kw: dict[str, Any] = {"dest": dest, "default": FromConfig(default), "help": help_text}
            if section == "model" and key == "layers":
                kw.update(type=_number(int, spec), metavar="N", help="number of hidden layers; widths follow the heuristic "
                          "d_l = sqrt(d_(l-1) d_(l+1)) (deltanet summary shows them)")
            elif spec.kind == "bool":
                kw["action"] = argparse.BooleanOptionalAction
            elif spec.kind == "ints":
                kw.update(type=parse_int_list, metavar="W1,W2,...")
            elif spec.kind == "int":
                kw.update(type=_number(int, spec), metavar="N")
            elif spec.kind == "float":
                kw.update(type=_number(float, spec), metavar="X")
            elif spec.kind == "str":
                kw["metavar"] = "{" + ",".join(spec.choices) + "}" if spec.choices else _METAVARS.get(key, key.upper())
            group.add_argument(flag, **kw)


def apply_overrides(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """The configuration with every option the user gave applied (validated like a file)."""
    by_section: dict[str, dict[str, Any]] = {}
    for dest, value in vars(args).items():
        if dest.startswith("cfg__") and not isinstance(value, FromConfig):
            _, section, key = dest.split("__")
            by_section.setdefault(section, {})[key] = value
    source = getattr(args, "data_source", None)
    if source is not None and not isinstance(source, FromConfig):
        data = by_section.setdefault("data", {})
        if looks_like_path(source):
            data.update(path=source, name=None)
        else:
            data.update(name=source, path=None)
    model = by_section.get("model", {})
    if "hidden" in model and "layers" in model:
        raise UsageError(f"give either --layers N (widths by the heuristic) or --hidden W1,W2,... (the widths), not both "
                         f"(got --layers {model['layers']} --hidden {','.join(str(w) for w in model['hidden'])})")
    if "hidden" in model and "layers" not in model:
        model["layers"] = None  # --hidden replaces a depth or a layer list from the config
    if "layers" in model and "hidden" not in model:
        model["hidden"] = None  # --layers N replaces hidden widths from the config
    try:
        for section in ("model", "data", "train"):
            if section in by_section:
                config = config.override(section, **by_section[section])
    except ConfigError as exc:
        raise UsageError(_as_option_message(str(exc))) from None
    return config


def _as_option_message(message: str) -> str:
    """Name the command-line option instead of the config key: ``[train] lr`` -> ``--lr``."""
    def repl(m: re.Match[str]) -> str:
        section, key = m.group(1), m.group(2)
        try:
            section_specs(section)[key]
        except KeyError:
            return m.group(0)
        return option_name(section, key)

    message = re.sub(r"\[(model|data|train)\] (\w+)", repl, message)
    # a second key in the same message ("--val-fraction + test_fraction must be < 1")
    return re.sub(r"(--[\w-]+ \+ )(\w+)", lambda m: m.group(1) + option_name("data", m.group(2)), message)


def looks_like_path(source: str) -> bool:
    """Whether ``--data`` names a file rather than a dataset."""
    lowered = source.lower()
    return ("/" in source or "\\" in source or lowered.endswith((".csv", ".npz", ".tsv"))
            or lowered.startswith(("csv:", "npz:")))
