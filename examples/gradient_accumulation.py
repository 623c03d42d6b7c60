"""10. Gradient accumulation: the gradients of k small batches averaged into one update are the
update of one batch k times larger. A batch of 256 fits a memory budget of 32 rows of
activations: the same training, the same weights (to float32 rounding)."""
import numpy as np

import _guide
import fastnn
from fastnn.layers import Dense

args = _guide.parse_args(__doc__)
X, y = _guide.features(n=2048 if args.quick else 8192, dim=20)
widths = (20, 256, 256, 2)
epochs = 3 if args.quick else 10


def train(batch_size, accumulate_steps=1):
    # tanh, a smooth activation: with relu, float32 rounding differences (1e-7) now and then
    # flip a unit across its kink, and the two runs drift apart over many epochs (in float64,
    # relu networks match as well).
    model = fastnn.Sequential([Dense(256, "tanh"), Dense(256, "tanh"), Dense(2)],
                              input_dim=X.shape[1], seed=0)
    model.compile("softmax_cross_entropy", fastnn.optim.SGD(lr=0.05, momentum=0.9),
                  metrics=["accuracy"])
    with _guide.Stopwatch() as clock:
        history = model.fit(X, y, epochs=epochs, batch_size=batch_size,
                            accumulate_steps=accumulate_steps, verbose=0)
    kib = batch_size * sum(widths) * 4 / 1024   # float32 activations of one batch
    print(f"batch {batch_size:3d} x accumulate {accumulate_steps}: {kib:5.0f} "
          f"KiB of activations per step, final loss {history.history['loss'][-1]:.4f}, "
          f"accuracy {history.history['accuracy'][-1]:.3f}, {clock.seconds:.2f} s")
    return model, history.history["loss"]


large, large_loss = train(256)
accumulated, accumulated_loss = train(32, accumulate_steps=8)
small, small_loss = train(32)
gap = max(np.abs(a - b).max() for a, b in zip(large.get_weights(), accumulated.get_weights()))
scale = max(np.abs(a).max() for a in large.get_weights())
print(f"largest weight difference, 256 vs 32 x 8: {gap:.1e} (largest weight {scale:.2f})")
gap_small = max(np.abs(a - b).max() for a, b in zip(large.get_weights(), small.get_weights()))
print(f"largest weight difference, 256 vs 32 without accumulation: {gap_small:.1e}")

plt = _guide.pyplot()
fig, ax = plt.subplots(figsize=(5.5, 3.3))
ax.plot(range(1, epochs + 1), large_loss, lw=4, alpha=0.5, label="batch 256")
ax.plot(range(1, epochs + 1), accumulated_loss, "k--", label="batch 32, accumulate 8")
ax.plot(range(1, epochs + 1), small_loss, label="batch 32 (8x more updates)")
ax.set(xlabel="epoch", ylabel="training loss", title="accumulation = the larger batch")
ax.legend()
_guide.save(fig, args, "accumulation.png")
