"""scikit-learn's own estimator checks over MLPClassifier and MLPRegressor."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks

from deltanet.sklearn import MLPClassifier, MLPRegressor

# the check instances train for a few epochs on purpose (speed): the iteration limit ending the run is expected
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = {"hidden_layer_sizes": (16,), "max_iter": 50, "learning_rate_init": 0.01}

ESTIMATORS = [
    MLPClassifier(**SMALL),
    MLPRegressor(**SMALL),
    MLPClassifier(**SMALL, dtype="float32"),
    MLPRegressor(**SMALL, dtype="float32"),
    MLPClassifier(**SMALL, dropout=0.1, batch_norm=True),
    MLPRegressor(**SMALL, dropout=0.1, batch_norm=True),
    MLPClassifier((16,), solver="lbfgs", max_iter=50),
    MLPRegressor((16,), solver="lbfgs", max_iter=50),
]


def expected_failures(estimator):
    """Checks that fail for a reason that is true of the method, not a bug (strict: they must fail)."""
    reasons = []
    if estimator.dropout:
        reasons.append("dropout draws an independent mask per row, so a repeated row gets different masks than a "
                       "weighted one")
    if estimator.batch_norm:
        reasons.append("batch normalization's batch mean and variance are unweighted averages over the batch rows, "
                       "so repeating a row changes them while weighting it does not")
    if not reasons:
        return {}
    return {f"check_sample_weight_equivalence_on_{kind}_data": "; ".join(reasons) for kind in ("dense", "sparse")}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures, xfail_strict=True)
def test_sklearn_compatible(estimator, check):
    name = getattr(check, "func", check).__name__
    if estimator.dtype == "float32" and name.startswith("check_sample_weight_equivalence"):
        try:
            check(estimator)
        except AssertionError:
            pytest.xfail(FLOAT32_WEIGHTS)
        return
    check(estimator)


#: Why a float32 instance may fail the sample-weight equivalence checks (whether it does depends on the rounding).
FLOAT32_WEIGHTS = ("float32 arithmetic: weighted and repeated rows are summed in a different order, so the predictions "
                   "agree to float32 precision (~1e-7 relative) only, while the check asks rtol=1e-7 (the float64 "
                   "instances pass)")
