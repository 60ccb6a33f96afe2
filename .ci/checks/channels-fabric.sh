#!/usr/bin/env bash
# Cross-checks the channels CLI against Hyperledger Fabric's own generated
# protobuf classes (PyPI hyperledger-fabric-protos, in .venv) and openssl:
# makes a consortium with the shipped ca-tools example, a genesis block with
# the shipped channels example profile, signed envelopes (ECDSA and Ed25519)
# and certified blocks, then channels/tests/fabric_crosscheck.py decodes and
# re-verifies everything independently. Prints `check ok: channels fabric ...`
# lines; exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
python="$root/.venv/bin/python"
[ -x "$python" ] || { echo "missing $python: run bash .ci/install-tools.sh first" >&2; exit 1; }

cargo build --release -q -p ca-tools -p channels
bin="${CARGO_TARGET_DIR:-$root/target}/release"
ca_tools="$bin/ca-tools"
channels="$bin/channels"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

"$ca_tools" network --config "$root/ca-tools/examples/crypto-config.yaml" --out crypto >/dev/null
channel=crosscheck
"$channels" genesis --profile "$root/channels/examples/configtx.yaml" --crypto-dir crypto \
  --channel "$channel" --out genesis.block >/dev/null

printf 'first transaction\n' > tx1.txt
head -c 3000 /dev/urandom > tx2.bin
nonce=000102030405060708090a0b0c0d0e0f1011121314151617
timestamp=1700000000
"$channels" envelope --signer crypto/Org1/users/User1/msp --channel "$channel" --data tx1.txt \
  --nonce "$nonce" --timestamp "$timestamp" --out env1 >/dev/null
"$channels" envelope --signer crypto/Org2/users/Admin/msp --channel "$channel" --data tx2.bin --out env2 >/dev/null
"$channels" envelope --signer crypto/Org1/peers/peer0.org1.example.com/msp --channel "$channel" --data tx1.txt --out env3 >/dev/null
for e in env1 env2 env3; do "$channels" verify-envelope --config genesis.block "$e" >/dev/null; done
echo "check ok: channels fabric CLI envelopes verify with channels verify-envelope"

o1=crypto/Org1/orderers/orderer0.org1.example.com
o2=crypto/Org1/orderers/orderer1.org1.example.com
o3=crypto/Org2/orderers/orderer2.org2.example.com
o4=crypto/Org2/orderers/orderer3.org2.example.com
epoch=3
"$channels" block --config genesis.block --envelope env1 --envelope env2 --epoch "$epoch" \
  --sign "1=$o1/msp" --sign "3=$o3/msp" --sign "4=$o4/msp" --out block1 >/dev/null
"$channels" block --config genesis.block --previous block1 --envelope env3 --epoch "$epoch" \
  --sign "1=$o1/msp" --sign "3=$o3/msp" --sign "4=$o4/msp" --out block2 >/dev/null
"$channels" verify-block --config genesis.block --epoch "$epoch" block1 block2 >/dev/null
echo "check ok: channels fabric CLI blocks verify with channels verify-block"

# Negative control: a block with fewer than a quorum of signatures is refused.
"$channels" block --config genesis.block --previous block2 --envelope env3 --epoch "$epoch" \
  --sign "1=$o1/msp" --sign "3=$o3/msp" --out block3 >/dev/null
if "$channels" verify-block --config genesis.block block1 block2 block3 >/dev/null 2>&1; then
  echo "channels verify-block accepted a block with 2 of 4 signatures" >&2
  exit 1
fi
echo "check ok: channels fabric verify-block refuses a block below quorum (negative control)"

cert() { ls "$1/msp/signcerts/"*.pem; }
"$python" "$root/channels/tests/fabric_crosscheck.py" \
  --cli "$channels" --channel "$channel" --genesis genesis.block \
  --envelope env1 --nonce "$nonce" --timestamp "$timestamp" \
  --blocks block1 block2 --epoch "$epoch" --signers 1,3,4 \
  --consenter "1=$(cert $o1)" --consenter "2=$(cert $o2)" \
  --consenter "3=$(cert $o3)" --consenter "4=$(cert $o4)" \
  --client-msp crypto/Org1/users/User1/msp --client-mspid Org1MSP \
  --admin-msp crypto/Org2/users/Admin/msp --admin-mspid Org2MSP
