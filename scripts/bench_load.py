"""Write points to InfluxDB v1 at a steady rate from outside Home Assistant's process.

Used by ``scripts/bench`` (phase 1): HA's production rate is measured again while
InfluxDB ingests, written by this separate process, the very lines HA Ingestor
ships for the same changes (same tags and fields: a point's string fields cost
InfluxDB several times what a lone ``value`` does), at the rate HA Ingestor
landed them (the database's share of the slowdown, told apart from the
integration's work inside HA) or at HA's baseline rate (the ceiling run).
Standard library only; per batch it only reads and sends, so its own CPU stays
small.

    python scripts/bench_load.py URL DATABASE LINES_FILE RATE
"""

import http.client
from itertools import islice
from pathlib import Path
import sys
import time
from urllib.parse import urlsplit

BATCH = 5000  # HA Ingestor's default batch size


def main(argv: list[str]) -> int:
    """POST the file's lines, ``BATCH`` per request, paced to ``RATE`` lines/s."""
    url, database, lines_file, rate = argv[0], argv[1], argv[2], float(argv[3])
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 8086, timeout=60)
    start = time.monotonic()
    written = 0
    with Path(lines_file).open("rb") as fh:
        while body := b"".join(islice(fh, BATCH)):
            conn.request("POST", f"/write?db={database}&precision=ns", body=body)
            response = conn.getresponse()
            response.read()
            if response.status != 204:
                print(f"write failed: HTTP {response.status}", file=sys.stderr)
                return 1
            written += body.count(b"\n")
            ahead = written / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
