.PHONY: demo test build release release-image compose-env compose-images k8s-images

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/extauthz/extauthz/internal/buildinfo.version=$(VERSION)
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
# The sidecar's container image: the extauthz stage of the repository's Dockerfile, tagged with
# VERSION (a tag holds only letters, digits, '.', '_' and '-': anything else becomes '-').
DOCKERFILE := examples/docker-compose/Dockerfile
IMAGE ?= extauthz:$(shell printf '%s' '$(VERSION)' | tr -c 'A-Za-z0-9_.-' '-')

# Envoy + the sidecar on its demo config + an echo upstream, on loopback (POSIX sh).
demo:
	sh examples/local/run.sh

test:
	go test -race -count=1 ./...

build:
	go build -ldflags '$(LDFLAGS)' -o bin/extauthz ./cmd/extauthz

# Static binaries for every platform in dist/, stamped with VERSION, with SHA-256 checksums, then
# the container image (release-image; the binaries are kept if it fails, e.g. with no Docker).
release:
	rm -rf dist && mkdir -p dist
	for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' \
			-o dist/extauthz-$(VERSION)-$$os-$$arch ./cmd/extauthz || exit 1; \
	done
	cd dist && sha256sum extauthz-* > SHA256SUMS
	@cat dist/SHA256SUMS
	$(MAKE) --no-print-directory release-image VERSION='$(VERSION)' IMAGE='$(IMAGE)'

# The image from DOCKERFILE with the local Docker engine, stamped with VERSION, then asked for its
# version (it must report VERSION). The Dockerfile needs BuildKit (RUN --mount): the Docker CLI has it through buildx;
# without buildx, Compose v2 builds with the engine's BuildKit, from a one-service project on stdin.
release-image:
	if docker buildx version >/dev/null 2>&1; then \
		docker build -f $(DOCKERFILE) --target extauthz --build-arg VERSION='$(VERSION)' -t '$(IMAGE)' . ; \
	else \
		printf 'services:\n  extauthz:\n    image: "%s"\n    build:\n      context: .\n      dockerfile: %s\n      target: extauthz\n      args:\n        VERSION: "%s"\n' \
			'$(IMAGE)' '$(DOCKERFILE)' '$(VERSION)' | docker compose -p extauthz-release -f - build ; \
	fi
	@v=$$(docker run --rm '$(IMAGE)' version) && echo "$(IMAGE): $$v" && case "$$v" in \
		"extauthz $(VERSION) ("*) ;; \
		*) echo "the image reports '$$v', not version $(VERSION)" >&2; exit 1 ;; \
	esac

# The docker-compose stack (examples/docker-compose). compose-env writes its .env with fresh
# secrets when missing; compose-images makes local stand-ins for the registry images it needs
# (envoyproxy/envoy:v1.40.0, golang:1.26, redis:7), for machines without a registry, then builds the stack.
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
