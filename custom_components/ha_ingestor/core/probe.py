"""Cheap reachability probe used while a destination refuses connections.

A TCP connect only: no HTTP request, no credentials, nothing for the server
to process, so probing once a second during an outage costs the server
nothing while letting delivery resume about a second after it returns,
instead of after the rest of a backoff delay (up to minutes).
"""

import asyncio
import contextlib
from urllib.parse import urlsplit

#: Seconds a probe may take; a local or LAN server answers a connect in ms.
PROBE_TIMEOUT = 2.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


def probe_address(url: str) -> tuple[str, int] | None:
    """``(host, port)`` to probe for an endpoint URL, or None if it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


async def tcp_reachable(url: str, limit: float = PROBE_TIMEOUT) -> bool:
    """Return whether a TCP connection to the URL's host and port succeeds."""
    address = probe_address(url)
    if address is None:
        return False
    try:
        async with asyncio.timeout(limit):
            _, writer = await asyncio.open_connection(*address)
    except Exception:  # noqa: BLE001 - refused, unresolvable, timed out, blocked: not reachable
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True
