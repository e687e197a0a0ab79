#!/usr/bin/env python3
"""Checks a BFT receipt's certificate note with code independent of Stele's:
the C2SP signed-note rules and Ed25519 (Python's `cryptography`).

    scripts/check-certificate.py receipt.json validators.json

Each signature line `— <name> <base64(key id || signature)>` whose name and
key id match a validator (key id: the first 4 bytes of SHA-256(name || "\\n"
|| 0x01 || public key)) must verify over the note's text; the note is
certified when the validators whose line verifies hold more than two thirds
of the total power. The receipt's leaf and inclusion proof are not checked
here (see docs/receipts.md for an RFC 9162 check).
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def main(receipt_path, validators_path):
    receipt = json.load(open(receipt_path))
    validators = json.load(open(validators_path))
    origin = validators["origin"]
    note = receipt["checkpoint"]
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    keys = {}
    for validator in validators["validators"]:
        name = f"{origin}/v{validator['id']}"
        public = bytes.fromhex(validator["public_key"])
        key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
        keys[(name, key_id)] = (validator["id"], Ed25519PublicKey.from_public_bytes(public), validator["power"])
    signed = {}
    for line in signatures.splitlines():
        name, blob = line.removeprefix("\u2014 ").split(" ")
        blob = base64.b64decode(blob)
        found = keys.get((name, blob[:4]))
        if found is None:
            continue
        ident, key, power = found
        try:
            key.verify(blob[4:], text.encode())
        except InvalidSignature:
            sys.exit(f"FAILED: the signature of {name} does not verify")
        signed[ident] = power
    total = sum(v["power"] for v in validators["validators"])
    power = sum(signed.values())
    root = base64.b64decode(text.splitlines()[2]).hex()
    if 3 * power <= 2 * total:
        sys.exit(f"FAILED: signers {sorted(signed)} hold {power} of {total}: not more than two thirds")
    if root != receipt["root"]:
        sys.exit("FAILED: the certified root is not the receipt's root")
    print(f"certificate OK: root {root} of tree size {text.splitlines()[1]}, "
          f"signed by validators {sorted(signed)} holding {power} of {total}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
