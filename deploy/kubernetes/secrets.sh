#!/bin/sh
# Creates, in namespace NS, the Secrets deploy/kubernetes expects and never commits, with fresh values; a Secret
# that exists is kept (delete it for new values). Needs kubectl (pointed at the cluster) and openssl.
#   extauthz-secrets   SHARED_SECRET, SIGNING_KEY, DATABROKER_STORAGE_CONNECTION_STRING (redis://redis:6379/0),
#                      and IDP_CLIENT_SECRET when that is set here: the pods take every key as an environment
#                      variable overriding the config key of that name.
#   with --mtls (the shared layout), from one new CA:
#   extauthz-grpc-tls  tls.crt/tls.key, the sidecars' server certificate (SAN extauthz.internal), and
#                      client-ca.crt, the CA Envoy's client certificate must chain to
#   envoy-grpc-tls     client.crt/client.key, Envoy's client certificate, and extauthz-ca.crt, the CA the
#                      sidecars' certificate must chain to
# Usage: deploy/kubernetes/secrets.sh NAMESPACE [--mtls]
# Mint tokens with the same shared secret:
#   kubectl -n NS get secret extauthz-secrets -o jsonpath='{.data.SHARED_SECRET}' | base64 -d |
#     extauthz service-account -email ... -aud app.localhost -iss authenticate.localhost
set -eu
NS=${1:?usage: secrets.sh NAMESPACE [--mtls]}
MTLS=${2:-}
say() { printf 'k8s-secrets: %s\n' "$*" >&2; }
have() { kubectl -n "$NS" get secret "$1" >/dev/null 2>&1; }
apply() { kubectl -n "$NS" create secret generic "$@" --dry-run=client -o yaml | kubectl -n "$NS" apply -f - >/dev/null; }
kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null

if have extauthz-secrets; then say "$NS/extauthz-secrets exists; kept"; else
  set -- extauthz-secrets \
    --from-literal=SHARED_SECRET="$(openssl rand 32 | openssl base64 -A)" \
    --from-literal=SIGNING_KEY="$(openssl ecparam -name prime256v1 -genkey -noout | openssl base64 -A)" \
    --from-literal=DATABROKER_STORAGE_CONNECTION_STRING=redis://redis:6379/0
  [ -n "${IDP_CLIENT_SECRET:-}" ] && set -- "$@" --from-literal=IDP_CLIENT_SECRET="$IDP_CLIENT_SECRET"
  apply "$@"
  say "$NS/extauthz-secrets created"
fi

[ "$MTLS" = --mtls ] || exit 0
if have extauthz-grpc-tls && have envoy-grpc-tls; then say "$NS: TLS secrets exist; kept"; exit 0; fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT INT TERM
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$d/$1.key" 2>/dev/null; }
key ca
openssl req -x509 -new -key "$d/ca.key" -subj /CN=extauthz-grpc-ca -days 365 -out "$d/ca.crt" 2>/dev/null
cert() { # name subject extensions
  key "$1"
  openssl req -new -key "$d/$1.key" -subj "$2" -out "$d/$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$d/$1.ext"
  openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 365 \
    -extfile "$d/$1.ext" -out "$d/$1.crt" 2>/dev/null
}
cert server /CN=extauthz.internal "subjectAltName=DNS:extauthz.internal
extendedKeyUsage=serverAuth"
cert client /CN=envoy "extendedKeyUsage=clientAuth"
apply extauthz-grpc-tls --from-file=tls.crt="$d/server.crt" --from-file=tls.key="$d/server.key" --from-file=client-ca.crt="$d/ca.crt"
apply envoy-grpc-tls --from-file=client.crt="$d/client.crt" --from-file=client.key="$d/client.key" --from-file=extauthz-ca.crt="$d/ca.crt"
say "$NS/extauthz-grpc-tls and $NS/envoy-grpc-tls created (CA valid 365 days)"
