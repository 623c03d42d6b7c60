"""12b. MNIST-1D: 10 classes of 1-D signals of length 40, built on this machine by the `mnist1d`
package's procedural generator (no download). An MLP's test accuracy against the figures of
the MNIST-1D paper (logistic regression 32%, MLP 68%)."""
import numpy as np

import _guide
import fastnn
from fastnn.layers import Dense

try:
    from mnist1d.data import get_dataset_args, make_dataset
except ImportError:
    raise SystemExit("needs the mnist1d package: pip install mnist1d, or fastnn's [examples] "
                     "extra") from None

args = _guide.parse_args(__doc__)
settings = get_dataset_args()        # the paper's: 5000 signals, 4000 to train, seed 42
if args.quick:
    settings.num_samples = 1000
data = make_dataset(settings)        # generated here, in about a second
X, y = data["x"].astype(np.float32), data["y"]
X_test, y_test = data["x_test"].astype(np.float32), data["y_test"]
print(f"MNIST-1D generated: {len(X)} training and {len(X_test)} test signals of length "
      f"{X.shape[1]}")


def train(label, layers, paper):
    """The paper's recipe: Adam, learning rate 0.01, batches of 100, 6000 steps (150 epochs).
    The test set is passed as validation data only to draw its curve: nothing is chosen on it."""
    model = fastnn.Sequential(layers, input_dim=X.shape[1], seed=0)
    model.compile("softmax_cross_entropy", fastnn.optim.Adam(lr=1e-2), metrics=["accuracy"])
    with _guide.Stopwatch() as clock:
        history = model.fit(X, y, epochs=20 if args.quick else 150, batch_size=100,
                            validation_data=(X_test, y_test), verbose=0)
    accuracy = model.evaluate(X_test, y_test)["accuracy"]
    print(f"{label:<28} test accuracy {accuracy:.3f} (paper: {paper}), "
          f"{len(history.epoch)} epochs in {clock.seconds:.1f} s")
    return history


train("logistic regression", [Dense(10)], "32%")
history = train("MLP 40-100-100-10, relu", [Dense(100, "relu"), Dense(100, "relu"), Dense(10)],
                "68%")

plt = _guide.pyplot()
fig, (ax_signals, ax_curve) = plt.subplots(1, 2, figsize=(10, 3.3))
for digit in range(4):
    ax_signals.plot(X[y == digit][0] + 4 * digit, label=str(digit))
ax_signals.set(yticks=[], xlabel="position", title="one signal of each of the digits 0-3")
ax_signals.legend(fontsize=8)
ax_curve.plot(history.history["accuracy"], label="training")
ax_curve.plot(history.history["val_accuracy"], label="test")
ax_curve.axhline(0.68, color="gray", ls="--", label="paper's MLP (68%)")
ax_curve.set(xlabel="epoch", ylabel="accuracy", title="MLP on MNIST-1D")
ax_curve.legend(fontsize=8)
_guide.save(fig, args, "mnist1d.png")
