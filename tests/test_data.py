import numpy as np
import pytest

from fastnn import data


# ---- one_hot -----------------------------------------------------------------------------------

def test_one_hot_matches_identity_rows(rng):
    labels = rng.integers(0, 7, size=50)
    out = data.one_hot(labels, 7)
    assert out.shape == (50, 7) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(7, dtype=np.float32)[labels])


def test_one_hot_infers_classes_keeps_shape_and_dtype():
    out = data.one_hot(np.array([[0, 3], [1, 1]], dtype=np.uint8), dtype=np.float64)
    assert out.shape == (2, 2, 4) and out.dtype == np.float64
    assert out[0, 1, 3] == 1 and out.sum() == 4
    assert data.one_hot(np.array([], dtype=int), num_classes=3).shape == (0, 3)


@pytest.mark.parametrize("labels, num_classes, exc, words", [
    ([0, 3], 3, ValueError, "got 3 at index 1"),
    ([0, -1], 3, ValueError, "got -1 at index 1"),
    ([0.0, 1.0], 3, TypeError, "integer"),
    ([True, False], 3, TypeError, "integer"),
    (["a"], 3, TypeError, "integer"),
    ([0, 1], 0, ValueError, "num_classes"),
    ([0, 1], 2.0, TypeError, "num_classes"),
    (np.array([], dtype=int), None, ValueError, "num_classes"),
])
def test_one_hot_rejects_bad_labels(labels, num_classes, exc, words):
    with pytest.raises(exc, match=words):
        data.one_hot(labels, num_classes)


# ---- splits ------------------------------------------------------------------------------------

def _ids(X):
    return X[:, 0].astype(int)


def test_train_test_split_partitions_and_is_seeded():
    X = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = np.arange(50)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, test_size=0.2, seed=3)
    assert len(X_te) == 10 and len(X_tr) == 40
    # Every sample exactly once, and X/y rows stay paired.
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(50))
    np.testing.assert_array_equal(_ids(X_tr) // 2, y_tr)
    again = data.train_test_split(X, y, test_size=0.2, seed=3)
    other = data.train_test_split(X, y, test_size=0.2, seed=4)
    np.testing.assert_array_equal(again[3], y_te)
    assert not np.array_equal(other[3], y_te)


def test_train_test_split_sizes_like_sklearn():
    X = np.zeros((10, 1))
    assert [len(p) for p in data.train_test_split(X, test_size=0.25)] == [7, 3]  # ceil(2.5)
    assert [len(p) for p in data.train_test_split(X, test_size=4)] == [6, 4]
    X_tr, X_te = data.train_test_split(np.arange(10)[:, None], test_size=3, shuffle=False)
    assert X_te.ravel().tolist() == [7, 8, 9] and X_tr.ravel().tolist() == list(range(7))


def test_stratified_split_keeps_class_proportions(rng):
    y = np.repeat([0, 1, 2], [60, 30, 10])
    rng.shuffle(y)
    X = np.arange(100)[:, None]
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, test_size=0.2, stratify=True,
                                                   seed=int(rng.integers(1 << 30)))
    assert np.bincount(y_te).tolist() == [12, 6, 2]
    assert np.bincount(y_tr).tolist() == [48, 24, 8]
    np.testing.assert_array_equal(y[X_tr.ravel()], y_tr)


def test_stratified_split_accepts_one_hot_rows():
    y = data.one_hot(np.repeat([0, 1], [8, 4]))
    _, _, _, y_te = data.train_test_split(np.zeros((12, 1)), y, test_size=0.25, stratify=True)
    assert y_te.sum(axis=0).tolist() == [2, 1]


def test_train_val_test_split_partitions_stratified():
    y = np.repeat([0, 1], [70, 30])
    X = np.arange(100)[:, None]
    X_tr, X_va, X_te, y_tr, y_va, y_te = data.train_val_test_split(
        X, y, val_size=0.1, test_size=20, seed=1, stratify=True)
    assert (len(X_tr), len(X_va), len(X_te)) == (70, 10, 20)
    assert np.bincount(y_te).tolist() == [14, 6] and np.bincount(y_va).tolist() == [7, 3]
    seen = np.concatenate([X_tr, X_va, X_te]).ravel()
    assert sorted(seen.tolist()) == list(range(100))
    for Xp, yp in [(X_tr, y_tr), (X_va, y_va), (X_te, y_te)]:
        np.testing.assert_array_equal(y[Xp.ravel()], yp)


def test_train_val_test_split_without_y_and_unshuffled():
    X_tr, X_va, X_te = data.train_val_test_split(np.arange(10)[:, None], val_size=2, test_size=3,
                                                 shuffle=False)
    assert (X_tr.ravel().tolist(), X_va.ravel().tolist(), X_te.ravel().tolist()) == \
        (list(range(5)), [5, 6], [7, 8, 9])


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(test_size=1.0), ValueError, "test_size"),
    (dict(test_size=0.0), ValueError, "test_size"),
    (dict(test_size=11), ValueError, r"\[0, 10\]"),
    (dict(test_size=10), ValueError, "no training samples"),
    (dict(test_size="0.2"), TypeError, "test_size"),
    (dict(stratify=True, shuffle=False), ValueError, "shuffle"),
])
def test_split_rejects_bad_sizes(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        data.train_test_split(np.zeros((10, 2)), np.zeros(10, dtype=int), **kwargs)


def test_split_rejects_mismatch_and_stratify_without_y():
    with pytest.raises(ValueError, match="y: expected 10 rows"):
        data.train_test_split(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="stratify"):
        data.train_test_split(np.zeros((10, 2)), stratify=True)


# ---- batches -----------------------------------------------------------------------------------

def test_batches_cover_every_index_once_and_keep_last_partial():
    got = list(data.batches(10, 4, shuffle=False))
    assert [b.tolist() for b in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = list(data.batches(10, 4, shuffle=True, seed=5))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(10))
    assert [len(b) for b in shuffled] == [4, 4, 2]
    again = list(data.batches(10, 4, shuffle=True, seed=5))
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, again))


def test_batches_full_batch_and_empty():
    assert [b.tolist() for b in data.batches(3, None, shuffle=False)] == [[0, 1, 2]]
    assert list(data.batches(0, 8)) == []


@pytest.mark.parametrize("n, bs, exc", [(-1, 2, ValueError), (3, 0, ValueError),
                                        (3.0, 2, TypeError), (3, 2.5, TypeError)])
def test_batches_rejects_bad_arguments(n, bs, exc):
    with pytest.raises(exc):
        list(data.batches(n, bs))


# ---- validate_xy -------------------------------------------------------------------------------

def test_validate_xy_converts_once_to_float32_contiguous():
    X = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]
    y = np.array([0, 1, 2])
    Xv, yv = data.validate_xy(X, y)
    assert Xv.dtype == np.float32 and Xv.flags.c_contiguous
    np.testing.assert_array_equal(Xv, X)
    assert yv.dtype == y.dtype
    ready = np.ones((2, 3), dtype=np.float32)
    assert data.validate_xy(ready)[0] is ready          # no copy when nothing to do
    assert data.validate_xy([[1, 2]], None)[1] is None


def test_validate_xy_names_first_bad_row():
    X = np.ones((6, 3), dtype=np.float32)
    X[4, 1] = np.inf
    X[5, 0] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN or infinity at row 4"):
        data.validate_xy(X)
    y = np.array([0.0, 1.0, np.nan])
    with pytest.raises(ValueError, match="y: contains NaN or infinity at row 2"):
        data.validate_xy(np.ones((3, 1)), y)


def test_validate_xy_accepts_large_finite_float64():
    # The float64 sum of these overflows; that must not be mistaken for infinity in the data.
    X = np.full((4, 2), 1e308)
    assert data.validate_xy(X, dtype=np.float64)[0] is X


@pytest.mark.parametrize("X, y, exc, words", [
    (np.zeros((0, 3)), None, ValueError, "at least one sample"),
    (np.zeros(3), None, ValueError, "2-D"),
    (np.zeros((2, 2)), np.zeros(3), ValueError, "expected 2 rows"),
    (np.array([["a", "b"]]), None, TypeError, "numeric"),
    ("abc", None, TypeError, "numeric"),
    (np.zeros((2, 2)), np.array(["a", "b"]), TypeError, "y"),
    (np.zeros((2, 2), dtype=bool), None, TypeError, "X"),
])
def test_validate_xy_rejects(X, y, exc, words):
    with pytest.raises(exc, match=words):
        data.validate_xy(X, y)


# ---- split_validation --------------------------------------------------------------------------

def test_split_validation_takes_last_fraction_unshuffled():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    (X_tr, y_tr), (X_va, y_va) = data.split_validation(X, y, 0.25)
    # Keras: split_at = int(n * (1 - fraction)) = int(7.5) = 7.
    assert y_tr.tolist() == list(range(7)) and y_va.tolist() == [7, 8, 9]
    assert np.shares_memory(X_va, X)     # views: no copy of a big dataset
    (X_tr, y_tr), (X_va, y_va) = data.split_validation(X, None, 0.5)
    assert y_tr is None and y_va is None and len(X_va) == 5


@pytest.mark.parametrize("fraction, exc", [(0.0, ValueError), (1.0, ValueError),
                                           (0.95, ValueError), (1e-17, ValueError),
                                           ("0.1", TypeError)])
def test_split_validation_rejects(fraction, exc):
    with pytest.raises(exc, match="fraction"):
        data.split_validation(np.zeros((10, 1)), np.zeros(10), fraction)
