"""Keeping secrets out of text: the one placeholder and rule both layers use."""

from collections.abc import Iterable
from typing import Final

#: What a secret is replaced by (Home Assistant's diagnostics placeholder).
REDACTED: Final = "**REDACTED**"
#: Secrets shorter than this are not replaced in text: it would garble every message.
MIN_SECRET_LEN: Final = 4


def redact_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret in ``text`` (empty and very short ones excepted) by REDACTED."""
    # Longest first: a secret inside another (a token ending with the password)
    # replaced first would leave the rest of the longer one in the text.
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len)[::-1]:
        text = text.replace(secret, REDACTED)
    return text
