"""Write an export into a model repository as its model's next version, in one rename.

The export is built in a hidden staging folder of the repository (``.staging-...``, which
scans ignore: model.repository), then renamed to ``<name>/<next version>/``: a serving
process polling the repository sees either nothing or the whole folder, never half of it.
The rename stays on one filesystem because the staging folder is inside the repository.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from model.card import ModelCard
from model.repository import AUTO_ORDER, VERSION_NAME, scan_repository

log = logging.getLogger(__name__)

# The repository name of each export source: the sidecar's name (exporters.builder), in the
# order MODEL_SOURCE=auto tries them.
MODEL_NAMES = dict(zip(("maskrcnn", "yolov5s", "mb3-centernet"), AUTO_ORDER))


def has_model(repository: Path, source: str) -> str | None:
    """The name of ``source``'s model if the repository holds a version of it (auto: of any of them)."""
    found = scan_repository(repository)
    names = AUTO_ORDER if source == "auto" else (MODEL_NAMES[source],)
    return next((name for name in names if name in found), None)


def publish(repository: Path, build: Callable[[Path], ModelCard]) -> tuple[ModelCard, Path]:
    """Run ``build(folder)`` in a staging folder, then rename that to the model's next version."""
    repository.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=repository))
    try:
        card = build(staging)
        model_dir = repository / card.name
        model_dir.mkdir(exist_ok=True)
        taken = [int(p.name) for p in model_dir.iterdir() if VERSION_NAME.fullmatch(p.name)]
        version = max(taken, default=0) + 1
        while True:
            target = model_dir / str(version)
            try:
                target.mkdir()  # claims the number: two exports at once take two numbers
                break
            except FileExistsError:
                version += 1
        os.replace(staging, target)  # onto the empty folder just claimed: one rename
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(target, 0o755)  # mkdtemp made it private; serving processes may run as another user
    log.info("published %s as version %s in %s", card.name, target.name, repository)
    return card, target
