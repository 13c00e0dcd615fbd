#!/usr/bin/env bash
# Seed the running system through the gateway: a demo user and a few products.
#   scripts/seed.sh [GATEWAY_URL]      (default http://127.0.0.1:8000)
# Running it again logs the demo user in again and adds another set of products.
set -euo pipefail
GATEWAY=${1:-${SHOP_GATEWAY_URL:-http://127.0.0.1:8000}}
EMAIL=${SEED_EMAIL:-demo@example.com}
PASSWORD=${SEED_PASSWORD:-demo-password-123}

call() {  # call METHOD PATH [JSON] -> prints the body, fails on a non-2xx status
  local method=$1 path=$2 body=${3:-}
  curl -sS --fail-with-body -X "$method" "$GATEWAY$path" \
    -H 'Content-Type: application/json' ${TOKEN:+-H "Authorization: Bearer $TOKEN"} \
    ${body:+-d "$body"}
}

credentials=$(printf '{"email": "%s", "password": "%s"}' "$EMAIL" "$PASSWORD")
status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$GATEWAY/register" \
  -H 'Content-Type: application/json' -d "$credentials")
case "$status" in
  201) echo "registered $EMAIL" ;;
  409) echo "$EMAIL already registered" ;;
  *) echo "registering $EMAIL failed with HTTP $status" >&2; exit 1 ;;
esac
TOKEN=$(call POST /token "$credentials" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

while IFS='|' read -r name price quantity; do
  product=$(call POST /products "$(printf '{"name": "%s", "price": %s, "quantity": %s}' "$name" "$price" "$quantity")")
  echo "product: $product"
done <<'PRODUCTS'
Quantum Mechanical Keyboard|249.99|50
Ergonomic Mouse|59.90|120
27-inch 4K Monitor|399.00|15
USB-C Dock|129.50|40
Noise-Cancelling Headphones|199.99|25
PRODUCTS

echo
echo "log in as $EMAIL / $PASSWORD; your token:"
echo "export TOKEN=$TOKEN"
