"""scikit-learn estimators: deltanet's MLPs behind the interface of ``sklearn.neural_network``.

>>> from deltanet.sklearn import MLPClassifier, MLPRegressor   # doctest: +SKIP

:class:`MLPClassifier` and :class:`MLPRegressor` work in pipelines, grid
searches and cross-validation, pickle (for joblib), and save to deltanet model
files (``est.save(path)`` / ``MLPClassifier.load(path)``). scikit-learn is an
optional extra: ``pip install deltanet[sklearn]``.
"""

from __future__ import annotations

try:
    import sklearn
except ImportError as exc:  # the optional extra is missing
    raise ImportError("deltanet.sklearn needs scikit-learn, an optional extra: pip install deltanet[sklearn]") from exc

_MIN_SKLEARN = (1, 6)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


if _version_tuple(sklearn.__version__) < _MIN_SKLEARN:
    raise ImportError(f"deltanet.sklearn needs scikit-learn >= {'.'.join(map(str, _MIN_SKLEARN))} "
                      f"(found {sklearn.__version__}): pip install -U deltanet[sklearn]")

from .classifier import MLPClassifier  # noqa: E402
from .regressor import MLPRegressor  # noqa: E402

__all__ = ["MLPClassifier", "MLPRegressor"]
