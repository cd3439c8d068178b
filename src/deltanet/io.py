"""Model files: architecture, weights, preprocessing and metadata in one file that cannot run code.

The format is safetensors (https://github.com/huggingface/safetensors),
written and read here with NumPy alone, so the files also open with the
``safetensors`` package and its viewers:

    bytes 0-7        N, the header length, unsigned 64-bit little-endian
    bytes 8..8+N     a UTF-8 JSON object (padded with spaces to a multiple of 8 bytes):
                       {"<tensor name>": {"dtype": "F32" | "F64" | "I64",
                                          "shape": [d0, d1, ...],
                                          "data_offsets": [begin, end]},
                        ...,
                        "__metadata__": {"<key>": "<string>", ...}}
    bytes 8+N..      the tensors' raw little-endian bytes, C order; offsets
                     are relative to the start of this region, contiguous
                     and non-overlapping, and the region ends the file.

A deltanet model file stores ``module.state_dict()`` as the tensors and, in
``__metadata__`` (JSON strings): ``"format"`` = ``"deltanet.model"``,
``"format_version"``, ``"model"`` (``module.config()``), ``"preprocessing"``
(e.g. ``{"standardizer": Standardizer.to_dict(), "class_names": [...]}``) and
``"metadata"`` (anything JSON-able: training history, data set, ...).

Loading trusts nothing: every length, offset, dtype and shape is checked
before an array is made, the architecture is rebuilt only from registered
deltanet module types, and weights must be finite. Writing is atomic.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy

from . import backend
from .modules.base import Module, build

#: Version of the deltanet layout inside the safetensors container.
FORMAT_VERSION = 1
FORMAT_NAME = "deltanet.model"

#: safetensors dtype code <-> little-endian NumPy dtype (the only ones deltanet writes or accepts).
DTYPES: dict[str, numpy.dtype] = {"F32": numpy.dtype("<f4"), "F64": numpy.dtype("<f8"), "I64": numpy.dtype("<i8")}
_CODES = {numpy.dtype(numpy.float32): "F32", numpy.dtype(numpy.float64): "F64", numpy.dtype(numpy.int64): "I64"}

#: Largest header accepted (the safetensors library's own limit).
MAX_HEADER_BYTES = 100_000_000


# -- atomic writes ---------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it, rename it onto ``path`` and fsync the folder.

    Every file deltanet writes goes through here (model files, checkpoints,
    histories, reports, run configurations, predictions, downloads). ``mode``
    and ``open_kwargs`` are those of :func:`open` for a new file: ``"wb"``
    (bytes, the default; any writer of a binary file object, such as
    ``numpy.savez(f, ...)``, runs inside the block) or ``"w"`` with
    ``encoding=`` / ``newline=`` for text.

    If the block raises (or the process dies), ``path`` keeps its old content
    and the temporary file is removed (after ``kill -9`` it may stay, under a
    hidden ``.<name>.<random>.tmp`` name): a reader never sees a half-written
    file. The new file gets the permission bits a plain ``open(path, "w")``
    would leave: those of the file it replaces, or ``0o666`` less the umask.
    An ``OSError`` names ``path``, not the temporary file.

    >>> with atomic_write("model.safetensors") as f:   # doctest: +SKIP
    ...     f.write(data)
    >>> with atomic_write("history.csv", "w", encoding="utf-8") as f:   # doctest: +SKIP
    ...     f.write(text)
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise _os_error(errno.EISDIR, f"cannot write {path}: it is a directory; give a file name inside it")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)  # an existing file keeps its permission bits
            f = os.fdopen(fd, mode, **open_kwargs)
        except BaseException:
            with contextlib.suppress(OSError):  # fdopen may have closed it already
                os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    _fsync_directory(directory)


def _write_error(path: Path, exc: OSError) -> OSError:
    """``exc`` again, with a message that names the file being written rather than its temporary file."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = "; free some disk space and try again" if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) else ""
    message = f"cannot write {path}: {reason}{hint}"
    return _os_error(exc.errno, message)


def _os_error(code: int | None, message: str) -> OSError:
    """An OSError of the subclass for ``code`` (PermissionError, ...) whose str() is just ``message``."""
    cls = type(OSError(code, "")) if code is not None else OSError
    err = cls(message)
    err.errno = code
    return err


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- NumPy .npz archives ------------------------------------------------------

#: What reading a damaged zip archive's members can raise besides ValueError (bad CRC, corrupt deflate stream,
#: an unsupported compression method or zip version, an encrypted member).
ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, NotImplementedError, RuntimeError)

#: Deflate cannot shrink data more than about 1032 to 1: a member declaring more is forged (a "zip bomb").
MAX_DEFLATE_RATIO = 1100


def check_npz_members(path: str | os.PathLike[str], prefix: str = "") -> None:
    """Refuse an ``.npz`` archive whose members could not be what they claim, before NumPy allocates anything.

    NumPy makes each array at the size its ``.npy`` header declares, then
    fills it: a small file declaring a shape of 10^15 elements would ask for
    petabytes. Here every member's header is read first and must describe
    exactly the bytes the member holds; the zip's uncompressed sizes must be
    possible for the compressed ones; names must be unique. A problem raises
    ``ValueError(prefix + "<the problem>")`` (default prefix: ``"<path>: damaged
    or forged archive: "``); what is not a zip archive at all is
    refused the same way.
    """
    import zipfile

    from numpy.lib import format as npy_format

    def bad(problem: str) -> ValueError:
        return ValueError(f"{prefix or f'{os.fspath(path)}: damaged or forged archive: '}{problem}")

    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, *ARCHIVE_ERRORS) as exc:
        raise bad(f"not a readable zip archive ({type(exc).__name__}: {exc})") from exc
    with archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise bad(f"duplicate member names {dup[:5]}")
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 4096:
                raise bad(f"member {info.filename!r} claims {info.file_size} bytes from {info.compress_size} compressed")
            if not info.filename.endswith(".npy"):
                continue
            try:
                with archive.open(info) as f:
                    version = npy_format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = npy_format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = npy_format.read_array_header_2_0(f)
                    else:
                        continue  # NumPy reports versions it does not know
                    header = f.tell()
            except Exception as exc:  # NumPy's header parser on hostile text (TokenError, SyntaxError, ...)
                raise bad(f"member {info.filename!r} has an unreadable header ({type(exc).__name__}: {exc})") from exc
            if dtype.hasobject:
                continue  # refused by numpy.load(allow_pickle=False), with its own message
            need = math.prod(shape) * dtype.itemsize
            if need != info.file_size - header:
                raise bad(f"member {info.filename!r} declares shape {shape} of {dtype} ({need} bytes) but holds "
                          f"{info.file_size - header} bytes of data")


# -- the safetensors container --------------------------------------------

def save_tensors(path: str | os.PathLike[str], tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Write named arrays (float32, float64 or int64) and a string->string metadata map as a safetensors file.

    Tensors are laid out in name order. The write is atomic (:func:`atomic_write`).
    """
    header: dict[str, Any] = {}
    arrays: list[numpy.ndarray] = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor names must be non-empty strings other than '__metadata__', got {name!r}")
        a = backend.to_numpy(tensors[name])
        code = _CODES.get(a.dtype)
        if code is None:
            raise TypeError(f"tensor {name!r} has dtype {a.dtype}; model files hold float32, float64 or int64 only")
        a = numpy.asarray(a, dtype=DTYPES[code], order="C")  # keeps 0-d arrays 0-d, unlike ascontiguousarray
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"safetensors metadata maps strings to strings; not strings: {bad}")
        header["__metadata__"] = dict(metadata)
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # align the data region to 8 bytes, as the safetensors library does
    with atomic_write(path) as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for a in arrays:
            f.write(memoryview(a.reshape(-1)).cast("B"))


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate keys {dup} in the header")
    return dict(pairs)


def load_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, numpy.ndarray], dict[str, str]]:
    """Read a safetensors file written with F32/F64/I64 tensors, validating its layout.

    Returns
    -------
    tensors : dict of name -> ndarray (native byte order, writable copies)
    metadata : dict of str -> str (empty when the file has none)

    Raises
    ------
    ValueError
        Naming the file and the problem: a header length that is too large
        or past the end of the file, a header that is not valid JSON, an
        unknown dtype, a bad shape, data offsets that are not contiguous,
        overlap, leave gaps or run past the end, or a file whose size is
        not exactly header + data.
    """
    path = Path(path)

    def bad(problem: str) -> ValueError:
        return ValueError(f"{path}: not a valid model file: {problem}")

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise bad(f"{size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", f.read(8))
        if n < 2:
            raise bad(f"header length {n} is too small for a JSON object")
        if n > MAX_HEADER_BYTES:
            raise bad(f"header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
        if 8 + n > size:
            raise bad(f"header length {n} runs past the end of the file ({size} bytes): the file is truncated")
        raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise bad(f"the header is not valid UTF-8 JSON ({exc})") from exc
        if not isinstance(header, dict):
            raise bad(f"the header is a JSON {type(header).__name__}, expected an object")
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise bad("'__metadata__' must map strings to strings")
        data_size = size - 8 - n
        spans: list[tuple[int, int, str]] = []
        specs: dict[str, tuple[numpy.dtype, tuple[int, ...], int, int]] = {}
        for name, info in header.items():
            if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
                raise bad(f"tensor {name!r}: expected the keys dtype, shape, data_offsets, got {info!r:.200}")
            code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
            if code not in DTYPES:
                raise bad(f"tensor {name!r} has dtype {code!r}; allowed: {', '.join(DTYPES)}")
            if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
                raise bad(f"tensor {name!r} has shape {shape!r:.200}, expected a list of non-negative integers")
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                    and 0 <= offsets[0] <= offsets[1]):
                raise bad(f"tensor {name!r} has data_offsets {offsets!r:.200}, expected [begin, end] with 0 <= begin <= end")
            begin, end = offsets
            if end > data_size:
                raise bad(f"tensor {name!r} ends at byte {end} of the data, past its end ({data_size} bytes): "
                          "truncated or corrupted file")
            dtype = DTYPES[code]
            if end - begin != math.prod(shape) * dtype.itemsize:
                raise bad(f"tensor {name!r}: shape {shape} of {code} needs {math.prod(shape) * dtype.itemsize} bytes, "
                          f"data_offsets span {end - begin}")
            spans.append((begin, end, name))
            specs[name] = (dtype, tuple(shape), begin, end)
        position = 0
        for begin, end, name in sorted(spans):
            if begin != position:
                what = "overlaps the previous tensor" if begin < position else f"leaves a gap of {begin - position} bytes"
                raise bad(f"tensor {name!r} starts at byte {begin}: it {what} (data_offsets must be contiguous)")
            position = end
        if position != data_size:
            raise bad(f"the tensors hold {position} bytes but the file has {data_size} bytes of data after the header "
                      "(trailing bytes or a corrupted header)")
        data = f.read(data_size)
    if len(data) != data_size:  # the file changed while being read
        raise bad(f"read {len(data)} of {data_size} data bytes")
    tensors = {}
    for name, (dtype, shape, begin, end) in specs.items():
        a = numpy.frombuffer(data, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=begin)
        tensors[name] = a.reshape(shape).astype(dtype.newbyteorder("="))
    return tensors, dict(metadata)


# -- model files -----------------------------------------------------------

@dataclass
class ModelFile:
    """Everything a model file holds.

    Attributes
    ----------
    model : Module -- rebuilt from the description, weights and buffers loaded.
    preprocessing : dict -- what the inputs went through before the model
        (``{"standardizer": {...}, "class_names": [...]}`` by convention).
    metadata : dict -- training metadata (history, options, data set, ...).
    format_version : int
    """

    model: Module
    preprocessing: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return obj.to_dict()
    if isinstance(obj, numpy.generic):
        return obj.item()
    if isinstance(obj, numpy.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _to_json(what: str, value: Any) -> str:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, default=_json_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable (dicts, lists, strings, finite numbers, "
                        f"objects with to_dict()): {exc}") from exc


def save(model: Module, path: str | os.PathLike[str], *, preprocessing: dict[str, Any] | None = None,
         metadata: dict[str, Any] | None = None) -> None:
    """Save ``model`` (architecture + weights + buffers), its preprocessing and metadata to ``path``.

    Parameters
    ----------
    model : Module
    path : str or path-like
        Written atomically (a temporary file beside it, fsync, rename). The
        extension ``.safetensors`` is conventional, not required.
    preprocessing : dict, optional
        JSON-able; objects with ``to_dict()`` (a fitted
        :class:`~deltanet.data.Standardizer`) are stored through it.
    metadata : dict, optional
        JSON-able; NumPy scalars and arrays are converted to numbers and lists.

    Raises
    ------
    IsADirectoryError
        ``path`` is a directory.
    OSError
        The file cannot be written (its message names ``path``; no temporary file is left).
    TypeError
        ``model`` is not a Module, or the dicts are not JSON-serialisable.
    ValueError
        A weight is NaN or infinite (such a model could not be loaded again).
    """
    if not isinstance(model, Module):
        raise TypeError(f"save expects a deltanet Module, got {type(model).__name__}")
    if Path(path).is_dir():
        raise _os_error(errno.EISDIR, f"cannot save the model to {path}: it is a directory; give a file name "
                              f"such as {Path(path) / 'model.safetensors'}")
    state = {name: backend.to_numpy(a) for name, a in model.state_dict().items()}
    for name, a in state.items():
        if a.dtype.kind == "f" and not numpy.isfinite(a).all():
            raise ValueError(f"cannot save {type(model).__name__}: {name!r} holds NaN or infinity "
                             "(training diverged; save the last good weights instead)")
    meta = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "model": _to_json("the model description", model.config()),
        "preprocessing": _to_json("preprocessing", preprocessing),
        "metadata": _to_json("metadata", metadata),
    }
    from . import __version__

    meta["deltanet_version"] = __version__
    save_tensors(path, state, meta)


def _lower_bound_elements(config: Any) -> int:
    """Elements the core layer types of a description need at least (to refuse absurd sizes before allocating)."""
    total = 0
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            ints = {k: v for k, v in node.items() if type(v) is int and v > 0}
            if kind == "Linear" and "in_features" in ints and "out_features" in ints:
                total += ints["in_features"] * ints["out_features"]
            elif kind == "BatchNorm" and "num_features" in ints:
                total += 4 * ints["num_features"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return total


def load_model_file(path: str | os.PathLike[str]) -> ModelFile:
    """Load a model file with everything in it (see :class:`ModelFile`).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Naming the file and the problem: any layout error of
        :func:`load_tensors`, a file that is not a deltanet model file or is
        from a newer format version, an unknown module type, tensors missing,
        extra, of the wrong shape or dtype for the described architecture,
        or weights that are not finite.
    """
    path = Path(path)
    tensors, meta = load_tensors(path)

    def bad(problem: str) -> ValueError:
        return ValueError(f"{path}: {problem}")

    if meta.get("format") != FORMAT_NAME or "model" not in meta:
        raise bad("not a deltanet model file (a safetensors file without the deltanet model description); "
                  "write model files with deltanet.save")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise bad(f"invalid format_version {meta.get('format_version')!r}") from None
    if version < 1 or version > FORMAT_VERSION:
        raise bad(f"format version {version} is not supported by this deltanet (reads up to {FORMAT_VERSION}); "
                  "upgrade deltanet")
    parsed = {}
    for key in ("model", "preprocessing", "metadata"):
        try:
            parsed[key] = json.loads(meta.get(key, "{}"))
        except (ValueError, RecursionError) as exc:
            raise bad(f"the {key} entry is not valid JSON ({exc})") from exc
        if not isinstance(parsed[key], dict):
            raise bad(f"the {key} entry must be a JSON object, got {type(parsed[key]).__name__}")
    config = parsed["model"]
    n_elements = sum(a.size for a in tensors.values())
    if _lower_bound_elements(config) > n_elements:
        raise bad(f"the model description needs at least {_lower_bound_elements(config)} weights but the file holds "
                  f"{n_elements}: corrupted or forged file")
    try:
        model = build(config)
    except (ValueError, TypeError) as exc:
        raise bad(f"cannot rebuild the model: {exc}") from exc
    except (MemoryError, RecursionError) as exc:
        raise bad(f"cannot rebuild the model: the description is too large ({type(exc).__name__})") from exc
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or extra:
        raise bad(f"the tensors do not match the model description: missing {missing}, unexpected {extra}")
    for name, target in own.items():
        a = tensors[name]
        if tuple(a.shape) != tuple(target.shape):
            raise bad(f"tensor {name!r} has shape {tuple(a.shape)}, the model description implies {tuple(target.shape)}")
        if a.dtype != target.dtype:
            raise bad(f"tensor {name!r} is {a.dtype}, the model description implies {target.dtype}")
        if a.dtype.kind == "f" and not numpy.isfinite(a).all():
            raise bad(f"tensor {name!r} holds NaN or infinity")
    model.load_state_dict({name: backend.xp.asarray(a) for name, a in tensors.items()})
    return ModelFile(model, parsed["preprocessing"], parsed["metadata"], version)


def load(path: str | os.PathLike[str]) -> Module:
    """Load the model of a file written by :func:`save` (weights and buffers in place; see :func:`load_model_file`)."""
    return load_model_file(path).model
