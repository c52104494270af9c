.PHONY: demo test build release

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
