"""The IDX file format (MNIST, Fashion-MNIST), read with validation.

Layout (LeCun et al., "THE MNIST DATABASE of handwritten digits"):

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions n
    then n      big-endian uint32 sizes, then the elements, big-endian, C order.

A file may be gzip-compressed (recognised by its first two bytes, not by its
name).
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy

#: IDX element-type code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, numpy.dtype] = {
    0x08: numpy.dtype(">u1"),
    0x09: numpy.dtype(">i1"),
    0x0B: numpy.dtype(">i2"),
    0x0C: numpy.dtype(">i4"),
    0x0D: numpy.dtype(">f4"),
    0x0E: numpy.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    return _gunzip(path, raw)


def _gunzip(path: Path, raw: bytes) -> bytes:
    """Decompress gzip data no further than the IDX header says it holds (plus one byte, to see trailing data).

    A small file that inflates to gigabytes (a "gzip bomb") is refused after
    reading its header, instead of being inflated whole into memory first.
    """
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    fed = [False]

    def more(want: int, have: bytes) -> bytes:
        data = inflate.unconsumed_tail if fed[0] else raw
        fed[0] = True
        try:
            out = have + inflate.decompress(data, want - len(have))
        except zlib.error as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc}); download the file again") from exc
        if len(out) < want and not inflate.eof and not inflate.unconsumed_tail:
            raise ValueError(f"{path}: corrupt or truncated gzip data (the stream ends early); download the file again")
        return out

    out = more(4, b"")
    if len(out) < 4 or out[0] != 0 or out[1] != 0 or out[2] not in IDX_DTYPES or out[3] < 1:
        return out  # read_idx names what is wrong
    out = more(4 + 4 * out[3], out)
    if len(out) < 4 + 4 * out[3]:
        return out
    shape = numpy.frombuffer(out, dtype=">u4", count=out[3], offset=4)
    total = 4 + 4 * out[3] + math.prod(int(d) for d in shape) * IDX_DTYPES[out[2]].itemsize
    if total > len(raw) * 1100 + 4096:  # beyond what deflate can do: a forged header; read_idx reports the shortfall
        return out
    return more(total + 1, out)


def read_idx(path: str | os.PathLike[str]) -> numpy.ndarray:
    """Read an IDX file (optionally gzipped) into a NumPy array in native byte order.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray
        Shape given by the file's dimensions; dtype from its type code
        (uint8 for MNIST).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the magic number, type code or dimensions are invalid, or the data
        is shorter (truncated file) or longer than the dimensions imply.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file: magic number starts with {raw[:2].hex()}, expected 0000")
    code, ndim = raw[2], raw[3]
    dtype = IDX_DTYPES.get(code)
    if dtype is None:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in IDX_DTYPES.items())
        raise ValueError(f"{path}: unknown IDX element type code 0x{code:02X}; known codes: {known}")
    if ndim < 1:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, the file has {len(raw)}")
    shape = tuple(int(d) for d in numpy.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise ValueError(f"{path}: truncated IDX file: dimensions {shape} of {dtype.name} need {expected} bytes of data, "
                         f"found {found}; download the file again")
    if found > expected:
        raise ValueError(f"{path}: IDX file has {found - expected} unexpected trailing bytes after the {expected} bytes "
                         f"that dimensions {shape} of {dtype.name} need")
    data = numpy.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
