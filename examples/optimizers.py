"""5. The learning rate, its decay, momentum and Nesterov, Adagrad, RMSprop and Adam, on one
task: an MLP on the moons, the same initial weights and batches for every run."""
import _guide
import fastnn
from fastnn import optim
from fastnn.layers import Dense

args = _guide.parse_args(__doc__)
X, y = _guide.two_moons(n=500 if args.quick else 2000, noise=0.2)
epochs = 10 if args.quick else 40


def loss_curves(optimizers):
    """Train one model per optimizer from the same seed; {label: per-epoch losses}."""
    curves = {}
    for label, optimizer in optimizers.items():
        model = fastnn.Sequential([Dense(32, "tanh"), Dense(32, "tanh"), Dense(1, "sigmoid")],
                                  input_dim=2, seed=0)
        model.compile("binary_cross_entropy", optimizer, metrics=["binary_accuracy"])
        print(f"  {label:<26}", end=" ")
        with _guide.warnings_shown():
            history = model.fit(X, y, epochs=epochs, batch_size=64, verbose=0)
            curves[label] = history.history["loss"]
            print(f"loss after {epochs} epochs {curves[label][-1]:.4f}, "
                  f"accuracy {history.history['binary_accuracy'][-1]:.3f}")
    return curves


print("plain SGD, learning rates:")
rates = loss_curves({
    "SGD lr=0.01": optim.SGD(lr=0.01),
    "SGD lr=0.1": optim.SGD(lr=0.1),
    "SGD lr=1": optim.SGD(lr=1.0),
    "SGD lr=10": optim.SGD(lr=10.0),
    "SGD lr=1, x0.9 per epoch": optim.SGD(lr=1.0, schedule=optim.ExponentialLR(gamma=0.9)),
})
print("momentum and adaptive rates:")
methods = loss_curves({
    "SGD lr=0.1": optim.SGD(lr=0.1),
    "momentum 0.9": optim.SGD(lr=0.1, momentum=0.9),
    "Nesterov 0.9": optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
    "Adagrad": optim.Adagrad(lr=0.1),
    "RMSprop": optim.RMSprop(lr=0.01),
    "Adam": optim.Adam(lr=0.01),
})

plt = _guide.pyplot()
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, curves, title in ((axes[0], rates, "learning rate and decay"),
                          (axes[1], methods, "momentum and adaptive methods")):
    for label, loss in curves.items():
        ax.plot(range(1, epochs + 1), loss, label=label)
    ax.set(xlabel="epoch", yscale="log", title=title)
    ax.legend(fontsize=8)
axes[0].set_ylabel("training loss")
_guide.save(fig, args, "optimizers.png")
