"""Which GPUs a build of fastnn._cuda runs on: the compatibility rules (fastnn/_cuda_arch.py) as
pure functions, the default architecture list of cmake/cuda_architectures.cmake against the GPUs
fastnn supports, and the error at a device's first use, through the public API on the host
stand-in (tests/_cuda_standin.py) with a GPU the build does not cover."""

import pathlib
import re

import numpy as np
import pytest

import fastnn
from fastnn import _cuda_arch, cuda
from fastnn._cuda_arch import coverage_error, covering_images, image_runs_on, parse_image

import _cuda_standin
from gpu import STANDIN

ROOT = pathlib.Path(__file__).resolve().parents[1]

# compute capability of the GPUs the issue names, and of the ones fastnn does not support
SUPPORTED = {"A100": (8, 0), "A10 / RTX 3090": (8, 6), "Jetson Orin": (8, 7),
             "L4 / RTX 4090": (8, 9), "H100 / H200": (9, 0), "B200": (10, 0), "GB300": (10, 3),
             "RTX 5090": (12, 0)}
TOO_OLD = {"V100": (7, 0), "T4": (7, 5), "GTX 1080": (6, 1)}


@pytest.mark.parametrize("image, expected", [
    ("sm_80", ("sm", (8, 0), "")), ("sm_86", ("sm", (8, 6), "")),
    ("compute_90", ("compute", (9, 0), "")), ("sm_90a", ("sm", (9, 0), "a")),
    ("sm_100f", ("sm", (10, 0), "f")), ("compute_120", ("compute", (12, 0), "")),
])
def test_parse_image(image, expected):
    assert parse_image(image) == expected


@pytest.mark.parametrize("image", ["80", "sm80", "sm_", "lto_90", "sm_90x", "", None])
def test_parse_image_rejects_other_names(image):
    with pytest.raises(ValueError, match="image: expected a name such as"):
        parse_image(image)


@pytest.mark.parametrize("image, capability, runs", [
    # SASS: the same major version, minor at least the image's
    ("sm_80", (8, 0), True), ("sm_80", (8, 6), True), ("sm_80", (8, 9), True),
    ("sm_86", (8, 0), False), ("sm_80", (9, 0), False), ("sm_90", (10, 0), False),
    ("sm_100", (10, 3), True), ("sm_120", (12, 1), True), ("sm_100", (12, 0), False),
    # PTX: any capability at least the image's
    ("compute_90", (9, 0), True), ("compute_90", (10, 0), True), ("compute_90", (12, 1), True),
    ("compute_90", (8, 9), False), ("compute_80", (8, 6), True), ("compute_80", (7, 5), False),
    # arch-specific: that capability only; family-specific: its major version from its minor up
    ("sm_90a", (9, 0), True), ("compute_90a", (10, 0), False), ("sm_100a", (10, 3), False),
    ("sm_100f", (10, 3), True), ("sm_100f", (12, 0), False), ("compute_100f", (11, 0), False),
])
def test_image_runs_on(image, capability, runs):
    assert image_runs_on(image, capability) is runs


def test_covering_images_keeps_order():
    images = ["sm_80", "sm_86", "sm_90", "compute_90"]
    assert covering_images((8, 9), images) == ["sm_80", "sm_86"]
    assert covering_images((9, 0), images) == ["sm_90", "compute_90"]
    assert covering_images((12, 0), images) == ["compute_90"]
    assert covering_images((7, 5), images) == []
    assert covering_images((9, 0), []) == []


def default_images():
    """The default list of cmake/cuda_architectures.cmake as images, mapped here on its own
    (CMake syntax: N = sm_N and compute_N, N-real = sm_N, N-virtual = compute_N)."""
    text = (ROOT / "cmake" / "cuda_architectures.cmake").read_text()
    entries = re.search(r'set\(FASTNN_CUDA_DEFAULT_ARCHS "([^"]+)"\)', text).group(1).split(";")
    images = []
    for entry in entries:
        arch, _, kind = entry.partition("-")
        images += {"": [f"sm_{arch}", f"compute_{arch}"], "real": [f"sm_{arch}"],
                   "virtual": [f"compute_{arch}"]}[kind]
    return images


@pytest.mark.parametrize("gpu", sorted(SUPPORTED))
def test_default_list_covers_every_supported_gpu(gpu):
    assert coverage_error("cuda:0", SUPPORTED[gpu], default_images()) is None


def test_default_list_has_sass_for_each_supported_capability_up_to_hopper():
    # PTX alone would run there too, but compiled by the driver at first load (slow, and a
    # code generator that may lag the toolkit's); below Blackwell each gets its own SASS.
    images = default_images()
    for cap in [(8, 0), (8, 6), (8, 9), (9, 0)]:
        assert f"sm_{cap[0]}{cap[1]}" in images, cap
    newest = max(parse_image(i)[1] for i in images)
    assert f"compute_{newest[0]}{newest[1]}" in images  # PTX for the GPUs after the newest


@pytest.mark.parametrize("gpu", sorted(TOO_OLD))
def test_default_list_leaves_gpus_before_ampere_to_the_error(gpu):
    message = coverage_error("cuda:0", TOO_OLD[gpu], default_images())
    assert message is not None and "8.0 or newer" in message


def test_coverage_error_names_capability_images_and_the_way_out():
    images = ["sm_90", "compute_90"]
    message = coverage_error("cuda:1", (8, 6), images)
    assert "cuda:1" in message and "compute capability 8.6" in message
    assert "sm_90, compute_90" in message
    assert "FASTNN_CUDA_ARCHS=86" in message and "native" in message
    assert coverage_error("cuda:0", (9, 0), images) is None
    assert "holds nothing" in coverage_error("cuda:0", (9, 0), [])


def test_coverage_error_below_the_minimum_says_no_rebuild_helps():
    message = coverage_error("cuda:0", (7, 5), ["sm_80", "compute_80"])
    assert "compute capability 7.5" in message and "8.0 or newer" in message
    assert "FASTNN_CUDA_ARCHS" not in message and "device='cpu'" in message
    assert _cuda_arch.MIN_CAPABILITY == (8, 0)


# ------------------------------------------------------------ the check at first use (stand-in)

@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(cuda, "_covered", set())
    return _cuda_standin.install(monkeypatch)


@pytest.mark.parametrize("first_use", [
    lambda: fastnn.asarray(np.zeros(3, np.float32), device="cuda"),
    lambda: fastnn.Tensor._wrap_numpy(np.zeros(3, np.float32)).to("cuda:1"),
    lambda: fastnn.Sequential([fastnn.layers.Dense(2)], input_dim=3, device="cuda"),
])
def test_first_use_of_an_uncovered_gpu_raises(fake, first_use):
    fake.capability = (7, 5)
    with pytest.raises(RuntimeError, match=r"compute capability 7\.5.*sm_80, sm_86"):
        first_use()
    fake.images = ["sm_90"]
    fake.capability = (8, 9)
    with pytest.raises(RuntimeError, match="FASTNN_CUDA_ARCHS=89"):
        first_use()


def test_first_use_of_a_covered_gpu_is_checked_once(fake, monkeypatch):
    fake.capability = (12, 0)  # Blackwell: the default list's PTX
    asked = []
    capability = fake.device_capability
    monkeypatch.setattr(fake, "device_capability", lambda d: asked.append(d) or capability(d))
    x = fastnn.asarray(np.arange(3, dtype=np.float32), device="cuda")
    fastnn.asarray(np.zeros(2, np.float32), device="cuda:0")
    fastnn.asarray(np.zeros(2, np.float32), device="cuda:1")
    assert asked == [0, 1]
    np.testing.assert_array_equal(x.numpy(), [0, 1, 2])


# ------------------------------------------------------------ the compiled module, where built

@pytest.mark.skipif(STANDIN or not cuda.is_compiled(), reason="needs the compiled fastnn._cuda")
def test_compiled_module_reports_its_images():
    from fastnn import _cuda

    images = list(_cuda.compiled_architectures())
    assert images and all(parse_image(i) for i in images)
    assert all(parse_image(i)[1] >= _cuda_arch.MIN_CAPABILITY for i in images)
    assert cuda.describe()["cuda_architectures"] == images


# ------------------------------------------------------------ the CMake side (configure only)

@pytest.mark.slow
@pytest.mark.parametrize("archs, expected", [
    ("", "sm_80,sm_86,sm_89,sm_90,compute_90"),  # no GPU here: the default list
    ("default", "sm_80,sm_86,sm_89,sm_90,compute_90"),
    ("80,90-virtual", "sm_80,compute_80,compute_90"),
    ("86-real;120", "sm_86,sm_120,compute_120"),
    ("bogus", "'bogus' is not an architecture"),
])
def test_cmake_resolves_fastnn_cuda_archs(tmp_path, archs, expected):
    """cmake/cuda_architectures.cmake, configured with nvcc (about 20 s each): the images it
    reports for FASTNN_CUDA_ARCHS, or its error."""
    import shutil
    import subprocess
    import sys

    if shutil.which("cmake") is None or shutil.which("nvcc") is None:
        pytest.skip("needs cmake and nvcc")
    pybind11 = pytest.importorskip("pybind11", reason="the build's pybind11")
    if cuda.is_available():
        pytest.skip("a visible GPU makes the empty setting mean native")
    run = subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(tmp_path), "-DFASTNN_CUDA=ON",
         f"-DFASTNN_CUDA_ARCHS={archs}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
         f"-DPython_EXECUTABLE={sys.executable}"],
        capture_output=True, text=True)
    output = run.stdout + run.stderr
    if "bogus" in archs:
        assert run.returncode != 0 and expected in " ".join(output.split()), output
    else:
        assert run.returncode == 0, output
        assert f"building the CUDA backend for {expected} " in output, output
