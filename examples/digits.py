"""scikit-learn's bundled 8x8 digits (needs scikit-learn): an MLP with early stopping on a
stratified validation split, then test accuracy."""
import numpy as np
from sklearn.datasets import load_digits

import fastnn
from fastnn.callbacks import EarlyStopping
from fastnn.data import train_test_split
from fastnn.layers import Dense, Dropout

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0, stratify=True)
model = fastnn.Sequential([Dense(128, "relu"), Dropout(0.1), Dense(64, "relu"), Dense(10)],
                          input_dim=64, seed=0)
model.compile("softmax_cross_entropy", fastnn.optim.Adam(lr=1e-3), metrics=["accuracy"])
history = model.fit(X_train, y_train, epochs=200, batch_size=32, validation_split=0.1,
                    callbacks=[EarlyStopping(patience=10, restore_best_weights=True)], verbose=2)
print(f"stopped after {len(history.epoch)} epochs; test accuracy "
      f"{model.evaluate(X_test, y_test)['accuracy']:.4f}")
