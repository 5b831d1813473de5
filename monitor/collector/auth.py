"""Probe tokens and enrolment secrets: minting, hashing, and reading them from a request header."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "bmp_"
ENROLMENT_PREFIX = "bme_"


def mint_token() -> str:
    """A fresh probe token: 32 random bytes, shown once and stored only as a hash."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def mint_enrolment_secret() -> str:
    return ENROLMENT_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # SHA-256 without salt is enough: the secret is 256 random bits, not a password to brute force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        return None
    # Tokens are URL-safe ASCII; a latin-1 or control character cannot be one (and would not
    # hash: a 500).
    if not token.isascii() or not token.isprintable():
        return None
    return token
