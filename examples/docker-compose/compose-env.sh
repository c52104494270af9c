#!/bin/sh
# make compose-env: writes .env next to docker-compose.yaml with fresh secrets, when it is
# missing (an existing .env is kept: tokens minted and sessions signed with it stay good).
# Compose reads .env by itself; git and the image builds ignore it. Needs openssl.
#   SHARED_SECRET      signs and verifies every token (mint service-account tokens with it)
#   SIGNING_KEY        the EC P-256 key that signs x-pomerium-jwt-assertion (stable across restarts)
#   IDP_CLIENT_SECRET  the sidecar's client secret at the demo provider (both read this variable)
set -eu
cd "$(dirname "$0")"
if [ -e .env ]; then
  echo "compose-env: examples/docker-compose/.env exists; kept (delete it for fresh secrets)" >&2
  exit 0
fi
command -v openssl >/dev/null || { echo "compose-env: openssl is missing" >&2; exit 1; }
b64() { openssl base64 -A; }
shared=$(openssl rand 32 | b64)
client=$(openssl rand 24 | b64 | tr '+/' '-_' | tr -d '=')
key=$(openssl ecparam -name prime256v1 -genkey -noout | b64)
umask 077
tmp=$(mktemp .env.XXXXXX)
trap 'rm -f "$tmp"' EXIT INT TERM
cat >"$tmp" <<END
# Written by make compose-env: the compose stack's secrets. Keep out of git (it is ignored).
SHARED_SECRET=$shared
SIGNING_KEY=$key
IDP_CLIENT_SECRET=$client
END
mv "$tmp" .env
trap - EXIT INT TERM
echo "compose-env: wrote examples/docker-compose/.env" >&2
