"""The placeholder names in torchvision's COCO category list, which the service never answers.

torchvision's detection weights carry a 91-entry list with ``__background__``
at 0 and ``N/A`` for the ids COCO never used. The list itself is build-time
knowledge (``exporters.coco_names``): a serving process reads an export's
categories from its sidecar.
"""

from __future__ import annotations

PLACEHOLDERS = frozenset({"__background__", "N/A"})
