"""Run a development Home Assistant with ha_ingestor shipping to a local InfluxDB.

Started by ``scripts/develop`` inside the provisioned environment. It starts
InfluxDB 1.6.7 on loopback (database ``home_assistant``), the reference
data-api receiver, prepares a config dir under ``.dev/`` with a user, a few
entities that change every few seconds, an ha_ingestor entry pointing at
InfluxDB and the dashboard of ``docs/dashboard.yaml``, then runs Home Assistant
until Ctrl-C. Ctrl-C stops Home Assistant the way a normal shutdown does (a
second Ctrl-C kills it), then the servers.

While it runs, ``echo 30 > .dev/outage`` stops InfluxDB for 30 seconds and
starts it again (``echo "30 hang" > .dev/outage`` freezes it instead, like a
hung server), to watch delivery wait and recover.
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
from typing import Any
import urllib.parse
import urllib.request
import uuid

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / ".dev"
CONFIG = DEV / "config"
INFLUX_DIR = DEV / "influxdb"
OUTAGE_FILE = DEV / "outage"
DASHBOARD = REPO / "docs" / "dashboard.yaml"
DASHBOARD_ID = "ha_ingestor"
# Home Assistant's own shutdown stages take at most 210 s; the Supervisor allows 240.
HA_STOP_TIMEOUT = 240.0
DATABASE = "home_assistant"
DEV_USER = "dev"
DEV_PASSWORD = "dev"

CONFIGURATION_YAML = """\
# Development configuration written by scripts/develop (safe to edit; kept between runs).
homeassistant:
  name: ha_ingestor dev
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
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
    # The sandbox has no ffmpeg or libjpeg-turbo, and nothing in it needs them.
    haffmpeg: critical
    homeassistant.components.camera.img_util: critical
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


class PortInUseError(RuntimeError):
    """A port the user relies on (Home Assistant's, the receiver's) is taken."""


def free_port(preferred: int, *, fixed: bool = False) -> int:
    """Return ``preferred`` when it is free on 127.0.0.1, else any free port.

    SO_REUSEADDR as the servers set it: connections of the previous run left in
    TIME_WAIT must not move a port. With ``fixed`` a taken port is an error
    instead, so bookmarks and the dev entries keep working across restarts.
    """
    for port in (preferred, 0):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                if fixed:
                    raise PortInUseError(
                        f"port {preferred} on 127.0.0.1 is in use (another Home Assistant or "
                        "scripts/develop?); stop it or choose another port (see --help)"
                    ) from None
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
    proc = subprocess.Popen(
        ["influxd", "run", "-config", str(conf)], stdout=log, stderr=log, start_new_session=True
    )
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
        start_new_session=True,
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


def prepare_config(ha_port: int, influx_port: int, receiver_port: int | None) -> None:
    """Create the config dir, the dev login, the ha_ingestor entry and the dashboard once.

    Entries that point at this script's servers are re-pointed on every start.
    """
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
    for entry in mine:
        repoint(entry, url, receiver_port)
    if not mine:
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
                "unique_id": f"influxdb_v1:{url}|{DATABASE}",
                "version": 2,
            }
        )
    write_json(entries_file, "core.config_entries", {"entries": entries}, version=1, minor=5)
    install_dashboard(storage)


def repoint(entry: dict[str, Any], influx_url: str, receiver_port: int | None) -> None:
    """Point a dev entry at this run's InfluxDB or receiver (their ports may differ)."""
    data = entry["data"]
    if urllib.parse.urlsplit(data.get("url", "")).hostname != "127.0.0.1":
        return
    if data.get("kind") == "influxdb_v1" and data.get("database") == DATABASE:
        data["url"] = influx_url
        entry["unique_id"] = f"influxdb_v1:{influx_url}|{DATABASE}"
    elif data.get("kind") == "data_api" and receiver_port is not None:
        data["url"] = f"http://127.0.0.1:{receiver_port}"
        entry["unique_id"] = f"data_api:{data['url']}"


def install_dashboard(storage: Path) -> None:
    """Add docs/dashboard.yaml as a storage dashboard, unless one is already there.

    Its entity ids already carry the prefix of the dev entry's title.
    """
    import yaml  # type: ignore[import-untyped]  # noqa: PLC0415 - HA's dependency, dev only

    dashboards = storage / "lovelace_dashboards"
    items = (
        json.loads(dashboards.read_text(encoding="utf-8"))["data"]["items"]
        if dashboards.exists()
        else []
    )
    if any(item["id"] == DASHBOARD_ID for item in items):
        return
    config = yaml.safe_load(DASHBOARD.read_text(encoding="utf-8"))
    items.append(
        {
            "id": DASHBOARD_ID,
            "url_path": "ha-ingestor",
            "title": config.get("title", "HA Ingestor"),
            "icon": "mdi:database-arrow-up",
            "show_in_sidebar": True,
            "require_admin": False,
            "mode": "storage",
        }
    )
    write_json(
        storage / f"lovelace.{DASHBOARD_ID}", f"lovelace.{DASHBOARD_ID}", {"config": config}, 1
    )
    write_json(dashboards, "lovelace_dashboards", {"items": items}, version=1)


class Supervisor:
    """Home Assistant and its two servers: started, watched, rehearsed and stopped in order."""

    def __init__(self, influx_port: int) -> None:
        """Nothing runs yet."""
        self.influx_port = influx_port
        self.influxd: subprocess.Popen[bytes] | None = None
        self.receiver: subprocess.Popen[bytes] | None = None
        self.hass: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.interrupts = 0
        self.outage_ends: float | None = None
        self.frozen = False
        self.reported: set[str] = set()

    def on_signal(self, signum: int, _frame: object) -> None:
        """First Ctrl-C (or SIGTERM): stop gracefully. Second: kill Home Assistant."""
        self.interrupts += 1
        self.stopping = True
        if self.interrupts > 1 and self.hass is not None and self.hass.poll() is None:
            say("Killing Home Assistant.")
            self.hass.kill()

    def watch(self) -> int:
        """Wait for Home Assistant's exit or a stop request; run outages; report exits."""
        assert self.hass is not None
        while not self.stopping:
            if (code := self.hass.poll()) is not None:
                say(f"Home Assistant exited (code {code}).")
                return code
            self.check_server("InfluxDB", self.influxd, INFLUX_DIR / "influxd.log")
            self.check_server("The data-api receiver", self.receiver, DEV / "data_api.log")
            self.rehearse_outage()
            time.sleep(0.5)
        return self.stop_hass()

    def check_server(self, name: str, proc: subprocess.Popen[bytes] | None, log: Path) -> None:
        """Say once when a server exits on its own (an outage rehearsal is not that)."""
        if proc is None or name in self.reported or self.outage_ends is not None:
            return
        if (code := proc.poll()) is not None:
            self.reported.add(name)
            say(f"{name} exited (code {code}); its log: {log.relative_to(REPO)}")

    def rehearse_outage(self) -> None:
        """Start or end an outage asked for through .dev/outage."""
        if self.outage_ends is not None:
            if time.monotonic() >= self.outage_ends:
                self.end_outage()
            return
        try:
            request = OUTAGE_FILE.read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return
        OUTAGE_FILE.unlink(missing_ok=True)
        try:
            seconds = float(request[0]) if request else 30.0
        except ValueError:
            say(f"{OUTAGE_FILE.relative_to(REPO)}: expected seconds, e.g. 30 or '30 hang'")
            return
        assert self.influxd is not None
        self.frozen = request[1:2] == ["hang"]
        if self.frozen:
            self.influxd.send_signal(signal.SIGSTOP)
            say(f"Outage: InfluxDB frozen (accepts connections, never answers) for {seconds:g} s.")
        else:
            stop(self.influxd, 30)
            say(f"Outage: InfluxDB stopped for {seconds:g} s.")
        self.outage_ends = time.monotonic() + seconds

    def end_outage(self) -> None:
        """Bring InfluxDB back after a rehearsal."""
        assert self.influxd is not None
        if self.frozen:
            self.influxd.send_signal(signal.SIGCONT)
        else:
            self.influxd = start_influxd(self.influx_port)
        self.outage_ends = None
        self.reported.discard("InfluxDB")
        say("Outage over: InfluxDB is back.")

    def stop_hass(self) -> int:
        """Ask Home Assistant to stop as on a normal shutdown and wait for it."""
        assert self.hass is not None
        if (code := self.hass.poll()) is not None:
            return code
        say("Stopping Home Assistant (Ctrl-C again to kill it)...")
        started = time.monotonic()
        self.hass.send_signal(signal.SIGTERM)
        try:
            code = self.hass.wait(timeout=HA_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.hass.kill()
            code = self.hass.wait()
        say(f"Home Assistant stopped (code {code}) after {time.monotonic() - started:.1f} s.")
        return code

    def stop_servers(self) -> None:
        """Stop the receiver and InfluxDB (resumed first if an outage froze it)."""
        if self.frozen and self.influxd is not None and self.outage_ends is not None:
            self.influxd.send_signal(signal.SIGCONT)
        for name, proc in (("the data-api receiver", self.receiver), ("InfluxDB", self.influxd)):
            if proc is not None and proc.poll() is None:
                stop(proc, 30)
                say(f"Stopped {name}.")


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def say(message: str) -> None:
    """One status line on the terminal, between Home Assistant's own."""
    print(f"[develop] {message}", flush=True)


def main() -> int:
    """Start everything, watch it until Ctrl-C, stop Home Assistant gracefully, then the rest."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ha-port", type=int, default=8123)
    parser.add_argument("--influx-port", type=int, default=8086)
    parser.add_argument("--receiver-port", type=int, default=8099)
    args = parser.parse_args()

    DEV.mkdir(exist_ok=True)
    OUTAGE_FILE.unlink(missing_ok=True)
    try:
        ha_port = free_port(args.ha_port, fixed=True)
        receiver_port = free_port(args.receiver_port, fixed=True)
        influx_port = free_port(args.influx_port, fixed=True)
    except PortInUseError as err:
        say(str(err))
        return 1
    supervisor = Supervisor(influx_port)
    # scripts/develop ignores SIGINT (so bubblewrap survives Ctrl-C); handle it here. The
    # children run in their own sessions: the terminal's Ctrl-C reaches only this process.
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    try:
        supervisor.influxd = start_influxd(influx_port)
        supervisor.receiver = start_receiver(receiver_port)
        prepare_config(ha_port, influx_port, receiver_port if supervisor.receiver else None)
        if supervisor.stopping:
            return 0
        supervisor.hass = subprocess.Popen(
            [sys.executable, "-m", "homeassistant", "-c", str(CONFIG)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        print(
            f"""
  Home Assistant : http://127.0.0.1:{ha_port}   (login {DEV_USER} / {DEV_PASSWORD};
                   dashboard: http://127.0.0.1:{ha_port}/ha-ingestor)
  InfluxDB 1.6.7 : http://127.0.0.1:{influx_port}  database '{DATABASE}'
      query      : curl -G 'http://127.0.0.1:{influx_port}/query' --data-urlencode 'db={DATABASE}' \\
                     --data-urlencode 'q=SELECT * FROM "°C" ORDER BY time DESC LIMIT 5'"""
            + (
                f"\n  data-api       : http://127.0.0.1:{receiver_port}  (token dev-token; GET /events)"
                if supervisor.receiver is not None
                else ""
            )
            + "\n  Outage         : echo 30 > .dev/outage   (InfluxDB down for 30 s; '30 hang' freezes it)"
            + "\n  Ctrl-C stops Home Assistant gracefully, then the servers.\n",
            flush=True,
        )
        return supervisor.watch()
    finally:
        if supervisor.hass is not None and supervisor.hass.poll() is None:
            supervisor.stop_hass()
        supervisor.stop_servers()


if __name__ == "__main__":
    sys.exit(main())
