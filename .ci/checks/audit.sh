#!/usr/bin/env bash
# Issue 11 with real processes: a 4-node `orderer dev` network orders
# envelopes; an auditor exports the signed vote log of every node through the
# admin API and verifies them offline with the CA roots and the genesis block
# (and the blocks themselves); a tampered record, a removed record, a forged
# signature and a truncated export are each reported; a client certificate is
# refused; evidence of equivocation made with node 2's real key checks and
# the same claim under another node's key is refused; then the network is stopped and the logs are exported offline from
# the nodes' data folders and verify again.
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
orderer=target/release/orderer
port=$((23000 + RANDOM % 900 * 10))
net="$dir/net"
"$orderer" dev --dir "$net" --base-port "$port" --demo 200 > "$dir/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do
  grep -q "runs until Ctrl-C" "$dir/dev.log" && break
  kill -0 "$dev_pid" 2>/dev/null || { cat "$dir/dev.log"; exit 1; }
  sleep 1
done
grep -q "demo: submitted=200 accepted=200" "$dir/dev.log" || { cat "$dir/dev.log"; exit 1; }

au="$net/crypto/org1/users/auditor"
aud=(--silent --show-error --fail --cacert "$net/tls-ca-bundle.pem" --cert "$au/tls/client.crt" --key "$au/tls/client.key")
# The auditor's trust: the organisations' CA roots, and the genesis block.
mkdir -p "$dir/roots" "$dir/blocks" "$dir/logs"
cp "$net"/crypto/ordererorg1/ca/msp/cacerts/* "$dir/roots/o1.pem"
cp "$net"/crypto/ordererorg2/ca/msp/cacerts/* "$dir/roots/o2.pem"
api="https://127.0.0.1:$((port + 1))/v1/channels/devchannel"
curl "${aud[@]}" -o "$dir/b0.pb" "$api/blocks/0"
sleep 2 # let the last shares of the demo settle
for i in 1 2 3 4; do
  curl "${aud[@]}" -o "$dir/logs/orderer$i.jsonl" \
    "https://127.0.0.1:$((port + 10 * (i - 1) + 3))/admin/v1/channels/devchannel/votes"
done
height=$(python3 -c 'import json,sys; print(max(json.loads(l).get("seq",0) for l in open(sys.argv[1]) if "\"kind\":\"block\"" in l))' "$dir/logs/orderer1.jsonl")
for n in $(seq 1 "$height"); do curl "${aud[@]}" -o "$dir/blocks/$(printf %06d "$n").pb" "$api/blocks/$n"; done
echo "check ok: an auditor exported the vote logs of 4 nodes over the admin API ($(cat "$dir"/logs/*.jsonl | wc -l) lines, blocks 1..$height)"

verify=("$orderer" audit verify --roots "$dir/roots" --config "$dir/b0.pb")
"${verify[@]}" --blocks "$dir/blocks" "$dir"/logs/*.jsonl > "$dir/report.txt" || { cat "$dir/report.txt"; exit 1; }
grep -q "verdict=clean" "$dir/report.txt" || { cat "$dir/report.txt"; exit 1; }
grep -q "blocks: $height checked, $height with a valid certificate, $height with a quorum of matching logged votes" "$dir/report.txt" \
  || { cat "$dir/report.txt"; exit 1; }
tail -n 1 "$dir/report.txt"
echo "check ok: the 4 logs verify (signatures, chains, pinned certificates) and every block has a quorum of logged votes matching its certificate"
"${verify[@]}" --json "$dir"/logs/*.jsonl | python3 -c 'import json,sys; r=json.load(sys.stdin); assert len(r["consenters"])==4 and not r["evidence"], r'
echo "check ok: --json report"

# Negative cases, each on a copy of node 2's log.
expect_finding() { # name file pattern
  if "${verify[@]}" "$2" > "$dir/neg.txt"; then echo "$1 verified clean"; cat "$dir/neg.txt"; exit 1; fi
  grep -q "$3" "$dir/neg.txt" || { echo "$1 not reported as '$3'"; cat "$dir/neg.txt"; exit 1; }
  echo "check ok: $1 reported: $(grep -m1 "$3" "$dir/neg.txt" | sed 's/^ *//')"
}
log="$dir/logs/orderer2.jsonl"
python3 - "$log" "$dir/tampered.jsonl" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
i = next(i for i in range(2, len(lines) - 1) if '"kind":"block"' in lines[i])
r = json.loads(lines[i]); r["header_hash"] = "ff" * 32
lines[i] = json.dumps(r, separators=(",", ":"))
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
expect_finding "a tampered record" "$dir/tampered.jsonl" "invalid signature"
# A record from the middle (not the last: that would be a truncation).
python3 - "$log" "$dir/removed.jsonl" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
records = list(range(1, len(lines) - 1))  # between the header and the end line
assert len(records) >= 3, f"node 2 logged only {len(records)} records"
del lines[records[len(records) // 2]]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
expect_finding "a removed record" "$dir/removed.jsonl" "gap: records"
python3 - "$log" "$dir/logs/orderer3.jsonl" "$dir/forged.jsonl" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
other = [json.loads(l) for l in open(sys.argv[2]).read().splitlines()[1:-1]]
i = next(i for i in range(2, len(lines) - 1) if '"kind":"block"' in lines[i])
r = json.loads(lines[i])
# Node 3's genuine signature on a record of the same block: valid, but not node 2's.
r["signature"] = next(o["signature"] for o in other if o.get("seq") == r["seq"] and o["kind"] == "block")
lines[i] = json.dumps(r, separators=(",", ":"))
open(sys.argv[3], "w").write("\n".join(lines) + "\n")
PY
expect_finding "a forged signature" "$dir/forged.jsonl" "invalid signature"
head -n -2 "$log" > "$dir/truncated.jsonl"
expect_finding "a truncated export" "$dir/truncated.jsonl" "TRUNCATED"

# Equivocation with the real keys: node 2's share for a block it logged,
# but over another header (made with openssl and node 2's identity key, as a
# Byzantine node 2 would sign it), against its own log record: evidence that
# `check-evidence` accepts; the same claim signed with node 3's key is refused.
python3 - "$log" "$dir" <<'PY'
import json, struct, subprocess, sys, glob
log, d = sys.argv[1], sys.argv[2]
lines = open(log).read().splitlines()
header = json.loads(lines[0])
rec = next(json.loads(l) for l in lines[1:-1] if '"kind":"block"' in l)
fake = "ee" * 32
ch = header["channel"].encode()
msg = b"bftorderer/block-certificate/v1\0" + struct.pack(">I", len(ch)) + ch + struct.pack(">QQ", rec["epoch"], rec["seq"]) + bytes.fromhex(fake)
open(f"{d}/share.bin", "wb").write(msg)
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
def low_s(der):  # SEQUENCE { INTEGER r, INTEGER s }: s must be at most n/2
    i = 2 + (der[1] & 0x7f if der[1] & 0x80 else 0)
    rl = der[i + 1]; i += 2 + rl
    return int.from_bytes(der[i + 2:i + 2 + der[i + 1]], "big") <= N // 2
def sign(node, org):
    key = glob.glob(f"{d}/net/crypto/{org}/orderers/orderer{node}/msp/keystore/*")[0]
    for _ in range(40):
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, f"{d}/share.bin"], capture_output=True, check=True).stdout
        if low_s(sig):
            return sig.hex()
    raise SystemExit("no low-S signature")
def evidence(sig):
    return {"format": "bftorderer-equivocation-evidence", "version": 1, "kind": "block", "channel": header["channel"],
            "consenter": 2, "epoch": rec["epoch"], "seq": rec["seq"], "certificate": header["certificate"], "summary": "",
            "statements": [
                {"type": "vote-log-record", "channel": header["channel"], "consenter": 2, "record": rec, "found_in": log},
                {"type": "certificate-share", "channel": header["channel"], "signer": 2, "epoch": rec["epoch"], "seq": rec["seq"],
                 "header_hash": fake, "signature": sig, "found_in": "crafted with openssl"}]}
json.dump(evidence(sign(2, "ordererorg1")), open(f"{d}/evidence.json", "w"), indent=1)
json.dump(evidence(sign(3, "ordererorg2")), open(f"{d}/evidence-framed.json", "w"), indent=1)
PY
check=("$orderer" audit check-evidence --roots "$dir/roots" --config "$dir/b0.pb")
verdict=$("${check[@]}" "$dir/evidence.json") || { echo "real evidence refused: $verdict"; exit 1; }
echo "check ok: evidence of node 2 signing two blocks at one height, real keys: $verdict"
if "${check[@]}" "$dir/evidence-framed.json" > "$dir/framed.txt" 2>&1; then echo "framed evidence accepted"; exit 1; fi
echo "check ok: the same claim signed by node 3 is refused: $(tail -n 1 "$dir/framed.txt")"

client="$net/crypto/org1/users/client"
code=$(curl --silent --cacert "$net/tls-ca-bundle.pem" --cert "$client/tls/client.crt" --key "$client/tls/client.key" \
  -o /dev/null -w '%{http_code}' "https://127.0.0.1:$((port + 3))/admin/v1/channels/devchannel/votes")
[ "$code" = 403 ] || { echo "a client certificate got $code from the vote export"; exit 1; }
echo "check ok: a client (not auditor, not admin) certificate gets 403 from the vote export"

kill -INT "$dev_pid"; wait "$dev_pid" 2>/dev/null || true; dev_pid=""
for i in 1 2 3 4; do
  org=ordererorg1; [ "$i" -gt 2 ] && org=ordererorg2
  "$orderer" audit export --data "$net/nodes/orderer$i/data" --channel devchannel \
    --msp "$net/crypto/$org/orderers/orderer$i/msp" --out "$dir/offline$i.jsonl" > /dev/null
done
"${verify[@]}" --blocks "$dir/blocks" "$dir"/offline*.jsonl > "$dir/report2.txt" || { cat "$dir/report2.txt"; exit 1; }
echo "check ok: offline exports of the stopped nodes verify: $(tail -n 1 "$dir/report2.txt")"
