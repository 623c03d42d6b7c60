"""What a wheel says about itself: one version (fastnn/__init__.py's __version__, which the
build reads), the license, the Pythons it supports; and the wheel build's configuration."""

import importlib.metadata
import pathlib
import re
import sys

import pytest

import fastnn

ROOT = pathlib.Path(__file__).resolve().parents[1]


def pyproject():
    tomllib = pytest.importorskip("tomllib", reason="tomllib: Python 3.11 and later")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def installed_metadata():
    try:
        return importlib.metadata.metadata("fastnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastnn is imported from a path, not installed")


def test_installed_version_is_the_package_version():
    assert installed_metadata()["Version"] == fastnn.__version__
    assert fastnn.show_config()["version"] == fastnn.__version__


def test_version_is_written_in_one_place():
    project = pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    source = project["tool"]["scikit-build"]["metadata"]["version"]["input"]
    assert source == "python/fastnn/__init__.py"
    quoted = re.compile(r"""["']%s["']""" % re.escape(fastnn.__version__))
    files = [ROOT / "CMakeLists.txt", ROOT / "pyproject.toml"]
    for pattern in ("python/**/*.py", "csrc/**/*", "cmake/*"):
        files += [p for p in ROOT.glob(pattern) if p.is_file()]
    writers = [str(p.relative_to(ROOT)) for p in files if quoted.search(p.read_text("utf-8"))]
    assert writers == ["python/fastnn/__init__.py"]


def test_license_file_and_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "fastnn developers" in text
    meta = installed_metadata()
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.10"
    assert sys.version_info >= (3, 10)


def test_classifiers_name_the_pythons_that_wheels_are_built_for():
    project = pyproject()
    versions = {c.rsplit(" ", 1)[1] for c in project["project"]["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    built = set(re.findall(r"cp3(\d+)-\*", project["tool"]["cibuildwheel"]["build"]))
    assert versions == {f"3.{v}" for v in built} == {"3.10", "3.11", "3.12", "3.13"}
    assert project["project"]["requires-python"] == ">=3.10"


def test_wheel_configuration_is_the_cpu_build_on_manylinux_2_28():
    cbw = pyproject()["tool"]["cibuildwheel"]
    assert cbw["manylinux-x86_64-image"] == cbw["manylinux-aarch64-image"] == "manylinux_2_28"
    assert cbw["linux"]["archs"] == ["x86_64", "aarch64"]
    assert cbw["linux"]["environment"]["FASTNN_CUDA"] == "OFF"
    assert "pytest" in cbw["test-command"] and cbw["test-extras"] == ["test"]
