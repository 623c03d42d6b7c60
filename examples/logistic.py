"""2. From discrete to continuous: the step and the sigmoid; the log-loss (binary cross-entropy)
as the negative log-likelihood of the labels; logistic regression (one Dense unit, sigmoid)
trained by full-batch gradient descent."""
import numpy as np

import _guide
import fastnn
from fastnn import ops
from fastnn.layers import Dense

args = _guide.parse_args(__doc__)

# The step has no useful derivative (0 almost everywhere), the sigmoid has one everywhere.
z = np.linspace(-6, 6, 241).astype(np.float32)
few = np.float32([-2, -0.5, 0, 0.5, 2])
print("z          ", few.tolist())
print("step(z)    ", ops.step(few).tolist())
print("sigmoid(z) ", ops.sigmoid(few).astype(float).round(3).tolist())

# 100 coin flips, 70 heads. For each candidate p, the log-loss of predicting p on every flip is
# minus the mean log-likelihood of p; both are smallest at the observed frequency 0.7.
flips = np.array([1] * 70 + [0] * 30, np.float32)
ps = np.linspace(0.01, 0.99, 99)
log_loss = [ops.binary_cross_entropy_with_logits(
    np.full_like(flips, np.log(p / (1 - p))), flips)[0] for p in ps]
nll = [-(70 * np.log(p) + 30 * np.log(1 - p)) / 100 for p in ps]
print(f"log-loss is smallest at p = {ps[int(np.argmin(log_loss))]:.2f}; "
      f"max |log-loss - NLL/n| = {np.max(np.abs(np.array(log_loss) - nll)):.1e}")

# Logistic regression on two overlapping clouds.
X, y = _guide.blobs(n=400 if args.quick else 1000, spread=0.9)
model = fastnn.Sequential([Dense(1, "sigmoid")], input_dim=2, seed=0)
model.compile("binary_cross_entropy", fastnn.optim.SGD(lr=0.5), metrics=["binary_accuracy"])
history = model.fit(X, y, epochs=100, batch_size=None, verbose=0)   # one step per epoch
for epoch in (0, 9, 99):
    print(f"epoch {epoch + 1:3d}: loss {history.history['loss'][epoch]:.4f}, "
          f"accuracy {history.history['binary_accuracy'][epoch]:.3f}")
p = model.predict(X)[:, 0].astype(np.float64)
print(f"model's loss {model.evaluate(X, y)['loss']:.4f} = minus the mean log-likelihood "
      f"{-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)):.4f}")
W, b = model.get_weights()
print(f"boundary: {W[0, 0]:.2f} x1 + {W[1, 0]:.2f} x2 + {b[0]:.2f} = 0")

plt = _guide.pyplot()
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
axes[0].plot(z, ops.step(z), label="step")
axes[0].plot(z, ops.sigmoid(z), label="sigmoid")
axes[0].set_title("step vs sigmoid", fontsize=10)
axes[0].legend()
axes[1].plot(ps, log_loss)
axes[1].axvline(0.7, color="gray", ls="--")
axes[1].set(xlabel="predicted p (70 heads in 100)", ylabel="log-loss = -log-likelihood / n")
axes[1].set_title("maximum likelihood at p = 0.7", fontsize=10)
xx, yy, points = _guide.grid_over(X)
axes[2].contourf(xx, yy, model.predict(points).reshape(xx.shape), levels=20, cmap="RdBu_r",
                 alpha=0.5)
axes[2].scatter(X[:, 0], X[:, 1], c=y, s=4, cmap="RdBu_r")
axes[2].set_title("logistic regression: P(class 1)", fontsize=10)
_guide.save(fig, args, "logistic.png")
