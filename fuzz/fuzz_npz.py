"""Fuzz target: the NPZ reader, deltanet.data.load_npz.

    python fuzz/fuzz_npz.py fuzz/corpus/npz -timeout=10     # see fuzz/README.md
"""

from __future__ import annotations

import _harness

from deltanet.data.tabular import load_npz as read

one_input = _harness.FileTarget(read, ".npz")

if __name__ == "__main__":
    _harness.main(one_input)
