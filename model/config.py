"""Every runtime setting, read once from the environment (documented in the README).

Both services build one :class:`Settings` at start; nothing else reads the
environment, so the list here is the whole configuration surface.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "artifacts" / "model"


def _env_float(env: dict[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name, "").strip()
    return float(raw) if raw else default


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    return int(raw) if raw else default


def default_torch_threads(cpu_count: int) -> int:
    """Every process may use every core: inference is serialised per process and load is uneven.

    Splitting the cores between the three model processes (1 thread each on
    2 cores) left cores idle whenever fewer processes than cores were busy,
    and measured no faster when all were (docs/performance.md, "Threads").
    """
    return max(1, cpu_count)


@dataclass(frozen=True)
class FetchPolicy:
    """Limits on fetching a caller's URL; see model.fetch for why each exists."""

    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    deadline: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    allowlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    model_dir: Path = DEFAULT_MODEL_DIR
    score_threshold: float | None = None
    torch_threads: int = 1
    max_image_pixels: int = 50_000_000
    max_side: int | None = None
    max_batch: int = 16
    fetch: FetchPolicy = field(default_factory=FetchPolicy)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        allow = tuple(item.strip() for item in env.get("DETECTOR_URL_ALLOWLIST", "").split(",") if item.strip())
        return cls(
            model_dir=Path(env.get("DETECTOR_MODEL_DIR") or DEFAULT_MODEL_DIR),
            score_threshold=_env_float(env, "DETECTOR_SCORE_THRESHOLD", None),
            torch_threads=_env_int(env, "DETECTOR_TORCH_THREADS", default_torch_threads(os.cpu_count() or 1)),
            max_image_pixels=_env_int(env, "DETECTOR_MAX_IMAGE_PIXELS", 50_000_000),
            max_side=int(env["DETECTOR_MAX_SIDE"]) if env.get("DETECTOR_MAX_SIDE", "").strip() else None,
            max_batch=_env_int(env, "DETECTOR_MAX_BATCH", 16),
            fetch=FetchPolicy(
                connect_timeout=float(_env_float(env, "DETECTOR_CONNECT_TIMEOUT", 3.0)),
                read_timeout=float(_env_float(env, "DETECTOR_READ_TIMEOUT", 5.0)),
                deadline=float(_env_float(env, "DETECTOR_FETCH_DEADLINE", 10.0)),
                max_bytes=_env_int(env, "DETECTOR_MAX_IMAGE_BYTES", 20 * 1024 * 1024),
                max_redirects=_env_int(env, "DETECTOR_MAX_REDIRECTS", 3),
                allowlist=allow,
            ),
        )
