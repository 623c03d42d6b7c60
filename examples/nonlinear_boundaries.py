"""3. Non-linear boundaries: on two interleaved moons a linear model (logistic regression) is
stuck below 90%; an MLP bends its boundary around them. The MLP's boundary is drawn after each
few epochs."""
import _guide
import fastnn
from fastnn.data import train_test_split
from fastnn.layers import Dense

args = _guide.parse_args(__doc__)
X, y = _guide.two_moons(n=1000, noise=0.15)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)


def fitted(layers, epochs):
    model = fastnn.Sequential(layers, input_dim=2, seed=0)
    model.compile("binary_cross_entropy", fastnn.optim.Adam(lr=0.01), metrics=["binary_accuracy"])
    model.fit(X_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


linear = fitted([Dense(1, "sigmoid")], epochs=50)
print(f"linear model: test accuracy {linear.evaluate(X_test, y_test)['binary_accuracy']:.3f}")

checkpoints = (1, 5, 20) if args.quick else (1, 3, 10, 30, 60)
plt = _guide.pyplot()
fig, axes = plt.subplots(1, len(checkpoints) + 1, figsize=(2.6 * (len(checkpoints) + 1), 2.9))
_guide.decision_regions(axes[0], linear.predict_classes, X, y, "linear model")
mlp = fitted([Dense(32, "relu"), Dense(32, "relu"), Dense(1, "sigmoid")], epochs=0)
done = 0
for ax, epochs in zip(axes[1:], checkpoints):
    mlp.fit(X_train, y_train, epochs=epochs - done, batch_size=32, verbose=0)  # goes on training
    done = epochs
    acc = mlp.evaluate(X_test, y_test)["binary_accuracy"]
    print(f"MLP 2-32-32-1 after {epochs:2d} epochs: test accuracy {acc:.3f}")
    _guide.decision_regions(ax, mlp.predict_classes, X, y, f"MLP, epoch {epochs}: {acc:.0%}")
_guide.save(fig, args, "moons_frames.png")
