"""8. Several classes: one-hot targets; one-vs-all (one independent sigmoid per class, whose
probabilities need not sum to 1) against a softmax (they always do); and, for very many classes,
the sampled softmax against the full one: its speed and its accuracy."""
import numpy as np

import _guide
import fastnn
from fastnn.data import one_hot
from fastnn.layers import Dense
from sampled_softmax import compare

args = _guide.parse_args(__doc__)
X, y = _guide.blobs(n=900, centers=((0, 2), (-1.8, -1), (1.8, -1)), spread=0.8)
print("labels", y[:4].tolist(), "one-hot:", one_hot(y[:4]).astype(int).tolist())


def fitted(activation, loss, targets):
    model = fastnn.Sequential([Dense(16, "tanh"), Dense(3, activation)], input_dim=2, seed=0)
    model.compile(loss, fastnn.optim.Adam(lr=0.01))
    model.fit(X, targets, epochs=30, batch_size=32, verbose=0)
    return model


one_vs_all = fitted("sigmoid", "binary_cross_entropy", one_hot(y))   # three yes/no questions
softmax = fitted("softmax", "softmax_cross_entropy", y)               # one three-way question
_, _, plane = _guide.grid_over(X)
for name, model in (("one-vs-all", one_vs_all), ("softmax", softmax)):
    accuracy = np.mean(model.predict(X).argmax(axis=1) == y)
    sums = model.predict(plane).sum(axis=1)
    print(f"{name:<10}: accuracy {accuracy:.3f}; over the plane the 3 probabilities sum to "
          f"{sums.min():.3f} .. {sums.max():.3f}")

print("many classes, one linear layer, Adam, 3 epochs:")
many = compare(classes=2000, samples=8000) if args.quick else compare()
for name, seconds, accuracy in many:
    print(f"  {name:<24} {seconds:6.2f} s, accuracy {accuracy:.3f}")
print(f"  the sampled softmax is {many[0][1] / many[1][1]:.1f}x faster")

plt = _guide.pyplot()
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
_guide.decision_regions(axes[0], lambda p: one_vs_all.predict(p).argmax(axis=1), X, y,
                        "one-vs-all: arg-max")
xx, yy, _ = _guide.grid_over(X)
shade = axes[1].contourf(xx, yy, one_vs_all.predict(plane).sum(axis=1).reshape(xx.shape),
                         levels=20, cmap="coolwarm")
fig.colorbar(shade, ax=axes[1])
axes[1].set(xticks=[], yticks=[])
axes[1].set_title("one-vs-all: sum of the 3 probabilities", fontsize=10)
_guide.decision_regions(axes[2], softmax.predict_classes, X, y, "softmax (sums to 1)")
names = [m[0] for m in many]
axes[3].bar(names, [m[1] for m in many], color=["C0", "C1"])
axes[3].set(ylabel="seconds for 3 epochs", title=f"{'2,000' if args.quick else '20,000'} "
            "classes")
for i, (_, seconds, accuracy) in enumerate(many):
    axes[3].text(i, seconds, f"accuracy {accuracy:.2f}", ha="center", va="bottom")
axes[3].tick_params(axis="x", labelsize=8)
_guide.save(fig, args, "multiclass.png")
