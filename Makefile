.PHONY: demo test build

# Envoy + the sidecar on its demo config + an echo upstream, on loopback.
demo:
	bash examples/local/run.sh

test:
	go test -race -count=1 ./...

build:
	go build -o bin/extauthz ./cmd/extauthz
