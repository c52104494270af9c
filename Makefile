.PHONY: demo test build release compose-env compose-images k8s-images

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/extauthz/extauthz/internal/buildinfo.version=$(VERSION)
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

# Envoy + the sidecar on its demo config + an echo upstream, on loopback (POSIX sh).
demo:
	sh examples/local/run.sh

test:
	go test -race -count=1 ./...

build:
	go build -ldflags '$(LDFLAGS)' -o bin/extauthz ./cmd/extauthz

# Static binaries for every platform in dist/, stamped with VERSION, with SHA-256 checksums.
release:
	rm -rf dist && mkdir -p dist
	for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' \
			-o dist/extauthz-$(VERSION)-$$os-$$arch ./cmd/extauthz || exit 1; \
	done
	cd dist && sha256sum extauthz-* > SHA256SUMS
	@cat dist/SHA256SUMS

# The docker-compose stack (examples/docker-compose). compose-env writes its .env with fresh
# secrets when missing; compose-images makes local stand-ins for the registry images it needs
# (envoyproxy/envoy:v1.40.0, golang:1.26), for machines without a registry, then builds the stack.
compose-env:
	sh examples/docker-compose/compose-env.sh

compose-images: compose-env
	sh examples/docker-compose/standin-images.sh
	cd examples/docker-compose && docker compose build

# deploy/kubernetes on a cluster without a registry: builds the images its manifests name and imports them
# into the node's containerd, e.g. make k8s-images K8S_CONTAINERD=/path/to/containerd.sock (docs/deploy.md).
K8S_CONTAINERD ?= /run/containerd/containerd.sock
k8s-images:
	sh deploy/kubernetes/images.sh $(K8S_CONTAINERD)
