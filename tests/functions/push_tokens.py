"""Real RS256 push tokens for the push-auth tests: keys, the certificate Google serves, forgeries.

Nothing here fakes the verifier: tokens are signed with a key made in the test, and the functions
verify them against an X.509 certificate for that key (the shape of Google's v1 certs endpoint).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

AUDIENCE = "https://run-starter-abc123-ew.a.run.app"
ACCOUNT = "kumoflow-push@kumoflow-test.iam.gserviceaccount.com"
KID = "test-key-1"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate(key: rsa.RSAPrivateKey) -> str:
    """A self-signed X.509 certificate for `key`, PEM, as Google's certs endpoint serves them."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kumoflow-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Keys:
    google: bytes  # PEM private key whose certificate the functions trust
    stranger: bytes  # PEM private key nobody trusts
    certs: Mapping[str, str]


def make_keys() -> Keys:
    google = new_key()
    return Keys(pem(google), pem(new_key()), {KID: certificate(google)})


def claims(**over: object) -> dict[str, object]:
    """What Google puts in a push token; `over` replaces claims, None drops one."""
    now = int(time.time())
    base: dict[str, object] = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": ACCOUNT,
        "email_verified": True,
        "sub": "1234567890",
        "iat": now,
        "exp": now + 3600,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def token(private_pem: bytes, *, kid: str | None = KID, **over: object) -> str:
    signer = crypt.RSASigner.from_string(private_pem, key_id=kid)
    signed: bytes = jwt.encode(signer, claims(**over))  # type: ignore[no-untyped-call]
    return signed.decode()


def unsigned() -> str:
    """`alg: none`: the oldest JWT forgery."""

    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims())}."


def _hour_ago() -> int:
    return int(time.time()) - 3600


# Each must be refused with 403; the names are the test ids.
FORGERS: dict[str, Callable[[Keys], str]] = {
    "wrong-audience": lambda k: token(k.google, aud="https://someone-else.a.run.app"),
    "wrong-email": lambda k: token(k.google, email="attacker@evil.iam.gserviceaccount.com"),
    "email-not-verified": lambda k: token(k.google, email_verified=False),
    "email-verified-missing": lambda k: token(k.google, email_verified=None),
    "email-verified-string": lambda k: token(k.google, email_verified="true"),
    "wrong-issuer": lambda k: token(k.google, iss="https://evil.example.com"),
    "expired": lambda k: token(k.google, iat=_hour_ago() - 60, exp=_hour_ago()),
    "not-yet-valid": lambda k: token(k.google, iat=int(time.time()) + 3600),
    "no-exp": lambda k: token(k.google, exp=None),
    "other-key-same-kid": lambda k: token(k.stranger),
    "other-key-unknown-kid": lambda k: token(k.stranger, kid="stranger-key"),
    "other-key-no-kid": lambda k: token(k.stranger, kid=None),
    "alg-none": lambda k: unsigned(),
    "not-a-jwt": lambda k: "not.a.jwt",
    "garbage": lambda k: "garbage",
}
