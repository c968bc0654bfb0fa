"""An adapter's `settings` mapping as its typed dataclass, checked by OmegaConf's structured configs.

The mapping is merged into `OmegaConf.structured(schema)`: an unknown key (at any depth) fails naming it, the close
match and the valid keys; a value of the wrong type fails naming the key, the value and the type the key takes; an
Enum-typed key lists its choices. What a schema cannot say (ranges, files that must exist) stays with the adapter
as small explicit checks (`require`).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from evalkit.core.errors import ConfigError

S = TypeVar("S")


def parse_settings(schema: type[S], settings: Mapping[str, Any], where: str) -> S:
    """`settings` over `schema`'s defaults, as a `schema` instance; ConfigError naming the key when they do not fit.
    `where` prefixes every message (the adapter's name)."""
    base = OmegaConf.structured(schema)
    _writable(base)  # frozen dataclasses make read-only nodes, which a merge may not fill
    try:
        merged = OmegaConf.merge(base, dict(settings))
        value = OmegaConf.to_object(merged)
    except ConfigKeyError as exc:
        raise _unknown_key(exc, where) from None
    except OmegaConfBaseException as exc:
        raise _bad_value(exc, settings, where) from None
    except (TypeError, ValueError) as exc:  # a nested dataclass's own __post_init__ refused its values
        raise ConfigError(f"{where}: invalid settings: {exc}") from None
    assert isinstance(value, schema)
    return value


def require(where: str, key: str, value: object, ok: bool, rule: str) -> None:
    """The explicit check of a rule the schema cannot express: ConfigError naming key, value and the rule."""
    if not ok:
        raise ConfigError(f"{where}: invalid {key}={value!r}: {rule}")


def _writable(node: DictConfig) -> None:
    OmegaConf.set_readonly(node, False)
    for key in node:
        child = node[key]
        if isinstance(child, DictConfig):
            _writable(child)


def _unknown_key(exc: ConfigKeyError, where: str) -> ConfigError:
    valid = _field_names(exc.object_type)
    key = str(exc.key)
    close = difflib.get_close_matches(key, valid, n=1)
    guess = f"did you mean {close[0]}? " if close else ""
    return ConfigError(f"{where}: unknown setting {exc.full_key!r}", hint=f"{guess}valid keys: {valid}")


def _bad_value(exc: OmegaConfBaseException, settings: Mapping[str, Any], where: str) -> ConfigError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    full_key = str(exc.full_key or "")
    if not full_key:
        return ConfigError(f"{where}: invalid settings: {reason}")
    value: Any = settings
    for part in full_key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    expected = _field_type(exc.object_type, str(exc.key))
    hint = f"{full_key} takes {expected}" if expected else None
    return ConfigError(f"{where}: invalid {full_key}={value!r}: {reason}", hint=hint)


def _field_names(cls: Any) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []


def _field_type(cls: Any, key: str) -> str | None:
    if not dataclasses.is_dataclass(cls):
        return None
    hint = typing.get_type_hints(cls).get(key)
    if hint is None:
        return None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(member.name for member in hint)
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
