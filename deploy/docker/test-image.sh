#!/usr/bin/env bash
# `make docker-test`: build the repository's Dockerfile the way this machine allows and test the
# image from outside. Starts its own Docker engine (deploy/docker/daemon.sh) and stops it at the end.
#
# No Docker Hub here, so the base is Debian bookworm made with debootstrap (python3 is 3.11); no
# HTTPS from inside builds without the host's extra CAs, so the wheels are downloaded on the host
# into deploy/docker/wheelhouse/ and the host's added CAs go to deploy/docker/ca-certificates/
# (for the model's npm download). The model is the offline yolov5s.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
IMAGE=${DOCKER_IMAGE:-instance-detector:test}
BASE=${DOCKER_BASE_IMAGE:-instance-detector-base:bookworm}
MODEL_SOURCE=${DOCKER_MODEL_SOURCE:-yolov5s}
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

# Each build leaves untagged images behind: the build stage (the wheelhouse copy and the full venv)
# and the image the new tag replaced, 10 to 15 GB a run. They are removed before and after, so runs
# on the same engine do not add up until the disk is full; the base and the tested image stay.
prune() { docker image prune --force >/dev/null || true; }
stop_engine() { prune; deploy/docker/daemon.sh stop; }

step "Docker engine"
DOCKER_HOST=$(deploy/docker/daemon.sh start)
export DOCKER_HOST
trap stop_engine EXIT
prune

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    step "base image $BASE from $MIRROR"
    command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || {
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
    rootfs=$(mktemp -d)
    $SUDO /usr/sbin/debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$MIRROR" >/dev/null
    $SUDO tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
    $SUDO rm -rf "$rootfs"
fi

step "wheelhouse and CA certificates on the host"
"$PY" -m pip download --quiet --disable-pip-version-check -d deploy/docker/wheelhouse \
    -r requirements-torch.txt -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
find deploy/docker/ca-certificates -name '*.crt' -delete
cp /usr/local/share/ca-certificates/*.crt deploy/docker/ca-certificates/ 2>/dev/null || true

step "docker build"
need_gib=${DOCKER_BUILD_FREE_GIB:-26}
data_root=$(deploy/docker/daemon.sh root)
free_gib=$(df --output=avail -B1G "$data_root" | tail -1 | tr -d ' ')
if [ "$free_gib" -lt "$need_gib" ]; then
    echo "docker build needs about ${need_gib} GiB free where the engine keeps its data;" \
         "$data_root has ${free_gib} GiB (DOCKER_BUILD_FREE_GIB to change)" >&2
    exit 1
fi
docker build --network host --tag "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE" --build-arg MODEL_SOURCE="$MODEL_SOURCE" \
    --build-arg NPM_REGISTRY="${DETECTOR_NPM_REGISTRY:-https://registry.npmjs.org}" .
docker image ls "$IMAGE" --format 'image {{.Repository}}:{{.Tag}}: {{.Size}}'

step "tests against the container"
DETECTOR_DOCKER_IMAGE="$IMAGE" "$PY" -m pytest -p no:cacheprovider tests/deploy/test_docker_image.py "$@"
step "done"
