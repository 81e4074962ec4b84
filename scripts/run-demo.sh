#!/usr/bin/env bash
# Runs the gateway on its embedded default (one bbolt file under ./data)
# with examples/pipecore.demo.yaml. Called by `make run`.
#
# - The demo tenant's API key is generated once and kept in data/demo.env.
# - Stripe calls go to stripe-mock on 127.0.0.1:12111, started here when
#   nothing listens there yet (set STRIPE_BASE_URL and STRIPE_SECRET_KEY to
#   use a real Stripe test account instead).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-$PWD/bin}
STRIPE_MOCK=${STRIPE_MOCK:-$(go env GOPATH)/bin/stripe-mock}
export PIPECORE_LISTEN=${PIPECORE_LISTEN:-127.0.0.1:8080}
export PIPECORE_PUBLIC_URL=${PIPECORE_PUBLIC_URL:-http://$PIPECORE_LISTEN}
export PIPECORE_PLUGINS_DIR=${PIPECORE_PLUGINS_DIR:-$BIN/plugins}
export STRIPE_BASE_URL=${STRIPE_BASE_URL:-http://127.0.0.1:12111}
export STRIPE_SECRET_KEY=${STRIPE_SECRET_KEY:-sk_test_123}
export STRIPE_WEBHOOK_SECRET=${STRIPE_WEBHOOK_SECRET:-whsec_demo_secret}

mkdir -p data
chmod 700 data
if [[ ! -s data/demo.env ]]; then
	key=$("$BIN/pipecore" keygen | awk '/^key:/ {print $2}')
	admin=$("$BIN/pipecore" keygen | awk '/^key:/ {print $2}')
	umask 077
	printf 'PIPECORE_DEMO_API_KEY=%s\nPIPECORE_ADMIN_TOKEN=%s\n' "$key" "$admin" > data/demo.env
fi
# shellcheck disable=SC1091
source data/demo.env
if [[ -z ${PIPECORE_ADMIN_TOKEN:-} ]]; then # demo.env from an older run
	PIPECORE_ADMIN_TOKEN=$("$BIN/pipecore" keygen | awk '/^key:/ {print $2}')
	printf 'PIPECORE_ADMIN_TOKEN=%s\n' "$PIPECORE_ADMIN_TOKEN" >> data/demo.env
fi
export PIPECORE_DEMO_API_KEY PIPECORE_ADMIN_TOKEN

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $STRIPE_BASE_URL == http://127.0.0.1:12111 ]] && ! (exec 3<>/dev/tcp/127.0.0.1/12111) 2>/dev/null; then
	echo "starting stripe-mock on 127.0.0.1:12111"
	"$STRIPE_MOCK" -http-addr 127.0.0.1:12111 -https-addr 127.0.0.1:12112 >data/stripe-mock.log 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/12111) 2>/dev/null && break; sleep 0.1; done
fi

cat <<BANNER

  PipeCore demo gateway on http://$PIPECORE_LISTEN   (Ctrl-C stops it)
  Demo tenant "demo", API key: $PIPECORE_DEMO_API_KEY
  Operator token (admin API and CLI): export PIPECORE_ADMIN_TOKEN=$PIPECORE_ADMIN_TOKEN

  Try:
    curl -s http://$PIPECORE_LISTEN/readyz
    curl -s -X POST http://$PIPECORE_LISTEN/v1/payments \\
      -H "Authorization: Bearer $PIPECORE_DEMO_API_KEY" -H "Idempotency-Key: order-1001" \\
      -H "Content-Type: application/json" \\
      -d '{"amount":12990,"currency":"CLP","reference":"order-1001","description":"2 pizzas"}'
    PIPECORE_ADMIN_TOKEN=$PIPECORE_ADMIN_TOKEN $BIN/pipecore plugins list --addr http://$PIPECORE_LISTEN

BANNER

"$BIN/pipecore" serve --config examples/pipecore.demo.yaml &
pids+=($!)
wait "${pids[-1]}"
