#!/usr/bin/env python3
"""Independent DSSE/in-toto attestation verifier (uses `securesystemslib` and `cryptography`, no airlock code).

Usage: verify_dsse.py LAYOUT_DIR PUBLIC_KEY_PEM IMAGE_DIGEST

Reads an OCI image layout: index.json -> the manifest tagged sha256-<hex>.att -> each DSSE envelope layer,
verifies it with securesystemslib (key id computed here as sha256 of the SubjectPublicKeyInfo DER), and
checks that each in-toto Statement v1 has IMAGE_DIGEST as its subject. Prints the predicate types, one a line.
"""
import base64
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

DSSE = "application/vnd.dsse.envelope.v1+json"


def blob(layout, digest):
    alg, hexd = digest.split(":", 1)
    with open(os.path.join(layout, "blobs", alg, hexd), "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != hexd:
        sys.exit(f"blob {digest} does not match its digest")
    return data


def main():
    layout, pem_path, digest = sys.argv[1:4]
    with open(pem_path, "rb") as f:
        pub = serialization.load_pem_public_key(f.read())
    spki = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    keyid = "sha256:" + hashlib.sha256(spki).hexdigest()
    key = SSlibKey.from_crypto(pub, keyid=keyid, scheme="ecdsa-sha2-nistp256")
    tag = digest.replace(":", "-") + ".att"
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    entries = [m for m in index["manifests"]
               if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    if not entries:
        sys.exit(f"no {tag} in {layout}")
    manifest = json.loads(blob(layout, entries[0]["digest"]))
    for layer in manifest["layers"]:
        if layer["mediaType"] != DSSE:
            continue
        envelope = json.loads(blob(layout, layer["digest"]))
        # from_dict mutates its argument: give it a copy.
        Envelope.from_dict(json.loads(json.dumps(envelope))).verify([key], 1)
        statement = json.loads(base64.b64decode(envelope["payload"]))
        if statement["_type"] != "https://in-toto.io/Statement/v1":
            sys.exit(f"{layer['digest']}: not an in-toto Statement v1")
        subjects = [s["digest"]["sha256"] for s in statement["subject"]]
        if subjects != [digest.split(":", 1)[1]]:
            sys.exit(f"{layer['digest']}: subject {subjects} is not {digest}")
        print(statement["predicateType"])


if __name__ == "__main__":
    main()
