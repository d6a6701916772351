"""The JSON sidecar written beside every exported TorchScript file.

It is what lets the serving code stay detector-agnostic: the label list the
module's integer labels index, the default threshold chosen for that model,
whether it can produce masks, the longest image side worth sending it (a
larger image is shrunk first, with antialiasing, which the model's own
resize lacks), and the provenance (weights id, licence, versions, checksum) an operator needs to
trust what is being served.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MODEL_FILE = "model.pt"
CARD_FILE = "model.json"


@dataclass(frozen=True)
class ModelCard:
    name: str
    architecture: str
    weights: str
    categories: list[str]
    score_threshold: float
    sha256: str
    torch_version: str
    torchvision_version: str
    random_init: bool = False
    masks: bool = False
    input_size: str = ""
    max_side: int = 1333
    notes: dict[str, str] = field(default_factory=dict)
    # Who may use the weights and on what terms: an operator must know what they deploy.
    license: str = ""
    # "bf16" where the export found bf16 gives fp32's answers (model.precision decides at load
    # time whether this CPU runs it). bf16_mode "convert": the part named by precision_module
    # (e.g. "body") is converted to bf16; "autocast": the whole module runs under CPU autocast.
    precision: str = "fp32"
    bf16_mode: str = "convert"
    precision_module: str = ""
    precision_check: dict[str, object] = field(default_factory=dict)
    # exporters.int8's outcome. Where kept: "packages" (shape, file, sha256 of each compiled int8
    # body), "strides" of its maps, "requires_flags" (the CPU features its code was compiled for),
    # "shared_constants" (every package answers the same on another's weights, so a process holds
    # them once: model.compiled_body.SharedConstants).
    int8: dict[str, object] = field(default_factory=dict)

    def write(self, directory: Path) -> Path:
        path = Path(directory) / CARD_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, directory: Path) -> "ModelCard":
        return cls(**json.loads((Path(directory) / CARD_FILE).read_text()))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
