#!/usr/bin/env python3
"""Cross-checks the `channels` CLI against Hyperledger Fabric's own generated
protobuf classes (PyPI `hyperledger-fabric-protos`) and openssl.

Decodes the envelopes and blocks the CLI made, checks their fields,
recomputes tx ids, data hashes and header hashes (with this file's own ASN.1
DER encoding), verifies envelope and block-certificate signatures with
openssl, builds envelopes with Fabric's classes and has `channels
verify-envelope` accept them (and refuse tampered ones), and has `channels
inspect` hash crafted headers with large numbers.

Prints `check ok: channels fabric <what>` per passing check; exits non-zero on
any mismatch. Run by .ci/checks/channels-fabric.sh.
"""

import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2

CERT_DOMAIN = b"bftorderer/block-certificate/v1\x00"
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
FAILURES = []


def ok(what):
    print(f"check ok: channels fabric {what}")


def check(condition, what, detail=""):
    if condition:
        ok(what)
    else:
        FAILURES.append(what)
        print(f"check FAILED: channels fabric {what}: {detail}", file=sys.stderr)


# ---- ASN.1 DER, written here independently of the Rust code ----

def der_length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_tlv(tag, content):
    return bytes([tag]) + der_length(len(content)) + content


def der_unsigned(n):
    """Go asn1.Marshal of a non-negative *big.Int: minimal two's complement."""
    body = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    if body[0] & 0x80:
        body = b"\x00" + body
    return body


def header_hash(number, previous_hash, data_hash):
    der = der_tlv(0x30, der_tlv(0x02, der_unsigned(number))
                  + der_tlv(0x04, previous_hash) + der_tlv(0x04, data_hash))
    return hashlib.sha256(der).digest()


def block_header_hash(block):
    h = block.header
    return header_hash(h.number, h.previous_hash, h.data_hash)


def data_hash(envelopes):
    return hashlib.sha256(b"".join(envelopes)).digest()


# ---- openssl helpers ----

def run(args, **kw):
    return subprocess.run(args, capture_output=True, **kw)


def der_ints(sig):
    """(r, s) of a DER ECDSA-Sig-Value."""
    assert sig[0] == 0x30
    i = 2 if sig[1] < 0x80 else 2 + (sig[1] & 0x7F)
    out = []
    for _ in range(2):
        assert sig[i] == 0x02
        n = sig[i + 1]
        out.append(int.from_bytes(sig[i + 2:i + 2 + n], "big"))
        i += 2 + n
    return out


def der_sig(r, s):
    return der_tlv(0x30, der_tlv(0x02, der_unsigned(r)) + der_tlv(0x02, der_unsigned(s)))


def is_ed25519(cert_pem, tmp):
    path = tmp / "kind.pem"
    path.write_bytes(cert_pem)
    text = run(["openssl", "x509", "-in", str(path), "-noout", "-text"]).stdout
    return b"ED25519" in text


def openssl_verify(cert_pem, message, signature, tmp):
    """Verifies like Fabric: ECDSA P-256 over SHA-256 (DER, low-S), or Ed25519."""
    cert, pub, msg, sig = (tmp / n for n in ("c.pem", "p.pem", "m.bin", "s.bin"))
    cert.write_bytes(cert_pem)
    msg.write_bytes(message)
    sig.write_bytes(signature)
    pub.write_bytes(run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"]).stdout)
    if is_ed25519(cert_pem, tmp):
        args = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub),
                "-rawin", "-in", str(msg), "-sigfile", str(sig)]
        return run(args).returncode == 0
    _, s = der_ints(signature)
    if s > P256_N // 2:
        return False
    args = ["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(sig), str(msg)]
    return run(args).returncode == 0


def openssl_sign(key_path, cert_pem, message, tmp):
    msg, sig = tmp / "sm.bin", tmp / "ss.bin"
    msg.write_bytes(message)
    if is_ed25519(cert_pem, tmp):
        run(["openssl", "pkeyutl", "-sign", "-inkey", str(key_path), "-rawin",
             "-in", str(msg), "-out", str(sig)], check=True)
        return sig.read_bytes()
    run(["openssl", "dgst", "-sha256", "-sign", str(key_path), "-out", str(sig), str(msg)], check=True)
    r, s = der_ints(sig.read_bytes())
    return der_sig(r, min(s, P256_N - s))  # Fabric requires low-S


# ---- checks ----

def parse(cls, raw):
    msg = cls()
    msg.ParseFromString(raw)
    return msg


def check_envelope(raw, label, channel, header_type, tmp, nonce=None, timestamp=None):
    env = parse(common_pb2.Envelope, raw)
    payload = parse(common_pb2.Payload, env.payload)
    chdr = parse(common_pb2.ChannelHeader, payload.header.channel_header)
    shdr = parse(common_pb2.SignatureHeader, payload.header.signature_header)
    creator = parse(identities_pb2.SerializedIdentity, shdr.creator)
    check(env.SerializeToString(deterministic=True) == raw,
          f"{label}: Fabric re-encoding is byte-identical")
    check(chdr.channel_id == channel, f"{label}: channel_id", chdr.channel_id)
    check(chdr.type == common_pb2.HeaderType.Value(header_type),
          f"{label}: header type {header_type}", str(chdr.type))
    expected_tx = hashlib.sha256(shdr.nonce + shdr.creator).hexdigest()
    check(chdr.tx_id == expected_tx, f"{label}: tx_id = hex(sha256(nonce || creator))",
          f"{chdr.tx_id} != {expected_tx}")
    if nonce is not None:
        check(shdr.nonce == nonce, f"{label}: nonce", shdr.nonce.hex())
    if timestamp is not None:
        check(chdr.timestamp.seconds == timestamp, f"{label}: timestamp", str(chdr.timestamp))
    if header_type == "CONFIG":
        check(env.signature == b"" and shdr.creator == b"", f"{label}: genesis config envelope is unsigned")
        return payload
    check(creator.mspid.endswith("MSP") and creator.id_bytes.startswith(b"-----BEGIN CERTIFICATE-----"),
          f"{label}: creator is a SerializedIdentity with a PEM certificate", creator.mspid)
    check(openssl_verify(creator.id_bytes, env.payload, env.signature, tmp),
          f"{label}: signature over the payload verifies with openssl (low-S)")
    return payload


def check_block(raw, label, channel, tmp, previous=None, consenters=None, epoch=None, signers=None):
    block = parse(common_pb2.Block, raw)
    check(block.SerializeToString(deterministic=True) == raw, f"{label}: Fabric re-encoding is byte-identical")
    check(block.header.data_hash == data_hash(block.data.data),
          f"{label}: data hash = sha256(concatenated envelopes)")
    check(len(block.metadata.metadata) == 5, f"{label}: five metadata slots", str(len(block.metadata.metadata)))
    if previous is None:
        check(block.header.number == 0 and block.header.previous_hash == b"", f"{label}: block 0, no previous hash")
    else:
        check(block.header.number == previous.header.number + 1, f"{label}: number follows the previous block")
        check(block.header.previous_hash == block_header_hash(previous),
              f"{label}: previous_hash = sha256(DER(previous header))")
    for i, env in enumerate(block.data.data):
        kind = "CONFIG" if previous is None else "ENDORSER_TRANSACTION"
        check_envelope(env, f"{label} envelope {i}", channel, kind, tmp)
    if consenters is None:
        return block
    sigs = common_pb2.BlockMetadataIndex.Value("SIGNATURES")
    metadata = parse(common_pb2.Metadata, block.metadata.metadata[sigs])
    ids = []
    digest = block_header_hash(block)
    for entry in metadata.signatures:
        ident = parse(common_pb2.IdentifierHeader, entry.identifier_header)
        ids.append(ident.identifier)
        check(entry.signature_header == b"" and ident.nonce == epoch.to_bytes(8, "big"),
              f"{label}: consenter {ident.identifier} IdentifierHeader carries epoch {epoch} (8 bytes BE)")
        signed = (CERT_DOMAIN + len(channel).to_bytes(4, "big") + channel.encode()
                  + epoch.to_bytes(8, "big") + block.header.number.to_bytes(8, "big") + digest)
        check(openssl_verify(consenters[ident.identifier], signed, entry.signature, tmp),
              f"{label}: consenter {ident.identifier} certificate signature verifies with openssl")
    check(sorted(ids) == sorted(signers), f"{label}: signers are {sorted(signers)}", str(ids))
    return block


def cli(args_cli, *args):
    return run([args_cli, *map(str, args)])


def check_header_hash_vectors(args, tmp):
    """Crafted headers (numbers around DER sign and length boundaries, long
    hashes) hashed by `channels inspect` and by this file."""
    cases = [(0, b""), (127, b"\x02" * 32), (128, b"\x04" * 32), (255, b""), (256, b"\x06" * 200),
             (2**31, b"\x08" * 32), (2**63, b"\x0a" * 32), (2**64 - 1, b"\x0c" * 48)]
    for number, prev in cases:
        block = common_pb2.Block()
        block.header.number, block.header.previous_hash = number, prev
        block.data.data.extend([b"x", b"yz"])
        block.header.data_hash = data_hash(block.data.data)
        block.metadata.metadata.extend([b""] * 5)
        path = tmp / f"kat-{number}.block"
        path.write_bytes(block.SerializeToString())
        out = cli(args.cli, "inspect", path)
        if out.returncode != 0:
            check(False, f"header hash vector number={number}", out.stderr.decode())
            continue
        header = json.loads(out.stdout)["block"]["header"]
        ours = header_hash(number, prev, block.header.data_hash).hex()
        check(header["header_hash"] == ours and header["data_hash_valid"],
              f"header hash vector number={number} prev={len(prev)}B", f"{header['header_hash']} != {ours}")


def check_fabric_built_envelopes(args, tmp):
    """Envelopes built with Fabric's classes and signed with openssl are
    accepted by `channels verify-envelope`; tampered ones are refused."""
    for label, msp_dir in (("ecdsa", args.client_msp), ("ed25519", args.admin_msp)):
        msp_dir = pathlib.Path(msp_dir)
        cert_pem = next((msp_dir / "signcerts").iterdir()).read_bytes()
        key = next((msp_dir / "keystore").iterdir())
        creator = identities_pb2.SerializedIdentity(mspid=args.client_mspid if label == "ecdsa" else args.admin_mspid,
                                                    id_bytes=cert_pem).SerializeToString()
        nonce = os.urandom(24)

        def make(tx_id, tamper_sig=False):
            chdr = common_pb2.ChannelHeader(type=common_pb2.HeaderType.Value("ENDORSER_TRANSACTION"),
                                            channel_id=args.channel, tx_id=tx_id)
            chdr.timestamp.GetCurrentTime()
            shdr = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
            header = common_pb2.Header(channel_header=chdr.SerializeToString(),
                                       signature_header=shdr.SerializeToString())
            payload = common_pb2.Payload(header=header, data=b"fabric-built transaction").SerializeToString()
            sig = openssl_sign(key, cert_pem, payload, tmp)
            if tamper_sig:  # the signature stays that of the original payload
                payload = common_pb2.Payload(header=header, data=b"tampered transaction").SerializeToString()
            path = tmp / f"fabric-{label}-{tamper_sig}-{tx_id[:4]}.env"
            path.write_bytes(common_pb2.Envelope(payload=payload, signature=sig).SerializeToString())
            return cli(args.cli, "verify-envelope", "--config", args.genesis, path)

        good = make(hashlib.sha256(nonce + creator).hexdigest())
        check(good.returncode == 0, f"envelope built with Fabric classes ({label}) accepted by verify-envelope",
              good.stderr.decode())
        bad_tx = make("00" * 32)
        check(bad_tx.returncode != 0 and b"tx id" in bad_tx.stderr,
              f"Fabric-built envelope ({label}) with a wrong tx id refused", bad_tx.stderr.decode())
        bad_sig = make(hashlib.sha256(nonce + creator).hexdigest(), tamper_sig=True)
        check(bad_sig.returncode != 0 and b"signature" in bad_sig.stderr,
              f"Fabric-built envelope ({label}) with a payload not matching its signature refused",
              bad_sig.stderr.decode())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cli", required=True, help="the channels binary")
    p.add_argument("--channel", required=True)
    p.add_argument("--genesis", required=True)
    p.add_argument("--envelope", required=True, help="envelope made with --nonce/--timestamp")
    p.add_argument("--nonce", required=True, help="hex")
    p.add_argument("--timestamp", required=True, type=int)
    p.add_argument("--blocks", required=True, nargs="+", help="blocks 1.. made by `channels block`")
    p.add_argument("--epoch", required=True, type=int)
    p.add_argument("--consenter", action="append", default=[], help="ID=CERTFILE")
    p.add_argument("--signers", required=True, help="comma-separated ids that signed each block")
    p.add_argument("--client-msp", required=True)
    p.add_argument("--client-mspid", required=True)
    p.add_argument("--admin-msp", required=True)
    p.add_argument("--admin-mspid", required=True)
    args = p.parse_args()
    consenters = {int(k): pathlib.Path(v).read_bytes() for k, v in (c.split("=", 1) for c in args.consenter)}
    signers = [int(s) for s in args.signers.split(",")]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = pathlib.Path(tmp_dir)
        check_envelope(pathlib.Path(args.envelope).read_bytes(), "signed envelope", args.channel,
                       "ENDORSER_TRANSACTION", tmp, nonce=bytes.fromhex(args.nonce), timestamp=args.timestamp)
        previous = check_block(pathlib.Path(args.genesis).read_bytes(), "genesis block", args.channel, tmp)
        for i, path in enumerate(args.blocks, start=1):
            previous = check_block(pathlib.Path(path).read_bytes(), f"block {i}", args.channel, tmp,
                                   previous=previous, consenters=consenters, epoch=args.epoch, signers=signers)
        check_header_hash_vectors(args, tmp)
        check_fabric_built_envelopes(args, tmp)
    if FAILURES:
        print(f"channels fabric cross-check: {len(FAILURES)} FAILED: {FAILURES}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
