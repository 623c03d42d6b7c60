"""6. Underfitting and overfitting on a small noisy data set: training and validation curves;
early stopping; L1 against L2 (their weight histograms, L1's sparsity); dropout."""
import numpy as np

import _guide
import fastnn
from fastnn.callbacks import EarlyStopping
from fastnn.layers import Dense, Dropout

args = _guide.parse_args(__doc__)
X, y = _guide.features(n=2800, dim=10, seed=1)
X_train, y_train, val = X[:800], y[:800], (X[800:], y[800:])   # few samples: easy to memorise
epochs = 15 if args.quick else 120


def train(label, layers, callbacks=()):
    model = fastnn.Sequential(layers, input_dim=X.shape[1], seed=0)
    model.compile("softmax_cross_entropy", fastnn.optim.Adam(lr=1e-3), metrics=["accuracy"])
    h = model.fit(X_train, y_train, epochs=epochs, batch_size=32, validation_data=val,
                  callbacks=list(callbacks), verbose=0).history
    best = int(np.argmin(h["val_loss"]))
    final = model.evaluate(*val)
    print(f"{label:<22} train loss {h['loss'][-1]:.3f}  val loss {final['loss']:.3f} "
          f"(lowest {h['val_loss'][best]:.3f} at epoch {best + 1:3d})  "
          f"val accuracy {final['accuracy']:.3f}")
    return model, h


def wide(l1=0.0, l2=0.0, dropout=0.0):
    hidden = [Dense(256, "relu", l1=l1, l2=l2), Dense(256, "relu", l1=l1, l2=l2)]
    if dropout:
        hidden = [hidden[0], Dropout(dropout), hidden[1], Dropout(dropout)]
    return hidden + [Dense(2)]


curves = {}
_, curves["linear: underfits"] = train("linear (no hidden)", [Dense(2)])
plain, curves["256-256: overfits"] = train("256-256", wide())
stopper = EarlyStopping(patience=10, restore_best_weights=True)
_, stopped = train("256-256, early stop", wide(), [stopper])
print(f"  early stopping ended training at epoch {len(stopped['loss'])} and restored the "
      f"weights of epoch {stopper.best_epoch + 1}")
# Their losses include the penalty (as fit's loss does), so compare their accuracy, not loss.
l1, _ = train("256-256 + L1 1e-3", wide(l1=1e-3))
l2, _ = train("256-256 + L2 1e-3", wide(l2=1e-3))
_, curves["256-256 + dropout 0.5"] = train("256-256 + dropout 0.5", wide(dropout=0.5))

first_layer = {name: m.get_weights()[0].ravel() for name, m in
               (("none", plain), ("L1", l1), ("L2", l2))}
for name, w in first_layer.items():
    print(f"first-layer weights, {name:<4}: |w| < 0.01 for {np.mean(np.abs(w) < 0.01):6.1%}, "
          f"mean |w| {np.mean(np.abs(w)):.4f}")

plt = _guide.pyplot()
fig, (ax_curves, ax_hist) = plt.subplots(1, 2, figsize=(11, 3.8))
for (label, h), colour in zip(curves.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
    ax_curves.plot(h["loss"], color=colour, lw=1, ls=":")
    ax_curves.plot(h["val_loss"], color=colour, label=label)
ax_curves.axvline(stopper.best_epoch, color="gray", ls="--", lw=1)
ax_curves.set(xlabel="epoch (dotted: training, solid: validation; dashed: early stop)",
              ylabel="loss", ylim=(0, 1.2), title="under- and overfitting")
ax_curves.legend(fontsize=8)
bins = np.linspace(-0.3, 0.3, 61)
for name, w in first_layer.items():
    ax_hist.hist(w, bins=bins, histtype="step", label=name, log=True)
ax_hist.set(xlabel="first-layer weight", title="L1 piles weights at 0, L2 shrinks them")
ax_hist.legend()
_guide.save(fig, args, "overfitting.png")
