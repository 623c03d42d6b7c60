"""The scripts in examples/ run and print what they promise."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def run(name):
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_perceptron_gates():
    out = run("perceptron_gates.py")
    assert "AND: predictions [0, 0, 0, 1], converged=True" in out
    assert "XOR" in out and "converged=False" in out


def test_xor():
    assert "classes: [0, 1, 1, 0] expected: [0, 1, 1, 0]" in run("xor.py")


def test_linear_layer():
    run("linear_layer.py")


def test_digits():
    pytest.importorskip("sklearn")
    out = run("digits.py")
    accuracy = float(out.rsplit("test accuracy", 1)[1])
    assert accuracy > 0.95


@pytest.mark.slow
def test_sampled_softmax():
    assert "SampledSoftmax" in run("sampled_softmax.py")
