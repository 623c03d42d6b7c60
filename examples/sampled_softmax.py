"""Very many classes: 20,000 classes (one example each on average) trained with a sampled softmax (the true class plus 256
sampled negatives per step) against the full softmax, same model and epochs."""
import time

import numpy as np

import fastnn
from fastnn.layers import Dense
from fastnn.losses import SampledSoftmax


def compare(classes=20000, samples=20000, dim=64, epochs=3, num_sampled=256):
    """Train one linear layer over `classes` classes with each loss; [(loss name, seconds,
    accuracy on 5000 new samples)]. Each class is a random centre plus noise."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((classes, dim)).astype(np.float32)
    y = rng.integers(0, classes, samples + 5000)
    X = centers[y] + 0.5 * rng.standard_normal((len(y), dim)).astype(np.float32)
    X, X_test, y, y_test = X[:samples], X[samples:], y[:samples], y[samples:]
    results = []
    for loss in ("softmax_cross_entropy", SampledSoftmax(num_sampled=num_sampled,
                                                         sampler="uniform")):
        model = fastnn.Sequential([Dense(classes)], input_dim=dim, seed=0)
        model.compile(loss, fastnn.optim.Adam(lr=1e-2), metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(X, y, epochs=epochs, batch_size=256, verbose=0)
        seconds = time.perf_counter() - start
        name = "full softmax" if isinstance(loss, str) else f"sampled softmax ({num_sampled})"
        results.append((name, seconds, model.evaluate(X_test, y_test)["accuracy"]))
    return results


if __name__ == "__main__":
    for name, seconds, accuracy in compare():
        print(f"{name:<24} {seconds:6.2f} s for 3 epochs, accuracy {accuracy:.3f}")
