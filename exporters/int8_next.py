"""Build the int8 bodies that a quick export deferred, as each model's next version.

`make run` on a fresh machine exports YOLOv5s without its int8 body (the five compiled shapes
cost about 90 s) so the service answers sooner in bf16; its sidecar says int8 was deferred.
This then exports the model again with int8, in the repository's staging folder, and publishes
it as the next version only if the int8 body was built and kept: the serving processes swap it
in live (model.repository). ``<repository>/<name>/.int8-next`` says what is on its way (deferred,
building), and the service lists it (``GET /v1/models``: ``upcoming``, and `make run`'s ready
line); a body that is not kept stays recorded there, so it is not rebuilt at every start.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from exporters import builder, int8, publish
from model.card import CARD_FILE
from model.repository import UPCOMING_FILE, scan_repository

log = logging.getLogger(__name__)


class NotKept(Exception):
    """The int8 body was not built or not kept: nothing is published."""


NOT_KEPT = "int8 not kept"


def announce(repository: Path, name: str, version: int) -> None:
    """After a quick export (--int8-later): say that int8 is on its way, for /v1/models and the ready line."""
    (repository / name / UPCOMING_FILE).write_text(
        f"deferred: int8, built in the background as version {version + 1} while version {version} serves\n")


def deferred(repository: Path) -> dict[str, int]:
    """The models whose newest version deferred its int8 body, and that version, unless an earlier
    attempt found the body not kept (one that was stopped left "building": it is tried again)."""
    found = {}
    for name, versions in scan_repository(repository).items():
        newest = max(versions)
        card = json.loads((versions[newest] / CARD_FILE).read_text())
        marker = repository / name / UPCOMING_FILE
        settled = marker.is_file() and marker.read_text().startswith(NOT_KEPT)
        if card.get("int8", {}).get("outcome") == int8.DEFERRED and not settled:
            found[name] = newest
    return found


def build_next(repository: Path, cache_dir: Path, registry: str, check_photos: list[Path]) -> int:
    """Export each deferred model with int8 as its next version; the count published."""
    published = 0
    for name, version in deferred(repository).items():
        if name != publish.MODEL_NAMES["yolov5s"]:
            continue
        marker = repository / name / UPCOMING_FILE
        marker.write_text(f"building: int8, as version {version + 1} (started {time.strftime('%H:%M:%S')})\n")
        log.info("%s: building the int8 body deferred by version %d, as the next version", name, version)

        def build(out: Path):
            card = builder.export_yolov5s(out, cache_dir, registry, check_photos=check_photos)
            if not card.int8.get("packages"):
                raise NotKept(str(card.int8.get("outcome", "not built")))
            return card

        try:
            _, folder = publish.publish(repository, build)
        except NotKept as exc:
            marker.write_text(f"{NOT_KEPT} ({exc}); version {version} keeps serving\n")
            log.warning("%s: int8 %s; version %d keeps serving", name, exc, version)
            continue
        except BaseException:
            announce(repository, name, version)  # stopped or failed: the next start tries again
            raise
        marker.unlink(missing_ok=True)
        log.info("%s: int8 published as version %s; the service swaps it in once warm", name, folder.name)
        published += 1
    return published

