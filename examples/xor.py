"""XOR with one hidden layer: what the perceptron cannot do, four tanh units can."""
import numpy as np

import fastnn
from fastnn.layers import Dense

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
y = np.array([0, 1, 1, 0])


def fit_xor():
    """A 2-4-1 network trained on the four XOR points by full-batch gradient descent (Adam)."""
    model = fastnn.Sequential([Dense(4, "tanh"), Dense(1, "sigmoid")], input_dim=2, seed=1)
    model.compile("binary_cross_entropy", fastnn.optim.Adam(lr=0.05), metrics=["binary_accuracy"])
    model.fit(X, y, epochs=500, batch_size=None, verbose=0)   # batch_size=None: the whole set
    return model


if __name__ == "__main__":
    model = fit_xor()
    print("probabilities:", model.predict(X)[:, 0].astype(float).round(3).tolist())
    print("classes:", model.predict_classes(X).tolist(), "expected:", y.tolist())
