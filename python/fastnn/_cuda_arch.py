"""Whether a GPU can run the device code a build of fastnn._cuda holds: pure functions of a
compute capability and the list of images (fastnn._cuda.compiled_architectures(), e.g.
["sm_80", "sm_86", "sm_89", "sm_90", "compute_90"]), so that they are tested without a GPU.

The rules (CUDA C Programming Guide, "Binary Compatibility" and "PTX Compatibility"):
- SASS sm_XY runs on a GPU of major version X and minor version Y or above (sm_80 on 8.6);
  never on another major version.
- PTX compute_XY is compiled by the driver for any GPU of capability X.Y or above.
- The arch-specific variants (sm_90a, compute_90a) run on X.Y exactly; the family-specific
  ones (sm_100f) on major X, minor Y or above.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Capability = tuple[int, int]

# The tensor-core kernels use mma.sync shapes (tf32 m16n8k8, bf16 m16n8k16) that need 8.0.
MIN_CAPABILITY: Capability = (8, 0)

_IMAGE = re.compile(r"^(sm|compute)_(\d+)(\d)([af]?)$")


def parse_image(image: object) -> tuple[str, Capability, str]:
    """("sm" or "compute", (major, minor), suffix) from a name such as "sm_86" or "compute_90a"."""
    m = _IMAGE.match(str(image))
    if m is None:
        raise ValueError(f"image: expected a name such as 'sm_86' or 'compute_90', got {image!r}")
    return m.group(1), (int(m.group(2)), int(m.group(3))), m.group(4)


def image_runs_on(image: str, capability: Sequence[int]) -> bool:
    """True when the driver can run `image` on a GPU of compute capability (major, minor)."""
    kind, (major, minor), suffix = parse_image(image)
    cap = (int(capability[0]), int(capability[1]))
    if suffix == "a":
        return cap == (major, minor)
    if kind == "sm" or suffix == "f":
        return cap[0] == major and cap[1] >= minor
    return cap >= (major, minor)


def covering_images(capability: Sequence[int], images: Sequence[str]) -> list[str]:
    """The images of `images` that run on `capability`, in their order."""
    return [image for image in images if image_runs_on(image, capability)]


def _cap(capability: Sequence[int]) -> str:
    return f"{int(capability[0])}.{int(capability[1])}"


def coverage_error(device: str, capability: Sequence[int], images: Sequence[str]) -> str | None:
    """None when `images` hold code for a GPU of `capability`; else the message of the error
    that fastnn.cuda raises at the device's first use. `device` names it ("cuda:0")."""
    if covering_images(capability, images):
        return None
    compiled = ", ".join(images) if images else "nothing"
    what = (f"{device} has compute capability {_cap(capability)}; this build of fastnn has no "
            f"GPU code for it (fastnn._cuda holds {compiled}: SASS sm_XY runs on X.Y to X.9, "
            f"PTX compute_XY on X.Y and newer)")
    if tuple(int(c) for c in capability) < MIN_CAPABILITY:
        return (f"{what}. fastnn's GPU kernels need compute capability "
                f"{_cap(MIN_CAPABILITY)} or newer; use device='cpu'")
    return (f"{what}. Build fastnn from source on this machine, which compiles for the GPUs it "
            f"sees (FASTNN_CUDA_ARCHS=native), or name this one: "
            f"FASTNN_CUDA_ARCHS={int(capability[0])}{int(capability[1])}")
