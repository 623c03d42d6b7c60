"""Very many classes: 20,000 classes trained with a sampled softmax (the true class plus 256
sampled negatives per step) against the full softmax, same model and epochs."""
import time

import numpy as np

import fastnn
from fastnn.layers import Dense
from fastnn.losses import SampledSoftmax

rng = np.random.default_rng(0)
classes, dim = 20000, 64
centers = rng.standard_normal((classes, dim)).astype(np.float32)
y = rng.integers(0, classes, 40000)
X = centers[y] + 0.3 * rng.standard_normal((len(y), dim)).astype(np.float32)
for loss in ("softmax_cross_entropy", SampledSoftmax(num_sampled=256, sampler="uniform")):
    model = fastnn.Sequential([Dense(classes)], input_dim=dim, seed=0)
    model.compile(loss, fastnn.optim.Adam(lr=1e-2), metrics=["accuracy"])
    t = time.perf_counter()
    model.fit(X, y, epochs=3, batch_size=256, verbose=0)
    t = time.perf_counter() - t
    acc = model.evaluate(X[:5000], y[:5000])["accuracy"]
    print(f"{str(loss)[:40]:<40} {t:6.2f} s for 3 epochs, accuracy {acc:.3f}")
