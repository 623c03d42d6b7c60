"""A user's script, written against fastnn's annotations: tests/test_types.py runs
`mypy --strict` on it (it is type-checked, never run, and pytest does not collect it). Each
assert_type states what a type checker must infer for a public call; a signature that loses its
annotation or changes its types fails there."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import assert_type

import fastnn
from fastnn import callbacks, data, layers, losses, model_selection, ops, optim, schedules


def train(X: NDArray[np.float32], y: NDArray[np.int64]) -> fastnn.Sequential:
    model = fastnn.Sequential([
        layers.Dense(64, activation="relu", l2=1e-4),
        layers.BatchNorm(),
        layers.Dropout(0.2),
        layers.Dense(3),
    ], input_dim=X.shape[1], seed=0)
    assert_type(model.compile("softmax_cross_entropy", optim.Adam(lr=1e-3), ["accuracy"]),
                fastnn.Sequential)
    stop = callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(X, y, epochs=2, batch_size=32, validation_split=0.1, callbacks=[stop],
                        verbose=0)
    assert_type(history.history, dict[str, list[Any]])
    assert_type(model.evaluate(X, y), dict[str, float])
    assert_type(model.get_weights(), list[NDArray[Any]])
    model.set_weights(model.get_weights())
    assert_type(model.count_params(), int)
    return model


def kernels(x: NDArray[np.float32], w: NDArray[np.float32], labels: NDArray[np.int64]) -> None:
    y = ops.relu(ops.matmul(x, w))
    assert_type(y, "NDArray[Any] | fastnn.Tensor")
    z, pre = ops.linear(x, w, activation="gelu", return_preactivation=True)
    assert_type(ops.linear(x, w), "NDArray[Any] | fastnn.Tensor")
    loss, grad = ops.softmax_cross_entropy(z, labels)
    assert_type(loss, float)
    dx, dw, db = ops.linear_grad(grad, x, w, activation="gelu", z=pre)
    assert_type(dx, "NDArray[Any] | fastnn.Tensor | None")
    ops.sgd_step([w], [dw], lr=0.1)
    assert_type(ops.top_k_correct(z, labels, 1), int)
    ids, expected = ops.sample_candidates(8, 100, seed=0)
    assert_type(ids, NDArray[np.int64])


def devices_and_files(x: NDArray[np.float32], model: fastnn.Sequential, path: str) -> None:
    t = fastnn.asarray(x, device="cpu")
    assert_type(t, fastnn.Tensor)
    assert_type(t.shape, tuple[int, ...])
    assert_type(t.numpy(), NDArray[Any])
    assert_type(fastnn.cuda.is_available(), bool)
    assert_type(fastnn.get_num_threads(), int)
    assert_type(fastnn.show_config(), dict[str, Any])
    model.save(path)
    assert_type(fastnn.load(path), fastnn.Sequential)
    q = fastnn.quantize(model)
    assert_type(q, fastnn.QuantizedModel)
    assert_type(q.predict(x), NDArray[np.float32])
    arrays, meta = fastnn.io.load_arrays(path)
    assert_type(arrays, dict[str, NDArray[Any]])


def the_rest(X: NDArray[np.float32], y: NDArray[np.int64]) -> None:
    for train_idx, test_idx in model_selection.KFold(5, shuffle=True, seed=0).split(X):
        assert_type(train_idx, NDArray[np.int64])
    scores = model_selection.cross_validate(lambda: train(X, y), X, y, k=3)
    assert_type(scores, dict[str, list[float]])
    assert_type(data.one_hot(y, 3), NDArray[Any])
    for batch in data.batches(len(X), 32):
        assert_type(batch, NDArray[np.int64])
    sched = schedules.CosineAnnealing(T_max=10)
    assert_type(sched(0.1, 3), float)
    sgd = optim.SGD(lr=0.1, momentum=0.9, nesterov=True, schedule=sched)
    assert_type(sgd.lr_at(epoch=2), float)
    assert_type(optim.get("adam"), optim.Optimizer)
    assert_type(losses.SampledSoftmax(num_sampled=16).get_config(), dict[str, Any])
    p = fastnn.Perceptron(lr=0.5).fit(X, y)
    assert_type(p.predict(X), NDArray[np.int64])
    assert_type(p.weights_, "NDArray[np.float32] | None")
