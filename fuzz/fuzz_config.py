"""Fuzz target: the TOML configuration parser and validator, deltanet.config.load_config.

    python fuzz/fuzz_config.py fuzz/corpus/config -timeout=10     # see fuzz/README.md

Besides the clean-error rule, a configuration that loads must survive the
round trip: written with ``dumps_toml`` and read back, it is the same run.
"""

from __future__ import annotations

import _harness

from deltanet.config import dumps_toml, load_config, loads_config


def read(path):
    cfg = load_config(path)
    text = dumps_toml(cfg.to_dict())
    again = loads_config(text, "<written back>")
    if again != cfg:
        raise _harness.DirtyError(f"written and read back, the configuration changed:\n{text}")


one_input = _harness.FileTarget(read, ".toml")

if __name__ == "__main__":
    _harness.main(one_input)
