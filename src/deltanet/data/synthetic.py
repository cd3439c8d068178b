"""Synthetic two-dimensional data sets for teaching and quick experiments.

Every generator returns ``(X, y)``: ``X`` a float64 array of shape
``(n_samples, 2)`` and ``y`` an int64 array of class labels ``0..C-1``,
shuffled with the same seeded generator that drew the points, so the same
seed gives the same data bit for bit. Classes get ``n_samples // C`` points
each, the first ``n_samples % C`` classes one more.

All points are drawn at once (no per-sample Python loop).
"""

from __future__ import annotations

from typing import Any

import numpy

from ..backend import make_rng


def _check_common(n_samples: Any, n_classes: Any, noise: Any, min_classes: int = 2) -> None:
    if not isinstance(n_samples, (int, numpy.integer)) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if not isinstance(n_classes, (int, numpy.integer)) or isinstance(n_classes, bool) or n_classes < min_classes:
        raise ValueError(f"n_classes must be an int >= {min_classes}, got {n_classes!r}")
    if n_samples < n_classes:
        raise ValueError(f"n_samples ({n_samples}) must be at least n_classes ({n_classes}) so that every class has a point")
    if not (isinstance(noise, (int, float, numpy.floating)) and numpy.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")


def _labels(n_samples: int, n_classes: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Class label of every point and its position t in [0, 1] within its class."""
    counts = numpy.full(n_classes, n_samples // n_classes)
    counts[: n_samples % n_classes] += 1
    y = numpy.repeat(numpy.arange(n_classes), counts)
    starts = numpy.concatenate(([0], numpy.cumsum(counts)[:-1]))
    rank = numpy.arange(n_samples) - starts[y]
    t = rank / numpy.maximum(counts[y] - 1, 1)
    return y, t


def _shuffled(X: numpy.ndarray, y: numpy.ndarray, rng: numpy.random.Generator) -> tuple[numpy.ndarray, numpy.ndarray]:
    order = rng.permutation(len(y))
    return numpy.ascontiguousarray(X[order]), y[order].astype(numpy.int64)


def make_spiral(n_samples: int = 300, n_classes: int = 3, noise: float = 0.2, seed: Any = 0,
                turns: float = 0.65) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""Interleaved spiral arms, one per class: the classic test that a linear model fails.

    Parameters
    ----------
    n_samples : int
        Total number of points.
    n_classes : int
        Number of arms (classes), >= 2.
    noise : float
        Standard deviation of the Gaussian noise added to the angle (radians).
    seed : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy, not reproducible).
    turns : float
        How many full turns each arm makes from the centre to radius 1.

    Returns
    -------
    X : ndarray, shape ``(n_samples, 2)``, float64
    y : ndarray, shape ``(n_samples,)``, int64

    Notes
    -----
    Point i of class k, at position t_i in [0, 1] along its arm:

        r_i     = t_i
        theta_i = 2 pi (turns t_i + k / C) + noise * eps_i,   eps_i ~ N(0, 1)
        x_i     = r_i (sin theta_i, cos theta_i)
    """
    _check_common(n_samples, n_classes, noise)
    rng = make_rng(seed)
    y, t = _labels(n_samples, n_classes)
    theta = 2 * numpy.pi * (turns * t + y / n_classes) + noise * rng.standard_normal(n_samples)
    X = t[:, None] * numpy.stack([numpy.sin(theta), numpy.cos(theta)], axis=1)
    return _shuffled(X, y, rng)


def make_circles(n_samples: int = 300, noise: float = 0.1, factor: float = 0.5,
                 seed: Any = 0) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""Two concentric circles: class 0 on the outer one (radius 1), class 1 on the inner one.

    Parameters
    ----------
    n_samples : int
        Total number of points (split evenly over the two circles).
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate.
    factor : float
        Radius of the inner circle, in (0, 1).
    seed : int, numpy.random.Generator or None

    Notes
    -----
    x_i = r_{y_i} (cos phi_i, sin phi_i) + noise * eps_i with phi_i ~ U[0, 2 pi),
    r_0 = 1, r_1 = factor: separable only by a non-linear boundary (a circle).
    """
    _check_common(n_samples, 2, noise)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor (inner radius) must be in (0, 1), got {factor!r}")
    rng = make_rng(seed)
    y, _ = _labels(n_samples, 2)
    phi = rng.uniform(0.0, 2 * numpy.pi, n_samples)
    radius = numpy.where(y == 0, 1.0, factor)
    X = radius[:, None] * numpy.stack([numpy.cos(phi), numpy.sin(phi)], axis=1)
    X += noise * rng.standard_normal(X.shape)
    return _shuffled(X, y, rng)


def make_xor(n_samples: int = 300, noise: float = 0.1, seed: Any = 0) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""The XOR problem in the plane: the label is 1 where the two coordinates differ in sign.

    Parameters
    ----------
    n_samples : int
        Total number of points.
    noise : float
        Standard deviation of the Gaussian noise added to the points *after*
        labelling, so points near the axes may cross the class boundary.
    seed : int, numpy.random.Generator or None

    Notes
    -----
    u_i ~ U([-1, 1]^2), y_i = [u_i1 > 0] XOR [u_i2 > 0], x_i = u_i + noise * eps_i.
    No single line separates the classes (Minsky and Papert's example); one
    hidden layer of two units suffices.
    """
    _check_common(n_samples, 2, noise)
    rng = make_rng(seed)
    U = rng.uniform(-1.0, 1.0, (n_samples, 2))
    y = ((U[:, 0] > 0) != (U[:, 1] > 0)).astype(numpy.int64)
    X = U + noise * rng.standard_normal(U.shape)
    return X, y


def make_moons(n_samples: int = 300, noise: float = 0.1, seed: Any = 0) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""Two interleaving half circles.

    Parameters
    ----------
    n_samples : int
        Total number of points (split evenly over the two moons).
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate.
    seed : int, numpy.random.Generator or None

    Notes
    -----
    With s_i = pi t_i, t_i in [0, 1] evenly spaced within the class:
    class 0 is (cos s, sin s), class 1 is (1 - cos s, 1/2 - sin s), plus
    noise * eps_i (the same two arcs as scikit-learn's ``make_moons``).
    """
    _check_common(n_samples, 2, noise)
    rng = make_rng(seed)
    y, t = _labels(n_samples, 2)
    s = numpy.pi * t
    upper = numpy.stack([numpy.cos(s), numpy.sin(s)], axis=1)
    lower = numpy.stack([1.0 - numpy.cos(s), 0.5 - numpy.sin(s)], axis=1)
    X = numpy.where((y == 0)[:, None], upper, lower)
    X += noise * rng.standard_normal(X.shape)
    return _shuffled(X, y, rng)


def make_blobs(n_samples: int = 300, n_classes: int = 3, std: float = 1.0, seed: Any = 0, *,
               centers: Any = None, radius: float = 4.0) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""Isotropic Gaussian clusters, one per class.

    Parameters
    ----------
    n_samples : int
        Total number of points.
    n_classes : int
        Number of clusters; ignored when ``centers`` is given.
    std : float
        Standard deviation of every cluster (per coordinate), > 0.
    seed : int, numpy.random.Generator or None
    centers : array-like of shape ``(C, 2)``, optional
        The cluster centres; by default ``C = n_classes`` centres evenly
        spaced on a circle of radius ``radius`` around the origin.
    radius : float
        Radius of the circle of default centres.

    Notes
    -----
    x_i = c_{y_i} + std * eps_i, eps_i ~ N(0, I_2); default centres
    c_k = radius (cos(2 pi k / C), sin(2 pi k / C)).
    """
    if centers is not None:
        centers = numpy.asarray(centers, dtype=numpy.float64)
        if centers.ndim != 2 or centers.shape[1] != 2 or centers.shape[0] < 1:
            raise ValueError(f"centers must have shape (n_classes, 2), got {centers.shape}")
        if not numpy.isfinite(centers).all():
            raise ValueError("centers must be finite")
        n_classes = centers.shape[0]
        _check_common(n_samples, n_classes, 0.0, min_classes=1)
    else:
        _check_common(n_samples, n_classes, 0.0)
        angle = 2 * numpy.pi * numpy.arange(n_classes) / n_classes
        centers = radius * numpy.stack([numpy.cos(angle), numpy.sin(angle)], axis=1)
    if not (isinstance(std, (int, float, numpy.floating)) and numpy.isfinite(std) and std > 0):
        raise ValueError(f"std must be a finite number > 0, got {std!r}")
    rng = make_rng(seed)
    y, _ = _labels(n_samples, n_classes)
    X = centers[y] + std * rng.standard_normal((n_samples, 2))
    return _shuffled(X, y, rng)


#: Name -> generator, for the registry and the command line.
GENERATORS = {
    "spiral": make_spiral,
    "circles": make_circles,
    "xor": make_xor,
    "moons": make_moons,
    "blobs": make_blobs,
}
