"""The scripts in examples/ run and print what they promise. The guide's sections run in their
--quick mode (a few seconds each) and must write the figures they name."""

import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

# The guide's sections: script -> (optional packages it needs, what its --quick output must hold:
# text, or a compiled pattern).
SECTIONS = {
    "perceptron_gates.py": ((), ["AND: predictions [0, 0, 0, 1], converged=True",
                                 "converged=False", "XOR with a 2-4-1 tanh network: [0, 1, 1, 0]"]),
    "logistic.py": ((), ["log-loss is smallest at p = 0.70"]),
    "nonlinear_boundaries.py": ((), ["linear model: test accuracy"]),
    "batch_sizes.py": ((), ["stochastic (1)"]),
    "optimizers.py": ((), ["Nesterov 0.9", "Adam"]),
    "overfitting.py": ((), ["early stopping ended training"]),
    "gradients.py": ((), ["vanishing gradients", "the loss became nan", "clipnorm=0.5"]),
    "multiclass.py": ((), ["softmax   : accuracy", "sum to 1.000 .. 1.000", "sampled softmax"]),
    "validation.py": ((), ["5-fold cross-validation", "random restarts"]),
    "gradient_accumulation.py": ((), ["batch  32 x accumulate 8"]),
    "save_load_cli.py": ((), ["predictions identical to the original's: True",
                              "300 predictions"]),
    "digits.py": (("sklearn",), [re.compile(r"test accuracy 0\.9[5-9]|test accuracy 1\.0")]),
    "mnist1d_mlp.py": (("mnist1d",), ["MLP 40-100-100-10"]),
}


def run(name, *args):
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_guide_section_quick(name, tmp_path):
    pytest.importorskip("matplotlib", reason="the guide's examples draw with matplotlib")
    needs, expected = SECTIONS[name]
    for package in needs:
        pytest.importorskip(package, reason=f"{name} needs {package}")
    out = run(name, "--quick", "--out", str(tmp_path))
    for line in expected:
        assert (line.search(out) if isinstance(line, re.Pattern) else line in out), out
    figures = re.findall(r"^figure: (\S+)$", out, re.M)
    assert figures, out
    for figure in figures:
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure


def test_every_section_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    standalone = {"xor.py", "linear_layer.py", "sampled_softmax.py"}   # tested below
    assert scripts - standalone == set(SECTIONS)


def test_guide_shows_every_section():
    """docs/guide.md runs each section's script and links figures that are committed."""
    guide = (EXAMPLES.parent / "docs" / "guide.md").read_text()
    assert set(re.findall(r"<!-- run: examples/(\S+) -->", guide)) == set(SECTIONS)
    images = re.findall(r"!\[[^]]*\]\((images/[^)]+)\)", guide)
    assert images
    for image in images:
        assert (EXAMPLES.parent / "docs" / image).is_file(), image


def test_xor():
    assert "classes: [0, 1, 1, 0] expected: [0, 1, 1, 0]" in run("xor.py")


def test_linear_layer():
    run("linear_layer.py")


@pytest.mark.slow
def test_sampled_softmax():
    assert "sampled softmax (256)" in run("sampled_softmax.py")
