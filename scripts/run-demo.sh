#!/usr/bin/env bash
# Runs the gateway on its embedded default (one bbolt file under ./data)
# with examples/pipecore.demo.yaml. Called by `make run`.
#
# - The demo tenant's API key is generated once and kept in data/demo.env.
# - Stripe calls go to stripe-mock on 127.0.0.1:12111, started here when
#   nothing listens there yet (set STRIPE_BASE_URL and STRIPE_SECRET_KEY to
#   use a real Stripe test account instead).
# - Uber Direct, Rappi, PedidosYa, WhatsApp (Meta Cloud API) and SendGrid
#   calls go to the local fakes of e2e/cmd/providerfakes on 127.0.0.1:12101
#   to 12105, built and started here. They post signed webhooks to the
#   gateway and move booked deliveries and sent messages along every 5 s;
#   data/providerfakes.env carries their URLs, credentials and webhook
#   secrets into the config, and data/providerfakes.log is their log.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-$PWD/bin}
GO=${GO:-go}
STRIPE_MOCK=${STRIPE_MOCK:-$($GO env GOPATH)/bin/stripe-mock}
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

(cd e2e && "$GO" build -o "$BIN/providerfakes" ./cmd/providerfakes)

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

echo "starting the courier and messaging fakes on 127.0.0.1:12101-12105"
rm -f data/providerfakes.env
"$BIN/providerfakes" -gateway "$PIPECORE_PUBLIC_URL" -tenant demo -env-file data/providerfakes.env >data/providerfakes.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s data/providerfakes.env ]] && break; kill -0 "${pids[-1]}" 2>/dev/null || break; sleep 0.1; done
if [[ ! -s data/providerfakes.env ]]; then
	echo "providerfakes did not start:" >&2
	cat data/providerfakes.log >&2
	exit 1
fi
set -a
# shellcheck disable=SC1091
source data/providerfakes.env
set +a

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
  Deliveries and messages: see "A walk-through with curl" in README.md.

BANNER

"$BIN/pipecore" serve --config examples/pipecore.demo.yaml &
pids+=($!)
wait "${pids[-1]}"
