"""Fuzz target: the checkpoint loader, Trainer.load_checkpoint (npz members, JSON state, trainer rebuilt from it).

    python fuzz/fuzz_checkpoint.py fuzz/corpus/checkpoint -timeout=10     # see fuzz/README.md
"""

from __future__ import annotations

import _harness

from deltanet.training import Trainer

read = Trainer.load_checkpoint

one_input = _harness.FileTarget(read, ".ckpt")

if __name__ == "__main__":
    _harness.main(one_input)
