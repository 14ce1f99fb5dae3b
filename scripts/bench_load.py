"""Write points to InfluxDB v1 at a steady rate from outside Home Assistant's process.

Used by ``scripts/bench`` (phase 1): HA's production rate is measured once more
while InfluxDB ingests as many points per second as HA Ingestor landed, written
by this separate process, so that the database's own work on the shared cores is
told apart from the integration's work inside HA. Standard library only.

    python scripts/bench_load.py URL DATABASE MEASUREMENT POINTS RATE
"""

import http.client
import sys
import time
from urllib.parse import urlsplit

BATCH = 5000


def main(argv: list[str]) -> int:
    """Write ``POINTS`` points in 5000-line POSTs, paced to ``RATE`` points/s."""
    url, database, measurement, points, rate = (
        argv[0],
        argv[1],
        argv[2],
        int(argv[3]),
        float(argv[4]),
    )
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 8086, timeout=60)
    base_ns = time.time_ns() - 3_600_000_000_000
    start = time.monotonic()
    written = 0
    while written < points:
        size = min(BATCH, points - written)
        body = "\n".join(
            f"{measurement},domain=sensor,entity_id=load_{i % 100} value={i} {base_ns + i * 1000}"
            for i in range(written, written + size)
        ).encode()
        conn.request("POST", f"/write?db={database}&precision=ns", body=body)
        response = conn.getresponse()
        response.read()
        if response.status != 204:
            print(f"write failed: HTTP {response.status}", file=sys.stderr)
            return 1
        written += size
        ahead = written / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
