"""Settings per entity, domain and glob, merged the way the built-in merges them.

The built-in ``influxdb`` integration (``EntityValues``) starts from the
domain's settings, lets each matching glob (in the order given) replace them
setting by setting, then the entity's own: entity over glob over domain. Both
the measurement overrides and throttle / deadband resolve this way. Globs are
fnmatch patterns, case-sensitive.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
import fnmatch
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

type GlobMatchers[T] = tuple[tuple[Callable[[str], Any], T], ...]
#: One level as stored in options: target (entity id, domain or glob) -> its settings.
type StoredLevel = Mapping[str, Mapping[str, Any]] | None


def levels_from_mappings[T](
    convert: Callable[[Mapping[str, Any]], T | None], *levels: StoredLevel
) -> list[dict[str, T]]:
    """Convert each stored level's settings; a target converting to None is left out."""
    return [
        {
            target: value
            for target, values in (level or {}).items()
            if (value := convert(values)) is not None
        }
        for level in levels
    ]


def compile_globs[T](globs: Mapping[str, T]) -> GlobMatchers[T]:
    """Compile each pattern once, keeping the given order."""
    return tuple(
        (re.compile(fnmatch.translate(pattern)).match, value) for pattern, value in globs.items()
    )


def levels_of[T](
    entity_id: str,
    entities: Mapping[str, T],
    domains: Mapping[str, T],
    globs: GlobMatchers[T],
) -> list[T]:
    """Return the settings that apply to ``entity_id``, weakest first (domain, globs, entity)."""
    found = [domains.get(entity_id.partition(".")[0])]
    found += [value for match, value in globs if match(entity_id)]
    found.append(entities.get(entity_id))
    return [value for value in found if value is not None]


def merged[T: "DataclassInstance"](levels: Sequence[T], kind: type[T]) -> T | None:
    """Merge setting by setting: the last level that sets a field (not None) wins.

    None when no level applies at all.
    """
    if not levels:
        return None
    values: dict[str, Any] = {}
    for level in levels:
        for item in fields(kind):
            if (value := getattr(level, item.name)) is not None:
                values[item.name] = value
    return kind(**values)
