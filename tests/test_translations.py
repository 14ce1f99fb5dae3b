"""hassfest's translation rules, applied to ``translations/en.json``.

hassfest (Home Assistant's integration validator, run by the Validate workflow)
rejects the whole integration for one bad key or string. The rules below mirror
``script/hassfest/translations.py`` of Home Assistant core so a violation fails
here, in the ordinary test run, before it reaches the workflow.
"""

from collections.abc import Iterator
import json
from pathlib import Path
import re
import string
from typing import Any

import pytest

from custom_components.ha_ingestor.core.encoder import MeasurementStrategy

EN_JSON = (
    Path(__file__).parent.parent / "custom_components" / "ha_ingestor" / "translations" / "en.json"
)

# The patterns as hassfest defines them.
RE_TRANSLATION_KEY = re.compile(r"^(?!.+[_-]{2})(?![_-])[a-z0-9-_]+(?<![_-])$")
RE_HTML = re.compile(r"<[a-z].*?>", re.IGNORECASE)  # config_validation.string_with_no_html
RE_PLACEHOLDER_IN_SINGLE_QUOTES = re.compile(r"'{\w+}'")
RE_COMBINED_REFERENCE = re.compile(r"(.+\[%)|(%\].+)")
RE_URL = re.compile(
    r"(((ftp|ftps|scp|http|https|mqtt|mqtts|socket|socks5):\/\/|www\.)"
    r"[a-z0-9]+([\-\.]{1}[a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(\/.*)?)",
    re.IGNORECASE,
)

type KeyPath = tuple[str, ...]


def load() -> dict[str, Any]:
    """The English translations as shipped."""
    return dict(json.loads(EN_JSON.read_text(encoding="utf-8")))


def walk(node: dict[str, Any], path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Every (path, value) pair, dictionaries included, depth first."""
    for key, value in node.items():
        yield (*path, key), value
        if isinstance(value, dict):
            yield from walk(value, (*path, key))


def key_problems(translations: dict[str, Any]) -> list[str]:
    """Keys that break hassfest's translation-key pattern, at any depth."""
    return [
        "/".join(path)
        for path, _ in walk(translations)
        if RE_TRANSLATION_KEY.match(path[-1]) is None
    ]


def value_problem(value: str, *, allow_placeholders: bool = True) -> str | None:
    """Why hassfest's ``validate_translation_value`` would reject ``value``, or None."""
    if RE_HTML.search(value):
        return "HTML-like text"
    if RE_PLACEHOLDER_IN_SINGLE_QUOTES.search(value):
        return "placeholder in single quotes"
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(value) if field]
    except ValueError as err:
        return f"unparsable placeholder ({err})"
    if fields and not allow_placeholders:
        return "placeholder where none is allowed"
    if any(not field.isidentifier() for field in fields):
        return "placeholder that is not an identifier"
    if RE_COMBINED_REFERENCE.search(value):
        return "combined translation reference"
    if value != value.strip():
        return "leading or trailing whitespace"
    if RE_URL.search(value):
        return "URL (use a description placeholder)"
    return None


def placeholders_allowed(path: KeyPath) -> bool:
    """hassfest allows no placeholders in entity states, attributes and units."""
    return not (
        path[0] == "entity"
        and len(path) > 4
        and path[3] in {"state", "state_attributes", "unit_of_measurement"}
    )


def string_problems(translations: dict[str, Any]) -> list[str]:
    """Strings hassfest would reject, with the reason."""
    problems = []
    for path, value in walk(translations):
        if isinstance(value, dict):
            continue
        if not isinstance(value, str):
            problems.append(f"{'/'.join(path)}: not a string")
            continue
        if reason := value_problem(value, allow_placeholders=placeholders_allowed(path)):
            problems.append(f"{'/'.join(path)}: {reason}")
    return problems


def test_every_key_matches_the_translation_key_pattern() -> None:
    """Every key at every depth is ``[a-z0-9-_]+`` without leading/trailing or doubled ``_``/``-``."""
    assert key_problems(load()) == []


def test_every_string_passes_the_value_rules() -> None:
    """No HTML-like ``<...>``, placeholders are ``{identifier}``, no URLs, no stray whitespace."""
    assert string_problems(load()) == []


@pytest.mark.parametrize(
    ("translations", "expected"),
    [
        ({"selector": {"s": {"options": {"domain__device_class": "x"}}}}, "domain__device_class"),
        ({"entity": {"sensor": {"_backlog": {"name": "x"}}}}, "_backlog"),
        ({"issues": {"spool-": {"title": "x"}}}, "spool-"),
        ({"config": {"Step": {"title": "x"}}}, "Step"),
    ],
)
def test_key_check_catches_what_hassfest_rejects(
    translations: dict[str, Any], expected: str
) -> None:
    """The key check is not vacuous: each sample is reported."""
    assert [problem.rsplit("/", 1)[-1] for problem in key_problems(translations)] == [expected]


@pytest.mark.parametrize(
    ("value", "allow", "reason"),
    [
        ("Events are posted to `<URL>/events`.", True, "HTML-like text"),
        ("Press <b>submit</b>", True, "HTML-like text"),
        ("Named '{name}'", True, "placeholder in single quotes"),
        ("Left {0} over", True, "placeholder that is not an identifier"),
        ("Unclosed {name", True, "unparsable placeholder (expected '}' before end of string)"),
        ("Backlog {count}", False, "placeholder where none is allowed"),
        ("See [%key:common::x%] too", True, "combined translation reference"),
        (" padded", True, "leading or trailing whitespace"),
        ("Read https://example.org/docs", True, "URL (use a description placeholder)"),
    ],
)
def test_value_check_catches_what_hassfest_rejects(value: str, allow: bool, reason: str) -> None:
    """The string check is not vacuous: each sample is rejected for its reason."""
    assert value_problem(value, allow_placeholders=allow) == reason


def test_data_descriptions_describe_existing_fields() -> None:
    """hassfest: a ``data_description`` key must also be a ``data`` key of the same step."""
    translations = load()
    orphans = [
        f"{flow}/{step_id}/{key}"
        for flow in ("config", "options")
        for step_id, step in translations[flow]["step"].items()
        for key in step.get("data_description", {})
        if key not in step.get("data", {})
    ]
    assert orphans == []


def test_issues_have_a_title_and_a_description_or_fix_flow() -> None:
    """hassfest: each issue has a title and exactly one of description / fix_flow."""
    bad = [
        issue_id
        for issue_id, issue in load()["issues"].items()
        if "title" not in issue or ("description" in issue) == ("fix_flow" in issue)
    ]
    assert bad == []


def test_services_have_names_and_descriptions() -> None:
    """hassfest: every action and every field has a name and a description."""
    bad = [
        f"{service_id}/{field_id}"
        for service_id, service in load()["services"].items()
        for field_id, field in {"": service, **service.get("fields", {})}.items()
        if "name" not in field or "description" not in field
    ]
    assert bad == []


def test_measurement_strategy_options_are_translated() -> None:
    """Every strategy the options flow offers has a label under a valid key."""
    options = load()["selector"]["measurement_strategy"]["options"]
    assert set(options) == {strategy.value for strategy in MeasurementStrategy}


def test_icons_use_translation_keys_and_known_states() -> None:
    """icons.json: valid keys, ``mdi:`` icons, and only states en.json translates."""
    icons = json.loads((EN_JSON.parent.parent / "icons.json").read_text(encoding="utf-8"))
    entities = load()["entity"]
    assert key_problems(icons) == []
    assert [
        "/".join(path)
        for path, value in walk(icons)
        if not isinstance(value, dict) and not value.startswith("mdi:")
    ] == []
    unknown_states = [
        f"{platform}/{key}/{state}"
        for platform, by_key in icons["entity"].items()
        for key, icon in by_key.items()
        for state in icon.get("state", {})
        if state not in entities.get(platform, {}).get(key, {}).get("state", {})
        and not (platform == "binary_sensor" and state in {"on", "off"})
    ]
    assert unknown_states == []
    assert set(icons["services"]) == set(load()["services"])
