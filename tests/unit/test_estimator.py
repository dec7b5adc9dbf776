"""estimator.py: HierarchicalClassifier is a scikit-learn estimator (its own checks), trained by hcal's engine."""

import functools
import inspect
import json
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from hcal import Config, ConfigError, HierarchicalClassifier, predict
from hcal.datasets.synthetic import make_synthetic
from hcal.estimator import NOT_PARAMETERS


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is as fast, and never waits on a busy machine's other core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class OneLevelAdded(HierarchicalClassifier):
    """HierarchicalClassifier on scikit-learn's checks, whose targets have one column: label ``y`` becomes the path
    ``(y, y)`` (a two-level tree whose every class is its own parent) and predictions drop the added level.

    Everything else the checks look at (input validation, fitting through hcal's engine, predict, predict_proba,
    pickling, fitted attributes, parameters) is HierarchicalClassifier's own.
    """

    def fit(self, X, y):
        if y is not None:
            y = np.asarray(y)
            y = np.column_stack([y.ravel(), y.ravel()]) if y.ndim == 1 or y.shape[1:] == (1,) else y
        return super().fit(X, y)

    def predict(self, X):
        return super().predict(X)[:, 1]

    def predict_proba(self, X):
        return super().predict_proba(X)[1]

    def score(self, X, y, sample_weight=None):
        return float(np.average(self.predict(X) == np.asarray(y).ravel(), weights=sample_weight))


ONE_COLUMN = ("fits a one-column target (y of shape (n,) or (n, 1)): a hierarchy has at least two levels, and "
              "HierarchicalClassifier refuses it with a ValueError saying so; the check passes on OneLevelAdded")
FITS_ONE_COLUMN = (
    "check_classifier_data_not_an_array", "check_classifiers_classes", "check_classifiers_one_label",
    "check_classifiers_regression_target", "check_classifiers_train", "check_dict_unchanged",
    "check_dont_overwrite_parameters", "check_dtype_object", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_nan_inf", "check_estimators_overwrite_params",
    "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent", "check_fit_score_takes_y",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
)
NOT_A_TREE = ("fits independent binary label columns (multilabel): class '0' of one column sits under both '0' and "
              "'1' of the next, not a tree; HierarchicalClassifier refuses it with a HierarchyError naming the class")
SKIPPED = {  # per estimator, the checks that cannot apply, each with why
    "HierarchicalClassifier": {name: ONE_COLUMN for name in FITS_ONE_COLUMN} | {"check_classifier_multioutput":
                                                                                 NOT_A_TREE},
    "OneLevelAdded": {
        "check_classifier_multioutput": NOT_A_TREE,
        "check_classifiers_classes": "expects classes_ to be one array; a hierarchical classifier has one per level "
                                     "(a list, as scikit-learn's multi-output classifiers have it)",
        "check_methods_subset_invariance": "a float32 network: a sample's probabilities differ by up to ~2e-7 with "
                                           "the batch it is computed in, above the check's 1e-7 tolerance",
    },
}


def _name(check) -> str:
    while isinstance(check, functools.partial):
        check = check.func
    return check.__name__


@parametrize_with_checks([HierarchicalClassifier(epochs=2, batch_size=16), OneLevelAdded(epochs=2, batch_size=16)])
def test_scikit_learn_estimator_checks(estimator, check):
    reason = SKIPPED[type(estimator).__name__].get(_name(check))
    if reason:
        pytest.skip(reason)
    check(estimator)


# ------------------------------------------------------------------------------------- hierarchical targets
def _data():
    """Synthetic 3-level data: features and label paths (coarsest first), 400 to train on and 100 to test."""
    h, x_train, y_train, x_test, y_test = make_synthetic(train_size=400, test_size=100)
    return (x_train.numpy(), np.array([h.decode(row) for row in y_train.tolist()]), x_test.numpy(),
            np.array([h.decode(row) for row in y_test.tolist()]))


@pytest.fixture(scope="module")
def fitted():
    X, Y, X_test, Y_test = _data()
    return HierarchicalClassifier(epochs=3).fit(X, Y), X_test, Y_test


def test_fit_predict_proba_and_score_on_label_paths(fitted):
    clf, X, Y = fitted
    assert [list(c) for c in clf.classes_] == [sorted(set(Y[:, j])) for j in range(3)]
    assert clf.hierarchy_.sizes == (8, 4, 2) and clf.n_features_in_ == 16 and clf.module_.config.method == "hcal"
    assert clf.config_.epochs == 3 and clf.config_.run_dir is None
    pred = clf.predict(X)
    assert pred.shape == (100, 3) and pred.dtype == Y.dtype
    full_path = np.all(pred == Y, axis=1).mean()
    assert clf.score(X, Y) == full_path > 0.8  # an easy tree
    probs = clf.predict_proba(X)
    assert [p.shape for p in probs] == [(100, 2), (100, 4), (100, 8)]  # coarsest first, as Y's columns
    for j, p in enumerate(probs):
        np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)
        assert (clf.classes_[j][p.argmax(axis=1)] == pred[:, j]).all()  # nearest decoding: each level's argmax
    consistent = clf.set_params(decode="consistent").predict(X)
    assert all(tuple(row) in set(map(tuple, clf.hierarchy_.leaf_paths_named())) for row in consistent)
    clf.set_params(decode="nearest")


def test_joined_strings_and_integer_labels():
    X, Y, X_test, Y_test = _data()
    joined = ["|".join(row) for row in Y]
    clf = HierarchicalClassifier(epochs=1, separator="|").fit(X, joined)
    pred = clf.predict(X_test[:5])
    assert pred.shape == (5,) and all(p.count("|") == 2 for p in pred)
    assert clf.score(X_test, ["|".join(row) for row in Y_test]) == pytest.approx(
        np.mean(clf.predict(X_test) == np.array(["|".join(row) for row in Y_test])))
    codes = np.stack([np.unique(Y[:, j], return_inverse=True)[1] for j in range(3)], axis=1)  # integer labels
    ints = HierarchicalClassifier(epochs=1).fit(X, codes)
    assert ints.predict(X_test[:5]).dtype.kind == "i" and [c.tolist() for c in ints.classes_] == [[0, 1], [0, 1, 2, 3],
                                                                                                  list(range(8))]


def test_parameters_are_every_config_option_with_its_default():
    params = HierarchicalClassifier().get_params()
    config = Config().to_dict()
    assert set(params) == (set(config) - set(NOT_PARAMETERS)) | {"separator", "verbose"}
    assert all(params[k] == config[k] for k in params if k in config)
    assert "epochs" in str(inspect.signature(HierarchicalClassifier))
    clf = HierarchicalClassifier(method="ew", epochs=4)
    assert clone(clf).get_params() == clf.get_params() and repr(clf) == "HierarchicalClassifier(epochs=4, method='ew')"
    with pytest.raises(TypeError, match="epoch"):
        HierarchicalClassifier(epoch=3)
    with pytest.raises(ConfigError, match=r"HierarchicalClassifier\(epochs=\.\.\.\): expected an integer >= 1, got 0"):
        HierarchicalClassifier(epochs=0).fit(*_data()[:2])


def test_bad_targets_are_one_line_value_errors():
    X, Y, _, _ = _data()
    clf = HierarchicalClassifier(epochs=1)
    for y, fragment in ((Y[:, :1], r"at least 2 levels.*shape \(400, 1\)"), (None, "requires y"),
                        (Y[:10], "inconsistent numbers of samples"),
                        (["a/b"] * 399 + ["a/b/c"], r"row 399 \('a/b/c'\) has 3 levels but row 0 \('a/b'\) has 2"),
                        (np.array([["A", "x"], ["B", "x"]] * 200), "'x' .* two parents")):
        with pytest.raises(ValueError, match=fragment):
            clf.fit(X, y)
    with pytest.raises(ValueError, match="val_fraction=0.1 holds out 0"):
        clf.fit(X[:3], Y[:3])


def test_pipeline_grid_search_pickle_and_joblib(fitted, tmp_path):
    clf, X_test, Y_test = fitted
    expected, probs = clf.predict(X_test), clf.predict_proba(X_test)
    again = pickle.loads(pickle.dumps(clf))
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    for copy in (again, loaded):
        assert (copy.predict(X_test) == expected).all()
        for a, b in zip(copy.predict_proba(X_test), probs):
            np.testing.assert_array_equal(a, b)
    X, Y, _, _ = _data()
    search = GridSearchCV(make_pipeline(StandardScaler(), HierarchicalClassifier(epochs=1)),
                          {"hierarchicalclassifier__lr": [0.01, 0.05]}, cv=2).fit(X[:200], Y[:200])
    assert set(search.best_params_) == {"hierarchicalclassifier__lr"} and 0 <= search.best_score_ <= 1
    assert search.predict(X_test).shape == (100, 3)


def test_quiet_and_no_run_left_behind_unless_asked(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    X, Y, X_test, _ = _data()
    HierarchicalClassifier(epochs=1).fit(X, Y)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert list(tmp_path.rglob("*")) == [tmp_path / "tmp"]  # the temporary run is gone, no runs/ made
    clf = HierarchicalClassifier(epochs=1, run_dir="kept", verbose=True).fit(X, Y)
    assert "hcal fit: hcal on features" in capfd.readouterr().out
    best = tmp_path / "kept" / "checkpoints" / "best.ckpt"
    assert best.is_file() and json.loads((tmp_path / "kept" / "metrics.json").read_text())
    rows = predict(best, X_test, echo=lambda *a: None)  # hcal predict reads the kept run
    assert [[r["label_l3"], r["label_l2"], r["label_l1"]] for r in rows] == clf.predict(X_test).tolist()


class Pictures(torch.utils.data.Dataset):
    """Grey 16x16 images (with an index, as torchvision datasets give (image, target) pairs): bright or dark."""

    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.bright = torch.arange(n) % 2 == 0
        self.images = torch.randint(0, 100, (n, 1, 16, 16), generator=g, dtype=torch.uint8) + 150 * self.bright.view(
            -1, 1, 1, 1).to(torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i


def test_images_as_a_torch_dataset():
    data = Pictures(60)
    Y = np.array([("light", "bright") if b else ("dark", "dim") for b in data.bright.tolist()])  # no 1-class level
    clf = HierarchicalClassifier(epochs=2, batch_size=8).fit(data, Y)
    assert clf.module_.input_spec.kind == "image" and clf.config_.backbone == "small-cnn"
    pred = clf.predict(data)
    assert pred.shape == (60, 2) and set(pred[:, 0]) <= {"light", "dark"}
    assert [p.shape for p in clf.predict_proba(data.images)] == [(60, 2), (60, 2)]  # a uint8 array works too
    with pytest.raises(ValueError, match="square .C, S, S. image tensors"):
        clf.fit(torch.utils.data.TensorDataset(torch.zeros(4, 16)), Y[:4])
