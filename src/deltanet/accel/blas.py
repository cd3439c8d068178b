"""Three BLAS updates NumPy does not expose, taken from the BLAS that NumPy itself uses.

* :func:`gemm`: ``C <- alpha A B + beta C`` in place -- the matrix product *added* to a scaled
  matrix in the product's own pass over ``C``. NumPy's ``matmul`` can only overwrite ``C``; the
  same update costs it a product into a temporary and two more passes.
* :func:`axpy`: ``y <- alpha x + y`` in place, one pass, on as many threads as the products use
  (NumPy: a temporary and two passes on one core).
* :func:`axpby`: ``y <- alpha x + beta y`` in place, one pass (NumPy: three), for the moving
  averages of Adam.

They make the momentum step of SGD nearly free (see :meth:`deltanet.optim.Optimizer.fold_gradients`):
the weight-gradient product of each layer is added straight into the momentum buffer,
``b <- dL/dW + mu b``, and the update ``W <- W - alpha b`` is one axpy over all parameters.

The routines are called through :mod:`ctypes` on the OpenBLAS library bundled with NumPy's
wheels (``scipy-openblas``), the very library NumPy loaded, so they share its threads. Where
that library is not there (NumPy built against another BLAS, such as Accelerate on macOS),
or for arrays it cannot take (other dtypes than float32/float64, no unit stride, overlapping
arrays, a GPU array), each function computes the same update with NumPy; :func:`available`
says which. ``DELTANET_BLAS=numpy`` in the environment turns the BLAS path off.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
from typing import Any

import numpy

from .. import backend

_COL_MAJOR, _NO_TRANS, _TRANS = 102, 111, 112


class _Library:
    """The float32 and float64 ``cblas_?gemm``, ``cblas_?axpy`` and (if there) ``cblas_?axpby`` of one loaded BLAS."""

    def __init__(self, lib: ctypes.CDLL, prefix: str, suffix: str, int_type: Any) -> None:
        self.name = getattr(lib, "_name", "?")
        self.gemm, self.axpy, self.axpby = {}, {}, {}
        for letter, dtype, real in (("s", numpy.float32, ctypes.c_float), ("d", numpy.float64, ctypes.c_double)):
            gemm = getattr(lib, f"{prefix}cblas_{letter}gemm{suffix}")
            gemm.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_type, int_type, int_type, real,
                             ctypes.c_void_p, int_type, ctypes.c_void_p, int_type, real, ctypes.c_void_p, int_type]
            gemm.restype = None
            axpy = getattr(lib, f"{prefix}cblas_{letter}axpy{suffix}")
            axpy.argtypes = [int_type, real, ctypes.c_void_p, int_type, ctypes.c_void_p, int_type]
            axpy.restype = None
            self.gemm[numpy.dtype(dtype)] = gemm
            self.axpy[numpy.dtype(dtype)] = axpy
            axpby = getattr(lib, f"{prefix}cblas_{letter}axpby{suffix}", None)     # an OpenBLAS extension
            if axpby is not None:
                axpby.argtypes = [int_type, real, ctypes.c_void_p, int_type, real, ctypes.c_void_p, int_type]
                axpby.restype = None
                self.axpby[numpy.dtype(dtype)] = axpby


_LIB: _Library | None = None


def _bundled_openblas() -> list[pathlib.Path]:
    """The OpenBLAS files shipped inside NumPy's wheel (Linux, Windows: ``numpy.libs``; macOS: ``numpy/.dylibs``)."""
    root = pathlib.Path(numpy.__file__).parent
    found: list[pathlib.Path] = []
    for folder in (root.parent / "numpy.libs", root / ".dylibs"):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if "openblas" in p.name.lower())
    return found


def _load() -> _Library | None:
    if os.environ.get("DELTANET_BLAS", "").lower() == "numpy":
        return None
    try:
        name = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:                                   # an unknown build: use NumPy
        return None
    if not str(name).startswith("scipy-openblas"):
        return None
    # scipy-openblas64 names its ILP64 routines scipy_cblas_sgemm64_ (64-bit integers), scipy-openblas32 scipy_cblas_sgemm
    variants = (("scipy_", "64_", ctypes.c_int64), ("scipy_", "", ctypes.c_int32))
    for path in _bundled_openblas():
        try:
            lib = ctypes.CDLL(str(path))               # already loaded by NumPy: the same handle and threads
        except OSError:
            continue
        for prefix, suffix, int_type in variants:
            if hasattr(lib, f"{prefix}cblas_sgemm{suffix}"):
                try:
                    library = _Library(lib, prefix, suffix, int_type)
                except AttributeError:
                    continue
                return library if _works(library) else None
    return None


def _works(library: _Library) -> bool:
    """Check the library on a small product against NumPy before trusting it."""
    global _LIB
    saved, _LIB = _LIB, library
    try:
        rng = numpy.random.default_rng(0)
        a, b = rng.standard_normal((5, 3)), numpy.asfortranarray(rng.standard_normal((3, 4)))
        c = rng.standard_normal((5, 4))
        expected = 0.5 * (a @ b) - 2.0 * c
        gemm(0.5, a, b, -2.0, c)
        y = numpy.arange(4.0)
        axpy(2.0, numpy.ones(4), y)
        z = numpy.arange(4.0)
        axpby(2.0, numpy.ones(4), 0.5, z)
        return bool(numpy.allclose(c, expected, rtol=1e-12, atol=1e-12) and numpy.array_equal(y, [2.0, 3.0, 4.0, 5.0])
                    and numpy.array_equal(z, [2.0, 2.5, 3.0, 3.5]))
    finally:
        _LIB = saved


def available() -> bool:
    """Whether :func:`gemm`, :func:`axpy` and (where the library has it) :func:`axpby` run in NumPy's BLAS
    (else: the NumPy fallbacks)."""
    return _LIB is not None


def _column_major(x: Any) -> tuple[int, int] | None:
    """``(transpose flag, leading dimension)`` to pass the 2-D array ``x`` to a column-major BLAS, or None.

    ``x`` (``r x s``) qualifies when its elements are column-major with a
    leading dimension (``x`` is read as is) or row-major (the BLAS reads the
    column-major ``s x r`` matrix ``x^T`` and transposes it).
    """
    r, s = x.shape
    item = x.itemsize
    s0, s1 = x.strides
    if (r == 1 or s0 == item) and (s == 1 or (s1 % item == 0 and s1 // item >= r)):
        return _NO_TRANS, (s1 // item if s > 1 else max(1, r))
    if (s == 1 or s1 == item) and (r == 1 or (s0 % item == 0 and s0 // item >= s)):
        return _TRANS, (s0 // item if r > 1 else max(1, s))
    return None


def _blas_gemm(alpha: float, a: Any, b: Any, beta: float, c: Any) -> bool:
    """``c <- alpha a b + beta c`` by the BLAS; False (nothing done) when the arrays do not suit it."""
    if _LIB is None or type(c) is not numpy.ndarray or type(a) is not numpy.ndarray or type(b) is not numpy.ndarray:
        return False
    fn = _LIB.gemm.get(c.dtype)
    if fn is None or a.dtype != c.dtype or b.dtype != c.dtype or not c.flags.writeable or c.size == 0 or a.shape[1] == 0:
        return False
    out = _column_major(c)
    if out is None:
        return False
    if out[0] == _TRANS:                                 # a row-major c: c^T = alpha b^T a^T + beta c^T, column-major
        a, b, c = b.T, a.T, c.T
        out = _column_major(c)
    op_a, op_b = _column_major(a), _column_major(b)
    if op_a is None or op_b is None or numpy.may_share_memory(c, a) or numpy.may_share_memory(c, b):
        return False
    (m, k), n = a.shape, b.shape[1]
    fn(_COL_MAJOR, op_a[0], op_b[0], m, n, k, alpha, a.ctypes.data, op_a[1], b.ctypes.data, op_b[1],
       beta, c.ctypes.data, out[1])
    return True


def gemm(alpha: float, a: Any, b: Any, beta: float, c: Any) -> None:
    r"""``c <- alpha * (a @ b) + beta * c``, in place.

    Parameters
    ----------
    alpha, beta : float
    a, b : arrays of shapes ``(m, k)`` and ``(k, n)``
    c : array of shape ``(m, n)``, overwritten. With ``beta == 0`` its old
        contents are never read (NaN stays out).

    Same dtype for all three: float32 or float64 use the BLAS (in either memory
    order, with a leading dimension: a column-major array, a row-major one, or a
    slice of one), anything else NumPy.
    """
    if a.ndim != 2 or b.ndim != 2 or c.ndim != 2 or a.shape[1] != b.shape[0] or c.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"gemm: shapes {a.shape} @ {b.shape} -> {c.shape} do not match")
    if _blas_gemm(float(alpha), a, b, float(beta), c):
        return
    if beta == 0:
        backend.get_array_module(c).matmul(a, b, out=c)
        if alpha != 1:
            c *= alpha
        return
    product = a @ b
    if alpha != 1:
        product *= alpha
    if beta != 1:
        c *= beta
    c += product


def _vector_routine(name: str, x: Any, y: Any) -> Any:
    """The BLAS routine ``name`` (``"axpy"``, ``"axpby"``) for arrays ``x``, ``y`` of one shape and dtype that
    are both row-major or both column-major (then element i of one lies beside element i of the other in
    memory order) and distinct; None for NumPy."""
    if x.shape != y.shape:
        raise ValueError(f"{name}: shapes {x.shape} and {y.shape} differ")
    if (_LIB is None or type(x) is not numpy.ndarray or type(y) is not numpy.ndarray or not x.size
            or x.dtype != y.dtype or not y.flags.writeable
            or not ((x.flags.c_contiguous and y.flags.c_contiguous) or (x.flags.f_contiguous and y.flags.f_contiguous))
            or numpy.may_share_memory(x, y)):
        return None
    return getattr(_LIB, name).get(x.dtype)


def axpy(alpha: float, x: Any, y: Any) -> None:
    """``y <- alpha * x + y``, in place, for arrays of one shape and dtype (the BLAS for two contiguous arrays
    in one memory order, else NumPy)."""
    fn = _vector_routine("axpy", x, y)
    if fn is None:
        y += alpha * x
    else:
        fn(x.size, float(alpha), x.ctypes.data, 1, y.ctypes.data, 1)


def axpby(alpha: float, x: Any, beta: float, y: Any) -> None:
    """``y <- alpha * x + beta * y``, in place, for arrays of one shape and dtype (the BLAS for two contiguous
    arrays in one memory order, else NumPy)."""
    fn = _vector_routine("axpby", x, y)
    if fn is None:
        y *= beta
        y += alpha * x
    else:
        fn(x.size, float(alpha), x.ctypes.data, 1, float(beta), y.ctypes.data, 1)


_LIB = _load()        # the last statement: the check in _works runs gemm and axpy
