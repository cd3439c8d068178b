"""Fuzz target: the model-file loader, deltanet.load_model_file (safetensors header, tensors, model description).

    python fuzz/fuzz_model.py fuzz/corpus/model -timeout=10     # see fuzz/README.md
"""

from __future__ import annotations

import _harness

from deltanet.io import load_model_file as read

one_input = _harness.FileTarget(read, ".safetensors")

if __name__ == "__main__":
    _harness.main(one_input)
