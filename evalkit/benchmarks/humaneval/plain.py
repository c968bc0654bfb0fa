"""Plain data across the sandbox's pipes: a strict, tagged JSON codec for the values HumanEval passes and returns.

Standard library only, with no imports from evalkit: the same source is also pasted into the programs that run in the
sandbox (`runtime.py`), so that both sides speak exactly one format.

Only builtin value types cross: None, bool, str, int, float, complex, bytes, list, tuple, dict (and the `collections`
dicts a solution may return, as plain dicts: `Counter(...) == {...}` compares them as plain dicts too), set,
frozenset, and `fractions.Fraction` / `decimal.Decimal`. Anything else (a generator, a solution's own class whose
`__eq__` says yes to everything, a subclass of int) is refused by `encode`, so the value is never compared. `decode`
accepts exactly what `encode` writes and rebuilds builtin objects only, whose comparisons the sample cannot touch: a
sample that writes its own bytes onto the pipe can claim any plain value, never an object.

ints travel as hex strings and floats as `float.hex`, so that huge ints, nan and inf round-trip exactly.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MAX_DEPTH = 200
"""Nesting deeper than this is refused on both sides (no legitimate HumanEval value comes close)."""
MAX_HASHED = 10_000
"""Most set members and dict keys one decoded value may hold in all. ints hash predictably: a reply of many ints
with one hash would make building a set quadratic, and stall the process that decodes it. HumanEval's values come
nowhere near (its one dict-valued problem has at most 26 keys)."""


class PlainDataError(ValueError):
    """A value that is not plain data, or bytes that are not this format."""


def encode(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-able tagged data; PlainDataError for anything that is not plain data."""
    if depth > MAX_DEPTH:
        raise PlainDataError("nested too deeply")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return {"int": hex(value)}
    if t is float:
        return {"float": value.hex()}
    if t is list or t is tuple or t is set or t is frozenset:
        return {t.__name__: [encode(item, depth + 1) for item in value]}
    if isinstance(value, dict) and (t is dict or t.__module__ == "collections"):
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
    if t is complex:
        return {"complex": [value.real.hex(), value.imag.hex()]}
    if t is bytes:
        return {"bytes": value.hex()}
    fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")
    if fractions is not None and t is fractions.Fraction:
        return {"fraction": [hex(value.numerator), hex(value.denominator)]}
    if decimal is not None and t is decimal.Decimal:
        return {"decimal": str(value)}
    raise PlainDataError(f"a {t.__module__}.{t.__qualname__} is not plain data")


def _str(payload: Any) -> str:
    if type(payload) is not str:
        raise PlainDataError("malformed payload")
    return payload


def _items(payload: Any) -> list[Any]:
    if type(payload) is not list:
        raise PlainDataError("malformed payload")
    return payload


def decode(data: Any, depth: int = 0, hashed: list[int] | None = None) -> Any:
    """The value `encode` wrote as `data` (already parsed JSON); PlainDataError for anything else."""
    hashed = [0] if hashed is None else hashed  # set members and dict keys so far, shared by the whole value
    if depth > MAX_DEPTH:
        raise PlainDataError("nested too deeply")
    t = type(data)
    if data is None or t is bool or t is str:
        return data
    if t is not dict or len(data) != 1:
        raise PlainDataError(f"not a tagged value: {str(data)[:80]!r}")
    ((tag, payload),) = data.items()
    try:
        if tag == "int":
            return int(_str(payload), 16)
        if tag == "float":
            return float.fromhex(_str(payload))
        if tag in ("list", "tuple", "set", "frozenset"):
            if tag in ("set", "frozenset"):
                _count(hashed, len(_items(payload)))
            items = [decode(item, depth + 1, hashed) for item in _items(payload)]
            return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "dict":
            pairs = [_items(pair) for pair in _items(payload)]
            if any(len(pair) != 2 for pair in pairs):
                raise PlainDataError("malformed dict")
            _count(hashed, len(pairs))
            return {decode(k, depth + 1, hashed): decode(v, depth + 1, hashed) for k, v in pairs}
        if tag == "complex":
            real, imag = _items(payload)
            return complex(float.fromhex(_str(real)), float.fromhex(_str(imag)))
        if tag == "bytes":
            return bytes.fromhex(_str(payload))
        if tag == "fraction":
            import fractions

            num, den = _items(payload)
            return fractions.Fraction(int(_str(num), 16), int(_str(den), 16))
        if tag == "decimal":
            import decimal

            return decimal.Decimal(_str(payload))
    except PlainDataError:
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:  # unhashable keys, bad numbers, wrong arity
        raise PlainDataError(f"malformed {tag}: {exc}") from None
    raise PlainDataError(f"unknown tag {tag!r}")


def _count(hashed: list[int], n: int) -> None:
    hashed[0] += n
    if hashed[0] > MAX_HASHED:
        raise PlainDataError(f"more than {MAX_HASHED} set members and dict keys in one value")


def dumps(value: Any) -> str:
    """One line of JSON (no newline inside) holding `value` encoded."""
    return json.dumps(encode(value), ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def _no_constant(name: str) -> Any:
    raise PlainDataError(f"JSON constant {name} is not plain data")


def loads_json(line: str | bytes) -> Any:
    """Strict JSON: no NaN/Infinity literals (floats travel tagged), one document."""
    try:
        return json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise PlainDataError(f"not JSON: {exc}") from None


def loads(line: str | bytes) -> Any:
    """The value of a line `dumps` wrote."""
    return decode(loads_json(line))
