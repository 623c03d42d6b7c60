"""9. Honest estimates: a train/validation/test split (choose on validation, report on test once);
k-fold cross-validation (every sample tested once, a spread instead of one number); random
restarts (the same network from several initialisations, keeping the best on validation)."""
import numpy as np

import _guide
import fastnn
from fastnn.data import train_val_test_split
from fastnn.layers import Dense
from fastnn.model_selection import cross_validate, random_restarts

args = _guide.parse_args(__doc__)
X, y = _guide.two_moons(n=600 if args.quick else 1500, noise=0.3)
epochs = 10 if args.quick else 40
fit_kwargs = {"epochs": epochs, "batch_size": 32, "verbose": 0}


def build(seed=0, hidden=16):
    model = fastnn.Sequential([Dense(hidden, "tanh"), Dense(hidden, "tanh"), Dense(1, "sigmoid")],
                              input_dim=2, seed=seed)
    model.compile("binary_cross_entropy", fastnn.optim.Adam(lr=0.01), metrics=["binary_accuracy"])
    return model


X_train, X_val, X_test, y_train, y_val, y_test = train_val_test_split(
    X, y, val_size=0.2, test_size=0.2, seed=0, stratify=True)
print(f"split: {len(X_train)} train, {len(X_val)} validation, {len(X_test)} test; "
      f"class-1 share {y_train.mean():.2f} / {y_val.mean():.2f} / {y_test.mean():.2f}")
val_accuracy = {}
for hidden in (2, 16):   # model choice on the validation set...
    model = build(hidden=hidden)
    model.fit(X_train, y_train, **fit_kwargs)
    val_accuracy[hidden] = (model.evaluate(X_val, y_val)["binary_accuracy"], model)
    print(f"  {hidden:2d} hidden units per layer: validation accuracy {val_accuracy[hidden][0]:.3f}")
chosen = max(val_accuracy, key=lambda h: val_accuracy[h][0])
test = val_accuracy[chosen][1].evaluate(X_test, y_test)["binary_accuracy"]
print(f"  chosen: {chosen} units; its test accuracy (reported once): {test:.3f}")   # ...test once

folds = cross_validate(build, X, y, k=5, fit_kwargs=fit_kwargs)
scores = np.array(folds["binary_accuracy"])
print("5-fold cross-validation accuracy per fold:", scores.round(3).tolist(),
      f"-> {scores.mean():.3f} +- {scores.std():.3f}")

best, losses = random_restarts(lambda seed: build(seed, hidden=3), X, y, n=8,
                               fit_kwargs=fit_kwargs, seed=0)
print("random restarts of a 2-3-3-1 network, validation losses:", np.round(losses, 3).tolist())
print(f"  kept seed {int(np.argmin(losses))}: validation loss {min(losses):.3f} "
      f"(worst {max(losses):.3f})")

plt = _guide.pyplot()
fig, (ax_folds, ax_restarts) = plt.subplots(1, 2, figsize=(9, 3.2))
ax_folds.bar(range(1, 6), scores)
ax_folds.axhline(scores.mean(), color="k", ls="--", label=f"mean {scores.mean():.3f}")
ax_folds.set(xlabel="fold", ylabel="test accuracy", ylim=(scores.min() - 0.05, 1),
             title="5-fold cross-validation")
ax_folds.legend()
ax_restarts.bar(range(len(losses)), losses,
                color=["C1" if i == int(np.argmin(losses)) else "C0" for i in range(len(losses))])
ax_restarts.set(xlabel="seed", ylabel="validation loss", title="random restarts (kept: orange)")
_guide.save(fig, args, "validation.png")
