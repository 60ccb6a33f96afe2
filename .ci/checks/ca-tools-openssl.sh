#!/usr/bin/env bash
# Cross-check ca-tools certificates, keys and CRLs with an independent
# implementation (OpenSSL). Prints "check ok: ca-tools openssl <what>" per
# passing check; exits non-zero on the first failure.
#
#   bash .ci/checks/ca-tools-openssl.sh
#   CA_TOOLS_BIN=target/debug/ca-tools bash .ci/checks/ca-tools-openssl.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${CA_TOOLS_BIN:-}" ]; then
  cargo build --release -q -p ca-tools
  CA_TOOLS_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/ca-tools"
fi
bin=$(cd "$(dirname "$CA_TOOLS_BIN")" && pwd)/$(basename "$CA_TOOLS_BIN")
command -v openssl >/dev/null || { echo "openssl not found (bash .ci/install-tools.sh)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

ok() { echo "check ok: ca-tools openssl $*"; }
fail() { echo "check FAILED: ca-tools openssl $*" >&2; exit 1; }

# openssl verify must succeed (and say OK).
verify_ok() {
  local what=$1; shift
  local out
  out=$(openssl verify "$@" 2>&1) || fail "$what: $out"
  case "$out" in *": OK"*) ok "$what" ;; *) fail "$what: $out" ;; esac
}

# openssl verify must refuse, with the given reason in its output.
verify_refused() {
  local what=$1 reason=$2; shift 2
  local out
  if out=$(openssl verify "$@" 2>&1); then fail "$what: accepted, expected refusal ($reason)"; fi
  case "$out" in *"$reason"*) ok "$what" ;; *) fail "$what: unexpected error: $out" ;; esac
}

same_public_key() {
  local what=$1 cert=$2 key=$3
  local a b
  a=$(openssl x509 -in "$cert" -noout -pubkey) || fail "$what: cannot read $cert"
  b=$(openssl pkey -in "$key" -pubout) || fail "$what: cannot read PKCS#8 key $key"
  head -1 "$key" | grep -q -- '-----BEGIN PRIVATE KEY-----' || fail "$what: $key is not PKCS#8"
  [ "$a" = "$b" ] || fail "$what: key does not match certificate"
  ok "$what"
}

for kt in ecdsa-p256 ed25519; do
  d="$work/$kt"
  mkdir -p "$d" && cd "$d"
  "$bin" init-ca --org Org1 --msp-id Org1MSP --out ca --key-type "$kt" >/dev/null
  "$bin" init-ca --org Other --msp-id OtherMSP --out other --key-type "$kt" >/dev/null
  "$bin" issue --ca ca --role orderer --name orderer0 --san localhost --san 127.0.0.1 --out o0 >/dev/null
  "$bin" issue --ca ca --role client --name user1 --out u1 >/dev/null
  "$bin" issue --ca ca --role admin --name admin --out a0 >/dev/null

  sign_ca=ca/ca/ca-cert.pem
  tls_ca=ca/tlsca/tlsca-cert.pem
  verify_ok "$kt CA certificates are self-signed CAs" -x509_strict -CAfile "$sign_ca" "$sign_ca"
  verify_ok "$kt orderer TLS certificate is a TLS server certificate" -x509_strict -CAfile "$tls_ca" -purpose sslserver o0/tls/server.crt
  verify_ok "$kt orderer TLS certificate is a TLS client certificate" -x509_strict -CAfile "$tls_ca" -purpose sslclient o0/tls/server.crt
  verify_ok "$kt client TLS certificate is a TLS client certificate" -x509_strict -CAfile "$tls_ca" -purpose sslclient u1/tls/client.crt
  verify_refused "$kt client TLS certificate is not a TLS server certificate" "unsuitable certificate purpose" -x509_strict -CAfile "$tls_ca" -purpose sslserver u1/tls/client.crt
  verify_ok "$kt orderer enrollment certificate chains to the signing CA" -x509_strict -CAfile "$sign_ca" -purpose any o0/msp/signcerts/orderer0-cert.pem
  verify_refused "$kt enrollment certificate does not chain to another org's CA" "unable to get local issuer certificate" -CAfile other/ca/ca-cert.pem o0/msp/signcerts/orderer0-cert.pem
  verify_refused "$kt enrollment certificate does not chain to the TLS CA" "unable to get local issuer certificate" -CAfile "$tls_ca" o0/msp/signcerts/orderer0-cert.pem

  same_public_key "$kt enrollment key is PKCS#8 and matches its certificate" o0/msp/signcerts/orderer0-cert.pem o0/msp/keystore/priv_sk
  same_public_key "$kt TLS key is PKCS#8 and matches its certificate" o0/tls/server.crt o0/tls/server.key
  subject=$(openssl x509 -in o0/msp/signcerts/orderer0-cert.pem -noout -subject -nameopt RFC2253)
  case "$subject" in *"OU=orderer"*"O=Org1MSP"*) ok "$kt role and MSP id are subject OU and O ($subject)" ;; *) fail "$kt subject: $subject" ;; esac

  "$bin" revoke --ca ca u1/msp/signcerts/user1-cert.pem >/dev/null
  "$bin" crl --ca ca --out sign.crl >/dev/null
  out=$(openssl crl -in sign.crl -CAfile "$sign_ca" -noout -verify 2>&1) || fail "$kt CRL signature: $out"
  case "$out" in *"verify OK"*) ok "$kt CRL signature verifies against the signing CA" ;; *) fail "$kt CRL: $out" ;; esac
  out=$(openssl crl -in sign.crl -CAfile other/ca/ca-cert.pem -noout -verify 2>&1) && fail "$kt CRL verified against a foreign CA: $out"
  ok "$kt CRL does not verify against a foreign CA"
  verify_refused "$kt revoked certificate is refused with the CRL" "certificate revoked" -crl_check -CRLfile sign.crl -CAfile "$sign_ca" u1/msp/signcerts/user1-cert.pem
  verify_ok "$kt unrevoked certificate passes with the CRL" -crl_check -CRLfile sign.crl -CAfile "$sign_ca" a0/msp/signcerts/admin-cert.pem

  "$bin" revoke --ca ca o0/tls/server.crt >/dev/null
  "$bin" crl --ca ca --tls --out tls.crl >/dev/null
  verify_refused "$kt revoked TLS certificate is refused with the TLS CA's CRL" "certificate revoked" -crl_check -CRLfile tls.crl -CAfile "$tls_ca" -purpose sslserver o0/tls/server.crt
  cd "$work"
done
