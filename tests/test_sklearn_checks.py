"""scikit-learn's own conformance suite (check_estimator's checks) on fastnn.sklearn's estimators:
every check must pass, none is marked as an expected failure."""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# scikit-learn's own test instances of its MLPs (max_iter=100 for speed); with them the checks
# that need a model of fitted quality (check_classifiers_train, check_regressors_train) pass.
ESTIMATORS = [MLPClassifier(max_iter=100, random_state=0),
              MLPRegressor(max_iter=100, random_state=0)]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_check(estimator, check):
    check(estimator)
