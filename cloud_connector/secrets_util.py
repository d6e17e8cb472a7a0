"""Random credentials and how they are stored (a SHA-256 digest, never the token itself)."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """A fresh random token: 32 bytes, URL-safe base64 (43 printable characters), never starting with ``-``.

    A leading ``-`` would make a token handed to the admin CLI (``--token TOKEN``) read as an option.
    """
    while (token := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return token


def hash_token(token: str) -> str:
    """What the database keeps of a token we issued.

    Our tokens carry 256 random bits, so a plain SHA-256 is as good as a slow hash here.
    """
    return hashlib.sha256(token.encode()).hexdigest()
