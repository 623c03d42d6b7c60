"""What the guide's examples share: their command line (--quick, --out), saving a figure, the
decision-region picture several of them draw, and the small 2-D data sets they train on.

Not an example itself: the scripts beside it import it (Python puts a script's own folder first
on sys.path, so `import _guide` works from any working directory)."""

import argparse
import contextlib
import os
import time
import warnings

import numpy as np


def parse_args(doc):
    """The options every example takes; its docstring's first line is the --help text."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smaller run of a few seconds (what the tests run)")
    parser.add_argument("--out", default=".", help="folder for the PNG figures (default: here)")
    return parser.parse_args()


def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no window, works without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, args, name):
    """Write fig as args.out/name at a small size for the guide, and say so on stdout (the
    guide's builder and the tests find the figures through this line)."""
    import io

    from PIL import Image   # installed with matplotlib

    os.makedirs(args.out, exist_ok=True)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80)
    pyplot().close(fig)
    # A palette of 64 colours is plenty for plots and makes the file 3-4x smaller.
    Image.open(png).convert("RGB").quantize(64).save(os.path.join(args.out, name), optimize=True)
    print(f"figure: {name}")


def grid_over(X, steps=200, margin=0.3):
    """A steps x steps lattice covering X's two features: (xx, yy, points as float32 rows)."""
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps))
    return xx, yy, np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float32)


def decision_regions(ax, predict, X, y, title, steps=200):
    """Colour the plane by predict(points) (class labels), with the data on top, as the demo's
    spiral picture does. predict is any function of float32 rows: model.predict_classes, a
    perceptron's predict, ..."""
    xx, yy, points = grid_over(X, steps)
    regions = np.asarray(predict(points)).reshape(xx.shape)
    classes = max(int(np.max(y)), int(regions.max())) + 1
    levels = np.arange(-0.5, classes)
    ax.contourf(xx, yy, regions, levels=levels, alpha=0.3, cmap="viridis")
    ax.scatter(X[:, 0], X[:, 1], c=y, s=60 if len(X) < 50 else 3, cmap="viridis",
               vmin=0, vmax=classes - 1, edgecolors="k" if len(X) < 50 else "none")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def two_moons(n=1000, noise=0.15, seed=0):
    """Two interleaved half circles, labels 0/1: no straight line separates them."""
    rng = np.random.default_rng(seed)
    half = n // 2
    angle = rng.uniform(0, np.pi, n)
    upper = np.column_stack([np.cos(angle[:half]), np.sin(angle[:half])])
    lower = np.column_stack([1 - np.cos(angle[half:]), 0.5 - np.sin(angle[half:])])
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(half, np.int64), np.ones(n - half, np.int64)])
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order]


def blobs(n=600, centers=((-1, -1), (1, 1)), spread=0.7, seed=0):
    """Gaussian clouds around `centers`, label = index of the centre, shuffled."""
    rng = np.random.default_rng(seed)
    centers = np.asarray(centers, np.float64)
    y = rng.integers(0, len(centers), n)
    X = centers[y] + spread * rng.standard_normal((n, centers.shape[1]))
    return X.astype(np.float32), y


def features(n=4000, dim=20, noise=0.3, seed=0):
    """A tabular task no linear model solves: the label (0/1) is the sign of a non-linear score
    of the first four features plus Gaussian noise; the other features are pure noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim)).astype(np.float32)
    score = X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2]) + 0.5 * X[:, 3]
    return X, (score + noise * rng.standard_normal(n) > 0).astype(np.int64)


class Stopwatch:
    """`with Stopwatch() as t: ...; t.seconds` -- wall time of a block."""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start


@contextlib.contextmanager
def warnings_shown(indent="    "):
    """Collect the warnings a block raises (fit's diagnostics: vanishing or exploding gradients,
    dead units) and print each distinct one on stdout afterwards, without the file and line
    that Python's own display adds, so that the guide can show them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"{indent}warning: {message}")
