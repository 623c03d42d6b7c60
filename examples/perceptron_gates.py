"""The classic perceptron on logic gates: AND and OR are linearly separable and it converges;
XOR is not, and it never does (which is why networks have hidden layers)."""
import numpy as np

import fastnn

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
for name, y in (("AND", [0, 0, 0, 1]), ("OR", [0, 1, 1, 1]), ("XOR", [0, 1, 1, 0])):
    p = fastnn.Perceptron(lr=1.0, max_epochs=20, seed=0).fit(X, y)
    print(f"{name}: predictions {p.predict(X).tolist()}, converged={p.converged_}, "
          f"mistakes per epoch {p.errors_[:6]}{'...' if len(p.errors_) > 6 else ''}")
