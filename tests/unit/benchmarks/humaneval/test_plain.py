"""The plain-data codec between a solution's sandbox and the judge: exact round trips, and refusals."""

from __future__ import annotations

import collections
import decimal
import fractions
import json
import math
import time

import pytest

from evalkit.benchmarks.humaneval import plain

VALUES = [
    None,
    True,
    False,
    0,
    -(10**5000),  # beyond int's default 4300-digit str limit: travels as hex
    1.5,
    -0.0,
    float("inf"),
    "héllo\ud800",
    [1, [2.5, "x"], (3,)],
    (1, 2),
    (),
    {1: "a", (2, 3): [None], "k": {"n": 1.0}},
    {1, 2.5, "s", (1, 2)},
    frozenset({1}),
    3 + 4j,
    b"\x00\xff",
    fractions.Fraction(1, 3),
    decimal.Decimal("1.10"),
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ for v in VALUES])
def test_values_round_trip_with_their_exact_types(value: object) -> None:
    line = plain.dumps(value)
    assert "\n" not in line
    got = plain.loads(line)
    assert type(got) is type(value) and got == value
    if isinstance(value, float):
        assert repr(got) == repr(value)  # -0.0 stays -0.0


def test_nan_round_trips_and_collections_dicts_become_dicts() -> None:
    assert math.isnan(plain.loads(plain.dumps(float("nan"))))
    # Counter(...) == {...} compares as plain dicts, so a solution returning one is judged as before
    for d in (collections.Counter("abca"), collections.OrderedDict(a=1), collections.defaultdict(int, a=2)):
        got = plain.loads(plain.dumps(d))
        assert type(got) is dict and got == dict(d)


class Yes:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class Int(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize(
    "value", [Yes(), Int(0), [1, Yes()], {"k": Int(1)}, (i for i in range(3)), map(str, [1]), range(3), object()]
)
def test_objects_are_not_plain_data(value: object) -> None:
    with pytest.raises(plain.PlainDataError, match="not plain data"):
        plain.encode(value)


@pytest.mark.parametrize(
    "line",
    [
        "5",  # numbers travel tagged only
        "1.5",
        "NaN",
        '{"int": 5}',
        '{"int": "0x5", "float": "0x1p+0"}',
        '{"status": "pass"}',
        '{"list": {"int": "0x1"}}',
        '{"dict": [[{"list": []}, null]]}',  # an unhashable key
        '{"dict": [[1]]}',
        '{"fraction": ["0x1", "0x0"]}',
        '{"decimal": "not a number"}',
        '{"complex": ["0x1p+0"]}',
        "not json",
        '"a" "b"',
    ],
)
def test_anything_else_is_refused(line: str) -> None:
    with pytest.raises(plain.PlainDataError):
        plain.loads(line)


def test_deep_nesting_is_refused_on_both_sides() -> None:
    deep: list = []
    for _ in range(plain.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(plain.PlainDataError):
        plain.encode(deep)
    with pytest.raises(plain.PlainDataError):
        plain.loads('{"list":[' * 100_000 + "]}" * 100_000)


def test_a_set_of_colliding_ints_is_refused_before_it_is_built() -> None:
    # ints that are multiples of 2**61 - 1 all hash to 0: building a set of them is quadratic
    modulus = (1 << 61) - 1
    line = json.dumps({"set": [{"int": hex(i * modulus)} for i in range(plain.MAX_HASHED + 1)]})
    started = time.monotonic()
    with pytest.raises(plain.PlainDataError, match="set members"):
        plain.loads(line)
    assert time.monotonic() - started < 1.0
