"""Repair issues of ha_ingestor and their fix flows.

:meth:`RepairTracker.sync` runs on every health assessment (several times a
second under load), so it only compares a snapshot's facts with the issues it
already raised and touches the issue registry when something changed. Each
issue disappears by itself once its cause is gone.
"""

from dataclasses import dataclass
import time
from typing import TYPE_CHECKING, Any, override

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
import voluptuous as vol

from .const import (
    CONF_OUTAGE_REPAIR_AFTER,
    DEFAULT_OUTAGE_REPAIR_AFTER,
    DOMAIN,
)
from .core.clock import SystemClock
from .core.errors import ErrorCategory
from .core.health import format_duration
from .core.metrics import WindowCounter
from .snapshot import IngestorSnapshot

if TYPE_CHECKING:
    # Only in newer Home Assistant releases; annotations are never evaluated.
    from homeassistant.components.repairs import RepairsFlowResult

    from .runtime import IngestorConfigEntry

ISSUE_AUTH_FAILED = "auth_failed"
ISSUE_SPOOL_OVERFLOW = "spool_overflow"
ISSUE_POINTS_QUARANTINED = "points_quarantined"
ISSUE_QUARANTINE_DROPPED = "quarantine_dropped"
ISSUE_EXTENDED_OUTAGE = "extended_outage"
ISSUE_STORAGE_FAILURE = "storage_failure"
ISSUE_SPOOL_CORRUPTED = "spool_corrupted"
ISSUE_NOT_FOUND = "destination_not_found"
ISSUE_TLS_FAILURE = "tls_failure"
ISSUE_REJECTED = "destination_rejected"
#: Paused causes other than auth (which has its reauth issue) and their issue.
PAUSE_ISSUES: dict[str, str] = {
    ErrorCategory.NOT_FOUND.value: ISSUE_NOT_FOUND,
    ErrorCategory.TLS.value: ISSUE_TLS_FAILURE,
    ErrorCategory.REJECTED.value: ISSUE_REJECTED,
}
ISSUES = (
    ISSUE_AUTH_FAILED,
    ISSUE_NOT_FOUND,
    ISSUE_TLS_FAILURE,
    ISSUE_REJECTED,
    ISSUE_SPOOL_OVERFLOW,
    ISSUE_POINTS_QUARANTINED,
    ISSUE_QUARANTINE_DROPPED,
    ISSUE_EXTENDED_OUTAGE,
    ISSUE_STORAGE_FAILURE,
    ISSUE_SPOOL_CORRUPTED,
)

# probatio at runtime on newer Home Assistant (see services.py), hence Any.
_CONFIRM_SCHEMA: Any = vol.Schema({})
#: Placeholders that keep changing (counts, durations) refresh at most this often.
PLACEHOLDER_REFRESH = 60.0
#: An issue about deleted points stays this long after the last deletion.
RECENT_WINDOW = 3600.0


class RecentDrops:
    """Turns the spool's persisted total of deleted dead letters into "deleted recently".

    The first total seen after setup is the baseline: deletions before it were
    reported while they happened (the sensor keeps the persisted total).
    """

    def __init__(self) -> None:
        """Start without a baseline."""
        self._seen: int | None = None
        self._recent = WindowCounter(SystemClock(), horizon=RECENT_WINDOW, bucket=60.0)

    def update(self, total: int) -> int:
        """Record the current total; return how many were deleted within the window."""
        if self._seen is not None and total > self._seen:
            self._recent.add(total - self._seen)
        self._seen = total
        return self._recent.recent()


#: How long a damaged spool file stays reported. Nothing is left to fix (what
#: could be read is queued, the rest is counted as dropped), but a damaged file
#: points at failing storage or power cuts: a day outlasts one look at the
#: dashboard, and the spool persists the report so a restart does not hide it.
SPOOL_CORRUPTED_SHOWN = 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Issue:
    """An issue as it should currently be raised."""

    severity: ir.IssueSeverity
    placeholders: dict[str, str]
    fixable: bool = False


@dataclass(slots=True, kw_only=True)
class _Raised:
    """An issue raised earlier: what it said and when."""

    placeholders: dict[str, str]
    at: float


def issue_id(key: str, entry_id: str) -> str:
    """Issue id of ``key`` for one entry."""
    return f"{key}_{entry_id}"


def _wanted(
    snapshot: IngestorSnapshot, title: str, outage_after: float, drops: RecentDrops
) -> dict[str, _Issue]:
    """Return the issues the snapshot's facts call for."""
    titled = {"entry_title": title}
    spool = snapshot.spool
    wanted: dict[str, _Issue] = {}
    paused = snapshot.paused_reason
    if paused == ErrorCategory.AUTH.value:
        wanted[ISSUE_AUTH_FAILED] = _Issue(
            severity=ir.IssueSeverity.ERROR, placeholders=titled, fixable=True
        )
    elif paused is not None and paused in PAUSE_ISSUES:
        wanted[PAUSE_ISSUES[paused]] = _Issue(
            severity=ir.IssueSeverity.ERROR,
            placeholders={**titled, "error": snapshot.last_error or "unknown"},
        )
    if snapshot.recent_dropped > 0:
        wanted[ISSUE_SPOOL_OVERFLOW] = _Issue(
            severity=ir.IssueSeverity.WARNING,
            placeholders={**titled, "count": str(snapshot.recent_dropped)},
        )
    if spool is not None and spool.dead_letter_count > 0:
        wanted[ISSUE_POINTS_QUARANTINED] = _Issue(
            severity=ir.IssueSeverity.WARNING,
            placeholders={**titled, "count": str(spool.dead_letter_count)},
            fixable=True,
        )
    if spool is not None and (recent := drops.update(spool.dead_letter_dropped)):
        wanted[ISSUE_QUARANTINE_DROPPED] = _Issue(
            severity=ir.IssueSeverity.WARNING,
            placeholders={
                **titled,
                "count": str(recent),
                "total": str(spool.dead_letter_dropped),
            },
        )
    if spool is not None and spool.storage_failed:
        wanted[ISSUE_STORAGE_FAILURE] = _Issue(
            severity=ir.IssueSeverity.ERROR,
            placeholders={**titled, "error": spool.last_storage_error or "unknown"},
        )
    if (
        spool is not None
        and spool.last_corrupt_at is not None
        and snapshot.taken_at - spool.last_corrupt_at < SPOOL_CORRUPTED_SHOWN
    ):
        wanted[ISSUE_SPOOL_CORRUPTED] = _Issue(
            severity=ir.IssueSeverity.ERROR
            if spool.last_salvage_lost
            else ir.IssueSeverity.WARNING,
            placeholders={
                **titled,
                "saved": str(spool.last_salvaged),
                "lost": str(spool.last_salvage_lost),
            },
        )
    # Outage length counts from its first failure: an entry whose filter matched
    # nothing for hours has no outage, whatever its last success.
    since = snapshot.outage_started
    outage = 0.0 if since is None else snapshot.taken_at - since
    if since is not None and snapshot.pending > 0 and outage > outage_after:
        wanted[ISSUE_EXTENDED_OUTAGE] = _Issue(
            severity=ir.IssueSeverity.WARNING,
            placeholders={
                **titled,
                "duration": format_duration(outage),
                "backlog": str(snapshot.pending),
            },
        )
    return wanted


class RepairTracker:
    """The repair issues one entry raised, kept in line with its snapshots."""

    def __init__(self, hass: HomeAssistant, entry: "IngestorConfigEntry") -> None:
        """Track the issues of ``entry``."""
        self._hass = hass
        self._entry_id = entry.entry_id
        self._title = entry.title
        self._outage_after = float(
            entry.options.get(CONF_OUTAGE_REPAIR_AFTER, DEFAULT_OUTAGE_REPAIR_AFTER)
        )
        self._raised: dict[str, _Raised] = {}
        #: Quarantined points deleted by the dead-letter cap, recently.
        self._drops = RecentDrops()

    @property
    def raised(self) -> list[str]:
        """Keys of the issues raised now (diagnostics)."""
        return sorted(self._raised)

    @callback
    def sync(self, snapshot: IngestorSnapshot) -> None:
        """Raise the issues ``snapshot`` calls for and delete the ones that are gone."""
        wanted = _wanted(snapshot, self._title, self._outage_after, self._drops)
        raised = self._raised
        now = time.monotonic()
        for key, issue in wanted.items():
            previous = raised.get(key)
            if previous is not None and (
                previous.placeholders == issue.placeholders
                or now - previous.at < PLACEHOLDER_REFRESH
            ):
                continue
            ir.async_create_issue(
                self._hass,
                DOMAIN,
                issue_id(key, self._entry_id),
                is_fixable=issue.fixable,
                is_persistent=False,
                severity=issue.severity,
                translation_key=key,
                translation_placeholders=issue.placeholders,
                data={"entry_id": self._entry_id},
            )
            raised[key] = _Raised(placeholders=issue.placeholders, at=now)
        for key in [key for key in raised if key not in wanted]:
            ir.async_delete_issue(self._hass, DOMAIN, issue_id(key, self._entry_id))
            del raised[key]

    @callback
    def clear(self) -> None:
        """Delete every issue of the entry (unload: issues describe a running pipeline)."""
        for key in ISSUES:
            ir.async_delete_issue(self._hass, DOMAIN, issue_id(key, self._entry_id))
        self._raised.clear()


class _EntryRepairFlow(RepairsFlow):
    """A confirm-then-act fix flow for one entry."""

    def __init__(self, entry_id: str) -> None:
        """Remember the entry the issue is about."""
        self._entry_id = entry_id

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> "RepairsFlowResult":
        """Go straight to the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> "RepairsFlowResult":
        """Ask, then fix."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        if user_input is not None:
            await self._async_fix(entry)
            return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm",
            data_schema=_CONFIRM_SCHEMA,
            description_placeholders={"entry_title": entry.title},
        )

    async def _async_fix(self, entry: "IngestorConfigEntry") -> None:
        raise NotImplementedError


class AuthFailedRepairFlow(_EntryRepairFlow):
    """Starts reauthentication of the entry."""

    @override
    async def _async_fix(self, entry: "IngestorConfigEntry") -> None:
        entry.async_start_reauth(self.hass)


class RequeueRepairFlow(_EntryRepairFlow):
    """Moves quarantined points back to the queue."""

    @override
    async def _async_fix(self, entry: "IngestorConfigEntry") -> None:
        # Through the action: it checks that the entry is loaded.
        await self.hass.services.async_call(
            DOMAIN,
            "requeue_dead_letters",
            {ATTR_CONFIG_ENTRY_ID: entry.entry_id},
            blocking=True,
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """Create the fix flow of a fixable issue."""
    entry_id = str((data or {}).get("entry_id", ""))
    if issue_id.startswith(ISSUE_AUTH_FAILED):
        return AuthFailedRepairFlow(entry_id)
    if issue_id.startswith(ISSUE_POINTS_QUARANTINED):
        return RequeueRepairFlow(entry_id)
    return ConfirmRepairFlow()
