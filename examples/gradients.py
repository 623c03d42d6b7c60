"""7. Gradients that vanish, explode or die. A deep sigmoid network's gradients shrink layer by
layer (fit's per-layer diagnostics show it) and ReLU or batch normalization fix it; a large
learning rate makes the loss blow up, which clipping or a lower rate fix; a large rate also
kills ReLU units, which a lower rate or leaky ReLU avoid."""
import numpy as np

import _guide
import fastnn
from fastnn.layers import BatchNorm, Dense

args = _guide.parse_args(__doc__)
X, y = _guide.features(n=2000 if args.quick else 4000, dim=10)
epochs = 3 if args.quick else 10


def stack(activation, depth, width=32, batch_norm=False):
    layers = []
    for _ in range(depth):
        layers += [Dense(width, activation)] + ([BatchNorm()] if batch_norm else [])
    return layers + [Dense(2)]


def train(label, layers, lr, clipnorm=None):
    """SGD from seed 0; prints the outcome and the warnings fit gives, returns the History."""
    model = fastnn.Sequential(layers, input_dim=X.shape[1], seed=0)
    model.compile("softmax_cross_entropy", fastnn.optim.SGD(lr=lr), metrics=["accuracy"],
                  clipnorm=clipnorm)
    print(f"{label:<28}", end=" ")
    with _guide.warnings_shown():
        history = model.fit(X, y, epochs=epochs, batch_size=32, verbose=0)
        h = history.history
        print(f"loss {h['loss'][-1]:.3f} after {len(h['loss'])} epochs, "
              f"accuracy {h['accuracy'][-1]:.3f}")
    return history


def per_layer(history, key, epoch):
    """One number per Dense layer from fit's diagnostics (None where it does not apply)."""
    return [d[key][epoch] for d in history.diagnostics.values()
            if isinstance(d, dict) and key in d]


print("vanishing gradients: 8 hidden layers of 32, SGD lr=0.1")
vanishing = {}
for label, layers in (("sigmoid", stack("sigmoid", 8)), ("relu", stack("relu", 8)),
                      ("sigmoid + batch norm", stack("sigmoid", 8, batch_norm=True))):
    vanishing[label] = per_layer(train(label, layers, lr=0.1), "grad_norm", epoch=0)
    norms = vanishing[label]
    print(f"  gradient norm, epoch 1: first layer {norms[0]:.1e}, last {norms[-1]:.1e} "
          f"(ratio {norms[0] / norms[-1]:.0e})")

print("exploding: 3 hidden ReLU layers of 64, SGD")
exploding = {label: train(label, stack("relu", 3, width=64), lr, clip).history["loss"]
             for label, lr, clip in (("lr=2", 2.0, None), ("lr=2, clipnorm=0.5", 2.0, 0.5),
                                     ("lr=0.3", 0.3, None))}

print("dead ReLUs: 3 hidden layers of 64, share of units never positive in the last epoch")
dead = {}
for label, activation, lr in (("relu, lr=1", "relu", 1.0), ("relu, lr=0.1", "relu", 0.1),
                              ("leaky_relu, lr=1", "leaky_relu", 1.0)):
    fractions = per_layer(train(label, stack(activation, 3, width=64), lr), "dead_fraction", -1)
    dead[label] = [f for f in fractions if f is not None]
    print("  dead per hidden layer:",
          [f"{f:.0%}" for f in dead[label]] or "none can die (slope 0.01 below zero)")

plt = _guide.pyplot()
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for label, norms in vanishing.items():
    axes[0].plot(range(1, len(norms) + 1), norms, marker="o", label=label)
axes[0].set(yscale="log", xlabel="Dense layer (1 = input side)", ylabel="gradient norm",
            title="vanishing gradients (epoch 1)")
axes[0].legend(fontsize=8)
for label, loss in exploding.items():
    axes[1].plot(range(1, len(loss) + 1), loss, marker="o", label=label)
axes[1].set(xlabel="epoch", ylabel="training loss", title="exploding: NaN at lr=2 (no line)")
axes[1].legend(fontsize=8)
for i, (label, fractions) in enumerate((k, v) for k, v in dead.items() if v):
    axes[2].bar(np.arange(len(fractions)) + 0.4 * i, fractions, width=0.4, label=label)
axes[2].set(xticks=[0.2, 1.2, 2.2], xticklabels=["hidden 1", "hidden 2", "hidden 3"],
            ylabel="share of dead units", title="dead ReLUs")
axes[2].legend(fontsize=8)
_guide.save(fig, args, "gradients.png")
