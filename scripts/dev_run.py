"""Run a development Home Assistant with ha_ingestor shipping to a local InfluxDB.

Started by ``scripts/develop`` inside the provisioned environment. It starts
InfluxDB 1.6.7 on loopback (database ``home_assistant``), the reference
data-api receiver, prepares a config dir under ``.dev/`` with a user, a few
entities that change every few seconds and an ha_ingestor entry pointing at
InfluxDB, then runs Home Assistant until Ctrl-C and stops everything.
"""

import argparse
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / ".dev"
CONFIG = DEV / "config"
INFLUX_DIR = DEV / "influxdb"
DATABASE = "home_assistant"
DEV_USER = "dev"
DEV_PASSWORD = "dev"

CONFIGURATION_YAML = """\
# Development configuration written by scripts/develop (safe to edit; kept between runs).
homeassistant:
  name: ha_ingestor dev
  unit_system: metric
  time_zone: UTC
  latitude: 52.37
  longitude: 4.89
  elevation: 0
{http}frontend:
config:
history:
logbook:
system_health:
logger:
  default: warning
  logs:
    custom_components.ha_ingestor: debug
    homeassistant.components.http: warning
template:
  - trigger:
      - trigger: time_pattern
        seconds: "/5"
    sensor:
      - name: Dev temperature
        unique_id: dev_temperature
        unit_of_measurement: "°C"
        device_class: temperature
        state_class: measurement
        state: "{{{{ (20 + range(-50, 50) | random / 10) | round(1) }}}}"
      - name: Dev power
        unique_id: dev_power
        unit_of_measurement: W
        device_class: power
        state_class: measurement
        state: "{{{{ range(100, 2500) | random }}}}"
      - name: Dev mode
        unique_id: dev_mode
        state: "{{{{ ['eco', 'comfort', 'away'] | random }}}}"
  - trigger:
      - trigger: time_pattern
        seconds: "/15"
    binary_sensor:
      - name: Dev door
        unique_id: dev_door
        device_class: door
        state: "{{{{ range(0, 2) | random == 1 }}}}"
"""


def free_port(preferred: int) -> int:
    """Return ``preferred`` when it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers with a 2xx."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready in {timeout:.0f} s")


def start_influxd(port: int) -> subprocess.Popen[bytes]:
    """Start InfluxDB 1.x with its data under .dev/influxdb."""
    INFLUX_DIR.mkdir(parents=True, exist_ok=True)
    rpc_port = free_port(port + 2)
    conf = INFLUX_DIR / "influxdb.conf"
    conf.write_text(
        f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{INFLUX_DIR / "meta"}"
[data]
  dir = "{INFLUX_DIR / "data"}"
  wal-dir = "{INFLUX_DIR / "wal"}"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
""",
        encoding="utf-8",
    )
    log = (INFLUX_DIR / "influxd.log").open("ab")
    proc = subprocess.Popen(["influxd", "run", "-config", str(conf)], stdout=log, stderr=log)
    wait_http(f"http://127.0.0.1:{port}/ping")
    query = urllib.parse.urlencode({"q": f"CREATE DATABASE {DATABASE}"}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/query", data=query, timeout=5):
        pass
    return proc


def start_receiver(port: int) -> subprocess.Popen[bytes] | None:
    """Start the reference data-api receiver when the script is present."""
    script = REPO / "scripts" / "data_api_receiver.py"
    if not script.exists():
        return None
    log = (DEV / "data_api.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            str(DEV / "data_api.sqlite"),
            "--token",
            "dev-token",
        ],
        stdout=log,
        stderr=log,
    )
    wait_http(f"http://127.0.0.1:{port}/health")
    return proc


def write_json(path: Path, key: str, data: object, version: int, minor: int = 1) -> None:
    """Write a Home Assistant storage file."""
    path.write_text(
        json.dumps(
            {"version": version, "minor_version": minor, "key": key, "data": data}, indent=2
        ),
        encoding="utf-8",
    )


def http_storage(path: Path, ha_port: int) -> bool:
    """Store HA's http settings as confirmed ("stable") on releases that keep them in storage.

    Since 2026.10 HA migrates YAML http settings into a *pending* trial that it
    reverts by restarting itself five minutes later unless someone confirms it
    in the UI; the restarted HA then listened on every interface, port 8123.
    Returns False on releases that read the http settings from YAML only.
    """
    try:
        from homeassistant.components.http import config as http_config  # noqa: PLC0415
    except ImportError:
        return False
    schema = getattr(http_config, "HTTP_STORAGE_SCHEMA", None)
    if schema is None:
        return False
    stored = json.loads(path.read_text(encoding="utf-8")).get("data", {}) if path.exists() else {}
    stable = stored.get(http_config.KEY_STABLE) or {
        **schema({}),
        "created_at": datetime.now(UTC).isoformat(),
        "error": None,
        "error_message": None,
    }
    # Ports may change between runs; keep HA on loopback.
    stable.update(server_port=ha_port, server_host=["127.0.0.1"])
    write_json(
        path,
        "http",
        {
            http_config.KEY_STABLE: stable,
            http_config.KEY_PENDING: None,
            http_config.KEY_YAML_MIGRATION_DONE: True,
        },
        version=http_config.STORAGE_VERSION,
        minor=http_config.STORAGE_MINOR_VERSION,
    )
    return True


def prepare_config(ha_port: int, influx_port: int) -> None:
    """Create the config dir, the dev login and the ha_ingestor entry once."""
    storage = CONFIG / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    link = CONFIG / "custom_components"
    if link.is_symlink() or link.exists():
        link.unlink() if link.is_symlink() else shutil.rmtree(link)
    link.symlink_to(REPO / "custom_components")
    stored_http = http_storage(storage / "http", ha_port)
    yaml_http = f"http:\n  server_host: 127.0.0.1\n  server_port: {ha_port}\n"
    (CONFIG / "configuration.yaml").write_text(
        CONFIGURATION_YAML.format(http="" if stored_http else yaml_http), encoding="utf-8"
    )
    if not (storage / "onboarding").exists():
        subprocess.run(
            [
                *(sys.executable, "-m", "homeassistant", "--script", "auth"),
                *("-c", str(CONFIG), "add", DEV_USER, DEV_PASSWORD),
            ],
            check=True,
            capture_output=True,
        )
        write_json(
            storage / "onboarding",
            "onboarding",
            {"done": ["user", "core_config", "analytics", "integration"]},
            version=4,
        )
    entries_file = storage / "core.config_entries"
    entries = (
        json.loads(entries_file.read_text(encoding="utf-8"))["data"]["entries"]
        if entries_file.exists()
        else []
    )
    url = f"http://127.0.0.1:{influx_port}"
    mine = [e for e in entries if e["domain"] == "ha_ingestor"]
    if mine:
        # Ports may change between runs: keep the entry pointing at this InfluxDB.
        for entry in mine:
            if entry["data"].get("kind") == "influxdb_v1":
                entry["data"]["url"] = url
                entry["unique_id"] = f"influxdb_v1:{url}/|{DATABASE}"
    else:
        now = datetime.now(UTC).isoformat()
        entries.append(
            {
                "created_at": now,
                "data": {
                    "kind": "influxdb_v1",
                    "url": url,
                    "database": DATABASE,
                    "verify_ssl": True,
                    "fallback_urls": [],
                },
                "discovery_keys": {},
                "disabled_by": None,
                "domain": "ha_ingestor",
                "entry_id": uuid.uuid4().hex,
                "minor_version": 1,
                "modified_at": now,
                "options": {},
                "pref_disable_new_entities": False,
                "pref_disable_polling": False,
                "source": "user",
                "subentries": [],
                "title": f"InfluxDB v1 {DATABASE}@127.0.0.1",
                "unique_id": f"influxdb_v1:{url}/|{DATABASE}",
                "version": 1,
            }
        )
    write_json(entries_file, "core.config_entries", {"entries": entries}, version=1, minor=5)


def main() -> int:
    """Start everything, wait for Ctrl-C, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ha-port", type=int, default=8123)
    parser.add_argument("--influx-port", type=int, default=8086)
    parser.add_argument("--receiver-port", type=int, default=8099)
    args = parser.parse_args()
    # Stop everything on SIGTERM too (not only Ctrl-C): SystemExit runs the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    DEV.mkdir(exist_ok=True)
    ha_port = free_port(args.ha_port)
    influx_port = free_port(args.influx_port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_influxd(influx_port))
        receiver_port = free_port(args.receiver_port)
        receiver = start_receiver(receiver_port)
        if receiver is not None:
            procs.append(receiver)
        prepare_config(ha_port, influx_port)
        hass = subprocess.Popen(
            [sys.executable, "-m", "homeassistant", "-c", str(CONFIG)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        procs.append(hass)
        print(
            f"""
  Home Assistant : http://127.0.0.1:{ha_port}   (login {DEV_USER} / {DEV_PASSWORD})
  InfluxDB 1.6.7 : http://127.0.0.1:{influx_port}  database '{DATABASE}'
      query      : curl -G 'http://127.0.0.1:{influx_port}/query' --data-urlencode 'db={DATABASE}' \\
                     --data-urlencode 'q=SELECT * FROM "°C" ORDER BY time DESC LIMIT 5'"""
            + (
                f"\n  data-api       : http://127.0.0.1:{receiver_port}  (token dev-token; GET /events)"
                if receiver is not None
                else ""
            )
            + "\n  Ctrl-C stops everything.\n",
            flush=True,
        )
        return hass.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
