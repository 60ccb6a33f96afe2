#!/usr/bin/env bash
# The README's main job, as a new user runs it: `orderer dev` starts a local
# 4-node network and a demo client orders signed envelopes over mutual TLS.
# Then an independent client (curl) submits an envelope made by the channels
# CLI, reads blocks and a deliver stream back, and the blocks' certificates
# are verified offline from the genesis block alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
dev_pid=""
cleanup() {
  [ -n "$dev_pid" ] && kill -INT "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
cargo build --release -q -p orderer -p channels
port=$((21000 + RANDOM % 1100 * 10))
net="$dir/net"
target/release/orderer dev --dir "$net" --base-port "$port" --demo 300 > "$dir/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do
  grep -q "runs until Ctrl-C" "$dir/dev.log" && break
  kill -0 "$dev_pid" 2>/dev/null || { cat "$dir/dev.log"; exit 1; }
  sleep 1
done
grep -q "demo: submitted=300 accepted=300" "$dir/dev.log" || { cat "$dir/dev.log"; exit 1; }
echo "check ok: orderer dev ordered 300 envelopes on 4 nodes"

api="https://127.0.0.1:$((port + 1))/v1/channels/devchannel"
client="$net/crypto/org1/users/client"
tls=(--silent --show-error --cacert "$net/tls-ca-bundle.pem" --cert "$client/tls/client.crt" --key "$client/tls/client.key")
echo "hello from curl" > "$dir/data.txt"
target/release/channels envelope --signer "$client/msp" --channel devchannel --data "$dir/data.txt" --out "$dir/env.pb"
answer=$(curl "${tls[@]}" --data-binary @"$dir/env.pb" "$api/envelopes?wait=commit")
echo "$answer" | grep -q '"status":"SUCCESS"' || { echo "submit: $answer"; exit 1; }
echo "$answer" | grep -q 'committed in block' || { echo "submit: $answer"; exit 1; }
echo "check ok: curl submitted a channels-CLI envelope: $answer"
again=$(curl "${tls[@]}" --data-binary @"$dir/env.pb" -o /dev/null -w '%{http_code}' "$api/envelopes")
[ "$again" = 400 ] || { echo "duplicate submit answered $again"; exit 1; }
echo "check ok: the same envelope again is refused (HTTP 400, duplicate tx id)"

curl "${tls[@]}" -o "$dir/b0.pb" "$api/blocks/oldest"
curl "${tls[@]}" -o "$dir/b1.pb" "$api/blocks/1"
curl "${tls[@]}" -o "$dir/b2.pb" "$api/blocks/2"
target/release/channels verify-block --config "$dir/b0.pb" "$dir/b1.pb" "$dir/b2.pb"
echo "check ok: blocks 1-2 fetched with curl verify offline (hash chain + quorum certificate)"
newest_json=$(curl "${tls[@]}" "$api/blocks/newest?format=json")
grep -q '"number"' <<< "$newest_json" || { echo "json block"; exit 1; }
echo "check ok: newest block as JSON"
bytes=$(curl "${tls[@]}" "$api/deliver?start=1&stop=3" | wc -c)
[ "$bytes" -gt 100 ] || { echo "deliver returned $bytes bytes"; exit 1; }
echo "check ok: deliver streamed blocks 1-3 ($bytes bytes)"
cli=(target/release/orderer client --addr "127.0.0.1:$((port + 11))" --channel devchannel --tls-dir "$client/tls" --cacert "$net/tls-ca-bundle.pem" --genesis "$dir/b0.pb")
"${cli[@]}" submit --signer "$client/msp" --data "$dir/data.txt" --wait | grep -q 'committed in block' || { echo "client submit"; exit 1; }
out=$("${cli[@]}" deliver --start 0 --stop 5)
[ "$(echo "$out" | grep -c 'certificate verified')" = 5 ] || { echo "client deliver: $out"; exit 1; }
"${cli[@]}" fetch newest | grep -q 'certificate verified' || { echo "client fetch"; exit 1; }
echo "check ok: orderer client submits (wait=commit), fetches and follows deliver on node 2, verifying every certificate against the genesis block"
if curl --silent --cacert "$net/tls-ca-bundle.pem" "$api/blocks/1" -o /dev/null 2>/dev/null; then
  echo "a client without a certificate was served"; exit 1
fi
echo "check ok: a client without a certificate is refused at the TLS handshake"
metrics=$(curl --silent "http://127.0.0.1:$((port + 4))/metrics")
grep -q '^bft_ledger_height{channel="devchannel"}' <<< "$metrics" || { echo "metrics: no ledger height"; exit 1; }
echo "check ok: /metrics exports the ledger height"

# Admin API (channel participation), as osnadmin would use it, on node 4
# (an OrdererOrg2MSP node): list, get, remove, and join again from the genesis
# block; the node catches up by state transfer.
admin_url="https://127.0.0.1:$((port + 33))/participation/v1/channels"
oadmin="$net/crypto/ordererorg2/users/admin"
adm=(--silent --show-error --cacert "$net/tls-ca-bundle.pem" --cert "$oadmin/tls/client.crt" --key "$oadmin/tls/client.key")
curl "${adm[@]}" "$admin_url" | grep -q '"name":"devchannel"' || { echo "admin list"; exit 1; }
curl "${adm[@]}" "$admin_url/devchannel" | grep -q '"consensusRelation":"consenter"' || { echo "admin get"; exit 1; }
echo "check ok: admin API lists the channel and its consensus relation"
code=$(curl --silent --cacert "$net/tls-ca-bundle.pem" --cert "$client/tls/client.crt" --key "$client/tls/client.key" -o /dev/null -w '%{http_code}' "$admin_url")
[ "$code" = 403 ] || { echo "a client certificate got $code from the admin API"; exit 1; }
echo "check ok: a non-admin certificate gets 403 from the admin API"
code=$(curl "${adm[@]}" -X DELETE -o /dev/null -w '%{http_code}' "$admin_url/devchannel")
[ "$code" = 204 ] || { echo "remove answered $code"; exit 1; }
code=$(curl "${adm[@]}" -o /dev/null -w '%{http_code}' "$admin_url/devchannel")
[ "$code" = 404 ] || { echo "removed channel answered $code"; exit 1; }
echo "check ok: node 4 left the channel (DELETE 204, then GET 404)"
curl "${tls[@]}" --data-binary @"$dir/env.pb" -o /dev/null "$api/envelopes" || true
code=$(curl "${adm[@]}" -o "$dir/join.json" -w '%{http_code}' -F "config-block=@$dir/b0.pb" "$admin_url")
[ "$code" = 201 ] || { echo "join answered $code: $(cat "$dir/join.json")"; exit 1; }
target_height=$(curl "${tls[@]}" "$api/blocks/newest?format=json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["number"])')
for _ in $(seq 1 60); do
  h=$(curl "${adm[@]}" "$admin_url/devchannel" | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])')
  [ "$h" -gt "$target_height" ] && break
  sleep 1
done
[ "$h" -gt "$target_height" ] || { echo "rejoined node stuck at height $h (target $target_height)"; exit 1; }
echo "check ok: node 4 joined again with the genesis block (multipart, as osnadmin) and caught up to height $h"
