#!/usr/bin/env bash
# Makes the webhook's CA and serving certificate with `meshlet certs` in a private temp dir, stores
# them as the Secret meshlet-webhook-tls in meshlet-system (replacing an older one), and deletes
# the files. The private key never lands in the repository.
#
# Usage: certs/make-secret.sh [--days N]        (needs kubectl and `npx meshlet` or `meshlet`)
set -euo pipefail

NAMESPACE="${MESHLET_NAMESPACE:-meshlet-system}"
SERVICE="${MESHLET_WEBHOOK_SERVICE:-meshlet-webhook}"
SECRET="${MESHLET_WEBHOOK_SECRET:-meshlet-webhook-tls}"

if command -v meshlet >/dev/null 2>&1; then MESHLET=(meshlet); else MESHLET=(npx --no-install meshlet); fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
chmod 700 "$workdir"

"${MESHLET[@]}" certs --out "$workdir/tls" \
  --dns "$SERVICE.$NAMESPACE.svc" \
  --dns "$SERVICE.$NAMESPACE.svc.cluster.local" \
  "$@"

kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE"
kubectl -n "$NAMESPACE" create secret generic "$SECRET" \
  --from-file=ca.crt="$workdir/tls/ca.crt" \
  --from-file=tls.crt="$workdir/tls/tls.crt" \
  --from-file=tls.key="$workdir/tls/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -
echo "Secret $NAMESPACE/$SECRET updated; running webhooks pick it up within a minute (the kubelet refreshes the volume)."
