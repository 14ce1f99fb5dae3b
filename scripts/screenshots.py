#!/usr/bin/env python3
"""Take the README screenshots from the real Home Assistant frontend.

Needs a running Home Assistant with an ha_ingestor entry (``scripts/develop``
gives one: login dev/dev) and Chromium. Plain Python 3.11+, standard library
only (PyYAML too when the dashboard is read from YAML).

    scripts/develop --ha-port 8125 &      # wait until it answers, ideally a few minutes
    python3 scripts/screenshots.py --url http://127.0.0.1:8125 --entity-names --history-hours 1

(the committed shots were taken with exactly that command, on a fresh ``.dev``
after ``echo 90 > .dev/outage`` and past the first full hour, when the hourly
statistics behind the throughput graph exist).

It logs in through the auth API, launches headless Chromium (or attaches to one
with ``--devtools http://127.0.0.1:9222``), hands the tokens to the frontend
through ``localStorage.hassTokens`` and drives it over the DevTools protocol.
It writes ``docs/screenshots/{config_flow,options,device,dashboard}.png``:

* config_flow: the first step of adding HA Ingestor (the destination menu);
* options: the options flow menu (Configure on the entry);
* device: the destination's device page with its entities;
* dashboard: ``docs/dashboard.yaml`` saved as the storage dashboard
  ``ha-ingestor`` (created or overwritten), its entity ids rewritten to the
  entry's own prefix, with the disabled-by-default entities it shows enabled
  (as its header asks; the device shot then shows them too); ``--entity-names``
  and ``--history-hours`` tidy it for a short-lived instance.

The device and dashboard shots grow taller than ``--height`` to show every card.
When a wait times out, the page at that moment is saved to
``$TMPDIR/ha_ingestor_screenshot_failed.png``.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Iterator
import contextlib
import json
import os
from pathlib import Path
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any
import urllib.parse
import urllib.request

REPO = Path(__file__).resolve().parent.parent
SHOTS = ("config_flow", "options", "device", "dashboard")
DASHBOARD_URL_PATH = "ha-ingestor"


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[screenshots] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- websocket


class WebSocket:
    """A minimal blocking RFC 6455 client (text frames, no extensions)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError(f"only ws:// URLs are supported, not {url}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self._sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self._buf = b""
        while b"\r\n\r\n" not in self._buf:
            self._fill()
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"websocket handshake to {url} failed: {status.decode()}")

    def _fill(self) -> None:
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("websocket closed")
        self._buf += chunk

    def _read(self, size: int) -> bytes:
        while len(self._buf) < size:
            self._fill()
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        header = bytes([0x80 | opcode])
        if size < 126:
            header += bytes([0x80 | size])
        elif size < 1 << 16:
            header += bytes([0x80 | 126]) + size.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        key = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
        self._sock.sendall(header + mask + masked)

    def send(self, message: dict[str, Any]) -> None:
        """Send one JSON text message."""
        self._send_frame(0x1, json.dumps(message).encode())

    def recv(self) -> dict[str, Any]:
        """Receive one JSON message (answers pings, joins fragments)."""
        data = b""
        while True:
            first, second = self._read(2)
            opcode, size = first & 0x0F, second & 0x7F
            if size == 126:
                size = int.from_bytes(self._read(2), "big")
            elif size == 127:
                size = int.from_bytes(self._read(8), "big")
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(size)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("websocket closed by peer")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            data += payload
            if first & 0x80:
                message: dict[str, Any] = json.loads(data)
                return message

    def close(self) -> None:
        """Close the socket (without the closing handshake)."""
        with contextlib.suppress(OSError):
            self._send_frame(0x8, b"")
        self._sock.close()


# --------------------------------------------------------------------------- Home Assistant


def http_json(url: str, data: dict[str, Any] | None = None, form: bool = False) -> Any:
    """POST (or GET without data) and decode the JSON answer."""
    body = headers = None
    if data is not None:
        if form:
            body = urllib.parse.urlencode(data).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            body = json.dumps(data).encode()
            headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=body, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def login(base: str, username: str, password: str) -> dict[str, Any]:
    """Log in through the auth API the way the frontend does; return the token answer."""
    client_id = base + "/"
    flow = http_json(
        f"{base}/auth/login_flow",
        {
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{base}/?auth_callback=1",
        },
    )
    result = http_json(
        f"{base}/auth/login_flow/{flow['flow_id']}",
        {"username": username, "password": password, "client_id": client_id},
    )
    if result.get("type") != "create_entry":
        raise RuntimeError(f"login failed: {result.get('errors') or result}")
    tokens = http_json(
        f"{base}/auth/token",
        {"grant_type": "authorization_code", "code": result["result"], "client_id": client_id},
        form=True,
    )
    return dict(tokens)


class HomeAssistant:
    """The websocket API, authenticated with an access token."""

    def __init__(self, base: str, access_token: str) -> None:
        ws_url = "ws" + base.removeprefix("http") + "/api/websocket"
        self._ws = WebSocket(ws_url)
        self._id = 0
        if self._ws.recv().get("type") != "auth_required":
            raise RuntimeError("unexpected websocket greeting")
        self._ws.send({"type": "auth", "access_token": access_token})
        answer = self._ws.recv()
        if answer.get("type") != "auth_ok":
            raise RuntimeError(f"websocket auth failed: {answer}")

    def call(self, type_: str, **data: Any) -> Any:
        """Send a command and return its result."""
        self._id += 1
        self._ws.send({"id": self._id, "type": type_, **data})
        while True:
            msg = self._ws.recv()
            if msg.get("id") == self._id and msg.get("type") == "result":
                if not msg.get("success"):
                    raise RuntimeError(f"{type_} failed: {msg.get('error')}")
                return msg.get("result")

    def close(self) -> None:
        """Close the connection."""
        self._ws.close()


# --------------------------------------------------------------------------- Chromium


@contextlib.contextmanager
def launch_chromium(binary: str, port: int, width: int, height: int) -> Iterator[str]:
    """Start headless Chromium with a fresh profile; yield its DevTools HTTP base URL."""
    profile = tempfile.mkdtemp(prefix="ha_ingestor_chromium_")
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        # Without these it keeps trying to reach Google services.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        f"--remote-debugging-port={port}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        active = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not active.exists() or not active.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{binary} did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{active.read_text().split()[0]}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Its helper processes may still write into the profile for a moment.
        for _ in range(20):
            shutil.rmtree(profile, ignore_errors=True)
            if not Path(profile).exists():
                break
            time.sleep(0.25)


# Finds elements through every open shadow root; the HA frontend is all shadow DOM.
DEEP_JS = r"""
window.__deepAll = (selector, start) => {
  const out = [];
  const walk = (root) => {
    root.querySelectorAll(selector).forEach((el) => out.push(el));
    root.querySelectorAll('*').forEach((el) => { if (el.shadowRoot) walk(el.shadowRoot); });
  };
  walk(start || document);
  return out;
};
window.__visible = (el) => {
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0
    && r.top < innerHeight && r.left < innerWidth;
};
"""


class Page:
    """One Chromium tab driven over the DevTools protocol."""

    def __init__(self, devtools: str) -> None:
        with urllib.request.urlopen(f"{devtools}/json/list", timeout=10) as resp:
            targets = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
        if not targets:
            req = urllib.request.Request(f"{devtools}/json/new?about:blank", method="PUT")
            with urllib.request.urlopen(req, timeout=10) as resp:
                targets = [json.loads(resp.read())]
        self._ws = WebSocket(targets[0]["webSocketDebuggerUrl"])
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method; skip the events in between."""
        self._id += 1
        self._ws.send({"id": self._id, "method": method, "params": params})
        while True:
            msg = self._ws.recv()
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript (awaiting promises) and return its JSON value."""
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        """Navigate and wait for the document to load."""
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", f"load of {url}", timeout=30)

    def wait_for(self, predicate: str, what: str, timeout: float = 60.0) -> Any:
        """Poll a JavaScript expression (after DEEP_JS) until it is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(RuntimeError):
                value = self.evaluate(f"{DEEP_JS}; ({predicate})")
                if value:
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> None:
        """Save the viewport as PNG."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        log(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")

    def close(self) -> None:
        """Close the DevTools connection."""
        self._ws.close()


# The frontend is ready: the main shell is rendered and nothing shows a spinner.
FRONTEND_READY = """(() => {
  const ha = document.querySelector('home-assistant');
  if (!ha || !ha.hass || !ha.shadowRoot || !ha.shadowRoot.querySelector('home-assistant-main'))
    return false;
  return !__deepAll('ha-spinner, ha-circular-progress, hass-loading-screen, step-flow-loading')
    .some((el) => __visible(el));
})()"""


FLOW_STEP = "__deepAll('step-flow-menu, step-flow-form').some(__visible)"


def click_text(
    page: Page, selector: str, pattern: str, what: str, within: str | None = None
) -> None:
    """Click the first visible element matching selector whose text/label matches pattern.

    ``within``: only inside (the shadow trees of) the first element matching this selector.
    """
    start = (
        f"(__deepAll({json.dumps(within)})[0] || {{}}).shadowRoot || document"
        if within
        else "document"
    )
    page.wait_for(
        f"""(() => {{
          const re = new RegExp({json.dumps(pattern)}, 'i');
          const el = __deepAll({json.dumps(selector)}, {start}).find((e) => __visible(e) && (
            re.test((e.textContent || '').trim()) || re.test(e.getAttribute('label') || '')
            || re.test(e.getAttribute('aria-label') || '')));
          if (!el) return false;
          el.click();
          return true;
        }})()""",
        what,
        timeout=30,
    )


# --------------------------------------------------------------------------- the shots


def entry_and_device(ha: HomeAssistant) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The first loaded ha_ingestor entry, its device and its entity ids."""
    entries = [
        e for e in ha.call("config_entries/get", domain="ha_ingestor") if e.get("state") == "loaded"
    ]
    if not entries:
        raise RuntimeError("no loaded ha_ingestor config entry")
    entry = entries[0]
    devices = [
        d
        for d in ha.call("config/device_registry/list")
        if entry["entry_id"] in d.get("config_entries", [])
    ]
    if not devices:
        raise RuntimeError(f"no device for entry {entry['title']}")
    entities = [
        e["entity_id"]
        for e in ha.call("config/entity_registry/list")
        if e.get("config_entry_id") == entry["entry_id"]
    ]
    return entry, devices[0], entities


def dashboard_config(path: Path, entity_ids: list[str]) -> dict[str, Any]:
    """Load the dashboard and point its entity ids at this entry's prefix."""
    text = path.read_text(encoding="utf-8")
    used = re.search(r"sensor\.(\w+)_health\b", text)
    mine = next(
        (m.group(1) for e in entity_ids if (m := re.fullmatch(r"sensor\.(\w+)_health", e))),
        None,
    )
    if used and mine and used.group(1) != mine:
        text = text.replace(used.group(1), mine)
    if path.suffix == ".json":
        return dict(json.loads(text))
    import yaml  # type: ignore[import-untyped]  # noqa: PLC0415 - only for YAML dashboards

    return dict(yaml.safe_load(text))


def entity_names(node: Any) -> Any:
    """Give every entity reference without a name ``name: {type: entity}``.

    Rows then read "Health" instead of the friendly name "<entry title> Health",
    which a long entry title truncates.
    """
    if isinstance(node, list):
        return [entity_names(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: entity_names(value) for key, value in node.items()}
    for key in ("entities",):
        if isinstance(out.get(key), list):
            out[key] = [
                {"entity": item, "name": {"type": "entity"}} if isinstance(item, str) else item
                for item in out[key]
            ]
    if "entity" in out and "name" not in out:
        out["name"] = {"type": "entity"}
    return out


def history_hours(node: Any, hours: float) -> Any:
    """Set hours_to_show of every history-graph card (and an "(N h)" in its title)."""
    if isinstance(node, list):
        return [history_hours(item, hours) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: history_hours(value, hours) for key, value in node.items()}
    if out.get("type") == "history-graph":
        out["hours_to_show"] = hours
        if isinstance(out.get("title"), str):  # keep "Backlog (24 h)" truthful
            # A no-break space: a narrow card wraps before "(1 h)", not inside it.
            out["title"] = re.sub(r"\(\d+(\.\d+)? ?h\)", f"({hours:g}\u00a0h)", out["title"])
    return out


def enable_dashboard_entities(
    ha: HomeAssistant, entry: dict[str, Any], config: dict[str, Any]
) -> None:
    """Enable the disabled-by-default entities the dashboard shows, as its header asks.

    Without this their rows read "Entity not found". Entities a user disabled stay
    disabled. Home Assistant reloads the entry 30 s after the change; their states are
    awaited.
    """
    text = json.dumps(config)
    shown = [
        e
        for e in ha.call("config/entity_registry/list")
        if e.get("config_entry_id") == entry["entry_id"]
        and re.search(re.escape(e["entity_id"]) + r"\b", text)
    ]
    for e in shown:
        if e.get("disabled_by") not in (None, "integration"):
            log(f"warning: {e['entity_id']} is disabled by {e['disabled_by']}: left alone")
    enable = [e["entity_id"] for e in shown if e.get("disabled_by") == "integration"]
    for entity_id in enable:
        ha.call("config/entity_registry/update", entity_id=entity_id, disabled_by=None)
    if enable:
        log(f"enabled {len(enable)} entities the dashboard shows: {', '.join(enable)}")
    # Also after an earlier run enabled them: the reload may still be pending.
    wanted = enable + [e["entity_id"] for e in shown if e.get("disabled_by") is None]
    deadline = time.monotonic() + 120
    while True:
        states = {s["entity_id"]: s["state"] for s in ha.call("get_states")}
        missing = [e for e in wanted if states.get(e) in (None, "unavailable")]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for the states of {', '.join(missing)}")
        time.sleep(1)


def save_dashboard(ha: HomeAssistant, config: dict[str, Any]) -> None:
    """Create (once) the storage dashboard and save the config into it."""
    existing = {d["url_path"] for d in ha.call("lovelace/dashboards/list")}
    if DASHBOARD_URL_PATH not in existing:
        ha.call(
            "lovelace/dashboards/create",
            url_path=DASHBOARD_URL_PATH,
            title=config.get("title", "HA Ingestor"),
            icon="mdi:database-arrow-up",
            show_in_sidebar=True,
            require_admin=False,
            mode="storage",
        )
    ha.call("lovelace/config/save", url_path=DASHBOARD_URL_PATH, config=config)


def take(args: argparse.Namespace, devtools: str, tokens: dict[str, Any]) -> None:
    """Drive the frontend through the pages and capture them."""
    base, out = args.url, args.out
    ha = HomeAssistant(base, tokens["access_token"])
    try:
        # The frontend stays on "Loading..." when this fails (e.g. an integration whose
        # requirements could not be installed breaks the service descriptions).
        try:
            ha.call("get_services")
        except RuntimeError as err:
            raise RuntimeError(
                f"{err}: the frontend cannot start; see the Home Assistant log"
            ) from err
        with contextlib.suppress(RuntimeError):
            if (ha.call("http/config") or {}).get("pending"):
                log("warning: a pending HTTP config: its confirm dialog may cover the shots")
        entry, device, entity_ids = entry_and_device(ha)
        log(f"entry {entry['title']!r}, device {device['id']}, {len(entity_ids)} entities")
        if "dashboard" in args.only:
            config = dashboard_config(args.dashboard, entity_ids)
            if args.entity_names:
                config = entity_names(config)
            if args.history_hours:
                config = history_hours(config, args.history_hours)
            enable_dashboard_entities(ha, entry, config)
            save_dashboard(ha, config)
            log(f"saved dashboard /{DASHBOARD_URL_PATH} from {args.dashboard}")
    finally:
        ha.close()

    page = Page(devtools)
    try:
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": args.theme}],
        )
        hass_tokens = {
            "access_token": tokens["access_token"],
            "token_type": "Bearer",
            "expires_in": tokens["expires_in"],
            "hassUrl": base,
            "clientId": base + "/",
            "expires": int(time.time() * 1000) + int(tokens["expires_in"]) * 1000,
            "refresh_token": tokens["refresh_token"],
        }

        def set_height(height: int) -> None:
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=args.width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )

        def shoot(name: str, fit: bool = False) -> None:
            """Capture; with fit, first grow the viewport to show every card (up to a limit)."""
            if fit:
                bottom = page.evaluate(
                    f"{DEEP_JS}; Math.max(0, ...__deepAll('ha-card')"
                    ".map((c) => c.getBoundingClientRect().bottom))"
                )
                height = min(max(args.height, int(bottom) + 16), args.max_height)
                if height != args.height:
                    set_height(height)
                    page.wait_for(FRONTEND_READY, "the resized page")
                    time.sleep(args.settle)
            page.screenshot(out / f"{name}.png")
            set_height(args.height)

        def open_page(path: str, ready: str, what: str) -> None:
            page.goto(base + path)
            try:
                page.wait_for(FRONTEND_READY, "the frontend")
                page.wait_for(ready, what)
                page.wait_for(FRONTEND_READY, "the frontend to settle")
            except TimeoutError:
                page.screenshot(Path(tempfile.gettempdir()) / "ha_ingestor_screenshot_failed.png")
                raise
            time.sleep(args.settle)

        # Any same-origin document will do to reach localStorage; the frontend
        # reads hassTokens on its next load instead of redirecting to the login page.
        set_height(args.height)
        page.goto(f"{base}/manifest.json")
        page.evaluate(f"localStorage.hassTokens = {json.dumps(json.dumps(hass_tokens))}; true")

        if "config_flow" in args.only:
            # The add link first asks "Do you want to set up HA Ingestor?".
            open_page(
                "/config/integrations/dashboard/add?domain=ha_ingestor",
                f"__deepAll('dialog-box').length > 0 || {FLOW_STEP}",
                "the config flow dialog",
            )
            if page.evaluate(f"{DEEP_JS}; __deepAll('dialog-box').length > 0"):
                click_text(page, "ha-button, mwc-button", r"^ok$", "OK", within="dialog-box")
            page.wait_for(FLOW_STEP, "the first step of the config flow")
            page.wait_for(FRONTEND_READY, "the config flow to settle")
            time.sleep(args.settle)
            shoot("config_flow")

        if "options" in args.only:
            open_page(
                "/config/integrations/integration/ha_ingestor",
                "__deepAll('ha-config-entry-row').length > 0",
                "the integration page",
            )
            click_text(
                page,
                "ha-button, mwc-button, ha-icon-button, ha-list-item, ha-md-menu-item, button",
                r"^configure$",
                "the Configure button",
            )
            page.wait_for(FLOW_STEP, "the options menu")
            page.wait_for(FRONTEND_READY, "the options menu to settle")
            time.sleep(args.settle)
            shoot("options")

        if "device" in args.only:
            open_page(
                f"/config/devices/device/{device['id']}",
                "__deepAll('ha-device-entities-card').length > 0 "
                "&& __deepAll('hui-generic-entity-row').length > 0",
                "the device page",
            )
            shoot("device", fit=True)

        if "dashboard" in args.only:
            open_page(
                f"/{DASHBOARD_URL_PATH}/0",
                "__deepAll('hui-entities-card').length > 0 && __deepAll('ha-chart-base').length"
                " >= __deepAll('hui-history-graph-card').length",
                "the dashboard",
            )
            time.sleep(args.settle)  # charts animate in
            shoot("dashboard", fit=True)
    finally:
        page.close()


def main() -> int:
    """Parse arguments, log in, start Chromium, take the shots."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8123", help="Home Assistant base URL")
    parser.add_argument("--username", default="dev")
    parser.add_argument("--password", default="dev")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--dashboard", type=Path, default=REPO / "docs" / "dashboard.yaml")
    parser.add_argument("--chromium", default="chromium", help="Chromium binary to launch")
    parser.add_argument(
        "--devtools-port", type=int, default=0, help="DevTools port to launch on (0: any)"
    )
    parser.add_argument(
        "--devtools",
        help="attach to an already running Chromium instead (e.g. http://127.0.0.1:9222)",
    )
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument(
        "--entity-names",
        action="store_true",
        help="dashboard: name rows by the entity name alone (name: {type: entity})",
    )
    parser.add_argument(
        "--history-hours",
        type=float,
        help="dashboard: override hours_to_show of the history graphs (fresh instances)",
    )
    parser.add_argument(
        "--max-height",
        type=int,
        default=1400,
        help="device and dashboard shots grow up to this height to show all cards",
    )
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds to let a page settle before a shot"
    )
    parser.add_argument(
        "--only", nargs="+", choices=SHOTS, default=list(SHOTS), help="take only these shots"
    )
    args = parser.parse_args()
    args.url = args.url.rstrip("/")

    tokens = login(args.url, args.username, args.password)
    log(f"logged in to {args.url} as {args.username}")
    if args.devtools:
        take(args, args.devtools.rstrip("/"), tokens)
    else:
        if not shutil.which(args.chromium):
            parser.error(f"{args.chromium} not found (apt-get install chromium)")
        with launch_chromium(args.chromium, args.devtools_port, args.width, args.height) as url:
            take(args, url, tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
