# CPU-only image: Mask R-CNN (COCO_V1) is exported to TorchScript at build time,
# so the running container never downloads anything.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# nginx buffers the public HTTP port in front of gunicorn (slow clients; docs/reliability.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 detector
WORKDIR /app

COPY requirements-torch.txt requirements.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu -r requirements-torch.txt \
 && pip install -r requirements.txt

COPY proto/ proto/
COPY model/ model/
COPY exporters/ exporters/
COPY http_service/ http_service/
COPY grpc_service/ grpc_service/
COPY supervisord.conf ./

# The same two steps `make run` performs: generate the gRPC modules, export the model. The
# export keeps bf16 only if it gives fp32's answers on the sample photos of two PyPI wheels.
RUN python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. proto/inference.proto proto/detection.proto \
 && python -m exporters --source maskrcnn --out /app/artifacts/model --sample-photos --cache /tmp/export-cache \
 && rm -rf /tmp/export-cache \
 && rm -rf /root/.cache/torch

ENV DETECTOR_RUN_DIR=/app/run \
    DETECTOR_MODEL_DIR=/app/artifacts/model
RUN mkdir -p /app/run && chown detector:detector /app/run
USER detector

EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status != 200)"
CMD ["supervisord", "-c", "/app/supervisord.conf"]
