#!/usr/bin/env python3
"""Independent reader and writer of cosign's encrypted private key format (uses `hashlib.scrypt`, PyNaCl and
`cryptography`, no airlock code).

Usage:
  cosign_key.py decrypt KEY_FILE PASSWORD   prints the PEM public key of the decrypted PKCS#8 private key
  cosign_key.py encrypt OUT_FILE PASSWORD   writes a fresh P-256 key in cosign's format, prints its public key

Format: PEM "ENCRYPTED SIGSTORE PRIVATE KEY" around base64 JSON {"kdf": {"name": "scrypt", "params": {"N", "r",
"p"}, "salt"}, "cipher": {"name": "nacl/secretbox", "nonce"}, "ciphertext"}; key = scrypt(password, salt) (32
bytes), plaintext = PKCS#8 DER.
"""
import base64
import hashlib
import json
import os
import sys

import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"


def public_pem(private_key):
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def decrypt(path, password):
    text = open(path).read()
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    doc = json.loads(base64.b64decode(body))
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox", doc
    p = doc["kdf"]["params"]
    key = hashlib.scrypt(password.encode(), salt=base64.b64decode(doc["kdf"]["salt"]), n=p["N"], r=p["r"],
                         p=p["p"], maxmem=256 * 1024 * 1024, dklen=32)
    der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                            base64.b64decode(doc["cipher"]["nonce"]))
    private_key = serialization.load_der_private_key(der, password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        sys.exit("not an EC key")
    print(public_pem(private_key), end="")


def encrypt(path, password):
    private_key = ec.generate_private_key(ec.SECP256R1())
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    key = hashlib.scrypt(password.encode(), salt=salt, n=32768, r=8, p=1, maxmem=256 * 1024 * 1024, dklen=32)
    sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
                   "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    body = base64.b64encode(json.dumps(doc).encode()).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    with open(path, "w") as f:
        f.write(f"-----BEGIN {LABEL}-----\n" + "\n".join(lines) + f"\n-----END {LABEL}-----\n")
    print(public_pem(private_key), end="")


if __name__ == "__main__":
    {"decrypt": decrypt, "encrypt": encrypt}[sys.argv[1]](sys.argv[2], sys.argv[3])
