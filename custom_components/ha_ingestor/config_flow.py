"""Config flow for HA Ingestor: destinations (user, reauth, reconfigure) and options."""

from collections.abc import Mapping
import re
from typing import TYPE_CHECKING, Any, Final, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryDisabler,
    ConfigError,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    AreaSelector,
    AreaSelectorConfig,
    BooleanSelector,
    DeviceSelector,
    DeviceSelectorConfig,
    EntitySelector,
    EntitySelectorConfig,
    LabelSelector,
    LabelSelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from . import destination, import_builtin
from .const import (
    CONF_AUTO_BACKFILL,
    CONF_BACKLOG_TOLERANCE,
    CONF_BATCH_BYTES,
    CONF_BATCH_SIZE,
    CONF_COMPRESS,
    CONF_CONTEXT_ENTITIES,
    CONF_DEADBAND,
    CONF_DEFAULT_MEASUREMENT,
    CONF_DOMAIN_OVERRIDES,
    CONF_ENTITY_OVERRIDES,
    CONF_EVENT_TYPES,
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_DEVICES,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_GLOBS,
    CONF_EXCLUDE_LABELS,
    CONF_FALLBACK_URLS,
    CONF_FLUSH_INTERVAL,
    CONF_GLOB_OVERRIDES,
    CONF_HEARTBEAT_MINUTES,
    CONF_IDLE_TOLERANCE,
    CONF_IGNORE_ATTRIBUTES,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_DEVICES,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_GLOBS,
    CONF_INCLUDE_LABELS,
    CONF_INCLUDE_UNAVAILABLE,
    CONF_KIND,
    CONF_MEASUREMENT_STRATEGY,
    CONF_MEMORY_MAX_MB,
    CONF_OUTAGE_REPAIR_AFTER,
    CONF_OVERFLOW_POLICY,
    CONF_OVERRIDE_MEASUREMENT,
    CONF_PASSWORD,
    CONF_PRESET,
    CONF_REGISTRY_SYNC,
    CONF_REGISTRY_TAGS,
    CONF_RETENTION_POLICY,
    CONF_RETRY_OVERRIDES,
    CONF_SPOOL_MAX_AGE_DAYS,
    CONF_SPOOL_MAX_MB,
    CONF_SSL_CA_CERT,
    CONF_STATIC_TAGS,
    CONF_TAGS_ATTRIBUTES,
    CONF_THROTTLE,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DEFAULT_BACKLOG_TOLERANCE,
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_IDLE_TOLERANCE,
    DEFAULT_MEMORY_MAX_MB,
    DEFAULT_OUTAGE_REPAIR_AFTER,
    DEFAULT_SPOOL_MAX_MB,
    DOMAIN,
    LOGGER,
    REGISTRY_TAG_KINDS,
    DestinationKind,
    kind_info,
)
from .core.encoder import MeasurementStrategy
from .core.errors import DeliveryError, ErrorCategory
from .core.pipeline import hours_held
from .core.retry import (
    DEFAULT_PRESET,
    OVERRIDE_KEYS,
    OVERRIDE_SPECS,
    PRESETS,
    PolicyError,
    build_policy,
)
from .core.sinks import Missing, NotFoundError
from .core.spool import OverflowPolicy

if TYPE_CHECKING:
    from .runtime import IngestorConfigEntry

# Home Assistant installs probatio under the voluptuous name (see services.py): the
# runtime schema type is right either way, the static types differ, hence Any.
type Schema = Any

# Form-only field of the retry step: go on to the parameter form.
CONF_CUSTOMIZE: Final = "customize"
# Form-only field of the import confirm step: disable the built-in entry.
CONF_DISABLE_BUILTIN: Final = "disable_builtin"
# Menu option of the user step, offered while a built-in influxdb entry exists.
IMPORT_BUILTIN: Final = "import_builtin"

MIN_BATCH_BYTES: Final = 64 * 1024  # one point may be up to ~16 KiB of strings plus tags
MAX_BATCH_BYTES: Final = 64 * 1024 * 1024
MIN_FLUSH_INTERVAL: Final = 0.1
MAX_FLUSH_INTERVAL: Final = 60.0
MAX_THROTTLE: Final = 86_400
MAX_HEARTBEAT_MINUTES: Final = 1440
MIB: Final = 1024 * 1024
# HA caps event types at 64 characters (MAX_LENGTH_EVENT_EVENT_TYPE).
MAX_EVENT_TYPE_LENGTH: Final = 64
# state_changed is always captured; "*" would ingest every event, including our own.
RESERVED_EVENT_TYPES: Final = frozenset({"state_changed", "*"})

_DOMAIN_RE: Final = re.compile(r"^[a-z0-9_]+$")
_EVENT_TYPE_RE: Final = re.compile(r"^\S+$")

# Delivery error categories that only mean "could not talk to it right now".
_CONNECT_CATEGORIES: Final = frozenset(
    {
        ErrorCategory.NETWORK,
        ErrorCategory.TIMEOUT,
        ErrorCategory.DNS,
        ErrorCategory.SERVER,
        ErrorCategory.RATE_LIMITED,
    }
)

_TEXT: Final = TextSelector()
_URL: Final = TextSelector(TextSelectorConfig(type=TextSelectorType.URL, autocomplete="url"))
_URLS: Final = TextSelector(TextSelectorConfig(type=TextSelectorType.URL, multiple=True))
_TEXTS: Final = TextSelector(TextSelectorConfig(multiple=True))
_SECRET: Final = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)
_USER: Final = TextSelector(TextSelectorConfig(autocomplete="username"))

# Option keys written by each options step (stale values of a step are replaced).
RETRY_KEYS: Final = (CONF_PRESET, CONF_RETRY_OVERRIDES)
PIPELINE_KEYS: Final = (
    CONF_BATCH_SIZE,
    CONF_BATCH_BYTES,
    CONF_FLUSH_INTERVAL,
    CONF_SPOOL_MAX_MB,
    CONF_SPOOL_MAX_AGE_DAYS,
    CONF_MEMORY_MAX_MB,
    CONF_OVERFLOW_POLICY,
    CONF_BACKLOG_TOLERANCE,
    CONF_IDLE_TOLERANCE,
    CONF_OUTAGE_REPAIR_AFTER,
    CONF_AUTO_BACKFILL,
    CONF_COMPRESS,
)
# (include key, exclude key) pairs of the filters step.
FILTER_PAIRS: Final = (
    (CONF_INCLUDE_ENTITIES, CONF_EXCLUDE_ENTITIES),
    (CONF_INCLUDE_DEVICES, CONF_EXCLUDE_DEVICES),
    (CONF_INCLUDE_AREAS, CONF_EXCLUDE_AREAS),
    (CONF_INCLUDE_LABELS, CONF_EXCLUDE_LABELS),
    (CONF_INCLUDE_DOMAINS, CONF_EXCLUDE_DOMAINS),
    (CONF_INCLUDE_GLOBS, CONF_EXCLUDE_GLOBS),
)
FILTER_KEYS: Final = tuple(key for pair in FILTER_PAIRS for key in pair)
SCHEMA_KEYS: Final = (
    CONF_MEASUREMENT_STRATEGY,
    CONF_DEFAULT_MEASUREMENT,
    CONF_OVERRIDE_MEASUREMENT,
    CONF_STATIC_TAGS,
    CONF_TAGS_ATTRIBUTES,
    CONF_IGNORE_ATTRIBUTES,
    CONF_INCLUDE_UNAVAILABLE,
    CONF_EVENT_TYPES,
    CONF_CONTEXT_ENTITIES,
    CONF_REGISTRY_SYNC,
)


# --- connection ------------------------------------------------------------------------


def _connection_schema(kind: DestinationKind, *, reconfigure: bool = False) -> Schema:
    """Fields describing a destination of ``kind``.

    When reconfiguring, secrets are optional: an empty field keeps the stored one,
    so secrets never have to be sent back to the browser as suggested values.
    """
    info = kind_info(kind)
    fields: dict[Any, Any] = {vol.Required(CONF_URL): _URL}
    for key in info.fields:
        secret = key in info.secrets
        required = key in info.required and not (secret and reconfigure)
        marker = vol.Required(key) if required else vol.Optional(key)
        fields[marker] = _SECRET if secret else _USER if key == CONF_USERNAME else _TEXT
    fields |= {
        vol.Required(CONF_VERIFY_SSL, default=True): BooleanSelector(),
        vol.Optional(CONF_SSL_CA_CERT): _TEXT,
        vol.Optional(CONF_FALLBACK_URLS): _URLS,
    }
    return vol.Schema(fields)


def _credentials_schema(kind: DestinationKind) -> Schema:
    """Fields asked for on reauthentication."""
    info = kind_info(kind)
    return vol.Schema(
        {
            (vol.Required(key) if key in info.required else vol.Optional(key)): (
                _SECRET if key in info.secrets else _USER
            )
            for key in info.credentials
        }
    )


def _clean_text(value: Any) -> str | None:
    """Return the stripped string, or None for an empty or missing field."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _clean_list(values: Any) -> list[str]:
    """Return the stripped, de-duplicated, non-empty strings in input order."""
    out: list[str] = []
    for value in values or ():
        if (text := _clean_text(value)) and text not in out:
            out.append(text)
    return out


def _build_data(
    kind: DestinationKind, user_input: Mapping[str, Any], previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Entry data from form input: cleaned, empty optionals dropped.

    ``previous`` (reconfigure) supplies the secrets left empty in the form.
    """
    data: dict[str, Any] = {CONF_KIND: kind.value}
    info = kind_info(kind)
    for key in (CONF_URL, *info.fields):
        if (value := _clean_text(user_input.get(key))) is not None:
            data[key] = value
    if previous is not None:
        for key in info.secrets:
            if key not in data and key in previous:
                data[key] = previous[key]
    _drop_lone_password(data)
    data[CONF_VERIFY_SSL] = bool(user_input.get(CONF_VERIFY_SSL, True))
    if ca := _clean_text(user_input.get(CONF_SSL_CA_CERT)):
        data[CONF_SSL_CA_CERT] = ca
    data[CONF_FALLBACK_URLS] = _clean_list(user_input.get(CONF_FALLBACK_URLS))
    return data


def _drop_lone_password(data: dict[str, Any]) -> None:
    """Drop a password kept without a user: it means nothing to the server."""
    if CONF_USERNAME not in data:
        data.pop(CONF_PASSWORD, None)


def _delivery_error(kind: DestinationKind, err: DeliveryError) -> tuple[str, str]:
    """Map a failed destination check to (field, translation key)."""
    category = err.category
    if category in _CONNECT_CATEGORIES:
        return "base", "cannot_connect"
    if category is ErrorCategory.AUTH:
        return "base", "invalid_auth"
    if category is ErrorCategory.TLS:
        return "base", "ssl_error"
    if category is ErrorCategory.REJECTED:
        return "base", "rejected"
    if category is ErrorCategory.NOT_FOUND:
        missing = err.missing if isinstance(err, NotFoundError) else Missing.URL
        if missing is Missing.RETENTION_POLICY:
            return CONF_RETENTION_POLICY, "retention_policy_not_found"
        if (name := kind_info(kind).name_field) is not None:
            # A JSON "not found" names the database/bucket; a bare 404 is a missing route.
            if missing is Missing.API:
                return "base", "wrong_api"
            if missing is Missing.DATABASE:
                return name, f"{name}_not_found"
        return "base", "not_found"
    # bad_data / too_large / storage cannot come from an empty probe: unexpected.
    return "base", "unknown"


class _ConnectionValidator:
    """Validates connection data and reports errors the way a form shows them."""

    def __init__(self, flow: ConfigFlow) -> None:
        """Validate on behalf of ``flow``."""
        self.flow = flow
        self.errors: dict[str, str] = {}
        self.placeholders: dict[str, str] = {}

    def check_urls(self, data: dict[str, Any]) -> None:
        """Normalize the URL and fallback URLs in place; record errors."""
        try:
            data[CONF_URL] = destination.normalize_url(data[CONF_URL])
        except destination.InvalidUrlError:
            self.errors[CONF_URL] = "invalid_url"
        fallbacks: list[str] = []
        for raw in data[CONF_FALLBACK_URLS]:
            try:
                url = destination.normalize_url(raw)
            except destination.InvalidUrlError:
                self.errors[CONF_FALLBACK_URLS] = "invalid_fallback_url"
                self.placeholders["fallback_url"] = raw
                break
            if url != data[CONF_URL] and url not in fallbacks:
                fallbacks.append(url)
        data[CONF_FALLBACK_URLS] = fallbacks

    async def async_check(self, data: Mapping[str, Any]) -> bool:
        """Load the CA file and probe the destination; False with errors set on failure."""
        hass = self.flow.hass
        if ca := data.get(CONF_SSL_CA_CERT):
            try:
                await destination.async_load_ca(hass, ca)
            except destination.CaCertError:
                self.errors[CONF_SSL_CA_CERT] = "invalid_ca_cert"
                return False
        kind = DestinationKind(data[CONF_KIND])
        try:
            await destination.async_check_destination(hass, data)
        except DeliveryError as err:
            # Sink messages carry no secrets by contract.
            LOGGER.debug("Check of %s failed: %s", destination.title_from_data(data), err)
            field, key = _delivery_error(kind, err)
            self.errors[field] = key
            if key == "unknown":
                LOGGER.error("Unexpected answer from %s: %s", data[CONF_URL], err)
        except Exception:  # noqa: BLE001 - any failure must become a form error
            LOGGER.exception("Unexpected error checking %s", destination.title_from_data(data))
            self.errors["base"] = "unknown"
        return not self.errors


class IngestorConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up, reauthenticate and reconfigure a destination."""

    VERSION = 2
    MINOR_VERSION = 1

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: "IngestorConfigEntry") -> "IngestorOptionsFlow":
        """Return the options flow handler."""
        return IngestorOptionsFlow()

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask which kind of destination to add, or to take over the built-in influxdb."""
        menu_options = [kind.value for kind in DestinationKind]
        if import_builtin.builtin_entry(self.hass) is not None:
            menu_options.insert(0, IMPORT_BUILTIN)
        return self.async_show_menu(step_id="user", menu_options=menu_options)

    async def async_step_influxdb_v2(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add an InfluxDB 2.x / 3.x / Cloud destination."""
        return await self._async_step_destination(DestinationKind.INFLUXDB_V2, user_input)

    async def async_step_influxdb_v1(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add an InfluxDB 1.x destination."""
        return await self._async_step_destination(DestinationKind.INFLUXDB_V1, user_input)

    async def async_step_data_api(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a data-api destination."""
        return await self._async_step_destination(DestinationKind.DATA_API, user_input)

    async def _async_step_destination(
        self, kind: DestinationKind, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Show, validate and create one destination of ``kind``."""
        validator = _ConnectionValidator(self)
        if user_input is not None:
            data = _build_data(kind, user_input)
            validator.check_urls(data)
            if not validator.errors:
                # Refuse a duplicate before touching the network.
                await self.async_set_unique_id(
                    destination.unique_id_from_data(data), raise_on_progress=False
                )
                self._abort_if_unique_id_configured()
                if await validator.async_check(data):
                    return self.async_create_entry(
                        title=destination.title_from_data(data), data=data
                    )
        return self.async_show_form(
            step_id=kind.value,
            data_schema=self.add_suggested_values_to_schema(
                _connection_schema(kind), _without_secrets(kind, user_input)
            ),
            errors=validator.errors,
            description_placeholders=validator.placeholders,
        )

    _import_plan: import_builtin.ImportPlan

    async def async_step_import_builtin(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Read the built-in influxdb integration's entry and YAML options."""
        source = import_builtin.builtin_entry(self.hass)
        if source is None:
            return self.async_abort(reason="builtin_not_found")
        try:
            plan = await import_builtin.async_plan_import(self.hass, source)
        except import_builtin.BuiltinConnectionError as err:
            return self.async_abort(
                reason="builtin_unusable", description_placeholders={"reason": str(err)}
            )
        # The same identity as a manual setup of this destination.
        await self.async_set_unique_id(
            destination.unique_id_from_data(plan.data), raise_on_progress=False
        )
        self._abort_if_unique_id_configured()
        self._import_plan = plan
        return await self.async_step_import_builtin_confirm()

    async def async_step_import_builtin_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show what will be shipped and what is left behind; test the connection, create."""
        plan = self._import_plan
        errors: dict[str, str] = {}
        if user_input is not None:
            validator = _ConnectionValidator(self)
            if await validator.async_check(plan.data):
                if user_input.get(CONF_DISABLE_BUILTIN):
                    await self._async_disable_builtin(plan.source)
                return self.async_create_entry(
                    title=destination.title_from_data(plan.data),
                    data=plan.data,
                    options=plan.options,
                )
            # The form has no connection fields: every error is about the whole import.
            errors["base"] = next(iter(validator.errors.values()))
        matched, total = import_builtin.count_matched(self.hass, plan.options)
        schema: Schema = vol.Schema({vol.Required(CONF_DISABLE_BUILTIN): BooleanSelector()})
        return self.async_show_form(
            step_id="import_builtin_confirm",
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or {CONF_DISABLE_BUILTIN: True}
            ),
            errors=errors,
            description_placeholders={
                "source": plan.source.title,
                "destination": destination.title_from_data(plan.data),
                "matched": str(matched),
                "total": str(total),
                "settings": import_builtin.describe_options(plan.options),
                "not_mapped": import_builtin.describe_not_mapped(plan),
            },
        )

    async def _async_disable_builtin(self, source: ConfigEntry[Any]) -> None:
        """Disable the built-in entry so each change is not written twice."""
        try:
            await self.hass.config_entries.async_set_disabled_by(
                source.entry_id, ConfigEntryDisabler.USER
            )
        except ConfigError as err:
            # Removed meanwhile, or not unloadable now (it stays disabled from the next start).
            LOGGER.warning(
                "Could not disable the built-in InfluxDB entry %s: %s", source.title, err
            )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start reauthentication after the destination rejected the credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for new credentials and test them."""
        entry = self._get_reauth_entry()
        kind = DestinationKind(entry.data[CONF_KIND])
        validator = _ConnectionValidator(self)
        if user_input is not None:
            data = {**entry.data}
            info = kind_info(kind)
            for key in info.credentials:
                value = _clean_text(user_input.get(key))
                if value is not None:
                    data[key] = value
                elif key in info.required:
                    data[key] = ""
                else:
                    data.pop(key, None)
            _drop_lone_password(data)
            if await validator.async_check(data):
                return self.async_update_reload_and_abort(entry, data=data)
        suggested = _without_secrets(kind, user_input) or {
            CONF_USERNAME: entry.data.get(CONF_USERNAME)
        }
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(_credentials_schema(kind), suggested),
            errors=validator.errors,
            description_placeholders={"name": entry.title, **validator.placeholders},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the URL, credentials, TLS settings or fallback URLs of a destination."""
        entry = self._get_reconfigure_entry()
        kind = DestinationKind(entry.data[CONF_KIND])
        validator = _ConnectionValidator(self)
        suggested: Mapping[str, Any] = _without_secrets(kind, entry.data) or {}
        if user_input is not None:
            suggested = _without_secrets(kind, user_input) or {}
            data = _build_data(kind, user_input, entry.data)
            validator.check_urls(data)
            if not validator.errors:
                unique_id = destination.unique_id_from_data(data)
                # The URL may change, so the identity may too; it must stay unique.
                if unique_id != entry.unique_id and any(
                    other.unique_id == unique_id
                    for other in self._async_current_entries(include_ignore=False)
                    if other.entry_id != entry.entry_id
                ):
                    return self.async_abort(reason="already_configured")
                if await validator.async_check(data):
                    title = entry.title
                    # Keep a title the user chose; follow the destination otherwise.
                    if title == destination.title_from_data(entry.data):
                        title = destination.title_from_data(data)
                    return self.async_update_reload_and_abort(
                        entry, unique_id=unique_id, title=title, data=data
                    )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _connection_schema(kind, reconfigure=True), suggested
            ),
            errors=validator.errors,
            description_placeholders={"name": entry.title, **validator.placeholders},
        )


def _without_secrets(
    kind: DestinationKind, user_input: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Values minus the kind's secrets: secrets are never sent back to the browser."""
    if user_input is None:
        return None
    return {key: value for key, value in user_input.items() if key not in kind_info(kind).secrets}


# --- options ---------------------------------------------------------------------------


def _number(
    minimum: float,
    maximum: float | None = None,
    *,
    step: float = 1,
    unit: str | None = None,
) -> NumberSelector:
    """Build a number selector shown as a box."""
    config = NumberSelectorConfig(mode=NumberSelectorMode.BOX, step=step, min=minimum)
    if maximum is not None:
        config["max"] = maximum
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


def _select(options: list[str], translation_key: str) -> SelectSelector:
    """Build a drop-down with translated options."""
    return SelectSelector(
        SelectSelectorConfig(
            options=options, translation_key=translation_key, mode=SelectSelectorMode.DROPDOWN
        )
    )


def _retry_parameters_schema() -> Schema:
    """One field per retry/breaker parameter, typed and bounded as the engine expects."""
    fields: dict[Any, Any] = {}
    for spec in OVERRIDE_SPECS:
        selector: Any
        if spec.type is bool:
            selector = BooleanSelector()
        elif spec.type is str:
            selector = _select(list(spec.choices or ()), spec.key)
        else:
            selector = _number(
                spec.minimum or 0,
                spec.maximum,
                step=1 if spec.type is int else 0.1,
                unit=spec.unit,
            )
        fields[vol.Optional(spec.key)] = selector
    return vol.Schema(fields)


def _pipeline_schema() -> Schema:
    """Batching, spool and health settings."""
    return vol.Schema(
        {
            vol.Required(CONF_BATCH_SIZE): _number(1, 100_000, unit="points"),
            # Bounds wider than valid so a too-small value gets an explanation.
            vol.Required(CONF_BATCH_BYTES): _number(1, MAX_BATCH_BYTES, unit="B"),
            vol.Required(CONF_FLUSH_INTERVAL): _number(0, step=0.1, unit="s"),
            vol.Required(CONF_SPOOL_MAX_MB): _number(1, 1_000_000, unit="MiB"),
            vol.Optional(CONF_SPOOL_MAX_AGE_DAYS): _number(1, 3650, unit="d"),
            vol.Optional(CONF_MEMORY_MAX_MB): _number(1, 4096, unit="MiB"),
            vol.Required(CONF_OVERFLOW_POLICY): _select(
                [policy.value for policy in OverflowPolicy], CONF_OVERFLOW_POLICY
            ),
            vol.Required(CONF_BACKLOG_TOLERANCE): _number(10, 7 * 86_400, unit="s"),
            vol.Required(CONF_IDLE_TOLERANCE): _number(0, 7 * 86_400, unit="s"),
            vol.Required(CONF_OUTAGE_REPAIR_AFTER): _number(60, 30 * 86_400, unit="s"),
            vol.Optional(CONF_AUTO_BACKFILL, default=False): BooleanSelector(),
            vol.Optional(CONF_COMPRESS, default=True): BooleanSelector(),
        }
    )


def _filters_schema() -> Schema:
    """Entity, device, area, label, domain and glob include/exclude lists."""
    return vol.Schema(
        {
            vol.Optional(CONF_INCLUDE_ENTITIES): EntitySelector(
                EntitySelectorConfig(multiple=True)
            ),
            vol.Optional(CONF_EXCLUDE_ENTITIES): EntitySelector(
                EntitySelectorConfig(multiple=True)
            ),
            vol.Optional(CONF_INCLUDE_DEVICES): DeviceSelector(DeviceSelectorConfig(multiple=True)),
            vol.Optional(CONF_EXCLUDE_DEVICES): DeviceSelector(DeviceSelectorConfig(multiple=True)),
            vol.Optional(CONF_INCLUDE_AREAS): AreaSelector(AreaSelectorConfig(multiple=True)),
            vol.Optional(CONF_EXCLUDE_AREAS): AreaSelector(AreaSelectorConfig(multiple=True)),
            vol.Optional(CONF_INCLUDE_LABELS): LabelSelector(LabelSelectorConfig(multiple=True)),
            vol.Optional(CONF_EXCLUDE_LABELS): LabelSelector(LabelSelectorConfig(multiple=True)),
            vol.Optional(CONF_INCLUDE_DOMAINS): _TEXTS,
            vol.Optional(CONF_EXCLUDE_DOMAINS): _TEXTS,
            vol.Optional(CONF_INCLUDE_GLOBS): _TEXTS,
            vol.Optional(CONF_EXCLUDE_GLOBS): _TEXTS,
        }
    )


def _schema_schema(kind: DestinationKind) -> Schema:
    """How events become points; line-protocol settings only where points are lines."""
    info = kind_info(kind)
    fields: dict[Any, Any] = {}
    if info.line_protocol:
        fields |= {
            vol.Required(CONF_MEASUREMENT_STRATEGY): _select(
                [strategy.value for strategy in MeasurementStrategy], CONF_MEASUREMENT_STRATEGY
            ),
            vol.Optional(CONF_DEFAULT_MEASUREMENT): _TEXT,
            vol.Optional(CONF_OVERRIDE_MEASUREMENT): _TEXT,
            vol.Optional(CONF_STATIC_TAGS): _TEXTS,
            vol.Optional(CONF_TAGS_ATTRIBUTES): _TEXTS,
            vol.Optional(CONF_IGNORE_ATTRIBUTES): _TEXTS,
        }
    fields |= {
        vol.Required(CONF_INCLUDE_UNAVAILABLE): BooleanSelector(),
        vol.Optional(CONF_EVENT_TYPES): _TEXTS,
        vol.Optional(CONF_CONTEXT_ENTITIES): EntitySelector(EntitySelectorConfig(multiple=True)),
    }
    if info.registry_sync:
        fields[vol.Required(CONF_REGISTRY_SYNC)] = BooleanSelector()
    return vol.Schema(fields)


def _parse_tags(lines: list[str]) -> tuple[dict[str, str], str | None]:
    """Parse ``key=value`` lines; return the tags and the first invalid line, if any."""
    tags: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        # InfluxDB: tag keys cannot start with "_" and tag values cannot be empty.
        if not sep or not key or not value or key.startswith("_") or key in tags:
            return tags, line
        tags[key] = value
    return tags, None


class IngestorOptionsFlow(OptionsFlowWithReload):
    """Behaviour settings; saving reloads the entry (no update listener)."""

    _preset: str = DEFAULT_PRESET

    @property
    def _kind(self) -> DestinationKind:
        """The entry's destination kind."""
        return DestinationKind(self.config_entry.data[CONF_KIND])

    def _save(self, keys: tuple[str, ...], values: Mapping[str, Any]) -> ConfigFlowResult:
        """Replace the options of one step and finish (the entry reloads if they changed)."""
        options = {k: v for k, v in self.config_entry.options.items() if k not in keys}
        options |= values
        return self.async_create_entry(data=options)

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose what to change."""
        menu_options = ["retry", "pipeline", "filters", "schema", "overrides"]
        if kind_info(self._kind).line_protocol:
            menu_options.append("registry_tags")
        menu_options.append("heartbeat")
        return self.async_show_menu(step_id="init", menu_options=menu_options)

    # --- retry ---

    async def async_step_retry(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick a retry preset; optionally go on to tune its parameters."""
        options = self.config_entry.options
        if user_input is not None:
            self._preset = user_input[CONF_PRESET]
            if user_input.get(CONF_CUSTOMIZE):
                return await self.async_step_retry_parameters()
            return self._save(RETRY_KEYS, {CONF_PRESET: self._preset})
        schema: Schema = vol.Schema(
            {
                vol.Required(CONF_PRESET): _select(list(PRESETS), CONF_PRESET),
                vol.Required(CONF_CUSTOMIZE): BooleanSelector(),
            }
        )
        return self.async_show_form(
            step_id="retry",
            data_schema=self.add_suggested_values_to_schema(
                schema,
                {
                    CONF_PRESET: options.get(CONF_PRESET, DEFAULT_PRESET),
                    CONF_CUSTOMIZE: bool(options.get(CONF_RETRY_OVERRIDES)),
                },
            ),
        )

    async def async_step_retry_parameters(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Tune every stage and breaker parameter; only differences from the preset are stored."""
        preset = self._preset
        defaults = dict(PRESETS[preset].values)
        errors: dict[str, str] = {}
        placeholders = {"preset": preset}
        if user_input is not None:
            overrides = {
                spec.key: user_input[spec.key]
                for spec in OVERRIDE_SPECS
                if spec.key in user_input and user_input[spec.key] != defaults[spec.key]
            }
            try:
                build_policy(preset, overrides)
            except PolicyError as err:
                errors[err.key if err.key in defaults else "base"] = "invalid_retry_parameter"
                placeholders |= {"key": err.key, "reason": err.message}
            else:
                values: dict[str, Any] = {CONF_PRESET: preset}
                if overrides:
                    values[CONF_RETRY_OVERRIDES] = {
                        key: _typed(key, value) for key, value in overrides.items()
                    }
                return self._save(RETRY_KEYS, values)
            suggested: Mapping[str, Any] = user_input
        else:
            suggested = defaults
            if self.config_entry.options.get(CONF_PRESET, DEFAULT_PRESET) == preset:
                # Same preset: start from what is configured now.
                suggested = defaults | dict(
                    self.config_entry.options.get(CONF_RETRY_OVERRIDES) or {}
                )
        return self.async_show_form(
            step_id="retry_parameters",
            data_schema=self.add_suggested_values_to_schema(_retry_parameters_schema(), suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    # --- pipeline ---

    def _capacity_placeholders(self) -> dict[str, str]:
        """How many hours the spool's disk limit holds at the entry's measured event rate."""
        runtime = getattr(self.config_entry, "runtime_data", None)
        if runtime is None or not (rate := runtime.pipeline.event_rate()):
            return {"event_rate": "?", "capacity_hours": "?", "event_bytes": "?"}
        per_event = runtime.pipeline.disk_bytes_per_event()
        spool_mb = self.config_entry.options.get(CONF_SPOOL_MAX_MB, DEFAULT_SPOOL_MAX_MB)
        hours = hours_held(spool_mb * MIB, rate, per_event)
        return {
            "event_rate": f"{rate:.1f}",
            "capacity_hours": f"{hours:.0f}",
            "event_bytes": f"{per_event:.0f}",
        }

    async def async_step_pipeline(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Batching, spool limits and health tolerances."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            batch_bytes = int(user_input[CONF_BATCH_BYTES])
            flush_interval = float(user_input[CONF_FLUSH_INTERVAL])
            spool_mb = int(user_input[CONF_SPOOL_MAX_MB])
            if batch_bytes < MIN_BATCH_BYTES:
                errors[CONF_BATCH_BYTES] = "batch_bytes_too_small"
                placeholders["min_batch_bytes"] = str(MIN_BATCH_BYTES)
            if not MIN_FLUSH_INTERVAL <= flush_interval <= MAX_FLUSH_INTERVAL:
                errors[CONF_FLUSH_INTERVAL] = "flush_interval_out_of_range"
                placeholders |= {
                    "min_flush": f"{MIN_FLUSH_INTERVAL:g}",
                    "max_flush": f"{MAX_FLUSH_INTERVAL:g}",
                }
            if spool_mb * MIB < batch_bytes:
                errors[CONF_SPOOL_MAX_MB] = "spool_smaller_than_batch"
            if not errors:
                values: dict[str, Any] = {
                    CONF_BATCH_SIZE: int(user_input[CONF_BATCH_SIZE]),
                    CONF_BATCH_BYTES: batch_bytes,
                    CONF_FLUSH_INTERVAL: flush_interval,
                    CONF_SPOOL_MAX_MB: spool_mb,
                    CONF_OVERFLOW_POLICY: user_input[CONF_OVERFLOW_POLICY],
                    CONF_BACKLOG_TOLERANCE: int(user_input[CONF_BACKLOG_TOLERANCE]),
                    CONF_IDLE_TOLERANCE: int(user_input[CONF_IDLE_TOLERANCE]),
                    CONF_OUTAGE_REPAIR_AFTER: int(user_input[CONF_OUTAGE_REPAIR_AFTER]),
                    CONF_AUTO_BACKFILL: bool(user_input.get(CONF_AUTO_BACKFILL)),
                    CONF_COMPRESS: bool(user_input.get(CONF_COMPRESS, True)),
                }
                if (max_age := user_input.get(CONF_SPOOL_MAX_AGE_DAYS)) is not None:
                    values[CONF_SPOOL_MAX_AGE_DAYS] = int(max_age)
                if (memory_mb := user_input.get(CONF_MEMORY_MAX_MB)) is not None:
                    values[CONF_MEMORY_MAX_MB] = int(memory_mb)
                return self._save(PIPELINE_KEYS, values)
        suggested = {
            CONF_BATCH_SIZE: DEFAULT_BATCH_SIZE,
            CONF_BATCH_BYTES: DEFAULT_BATCH_BYTES,
            CONF_FLUSH_INTERVAL: DEFAULT_FLUSH_INTERVAL,
            CONF_SPOOL_MAX_MB: DEFAULT_SPOOL_MAX_MB,
            CONF_MEMORY_MAX_MB: DEFAULT_MEMORY_MAX_MB,
            CONF_OVERFLOW_POLICY: OverflowPolicy.DROP_OLDEST.value,
            CONF_BACKLOG_TOLERANCE: DEFAULT_BACKLOG_TOLERANCE,
            CONF_IDLE_TOLERANCE: DEFAULT_IDLE_TOLERANCE,
            CONF_OUTAGE_REPAIR_AFTER: DEFAULT_OUTAGE_REPAIR_AFTER,
            CONF_AUTO_BACKFILL: False,
            CONF_COMPRESS: True,
        } | {
            key: self.config_entry.options[key]
            for key in PIPELINE_KEYS
            if key in self.config_entry.options
        }
        placeholders |= self._capacity_placeholders()
        return self.async_show_form(
            step_id="pipeline",
            data_schema=self.add_suggested_values_to_schema(
                _pipeline_schema(), user_input if user_input is not None else suggested
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    # --- filters ---

    async def async_step_filters(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose what is captured: by entity, device, area, label, domain or glob."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            values = {key: _clean_list(user_input.get(key)) for key in FILTER_KEYS}
            for key in (CONF_INCLUDE_DOMAINS, CONF_EXCLUDE_DOMAINS):
                if bad := [d for d in values[key] if not _DOMAIN_RE.match(d)]:
                    errors[key] = "invalid_domain"
                    placeholders["domain"] = bad[0]
            for include, exclude in FILTER_PAIRS:
                if both := [item for item in values[include] if item in values[exclude]]:
                    errors[exclude] = "include_exclude_overlap"
                    placeholders["items"] = ", ".join(both)
            if not errors:
                return self._save(FILTER_KEYS, {k: v for k, v in values.items() if v})
        return self.async_show_form(
            step_id="filters",
            data_schema=self.add_suggested_values_to_schema(
                _filters_schema(),
                user_input if user_input is not None else self.config_entry.options,
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    # --- schema ---

    async def async_step_schema(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """How events are written: measurement, tags, attributes, extra events."""
        kind = self._kind
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            values: dict[str, Any] = {
                CONF_INCLUDE_UNAVAILABLE: bool(user_input.get(CONF_INCLUDE_UNAVAILABLE)),
            }
            info = kind_info(kind)
            if info.line_protocol:
                values |= self._validate_line_protocol(user_input, errors, placeholders)
            if info.registry_sync:
                values[CONF_REGISTRY_SYNC] = bool(user_input.get(CONF_REGISTRY_SYNC))
            event_types = _clean_list(user_input.get(CONF_EVENT_TYPES))
            for event_type in event_types:
                if (
                    event_type in RESERVED_EVENT_TYPES
                    or len(event_type) > MAX_EVENT_TYPE_LENGTH
                    or not _EVENT_TYPE_RE.match(event_type)
                ):
                    errors[CONF_EVENT_TYPES] = "invalid_event_type"
                    placeholders["event_type"] = event_type
                    break
            values[CONF_EVENT_TYPES] = event_types
            values[CONF_CONTEXT_ENTITIES] = _clean_list(user_input.get(CONF_CONTEXT_ENTITIES))
            if not errors:
                return self._save(
                    SCHEMA_KEYS,
                    {k: v for k, v in values.items() if v not in (None, [], {}, "")},
                )
            suggested: Mapping[str, Any] = user_input
        else:
            options = self.config_entry.options
            suggested = {
                CONF_MEASUREMENT_STRATEGY: MeasurementStrategy.UNIT_OF_MEASUREMENT.value,
                CONF_INCLUDE_UNAVAILABLE: False,
                CONF_REGISTRY_SYNC: False,
            } | {key: options[key] for key in SCHEMA_KEYS if key in options}
            if tags := options.get(CONF_STATIC_TAGS):
                suggested[CONF_STATIC_TAGS] = [f"{key}={value}" for key, value in tags.items()]
        return self.async_show_form(
            step_id="schema",
            data_schema=self.add_suggested_values_to_schema(_schema_schema(kind), suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    @staticmethod
    def _validate_line_protocol(
        user_input: Mapping[str, Any], errors: dict[str, str], placeholders: dict[str, str]
    ) -> dict[str, Any]:
        """Validate the InfluxDB-only schema fields; return their cleaned values."""
        strategy = user_input[CONF_MEASUREMENT_STRATEGY]
        default = _clean_text(user_input.get(CONF_DEFAULT_MEASUREMENT))
        override = _clean_text(user_input.get(CONF_OVERRIDE_MEASUREMENT))
        if strategy == MeasurementStrategy.OVERRIDE and not override:
            errors[CONF_OVERRIDE_MEASUREMENT] = "override_measurement_required"
        elif strategy != MeasurementStrategy.OVERRIDE and override:
            # The encoder lets an override win over every strategy: make that explicit.
            errors[CONF_OVERRIDE_MEASUREMENT] = "override_measurement_unused"
        for key, name in (
            (CONF_DEFAULT_MEASUREMENT, default),
            (CONF_OVERRIDE_MEASUREMENT, override),
        ):
            # InfluxDB treats a line starting with "#" as a comment: nothing would be stored.
            if name and name.startswith("#"):
                errors[key] = "invalid_measurement"
        tags, bad_tag = _parse_tags(_clean_list(user_input.get(CONF_STATIC_TAGS)))
        if bad_tag is not None:
            errors[CONF_STATIC_TAGS] = "invalid_tag"
            placeholders["tag"] = bad_tag
        tags_attributes = _clean_list(user_input.get(CONF_TAGS_ATTRIBUTES))
        ignore_attributes = _clean_list(user_input.get(CONF_IGNORE_ATTRIBUTES))
        if both := [attr for attr in tags_attributes if attr in ignore_attributes]:
            errors[CONF_IGNORE_ATTRIBUTES] = "attribute_conflict"
            placeholders["attributes"] = ", ".join(both)
        return {
            CONF_MEASUREMENT_STRATEGY: strategy,
            CONF_DEFAULT_MEASUREMENT: default,
            CONF_OVERRIDE_MEASUREMENT: override,
            CONF_STATIC_TAGS: tags,
            CONF_TAGS_ATTRIBUTES: tags_attributes,
            CONF_IGNORE_ATTRIBUTES: ignore_attributes,
        }

    # --- per-entity overrides ---

    _overrides: dict[str, dict[str, dict[str, Any]]]

    async def async_step_overrides(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """List the overrides; remove some, and/or go on to add or change one."""
        current = {
            key: dict(self.config_entry.options.get(key) or {}) for key in OVERRIDE_LEVELS.values()
        }
        if user_input is not None:
            for choice in user_input.get(CONF_REMOVE_OVERRIDES) or ():
                level, _, target = choice.partition(":")
                current[OVERRIDE_LEVELS[level]].pop(target, None)
            self._overrides = current
            if user_input.get(CONF_ADD_OVERRIDE):
                return await self.async_step_override_edit()
            return self._save_overrides()
        choices = [
            SelectOptionDict(
                value=f"{level}:{target}", label=_override_label(level, target, values)
            )
            for level, key in OVERRIDE_LEVELS.items()
            for target, values in current[key].items()
        ]
        fields: dict[Any, Any] = {}
        if choices:
            fields[vol.Optional(CONF_REMOVE_OVERRIDES)] = SelectSelector(
                SelectSelectorConfig(options=choices, multiple=True, mode=SelectSelectorMode.LIST)
            )
        fields[vol.Required(CONF_ADD_OVERRIDE, default=not choices)] = BooleanSelector()
        schema: Schema = vol.Schema(fields)
        return self.async_show_form(
            step_id="overrides",
            data_schema=schema,
            description_placeholders={"count": str(len(choices))},
        )

    async def async_step_override_edit(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add an override, or replace the one of the same entity, domain or pattern."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            targets = {level: _clean_text(user_input.get(level)) for level in OVERRIDE_LEVELS}
            chosen = [(level, target) for level, target in targets.items() if target]
            measurement = _clean_text(user_input.get(CONF_OVERRIDE_MEASUREMENT))
            ignored = _clean_list(user_input.get(CONF_IGNORE_ATTRIBUTES))
            shaping = {
                key: _whole(float(user_input[key]))
                for key in (CONF_THROTTLE, CONF_DEADBAND)
                if user_input.get(key) is not None
            }
            if len(chosen) != 1:
                errors["base"] = "override_one_target"
            elif chosen[0][0] == OVERRIDE_DOMAIN and not _DOMAIN_RE.match(chosen[0][1]):
                errors[OVERRIDE_DOMAIN] = "invalid_domain"
                placeholders["domain"] = chosen[0][1]
            if measurement is None and not ignored and not shaping:
                errors["base"] = "override_empty"
            elif measurement and measurement.startswith("#"):
                errors[CONF_OVERRIDE_MEASUREMENT] = "invalid_measurement"
            if not errors:
                level, target = chosen[0]
                values: dict[str, Any] = {}
                if measurement is not None:
                    values[CONF_OVERRIDE_MEASUREMENT] = measurement
                if ignored:
                    values[CONF_IGNORE_ATTRIBUTES] = ignored
                values |= shaping
                self._overrides[OVERRIDE_LEVELS[level]][target] = values
                return self._save_overrides()
        return self.async_show_form(
            step_id="override_edit",
            data_schema=self.add_suggested_values_to_schema(
                _override_schema(self._kind), user_input
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _save_overrides(self) -> ConfigFlowResult:
        """Store the non-empty override levels."""
        return self._save(
            tuple(OVERRIDE_LEVELS.values()),
            {key: targets for key, targets in self._overrides.items() if targets},
        )

    # --- registry tags and heartbeat ---

    async def async_step_registry_tags(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Which registry facts (area, floor, device, ...) are written as tags."""
        if user_input is not None:
            kinds = [kind for kind in REGISTRY_TAG_KINDS if kind in user_input[CONF_REGISTRY_TAGS]]
            return self._save((CONF_REGISTRY_TAGS,), {CONF_REGISTRY_TAGS: kinds} if kinds else {})
        schema: Schema = vol.Schema(
            {
                vol.Required(CONF_REGISTRY_TAGS): SelectSelector(
                    SelectSelectorConfig(
                        options=list(REGISTRY_TAG_KINDS),
                        multiple=True,
                        translation_key=CONF_REGISTRY_TAGS,
                        mode=SelectSelectorMode.LIST,
                    )
                )
            }
        )
        return self.async_show_form(
            step_id="registry_tags",
            data_schema=self.add_suggested_values_to_schema(
                schema, {CONF_REGISTRY_TAGS: self.config_entry.options.get(CONF_REGISTRY_TAGS, [])}
            ),
        )

    async def async_step_heartbeat(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """How often unchanged states are sent again (0: never)."""
        if user_input is not None:
            minutes = int(user_input[CONF_HEARTBEAT_MINUTES])
            return self._save(
                (CONF_HEARTBEAT_MINUTES,), {CONF_HEARTBEAT_MINUTES: minutes} if minutes else {}
            )
        schema: Schema = vol.Schema(
            {
                vol.Required(CONF_HEARTBEAT_MINUTES): _number(0, MAX_HEARTBEAT_MINUTES, unit="min"),
            }
        )
        return self.async_show_form(
            step_id="heartbeat",
            data_schema=self.add_suggested_values_to_schema(
                schema,
                {CONF_HEARTBEAT_MINUTES: self.config_entry.options.get(CONF_HEARTBEAT_MINUTES, 0)},
            ),
        )


# Override levels: form field / stored choice prefix -> option key.
OVERRIDE_ENTITY: Final = "entity_id"
OVERRIDE_DOMAIN: Final = "domain"
OVERRIDE_GLOB: Final = "glob"
OVERRIDE_LEVELS: Final = {
    OVERRIDE_ENTITY: CONF_ENTITY_OVERRIDES,
    OVERRIDE_DOMAIN: CONF_DOMAIN_OVERRIDES,
    OVERRIDE_GLOB: CONF_GLOB_OVERRIDES,
}
# Form-only fields of the overrides step.
CONF_REMOVE_OVERRIDES: Final = "remove"
CONF_ADD_OVERRIDE: Final = "add"


def _override_schema(kind: DestinationKind) -> Schema:
    """One target (entity, domain or pattern) and what changes for it."""
    fields: dict[Any, Any] = {
        vol.Optional(OVERRIDE_ENTITY): EntitySelector(),
        vol.Optional(OVERRIDE_DOMAIN): _TEXT,
        vol.Optional(OVERRIDE_GLOB): _TEXT,
    }
    if kind_info(kind).line_protocol:
        fields |= {
            vol.Optional(CONF_OVERRIDE_MEASUREMENT): _TEXT,
            vol.Optional(CONF_IGNORE_ATTRIBUTES): _TEXTS,
        }
    fields |= {
        vol.Optional(CONF_THROTTLE): _number(0, MAX_THROTTLE, unit="s"),
        vol.Optional(CONF_DEADBAND): NumberSelector(
            NumberSelectorConfig(mode=NumberSelectorMode.BOX, min=0, step="any")
        ),
    }
    return vol.Schema(fields)


def _override_label(level: str, target: str, values: Mapping[str, Any]) -> str:
    """One line describing an override, for the removal list."""
    parts = [f"{target} ({level})"]
    if (measurement := values.get(CONF_OVERRIDE_MEASUREMENT)) is not None:
        parts.append(f"measurement: {measurement or '(rule of the entry)'}")
    if (ignored := values.get(CONF_IGNORE_ATTRIBUTES)) is not None:
        parts.append(f"ignored: {', '.join(ignored) or '(none)'}")
    if (throttle := values.get(CONF_THROTTLE)) is not None:
        parts.append(f"throttle: {throttle} s" if throttle else "throttle: off")
    if (deadband := values.get(CONF_DEADBAND)) is not None:
        parts.append(f"deadband: {deadband}")
    return " - ".join(parts)


def _whole(value: float) -> float | int:
    """Store whole numbers as int (number selectors hand back floats)."""
    return int(value) if value.is_integer() else value


def _typed(key: str, value: Any) -> Any:
    """Store whole-number parameters as int (number selectors hand back floats)."""
    spec = OVERRIDE_KEYS[key]
    if spec.type is int:
        return int(value)
    if spec.type is float:
        return float(value)
    return value
