"""`python -m fastnn demo`: train networks on data that needs no download.

1. A 2-D spiral (three interleaved arms; no straight line separates them): an MLP learns it,
   with the progress bar, test accuracy and throughput, and, when matplotlib is installed, a
   picture of the decision regions.
2. scikit-learn's bundled digits (8x8 images, 10 classes), when scikit-learn is installed."""

import os
import time

import numpy as np

import fastnn
from fastnn import optim
from fastnn.data import train_test_split
from fastnn.layers import BatchNorm, Dense, Dropout

# The packages the demo's optional parts need, installed with fastnn by the README's command.
_EXTRA = "pip install matplotlib scikit-learn, or install fastnn with pip install '.[demo]'"


def spiral(n_per_class=1000, classes=3, noise=0.2, seed=0):
    """Points on `classes` interleaved spiral arms, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        theta = np.linspace(0, 4.0, n_per_class) + 2 * np.pi * c / classes
        theta = theta + noise * rng.standard_normal(n_per_class)
        X.append(np.column_stack([r * np.sin(theta), r * np.cos(theta)]))
        y.append(np.full(n_per_class, c))
    X = np.concatenate(X).astype(np.float32)
    y = np.concatenate(y)
    order = rng.permutation(len(X))
    return X[order], y[order]


def _boundary_png(model, X, y, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"  (matplotlib is not installed, so no picture: {_EXTRA})")
        return
    xs = np.linspace(X[:, 0].min() - 0.1, X[:, 0].max() + 0.1, 300)
    ys = np.linspace(X[:, 1].min() - 0.1, X[:, 1].max() + 0.1, 300)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float32)
    regions = model.predict_classes(grid, batch_size=4096).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(gx, gy, regions, alpha=0.3, levels=np.arange(-0.5, y.max() + 1), cmap="viridis")
    ax.scatter(X[:, 0], X[:, 1], c=y, s=4, cmap="viridis")
    ax.set_title("fastnn: spiral decision regions")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"  decision regions drawn in {os.path.abspath(path)}")


def _train(model, Xtr, ytr, Xte, yte, epochs, batch_size, verbose):
    t0 = time.perf_counter()
    model.fit(Xtr, ytr, epochs=epochs, batch_size=batch_size, verbose=verbose)
    seconds = time.perf_counter() - t0
    acc = model.evaluate(Xte, yte)["accuracy"]
    print(f"  test accuracy {acc:.4f}; {epochs} epochs in {seconds:.2f} s "
          f"({len(Xtr) * epochs / seconds:,.0f} samples/s)")
    return acc


def run(quick=False, out="fastnn_spiral.png", verbose=1):
    cfg = fastnn.show_config()
    print(f"fastnn {cfg['version']}  simd={cfg['simd']}  threads={cfg['threads']}  "
          f"cuda={'yes' if cfg['cuda_available'] else 'no'}")

    print("\n1. spiral: 3 classes of 2-D points, 2-64-64-3 MLP (relu, batch norm, dropout), Adam")
    X, y = spiral(n_per_class=500 if quick else 2000)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, shuffle=False)  # X is shuffled
    model = fastnn.Sequential([Dense(64, "relu"), BatchNorm(), Dense(64, "relu"), Dropout(0.1),
                               Dense(3, "softmax")], input_dim=2, seed=0)
    model.compile("softmax_cross_entropy", optim.Adam(lr=1e-2), metrics=["accuracy"])
    acc = _train(model, Xtr, ytr, Xte, yte, 20 if quick else 60, 64, verbose)
    ok = acc > 0.9
    if out:
        _boundary_png(model, X, y, out)

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print(f"\n2. digits: skipped, scikit-learn is not installed ({_EXTRA})")
    else:
        print("\n2. digits: scikit-learn's 8x8 images, 64-128-64-10 MLP, Adam")
        Xd, yd = load_digits(return_X_y=True)
        Xd = (Xd / 16.0).astype(np.float32)
        Xtr, Xte, ytr, yte = train_test_split(Xd, yd, test_size=0.25, seed=0)
        model = fastnn.Sequential([Dense(128, "relu"), Dense(64, "relu"), Dense(10)],
                                  input_dim=64, seed=0)
        model.compile("softmax_cross_entropy", optim.Adam(lr=1e-3), metrics=["accuracy"])
        ok &= _train(model, Xtr, ytr, Xte, yte, 30 if quick else 100, 32, verbose) > 0.9
    print("\ndone" if ok else "\nWARNING: accuracy below expectations")
    return 0 if ok else 1
