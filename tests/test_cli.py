"""`python -m fastnn train` / `predict` on CSV and .npz tables."""

import subprocess
import sys

import numpy as np


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_train_and_predict_csv_classification(tmp_path, rng):
    X = rng.standard_normal((400, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{lab}" for r, lab in zip(X, y)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    out = run("train", "t.csv", "--target", "label", "--hidden", "16", "--epochs", "40",
              "--out", "m.fastnn", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "classification" in out.stdout and (tmp_path / "m.fastnn").exists()
    out = run("predict", "m.fastnn", "t.csv", "--out", "p.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    pred = (tmp_path / "p.csv").read_text().split()[1:]
    assert len(pred) == 400 and set(pred) <= {"yes", "no"}
    assert np.mean(np.array(pred) == y) > 0.9


def test_train_and_predict_npz_regression(tmp_path, rng):
    X = rng.standard_normal((300, 4)).astype(np.float32)
    y = X @ np.array([1.0, -1.0, 0.5, 2.0], np.float32) + 0.3
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = run("train", "d.npz", "--task", "regression", "--hidden", "32", "--epochs", "60",
              "--lr", "0.01", "--quiet", "--out", "r.fastnn", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run("predict", "r.fastnn", "d.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    pred = np.array(out.stdout.split()[1:], float)
    assert np.sqrt(np.mean((pred - y) ** 2)) < 0.3


def test_cli_errors_are_messages(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    out = run("train", "t.csv", "--target", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "no column 'nope'" in out.stderr
    out = run("predict", "missing.fastnn", "t.csv", cwd=tmp_path)
    assert out.returncode == 2 and "error:" in out.stderr
