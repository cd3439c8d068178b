"""Fuzz target: the IDX reader, deltanet.data.idx.read_idx (plain or gzipped).

    python fuzz/fuzz_idx.py fuzz/corpus/idx -timeout=10     # see fuzz/README.md
"""

from __future__ import annotations

import _harness

from deltanet.data.idx import read_idx as read

one_input = _harness.FileTarget(read, ".idx")

if __name__ == "__main__":
    _harness.main(one_input)
