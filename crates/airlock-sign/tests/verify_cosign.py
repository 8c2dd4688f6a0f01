#!/usr/bin/env python3
"""Independent cosign signature verifier (uses only `cryptography`, no airlock code).

Usage: verify_cosign.py LAYOUT_DIR PUBLIC_KEY_PEM MANIFEST_DIGEST DOCKER_REFERENCE

Reads an OCI image layout: index.json -> the manifest tagged sha256-<hex>.sig -> each simple-signing layer
blob and its dev.cosignproject.cosign/signature annotation, and verifies the base64 DER ECDSA-SHA256
signature with the PEM public key. Checks that the signed payload names MANIFEST_DIGEST and DOCKER_REFERENCE
and that every blob hashes to its digest. Exit 0 and print "verified" when one signature is good.
"""
import base64
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"


def blob(layout, digest):
    alg, hexd = digest.split(":", 1)
    with open(os.path.join(layout, "blobs", alg, hexd), "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != hexd:
        sys.exit(f"blob {digest} does not match its digest")
    return data


def main():
    layout, pem_path, digest, reference = sys.argv[1:5]
    with open(pem_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        sys.exit("public key is not ECDSA P-256")
    tag = digest.replace(":", "-") + ".sig"
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    entries = [m for m in index["manifests"]
               if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    if not entries:
        sys.exit(f"no {tag} in {layout}")
    manifest = json.loads(blob(layout, entries[0]["digest"]))
    failures = []
    for layer in manifest["layers"]:
        if layer["mediaType"] != SIMPLE_SIGNING:
            continue
        payload = blob(layout, layer["digest"])
        sig = base64.b64decode(layer["annotations"][SIG_ANNOTATION])
        try:
            key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            failures.append(f"{layer['digest']}: signature does not verify")
            continue
        critical = json.loads(payload)["critical"]
        if critical["type"] != "cosign container image signature":
            failures.append(f"{layer['digest']}: wrong type {critical['type']!r}")
        elif critical["image"]["docker-manifest-digest"] != digest:
            failures.append(f"{layer['digest']}: payload names {critical['image']['docker-manifest-digest']}")
        elif critical["identity"]["docker-reference"] != reference:
            failures.append(f"{layer['digest']}: payload names {critical['identity']['docker-reference']}")
        else:
            print("verified")
            return
    sys.exit("no valid signature: " + "; ".join(failures or ["no simple-signing layers"]))


if __name__ == "__main__":
    main()
