"""Take over a setup of Home Assistant's built-in ``influxdb`` integration.

The built-in keeps its *connection* in its config entry and reads every *shipping
option* from the ``influxdb:`` block of configuration.yaml at each setup (HA's YAML
loader, then its own ``CONFIG_SCHEMA``). An import reads both the same way, maps
what HA Ingestor can express, and lists everything else with the reason, so
nothing is dropped silently. Neither the YAML nor the built-in entry is edited.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from homeassistant import config as conf_util
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.loader import async_get_integration
import voluptuous as vol
from yarl import URL

from . import destination
from .const import (
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_DEFAULT_MEASUREMENT,
    CONF_DOMAIN_OVERRIDES,
    CONF_ENTITY_OVERRIDES,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_GLOBS,
    CONF_FALLBACK_URLS,
    CONF_GLOB_OVERRIDES,
    CONF_IGNORE_ATTRIBUTES,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_GLOBS,
    CONF_INCLUDE_UNAVAILABLE,
    CONF_KIND,
    CONF_MEASUREMENT_STRATEGY,
    CONF_ORG,
    CONF_OVERRIDE_MEASUREMENT,
    CONF_PASSWORD,
    CONF_SSL_CA_CERT,
    CONF_STATIC_TAGS,
    CONF_TAGS_ATTRIBUTES,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DestinationKind,
)
from .core.encoder import MeasurementStrategy
from .filters import EntityMatcher

BUILTIN_DOMAIN: Final = "influxdb"

# The built-in's keys (homeassistant/components/influxdb/const.py and homeassistant.const),
# spelled out: importing its package also imports its InfluxDB client library.
_API_VERSION: Final = "api_version"
_HOST: Final = "host"
_PORT: Final = "port"
_SSL: Final = "ssl"
_PATH: Final = "path"
_ORGANIZATION: Final = "organization"
_INCLUDE: Final = "include"
_EXCLUDE: Final = "exclude"
_TAGS: Final = "tags"
_MEASUREMENT_ATTR: Final = "measurement_attr"
_PRECISION: Final = "precision"
_MAX_RETRIES: Final = "max_retries"
# The built-in's per entity / domain / glob overrides and ours (same inner keys).
_COMPONENT_CONFIG: Final = (
    ("component_config", CONF_ENTITY_OVERRIDES),
    ("component_config_domain", CONF_DOMAIN_OVERRIDES),
    ("component_config_glob", CONF_GLOB_OVERRIDES),
)
# Defaults the built-in applies to an entry's data (its const.py).
_DEFAULT_HOST: Final = "localhost"
_DEFAULT_PORT: Final = 8086
_DEFAULT_DATABASE: Final = "home_assistant"
_DEFAULT_BUCKET: Final = "Home Assistant"

_FULL_PRECISION: Final = frozenset({"us", "ns"})
# The built-in's measurement_attr values and ours (through the enum: our values may be renamed).
_STRATEGIES: Final = {
    "unit_of_measurement": MeasurementStrategy.UNIT_OF_MEASUREMENT,
    "domain__device_class": MeasurementStrategy.DOMAIN_DEVICE_CLASS,
    "entity_id": MeasurementStrategy.ENTITY_ID,
}
# (our option, the built-in's include/exclude block, its key in that block)
_FILTERS: Final = (
    (CONF_INCLUDE_ENTITIES, _INCLUDE, "entities"),
    (CONF_INCLUDE_DOMAINS, _INCLUDE, "domains"),
    (CONF_INCLUDE_GLOBS, _INCLUDE, "entity_globs"),
    (CONF_EXCLUDE_ENTITIES, _EXCLUDE, "entities"),
    (CONF_EXCLUDE_DOMAINS, _EXCLUDE, "domains"),
    (CONF_EXCLUDE_GLOBS, _EXCLUDE, "entity_globs"),
)

REASON_MAX_RETRIES: Final = (
    "superseded: HA Ingestor keeps every event on disk until the database confirms it"
)
REASON_PRECISION: Final = (
    "HA Ingestor keeps each state's own time to the microsecond (a coarser precision merges"
    " changes into one point): the same change lands slightly later than the built-in's"
)
REASON_TAG: Final = (
    "HA Ingestor writes no name starting with '_' (InfluxDB 2 reserves them); the built-in"
    " never wrote an empty tag"
)
REASON_TAG_AND_IGNORED: Final = "also in tags_attributes: it stays a tag, as with the built-in"
REASON_INCLUDED: Final = "also included: it stays shipped, as with the built-in"
REASON_YAML: Final = "no shipping option imported; HA Ingestor's defaults apply"
NOTHING_LEFT: Final = "- nothing: every setting is taken over"
REASON_MEASUREMENT_ATTR: Final = "unknown measurement_attr; the unit of measurement is used"


class BuiltinConnectionError(ValueError):
    """The built-in entry's connection data cannot be turned into a destination."""


@dataclass(frozen=True, slots=True)
class NotMapped:
    """One built-in setting HA Ingestor does not take over, and why."""

    key: str
    value: str
    reason: str

    def __str__(self) -> str:
        """One list line for the confirm step."""
        return f"- {self.key}: {self.value} ({self.reason})"


@dataclass(kw_only=True, slots=True)
class ImportPlan:
    """What an import creates, and what it leaves behind."""

    source: ConfigEntry[Any]
    data: dict[str, Any]
    options: dict[str, Any]
    not_mapped: list[NotMapped] = field(default_factory=list)
    #: Why the YAML options could not be read (the connection is still imported).
    yaml_error: str | None = None


def builtin_entry(hass: HomeAssistant) -> ConfigEntry[Any] | None:
    """Return the built-in's config entry (it allows one), if the user has set it up."""
    entries = hass.config_entries.async_entries(BUILTIN_DOMAIN, include_ignore=False)
    return entries[0] if entries else None


def connection_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Our entry data from the built-in entry's data, resolved as its client does.

    v1 entries hold host/port/ssl/path (the client defaults to localhost:8086 and
    http); v2 entries hold a URL. Raises :class:`BuiltinConnectionError`.
    """
    verify_ssl = bool(data.get(CONF_VERIFY_SSL, True))
    out: dict[str, Any]
    try:
        if str(data.get(_API_VERSION, "1")) == "2":
            out = {
                CONF_KIND: DestinationKind.INFLUXDB_V2.value,
                CONF_URL: str(data[CONF_URL]),
                CONF_ORG: str(data[_ORGANIZATION]),
                CONF_BUCKET: str(data.get(CONF_BUCKET) or _DEFAULT_BUCKET),
                CONF_TOKEN: str(data[CONF_TOKEN]),
            }
        else:
            path = str(data.get(_PATH) or "").strip("/")
            url = URL.build(
                scheme="https" if data.get(_SSL) else "http",
                host=str(data.get(_HOST) or _DEFAULT_HOST),
                port=int(data.get(_PORT) or _DEFAULT_PORT),
                path=f"/{path}" if path else "",
            )
            out = {
                CONF_KIND: DestinationKind.INFLUXDB_V1.value,
                CONF_URL: str(url),
                CONF_DATABASE: str(data.get(CONF_DATABASE) or _DEFAULT_DATABASE),
            }
            if username := data.get(CONF_USERNAME):
                out[CONF_USERNAME] = str(username)
                if password := data.get(CONF_PASSWORD):
                    out[CONF_PASSWORD] = str(password)
        out[CONF_URL] = destination.normalize_url(out[CONF_URL])
    except KeyError as err:
        raise BuiltinConnectionError(f"{err.args[0]} is missing") from err
    except (TypeError, ValueError) as err:
        # No value in the reason: the URL of a v2 entry may carry credentials.
        raise BuiltinConnectionError("invalid URL, host, port or path") from err
    out[CONF_VERIFY_SSL] = verify_ssl
    # The built-in's 1.x client only reads the CA file when verification is on.
    if verify_ssl and (ca := data.get(CONF_SSL_CA_CERT)):
        out[CONF_SSL_CA_CERT] = str(ca)
    out[CONF_FALLBACK_URLS] = []
    return out


async def async_builtin_yaml(hass: HomeAssistant) -> tuple[dict[str, Any], str | None]:
    """Return the ``influxdb:`` block as the built-in sees it at setup, or why it cannot be read.

    Returns ``({}, None)`` when there is no block (the built-in then ships with
    its defaults).
    """
    try:
        config = await conf_util.async_hass_config_yaml(hass)
    except (HomeAssistantError, OSError) as err:
        # HA's own message (as in its log), on one line: parser error, file, line, column.
        return {}, "configuration.yaml cannot be read: " + " ".join(str(err).split())
    if BUILTIN_DOMAIN not in config:
        return {}, None
    try:
        integration = await async_get_integration(hass, BUILTIN_DOMAIN)
        component = await integration.async_get_component()
    except ImportError as err:
        return {}, f"the built-in integration cannot be loaded: {err}"
    try:
        # Its schema checks that a CA file exists: disk access, so off the event loop.
        validated = await hass.async_add_executor_job(component.CONFIG_SCHEMA, config)
    except vol.Invalid as err:
        # str(Invalid) names the path, never the offending value (it may be a secret).
        return {}, f"the influxdb: block is invalid: {err}"
    return dict(validated[BUILTIN_DOMAIN]), None


def options_from_yaml(conf: Mapping[str, Any]) -> tuple[dict[str, Any], list[NotMapped]]:
    """Our options (shaped as the options flow stores them) from a validated YAML block."""
    options: dict[str, Any] = {}
    not_mapped: list[NotMapped] = []
    for ours, block, key in _FILTERS:
        if values := [str(value) for value in (conf.get(block) or {}).get(key) or ()]:
            options[ours] = values
    # The built-in's filter ships an entity listed in both; HA Ingestor's excludes win.
    if both := set(options.get(CONF_INCLUDE_ENTITIES, ())) & set(
        options.get(CONF_EXCLUDE_ENTITIES, ())
    ):
        not_mapped.extend(
            NotMapped(f"{_EXCLUDE}.entities", entity_id, REASON_INCLUDED)
            for entity_id in sorted(both)
        )
        if not (excluded := [e for e in options[CONF_EXCLUDE_ENTITIES] if e not in both]):
            del options[CONF_EXCLUDE_ENTITIES]
        else:
            options[CONF_EXCLUDE_ENTITIES] = excluded

    attr = str(conf.get(_MEASUREMENT_ATTR) or MeasurementStrategy.UNIT_OF_MEASUREMENT.value)
    strategy = _STRATEGIES.get(attr)
    if strategy is None:
        not_mapped.append(NotMapped(_MEASUREMENT_ATTR, attr, REASON_MEASUREMENT_ATTR))
        strategy = MeasurementStrategy.UNIT_OF_MEASUREMENT
    # The built-in lets a non-empty override win over measurement_attr.
    if override := conf.get(CONF_OVERRIDE_MEASUREMENT):
        strategy = MeasurementStrategy.OVERRIDE
        options[CONF_OVERRIDE_MEASUREMENT] = str(override)
    options[CONF_MEASUREMENT_STRATEGY] = strategy.value
    if default := conf.get(CONF_DEFAULT_MEASUREMENT):
        options[CONF_DEFAULT_MEASUREMENT] = str(default)

    tags: dict[str, str] = {}
    for key, value in (conf.get(_TAGS) or {}).items():
        if not key or str(key).startswith("_") or not value:
            not_mapped.append(NotMapped(f"{_TAGS}.{key}", repr(value), REASON_TAG))
        else:
            tags[str(key)] = str(value)
    if tags:
        options[CONF_STATIC_TAGS] = tags
    tags_attributes = [str(name) for name in conf.get(CONF_TAGS_ATTRIBUTES) or ()]
    if tags_attributes:
        options[CONF_TAGS_ATTRIBUTES] = tags_attributes
    ignore_attributes: list[str] = []
    for name in conf.get(CONF_IGNORE_ATTRIBUTES) or ():
        if name in tags_attributes:
            not_mapped.append(NotMapped(CONF_IGNORE_ATTRIBUTES, name, REASON_TAG_AND_IGNORED))
        else:
            ignore_attributes.append(str(name))
    if ignore_attributes:
        options[CONF_IGNORE_ATTRIBUTES] = ignore_attributes
    # The built-in never writes unknown / unavailable / empty states.
    options[CONF_INCLUDE_UNAVAILABLE] = False

    # "us" and "ns" store the same timestamps as HA Ingestor (states have microseconds).
    if (precision := conf.get(_PRECISION)) and precision not in _FULL_PRECISION:
        not_mapped.append(NotMapped(_PRECISION, str(precision), REASON_PRECISION))
    if retries := conf.get(_MAX_RETRIES):
        not_mapped.append(NotMapped(_MAX_RETRIES, str(retries), REASON_MAX_RETRIES))
    for theirs, ours in _COMPONENT_CONFIG:
        overrides: dict[str, dict[str, Any]] = {}
        for target, settings in (conf.get(theirs) or {}).items():
            setting: dict[str, Any] = {}
            if (measurement := settings.get(CONF_OVERRIDE_MEASUREMENT)) is not None:
                setting[CONF_OVERRIDE_MEASUREMENT] = str(measurement)
            if (ignored := settings.get(CONF_IGNORE_ATTRIBUTES)) is not None:
                setting[CONF_IGNORE_ATTRIBUTES] = [str(name) for name in ignored]
            overrides[str(target)] = setting
        if overrides:
            options[ours] = overrides
    return options, not_mapped


async def async_plan_import(hass: HomeAssistant, source: ConfigEntry[Any]) -> ImportPlan:
    """Read the built-in's entry and YAML and map them (raises BuiltinConnectionError)."""
    data = connection_data(source.data)
    conf, yaml_error = await async_builtin_yaml(hass)
    options, not_mapped = options_from_yaml(conf)
    return ImportPlan(
        source=source, data=data, options=options, not_mapped=not_mapped, yaml_error=yaml_error
    )


def count_matched(hass: HomeAssistant, options: Mapping[str, Any]) -> tuple[int, int]:
    """(entities the imported filters ship now, entities with a state now)."""
    matcher = EntityMatcher(hass, options)
    entity_ids = hass.states.async_entity_ids()
    return sum(1 for entity_id in entity_ids if matcher(entity_id)), len(entity_ids)


def describe_options(options: Mapping[str, Any]) -> str:
    """Render the imported options as list lines for the confirm step."""
    lines: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            text = "; ".join(f"{name}={_describe(item)}" for name, item in value.items())
        elif isinstance(value, list):
            text = ", ".join(value)
        else:
            text = str(value)
        lines.append(f"- {key}: {text}")
    return "\n".join(lines)


def _describe(value: Any) -> str:
    """Render an option value inside a list line (overrides are nested mappings)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def describe_not_mapped(plan: ImportPlan) -> str:
    """Render what the import leaves behind as list lines for the confirm step."""
    items = list(plan.not_mapped)
    if plan.yaml_error is not None:
        items.insert(0, NotMapped("influxdb: (configuration.yaml)", plan.yaml_error, REASON_YAML))
    return "\n".join(str(item) for item in items) if items else NOTHING_LEFT
