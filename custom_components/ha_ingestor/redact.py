"""Keeping secrets out of everything users see or share (attributes, diagnostics, repairs)."""

from collections.abc import Iterable, Mapping
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .const import CONF_KIND, kind_info
from .core.redaction import redact_secrets

# scheme://user:password@host -> scheme://host, wherever a URL appears in free text.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def entry_secrets(data: Mapping[str, Any]) -> list[str]:
    """Return the secret values of an entry's data, to scrub from text shown to users."""
    return [str(value) for key in kind_info(data[CONF_KIND]).secrets if (value := data.get(key))]


def strip_url_credentials(url: str) -> str:
    """Return ``url`` without its userinfo (``user:password@``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\g<scheme>", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove URL credentials and every known secret value from ``text``."""
    return redact_secrets(_USERINFO.sub(r"\g<scheme>", text), secrets)


def scrub(data: Any, secrets: Iterable[str] = ()) -> Any:
    """Recursively scrub every string in ``data`` (dicts, lists, tuples)."""
    found = tuple(secrets)
    if isinstance(data, str):
        return scrub_text(data, found)
    if isinstance(data, dict):
        return {key: scrub(value, found) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [scrub(value, found) for value in data]
    return data
