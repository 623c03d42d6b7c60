"""11. Train once, use many times: a model saved to a file and loaded in a new Python process
predicts exactly what it predicted before, with no retraining; and the same from the command
line, `python -m fastnn train` and `predict` on a CSV file."""
import os
import subprocess
import sys
import tempfile

import numpy as np

import _guide
import fastnn
from fastnn.layers import Dense

args = _guide.parse_args(__doc__)
X, y = _guide.two_moons(n=1000, noise=0.2)
model = fastnn.Sequential([Dense(32, "relu"), Dense(32, "relu"), Dense(1, "sigmoid")],
                          input_dim=2, seed=0)
model.compile("binary_cross_entropy", fastnn.optim.Adam(lr=0.01), metrics=["binary_accuracy"])
model.fit(X, y, epochs=10 if args.quick else 40, batch_size=32, verbose=0)
scratch = tempfile.TemporaryDirectory()   # removed when the script ends
work = scratch.name
path = os.path.join(work, "moons.fastnn")
model.save(path)
np.save(os.path.join(work, "X.npy"), X)
print(f"saved {os.path.getsize(path)} bytes; training accuracy "
      f"{model.evaluate(X, y)['binary_accuracy']:.3f}")

# A fresh interpreter knows nothing of this one: it has only the file.
child = ("import sys, numpy as np, fastnn\n"
         "model = fastnn.load(sys.argv[1])\n"
         "np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))\n")
subprocess.run([sys.executable, "-c", child, path, os.path.join(work, "X.npy"),
                os.path.join(work, "p.npy")], check=True)
again = np.load(os.path.join(work, "p.npy"))
print(f"new process, loaded model: predictions identical to the original's: "
      f"{np.array_equal(again, model.predict(X))}")


def fastnn_cli(*words):
    """Run `python -m fastnn ...` in the scratch folder, as a user would in a shell, showing
    the command; its standard output."""
    print("$ python -m fastnn", *words)
    done = subprocess.run([sys.executable, "-m", "fastnn", *words], capture_output=True,
                          text=True, check=True, cwd=work)
    return done.stdout


def write_csv(file, X, labels):
    with open(os.path.join(work, file), "w") as f:
        f.write("x1,x2,moon\n")
        f.writelines(f"{a:.4f},{b:.4f},{label}\n" for (a, b), label in zip(X, labels))


names = np.array(["upper", "lower"])
write_csv("train.csv", X, names[y])
X_new, y_new = _guide.two_moons(n=300, noise=0.2, seed=1)
write_csv("new.csv", X_new, names[y_new])
print(fastnn_cli("train", "train.csv", "--target", "moon", "--hidden", "32,32", "--epochs",
                 "10" if args.quick else "40", "--validation-split", "0.2", "--out",
                 "cli.fastnn", "--quiet").rstrip())
header, *predicted = fastnn_cli("predict", "cli.fastnn", "new.csv").split()
print(header, *predicted[:5], "...", sep="\n")
print(f"{len(predicted)} predictions, {np.mean(np.array(predicted) == names[y_new]):.3f} correct")

plt = _guide.pyplot()
fig, ax = plt.subplots(figsize=(4, 3.3))
ax.scatter(X_new[:, 0], X_new[:, 1], c=np.array(predicted) == "lower", cmap="viridis", s=10)
wrong = np.array(predicted) != names[y_new]
ax.scatter(X_new[wrong, 0], X_new[wrong, 1], s=60, facecolors="none", edgecolors="r",
           label="wrong")
ax.set(xticks=[], yticks=[], title="`fastnn predict` on new.csv")
ax.legend()
_guide.save(fig, args, "cli_predictions.png")
