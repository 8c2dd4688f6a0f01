#!/usr/bin/env python3
"""A Docker registry token server for airlock's bearer-auth tests (distribution's token spec).

It plays the part of an auth service such as Docker Hub's or docker_auth in front of a real
`docker-registry` configured with `auth: token:` so that the client's bearer flow meets a real registry's
challenges and a real registry's token verification:

* on start it makes an EC P-256 key and a self-signed certificate, writes the certificate as
  `DIR/token-cert.pem` (the registry's `rootcertbundle`), binds 127.0.0.1:0 and prints the port on stdout;
* `GET /token?service=S&scope=T:NAME:ACTIONS[&scope=...]` with HTTP Basic credentials of the one test user
  answers `{"token", "access_token", "expires_in", "issued_at"}`, the token an ES256 JWT whose `x5c` header
  carries the certificate and whose `access` claim grants exactly the scopes asked for. No or wrong
  credentials: 401; an unknown service or a malformed scope: 400. Per the spec each scope is its own `scope`
  parameter; a value holding several space-separated scopes is malformed (the client must split the
  challenge's scope list);
* `GET /stats` answers `{"issued": {"<scopes joined by a space>": count}, "refused": {reason: count}}` so a
  test can tell how often a client asked for a token, per scope;
* it exits when its stdin closes (the test process went away) or when killed.

Usage: token_server.py DIR USER PASSWORD SERVICE ISSUER
"""

import base64
import datetime
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

# How long a token is valid (seconds); long enough that no test sees one expire, unless the test sets
# TOKEN_EXPIRES_IN (distribution accepts a token until 60 s after its `exp`, so -55 means about 5 s).
EXPIRES_IN = int(os.environ.get("TOKEN_EXPIRES_IN", "300"))

# One scope per the token spec: type[(class)]:name:action[,action...]; a name may carry a registry host with
# a port, so the type ends at the first colon and the actions start after the last.
NAME_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
TYPE_RE = re.compile(r"^[a-z0-9]+(?:\([a-z0-9]+\))?$")
ACTION_RE = re.compile(r"^(?:pull|push|delete|\*)$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scope(text: str):
    """The access entry a scope asks for, or None when it is malformed."""
    if not text or any(c.isspace() for c in text):
        return None
    first, last = text.find(":"), text.rfind(":")
    if first <= 0 or last <= first:
        return None
    kind, name, actions = text[:first], text[first + 1 : last], text[last + 1 :].split(",")
    if kind == "registry" and name == "catalog" and actions == ["*"]:
        return {"type": kind, "name": name, "actions": actions}
    if not TYPE_RE.match(kind) or not NAME_RE.match(name):
        return None
    if not actions or not all(ACTION_RE.match(a) for a in actions):
        return None
    return {"type": kind, "name": name, "actions": actions}


class TokenService:
    def __init__(self, directory: str, user: str, password: str, service: str, issuer: str):
        self.user, self.password = user, password
        self.service, self.issuer = service, issuer
        self.lock = threading.Lock()
        self.issued: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airlock-test-token-signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem_path = os.path.join(directory, "token-cert.pem")
        with open(self.cert_pem_path + ".tmp", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(self.cert_pem_path + ".tmp", self.cert_pem_path)
        # x5c is standard (padded) base64 of the DER certificate, leaf first.
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    def count(self, table: dict, key: str):
        with self.lock:
            table[key] = table.get(key, 0) + 1

    def check_credentials(self, header) -> str | None:
        """The reason the request's Basic credentials are refused, or None when they are the test user's."""
        if not header or not header.lower().startswith("basic "):
            return "anonymous"
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return "bad_credentials"
        # Constant-time comparisons, as a real auth service would do.
        ok_user = hmac.compare_digest(user.encode(), self.user.encode())
        ok_password = hmac.compare_digest(password.encode(), self.password.encode())
        return None if ok_user and ok_password else "bad_credentials"

    def token(self, access: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": self.user,
            "aud": self.service,
            "exp": now + EXPIRES_IN,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        # JWS ES256 signatures are r and s as 32-byte big-endian integers, not DER.
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def make_handler(svc: TokenService):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet: the test reads stdout for the port only
            pass

        def reply(self, status: int, body: dict, extra: dict | None = None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def error(self, status: int, code: str, message: str, reason: str, extra=None):
            svc.count(svc.refused, reason)
            self.reply(status, {"errors": [{"code": code, "message": message}]}, extra)

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/stats":
                with svc.lock:
                    self.reply(200, {"issued": dict(svc.issued), "refused": dict(svc.refused)})
                return
            if url.path != "/token":
                self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                return
            query = parse_qs(url.query, keep_blank_values=True)
            refused = svc.check_credentials(self.headers.get("Authorization"))
            if refused is not None:
                self.error(
                    401,
                    "UNAUTHORIZED",
                    "authentication required" if refused == "anonymous" else "invalid user name or password",
                    refused,
                    {"WWW-Authenticate": 'Basic realm="airlock-test-token"'},
                )
                return
            if query.get("service") != [svc.service]:
                self.error(400, "INVALID_REQUEST", f"unknown service {query.get('service')}", "bad_service")
                return
            scopes = query.get("scope", [])
            access = []
            for scope in scopes:
                entry = parse_scope(scope)
                if entry is None:
                    self.error(400, "INVALID_SCOPE", f"malformed scope {scope!r}", "bad_scope")
                    return
                access.append(entry)
            svc.count(svc.issued, " ".join(scopes))
            token = svc.token(access)
            self.reply(
                200,
                {
                    "token": token,
                    "access_token": token,
                    "expires_in": max(EXPIRES_IN, 0),
                    "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                },
            )

    return Handler


def main():
    if len(sys.argv) != 6:
        sys.exit("usage: token_server.py DIR USER PASSWORD SERVICE ISSUER")
    directory, user, password, service, issuer = sys.argv[1:]
    svc = TokenService(directory, user, password, service, issuer)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(svc))
    server.daemon_threads = True

    def exit_when_stdin_closes():
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
