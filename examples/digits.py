"""12a. Real data: scikit-learn's bundled 8x8 digits (needs scikit-learn). An MLP with early
stopping on a stratified validation split, then test accuracy, the confusion matrix and the
digits it gets wrong."""
import numpy as np
from sklearn.datasets import load_digits

import _guide
import fastnn
from fastnn.callbacks import EarlyStopping
from fastnn.data import train_test_split
from fastnn.layers import Dense, Dropout

args = _guide.parse_args(__doc__)
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0, stratify=True)
model = fastnn.Sequential([Dense(128, "relu"), Dropout(0.1), Dense(64, "relu"), Dense(10)],
                          input_dim=64, seed=0)
model.compile("softmax_cross_entropy", fastnn.optim.Adam(lr=1e-3), metrics=["accuracy"])
with _guide.Stopwatch() as clock:
    history = model.fit(X_train, y_train, epochs=30 if args.quick else 200, batch_size=32,
                        validation_split=0.1, verbose=0,
                        callbacks=[EarlyStopping(patience=10, restore_best_weights=True)])
predicted = model.predict_classes(X_test)
print(f"{len(X_train)} training and {len(X_test)} test images; stopped after "
      f"{len(history.epoch)} epochs ({clock.seconds:.1f} s); test accuracy "
      f"{model.evaluate(X_test, y_test)['accuracy']:.4f}")
confusion = np.zeros((10, 10), np.int64)
np.add.at(confusion, (y_test, predicted), 1)
print("confusion matrix (rows: true digit, columns: predicted):")
print(confusion)

plt = _guide.pyplot()
wrong = np.flatnonzero(predicted != y_test)[:6]
fig = plt.figure(figsize=(10, 3.4))
ax = fig.add_subplot(1, 2, 1)
ax.imshow(confusion, cmap="Blues")
for (i, j), count in np.ndenumerate(confusion):
    if count:
        ax.text(j, i, count, ha="center", va="center", fontsize=7,
                color="white" if count > confusion.max() / 2 else "black")
ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
       title="confusion matrix (test set)")
for k, index in enumerate(wrong):
    ax = fig.add_subplot(2, 6, 4 + (k // 3) * 6 + k % 3)
    ax.imshow(X_test[index].reshape(8, 8), cmap="gray_r")
    ax.set(xticks=[], yticks=[], title=f"{y_test[index]} read as {predicted[index]}")
_guide.save(fig, args, "digits.png")
