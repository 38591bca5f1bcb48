"""Regression tests for what an adversarial review of the merged work found."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slaos_logging._encode import dumps_event

from .test_encoding_parity import _encoders


class Real(float):
    """A float subclass, as numpy.float64 is."""


FLOAT_CASES: list[tuple[str, object, object]] = [
    ("float-subclass", Real(1e-05), 1e-05),
    ("float-subclass-nan", Real("nan"), None),
    ("float-subclass-in-list", [Real(3.0), Real(2.5e-08)], [3.0, 2.5e-08]),
    ("float-key", {1e-07: 1}, {"1e-07": 1}),
    ("float-keys", {1e16: 1, 0.1: 2}, {"1e+16": 1, "0.1": 2}),
    ("float-subclass-key", {Real(2.5e-08): 1}, {"2.5e-08": 1}),
    ("str-key-like-a-float", {"1e-07": "s"}, {"1e-07": "s"}),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in FLOAT_CASES], ids=[c[0] for c in FLOAT_CASES]
)
def test_float_subclasses_and_float_keys_encode_identically(
    value: object, expected: object
) -> None:
    """Float subclasses and float dict keys get the same bytes from every encoder and the spool."""
    batch: list[dict[str, Any]] = [{"values": {"v": value}}, {"values": {"ok": 1}}]
    bodies = {encode(batch) for encode in _encoders()}
    bodies.add(b"[" + b",".join(dumps_event(event) for event in batch) + b"]")
    assert len(bodies) == 1, bodies
    (body,) = bodies
    decoded = json.loads(body)
    assert decoded[1] == {"values": {"ok": 1}}
    assert _numeric_keys(decoded[0]["values"]["v"]) == _numeric_keys(expected)


def _numeric_keys(value: object) -> object:
    # A float key's text is the encoder's float form ("1e-7" or "1e-07"); its number is not.
    if not isinstance(value, dict):
        return value
    return {(float(k) if k[:1].isdigit() else k): v for k, v in value.items()}


def test_a_float_key_beside_its_lookalike_str_key_encodes_identically() -> None:
    """A dict with the float 1e-07 and the string "1e-07" as keys: the same bytes everywhere."""
    event = {"values": {"v": {"1e-07": "str", 1e-07: "float"}, "w": {1e-07: 0}}}
    bodies = {encode([event]) for encode in _encoders()} | {b"[" + dumps_event(event) + b"]"}
    assert len(bodies) == 1, bodies
