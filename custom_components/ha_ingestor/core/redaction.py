"""Keeping secrets out of text: the one placeholder and rule both layers use."""

from collections.abc import Iterable
from typing import Final

#: What a secret is replaced by (Home Assistant's diagnostics placeholder).
REDACTED: Final = "**REDACTED**"
#: Secrets shorter than this are not replaced in text: it would garble every message.
MIN_SECRET_LEN: Final = 4


def redact_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret in ``text`` (empty and very short ones excepted) by REDACTED."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LEN:
            text = text.replace(secret, REDACTED)
    return text
