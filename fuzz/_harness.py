"""What every deltanet fuzz target shares: the clean-error rule, a memory ceiling and the atheris entry point.

A reader given hostile bytes may only fail with a *clean* error: a
``ValueError`` (``ConfigError``, ``NonFiniteError`` and the other error
classes of deltanet derive from it) with a message, which the ``deltanet``
command prints as one line ``deltanet: error: ...``. Anything else that comes
out -- another exception type, a ``MemoryError`` (the ceiling below turns a
huge allocation from a small file into one), a ``RecursionError``, an empty
message -- is a defect, reported by atheris as a crash with the input saved.
A hang is caught by libFuzzer's ``-timeout``.
"""

from __future__ import annotations

import atexit
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

FUZZING = Path(sys.argv[0]).name.startswith("fuzz_")  # run as a target (not replayed by the tests)
if FUZZING:
    import atheris

    with atheris.instrument_imports(include=["deltanet"]):  # coverage feedback from deltanet's code only
        import deltanet  # noqa: F401

#: Memory a target may take beyond what the interpreter held once deltanet was imported.
HEADROOM_BYTES = 1 << 30


class DirtyError(AssertionError):
    """A reader let out something other than a clean deltanet error."""


def clean(exc: BaseException) -> bool:
    """True for the errors a reader may raise on a bad file: ValueError (and subclasses) with a message."""
    return isinstance(exc, ValueError) and not isinstance(exc, UnicodeError) and bool(str(exc).strip())


def limit_memory(headroom: int = HEADROOM_BYTES) -> None:
    """Cap the address space at its current size + ``headroom`` (Linux), so a huge allocation fails fast."""
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = used + headroom
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))


class FileTarget:
    """Writes each input to one scratch file (in RAM where /dev/shm exists) and calls ``read(path)`` on it."""

    def __init__(self, read: Callable[[Path], object], suffix: str) -> None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.folder = tempfile.mkdtemp(prefix="deltanet-fuzz-", dir=base)
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)
        self.path = Path(self.folder) / f"input{suffix}"
        self.read = read

    def __call__(self, data: bytes) -> None:
        with open(self.path, "wb") as f:
            f.write(data)
        check(self.read, self.path)


def check(read: Callable[..., object], *args: object) -> None:
    """Call ``read(*args)``; a clean error passes, anything else is raised as :class:`DirtyError`."""
    try:
        read(*args)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        if clean(exc):
            return
        raise DirtyError(f"{type(exc).__name__} is not a clean deltanet error: {exc!r:.500}") from exc


def main(one_input: Callable[[bytes], None]) -> None:
    """Run atheris on ``one_input`` with the command line's libFuzzer options (corpus folders, -runs, ...)."""
    import atheris

    limit_memory()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
