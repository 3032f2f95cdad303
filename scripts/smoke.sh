#!/usr/bin/env bash
# `make check`: prove the configured provider answers through the gateway.
# Uses a running gateway (GATEWAY_URL, default from the config) or starts one
# for the duration of the check. SMOKE_MODEL picks the model (default: echo).
set -euo pipefail
model="${SMOKE_MODEL:-echo}"
started=""
cleanup() { if [ -n "$started" ]; then gateway stop >/dev/null || true; fi; }
trap cleanup EXIT

if ! gateway status >/dev/null 2>&1; then
  echo "smoke: no gateway running; starting one"
  gateway start >/dev/null
  started=1
fi
url="$(gateway url)"

key="$(gateway keys create --name "smoke-$(date +%s)" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

echo "smoke: POST $url/v1/chat/completions model=$model"
body=$(printf '{"model":"%s","max_tokens":16,"messages":[{"role":"user","content":"Say hello in three words."}]}' "$model")
resp="$(curl -sS -w '\n%{http_code}' "$url/v1/chat/completions" \
  -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$body")"
code="${resp##*$'\n'}"; json="${resp%$'\n'*}"
if [ "$code" != "200" ]; then
  echo "smoke: FAILED with HTTP $code: $json" >&2
  exit 1
fi
python3 - "$json" <<'PY'
import json, sys
data = json.loads(sys.argv[1])
text = data["choices"][0]["message"]["content"]
usage = data.get("usage") or {}
print(f"smoke: OK  model={data.get('model')}  reply={text[:60]!r}  tokens={usage.get('total_tokens')}")
PY
echo "smoke: streaming"
curl -sS -N "$url/v1/chat/completions" -H "authorization: Bearer $key" \
  -H 'content-type: application/json' \
  -d "$(printf '{"model":"%s","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"Count to three."}]}' "$model")" \
  | grep -q '^data: \[DONE\]' && echo "smoke: OK  stream ended with [DONE]"
