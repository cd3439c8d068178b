"""Fuzz target: the CSV reader, deltanet.data.load_csv.

    python fuzz/fuzz_csv.py fuzz/corpus/csv -timeout=10     # see fuzz/README.md
"""

from __future__ import annotations

import _harness

from deltanet.data.tabular import load_csv as read

one_input = _harness.FileTarget(read, ".csv")

if __name__ == "__main__":
    _harness.main(one_input)
