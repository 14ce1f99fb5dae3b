"""Backfill: replay Home Assistant's recorded history through the pipeline.

History is read from the recorder in time windows and entity batches on the
recorder's executor, then captured and flushed like live events. Points keep
their original timestamps, so replaying a window that was already shipped
overwrites the same points instead of duplicating them.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.components.recorder import history
from homeassistant.core import HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .core.pipeline import Pipeline
from .snapshot import BackfillSnapshot

if TYPE_CHECKING:
    # Type only: the runtime imports this module.
    from .runtime import IngestorConfigEntry

#: Recorder query window; small enough that one chunk never holds the executor long.
WINDOW = timedelta(hours=1)
#: Entities per recorder query.
ENTITY_BATCH = 50
#: States handed to the pipeline before yielding to live events.
FEED_CHUNK = 2000
#: Oldest history a backfill may start at, in days (the recorder's retention if
#: shorter): with ``end`` clamped to now, at most a year of hourly windows.
MAX_DAYS = 365


class BackfillRunningError(Exception):
    """A backfill is already running for this entry."""


class BackfillRangeError(ValueError):
    """A backfill range that cannot run; ``key`` and ``placeholders`` translate it."""

    def __init__(self, key: str, placeholders: dict[str, str] | None = None) -> None:
        """Describe the problem by its translation key."""
        super().__init__(key)
        self.key = key
        self.placeholders = placeholders or {}


def bounded_range(
    hass: HomeAssistant, start: datetime, end: datetime | None
) -> tuple[datetime, datetime]:
    """Clamp ``end`` to now; refuse empty ranges and starts older than the recorder keeps.

    Nothing older than the recorder keeps can be replayed, and one call must not
    loop over hundreds of thousands of windows on the recorder's executor: the
    range is at most :data:`MAX_DAYS` of :data:`WINDOW` windows.
    Raises :class:`BackfillRangeError`.
    """
    if "recorder" not in hass.config.components:
        raise BackfillRangeError("backfill_no_recorder")
    now = dt_util.utcnow()
    end = now if end is None else min(end, now)
    if start >= end:
        raise BackfillRangeError("backfill_invalid_range")
    days = min(MAX_DAYS, get_instance(hass).keep_days)
    oldest = now - timedelta(days=days)
    if start < oldest:
        raise BackfillRangeError(
            "backfill_too_old",
            {"days": str(days), "oldest": dt_util.as_local(oldest).isoformat(timespec="minutes")},
        )
    return start, end


@dataclass(kw_only=True)
class BackfillProgress:
    """What a backfill job did so far (shown in entity attributes and diagnostics)."""

    start: datetime
    end: datetime
    status: str = "running"  # running, done, cancelled, failed
    position: datetime | None = None
    states: int = 0
    entities: int = 0
    error: str | None = None
    started_at: datetime = field(default_factory=dt_util.utcnow)
    finished_at: datetime | None = None

    @property
    def percent(self) -> float:
        """Share of the time range already read."""
        total = (self.end - self.start).total_seconds()
        if self.status == "done" or total <= 0:
            return 100.0
        if self.position is None:
            return 0.0
        return round(min(100.0, (self.position - self.start).total_seconds() / total * 100), 1)

    def snapshot(self) -> BackfillSnapshot:
        """Return what entities show of it."""
        return BackfillSnapshot(
            status=self.status, percent=self.percent, position=self.position, states=self.states
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "status": self.status,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "position": self.position.isoformat() if self.position else None,
            "percent": self.percent,
            "states": self.states,
            "entities": self.entities,
            "error": self.error,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def candidate_entities(hass: HomeAssistant, matcher: Callable[[str], bool]) -> list[str]:
    """Entities the entry ships: current states plus registered entities, filtered."""
    ids = set(hass.states.async_entity_ids()) | set(er.async_get(hass).entities)
    return sorted(entity_id for entity_id in ids if matcher(entity_id))


def _read_window(
    hass: HomeAssistant, start: datetime, end: datetime, entity_ids: list[str]
) -> list[State]:
    """Every recorded state change of ``entity_ids`` in [start, end) (recorder thread)."""
    # The recorder's lower bound is exclusive and its upper bound inclusive;
    # query a microsecond early and keep [start, end) so a state on a window
    # boundary is read exactly once.
    result = history.get_significant_states(
        hass,
        start - timedelta(microseconds=1),
        end,
        entity_ids,
        include_start_time_state=False,
        significant_changes_only=False,
    )
    start_ts, end_ts = start.timestamp(), end.timestamp()
    return [
        s
        for rows in result.values()
        for s in rows
        if isinstance(s, State) and start_ts <= s.last_updated_timestamp < end_ts
    ]


class BackfillRunner:
    """Runs one entry's backfills: by action, or to replay what a full spool dropped."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: "IngestorConfigEntry",
        pipeline: Pipeline,
        matcher: Callable[[str], bool],
        on_progress: Callable[[], None],
    ) -> None:
        """Feed ``pipeline`` with the history of what ``matcher`` selects."""
        self._hass = hass
        self._entry = entry
        self._pipeline = pipeline
        self._matcher = matcher
        self._on_progress = on_progress
        self._task: asyncio.Task[None] | None = None
        #: Gaps whose replay started since the entry was loaded: one try per load.
        self._tried: set[tuple[int, int]] = set()
        #: The latest backfill (running or finished), if any.
        self.progress: BackfillProgress | None = None

    @property
    def running(self) -> bool:
        """Whether a backfill is running."""
        return self._task is not None and not self._task.done()

    @callback
    def async_start(
        self, start: datetime, end: datetime, entity_ids: list[str] | None
    ) -> BackfillProgress:
        """Replay recorded history in [start, end) in the background."""
        return self._start(start, end, entity_ids, [])

    def _start(
        self,
        start: datetime,
        end: datetime,
        entity_ids: list[str] | None,
        gaps: list[tuple[int, int]],
    ) -> BackfillProgress:
        if self.running:
            raise BackfillRunningError
        ids = (
            sorted(e for e in entity_ids if self._matcher(e))
            if entity_ids
            else candidate_entities(self._hass, self._matcher)
        )
        progress = BackfillProgress(start=start, end=end)
        self.progress = progress
        self._task = self._entry.async_create_background_task(
            self._hass,
            self._run(progress, ids, gaps),
            name=f"{DOMAIN} backfill {self._entry.title}",
        )
        return progress

    async def async_cancel(self) -> bool:
        """Cancel a running backfill; True when one was running."""
        task, self._task = self._task, None
        if task is None or task.done():
            return False
        task.cancel()
        # Not "await task" under suppress(CancelledError): that would also swallow a
        # cancellation of the caller (an unload cancelled meanwhile).
        await asyncio.wait([task])
        if not task.cancelled():
            task.result()  # it ended before the cancel landed: its own error, if any
        return True

    @callback
    def async_replay_gaps(self) -> None:
        """Replay what a full spool dropped, once the backlog has room again.

        The spool forgets the gaps only once their replay is done: a replay
        cancelled (unload, Home Assistant's stop, the action) or failed leaves
        them for the next load, which replays them again (points keep their
        timestamps, so nothing is duplicated).
        """
        pipeline = self._pipeline
        gaps = [gap for gap in pipeline.gaps if gap not in self._tried]
        if (
            not gaps
            or self.running
            or "recorder" not in self._hass.config.components
            or pipeline.room_for() == 0
        ):
            return
        self._tried.update(gaps)
        start = dt_util.utc_from_timestamp(min(g[0] for g in gaps) / 1e9)
        # The end bound is exclusive: one microsecond past the last dropped point.
        end = dt_util.utc_from_timestamp(max(g[1] for g in gaps) / 1e9 + 1e-6)
        LOGGER.info(
            "%s: backfilling %s to %s, dropped by a full spool", self._entry.title, start, end
        )
        self._start(start, end, None, gaps)

    async def _run(
        self, progress: BackfillProgress, entity_ids: list[str], gaps: list[tuple[int, int]]
    ) -> None:
        """Read the range window by window and feed it to the pipeline; forget ``gaps`` when done."""
        hass, pipeline = self._hass, self._pipeline
        recorder = get_instance(hass)
        progress.entities = len(entity_ids)
        window_start = progress.start
        try:
            while window_start < progress.end:
                window_end = min(window_start + WINDOW, progress.end)
                for i in range(0, len(entity_ids), ENTITY_BATCH):
                    batch = entity_ids[i : i + ENTITY_BATCH]
                    states = await recorder.async_add_executor_job(
                        _read_window, hass, window_start, window_end, batch
                    )
                    j = 0
                    while j < len(states):
                        # Backpressure: never push the spool past half full, so a
                        # backfill cannot make the spool drop live (or its own) events.
                        size = min(FEED_CHUNK, pipeline.room_for())
                        if size == 0:
                            await pipeline.wait_for_change()
                            continue
                        chunk = states[j : j + size]
                        j += size
                        pipeline.capture_many(chunk)
                        progress.states += len(chunk)
                        await pipeline.flush()
                        await asyncio.sleep(0)
                progress.position = window_end
                self._on_progress()
                window_start = window_end
        except asyncio.CancelledError:
            progress.status = "cancelled"
            raise
        except Exception as err:  # noqa: BLE001 - report any recorder failure as the job's
            progress.status = "failed"
            progress.error = str(err)
            LOGGER.exception("Backfill of %s failed", self._entry.title)
        else:
            progress.status = "done"
            if gaps:
                pipeline.gaps = [gap for gap in pipeline.gaps if gap not in gaps]
            LOGGER.info(
                "Backfill of %s done: %d states from %d entities",
                self._entry.title,
                progress.states,
                progress.entities,
            )
        finally:
            progress.finished_at = dt_util.utcnow()
            self._on_progress()
