"""4. Batch vs mini-batch vs stochastic gradient descent: the same network and learning rate,
trained with one step per epoch (the whole set), one per 32 samples, and one per sample. The
loss is plotted against epochs and against wall time."""
import time

import _guide
import fastnn
from fastnn.callbacks import LambdaCallback
from fastnn.layers import Dense

args = _guide.parse_args(__doc__)
X, y = _guide.features(n=2000 if args.quick else 4000)
epochs = 5 if args.quick else 30
runs = {}
for label, batch_size in ((f"batch (all {len(X)})", None), ("mini-batch 32", 32), ("stochastic (1)", 1)):
    model = fastnn.Sequential([Dense(64, "tanh"), Dense(2)], input_dim=X.shape[1], seed=0)
    model.compile("softmax_cross_entropy", fastnn.optim.SGD(lr=0.05), metrics=["accuracy"])
    start, seconds = time.perf_counter(), []
    clock = LambdaCallback(on_epoch_end=lambda epoch, logs: seconds.append(time.perf_counter()
                                                                           - start))
    history = model.fit(X, y, epochs=epochs, batch_size=batch_size, callbacks=[clock], verbose=0)
    runs[label] = (history.history["loss"], seconds)
    steps = epochs * (1 if batch_size is None else -(-len(X) // batch_size))
    print(f"{label:<17} {steps:6d} steps: final loss {history.history['loss'][-1]:.4f}, "
          f"accuracy {history.history['accuracy'][-1]:.3f}, {seconds[-1]:.2f} s")

plt = _guide.pyplot()
fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(9, 3.3))
for label, (loss, seconds) in runs.items():
    by_epoch.plot(range(1, epochs + 1), loss, label=label)
    by_time.plot(seconds, loss, marker=".", label=label)
by_epoch.set(xlabel="epoch", ylabel="training loss", title="loss per epoch")
by_time.set(xlabel="seconds", ylabel="training loss", title="loss per second", xscale="log")
by_epoch.legend()
_guide.save(fig, args, "batch_sizes.png")
