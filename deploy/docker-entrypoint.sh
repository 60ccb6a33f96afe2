#!/bin/sh
# Entrypoint of the orderer image.
#
# The consenter id: in a StatefulSet, pod <name>-<ordinal> is consenter
#   ordinal + CONSENTER_ID_OFFSET + 1
# and the entrypoint exports it as ORDERER_NODE_ID (which overrides node.id of
# orderer.yaml). It does so when POD_NAME or CONSENTER_ID_OFFSET is set and
# ORDERER_NODE_ID is not; with `docker run`, set ORDERER_NODE_ID yourself.
#
#   docker-entrypoint.sh install-identity
#     copies consenter <id>'s files from IDENTITY_SOURCE_DIR/<id>/{msp,tls,mac.key}
#     to IDENTITY_MSP_DIR, IDENTITY_TLS_DIR and IDENTITY_MAC_KEY_FILE (mode 0600)
#     and checks them (the chart's init container).
#   docker-entrypoint.sh <orderer arguments>
#     runs `orderer <arguments>` (default CMD: start --config /etc/orderer/orderer.yaml).
set -eu

fail() {
    echo "docker-entrypoint: $*" >&2
    exit 1
}

# A whole number without sign or leading zeros, at most 6 digits.
check_number() {
    case "$2" in
        '' | *[!0-9]* | 0?*) fail "$1='$2' is not a whole number (digits only, no leading zeros)" ;;
    esac
    [ "${#2}" -le 6 ] || fail "$1='$2' is too large"
}

consenter_id() {
    name="${POD_NAME:-$(hostname)}"
    ordinal="${name##*-}"
    [ "$ordinal" != "$name" ] || fail "pod name '$name' does not end in -<ordinal>; set POD_NAME or ORDERER_NODE_ID"
    check_number "the ordinal of pod '$name'" "$ordinal"
    offset="${CONSENTER_ID_OFFSET:-0}"
    check_number CONSENTER_ID_OFFSET "$offset"
    echo $((ordinal + offset + 1))
}

install_identity() {
    id="$1"
    : "${IDENTITY_SOURCE_DIR:?set IDENTITY_SOURCE_DIR (the mounted identity Secrets)}"
    : "${IDENTITY_MSP_DIR:?set IDENTITY_MSP_DIR (node.msp_dir)}"
    : "${IDENTITY_TLS_DIR:?set IDENTITY_TLS_DIR (node.tls_dir)}"
    : "${IDENTITY_MAC_KEY_FILE:?set IDENTITY_MAC_KEY_FILE (node.mac_key_file)}"
    src="$IDENTITY_SOURCE_DIR/$id"
    [ -d "$src" ] || fail "no identity for consenter $id in $IDENTITY_SOURCE_DIR: create its Secret (see the chart's identity.secretNamePattern)"
    for f in msp/signcerts/cert.pem msp/keystore/priv_sk msp/cacerts/ca-cert.pem tls/server.crt tls/server.key tls/ca.crt mac.key; do
        [ -s "$src/$f" ] || fail "consenter $id: $f is missing or empty in its identity Secret"
    done
    mac_hex=$(tr -d ' \t\r\n' <"$src/mac.key")
    case "$mac_hex" in
        *[!0-9a-fA-F]*) fail "consenter $id: mac.key must be 64 hex digits (make it with 'orderer keygen')" ;;
    esac
    [ "${#mac_hex}" -eq 64 ] || fail "consenter $id: mac.key must be 64 hex digits (make it with 'orderer keygen')"
    umask 077
    mkdir -p "$IDENTITY_MSP_DIR" "$IDENTITY_TLS_DIR" "$(dirname "$IDENTITY_MAC_KEY_FILE")"
    # -L: Secret volumes are symlinks into a timestamped folder.
    cp -RL "$src/msp/." "$IDENTITY_MSP_DIR/"
    cp -RL "$src/tls/." "$IDENTITY_TLS_DIR/"
    cp -L "$src/mac.key" "$IDENTITY_MAC_KEY_FILE"
    chmod -R u=rwX,go= "$IDENTITY_MSP_DIR" "$IDENTITY_TLS_DIR" "$IDENTITY_MAC_KEY_FILE"
    echo "docker-entrypoint: identity of consenter $id installed"
}

if [ -n "${POD_NAME:-}${CONSENTER_ID_OFFSET:-}" ] && [ -z "${ORDERER_NODE_ID:-}" ]; then
    ORDERER_NODE_ID=$(consenter_id)
    export ORDERER_NODE_ID
fi

if [ "${1:-}" = "install-identity" ]; then
    [ -n "${ORDERER_NODE_ID:-}" ] || fail "install-identity needs POD_NAME (or ORDERER_NODE_ID)"
    install_identity "$ORDERER_NODE_ID"
    exit 0
fi

# The helper variables are not orderer.yaml keys; keep them out of its environment.
unset POD_NAME CONSENTER_ID_OFFSET IDENTITY_SOURCE_DIR IDENTITY_MSP_DIR IDENTITY_TLS_DIR IDENTITY_MAC_KEY_FILE
if [ -n "${ORDERER_NODE_ID:-}" ]; then
    echo "docker-entrypoint: consenter id $ORDERER_NODE_ID" >&2
fi
exec orderer "$@"
