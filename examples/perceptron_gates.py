"""1. The perceptron as logic gates: AND, OR and NOT are linearly separable and it converges;
XOR is not, and it never does. One hidden layer solves XOR. Draws every decision boundary."""
import numpy as np

import _guide
import fastnn
from xor import X, fit_xor

args = _guide.parse_args(__doc__)
gates = {"AND": (X, [0, 0, 0, 1]), "OR": (X, [0, 1, 1, 1]), "XOR": (X, [0, 1, 1, 0]),
         "NOT": (np.array([[0], [1]], np.float32), [1, 0])}
perceptrons = {}
for name, (inputs, y) in gates.items():
    p = fastnn.Perceptron(lr=1.0, max_epochs=20, seed=0).fit(inputs, y)
    perceptrons[name] = p
    print(f"{name}: predictions {p.predict(inputs).tolist()}, converged={p.converged_}, "
          f"mistakes per epoch {p.errors_[:6]}{'...' if len(p.errors_) > 6 else ''}, "
          f"w={p.weights_.round(2).tolist()} b={float(p.bias_):.2f}")

mlp = fit_xor()
print("XOR with a 2-4-1 tanh network:", mlp.predict_classes(X).tolist(),
      "probabilities", mlp.predict(X)[:, 0].astype(float).round(3).tolist())

plt = _guide.pyplot()
fig, axes = plt.subplots(1, 4, figsize=(11, 3))
for ax, name in zip(axes, ("AND", "OR", "XOR")):
    p = perceptrons[name]
    _guide.decision_regions(ax, p.predict, X, np.array(gates[name][1]),
                            f"perceptron: {name}" + ("" if p.converged_ else " (fails)"))
_guide.decision_regions(axes[3], mlp.predict_classes, X, np.array(gates["XOR"][1]),
                        "one hidden layer: XOR")
_guide.save(fig, args, "gates.png")
