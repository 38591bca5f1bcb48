"""The test run exercises the JSON encoder its CI leg was set up for."""

from __future__ import annotations

import os
from importlib.util import find_spec

from slaos_logging._encode import make_encoder


def test_encoder_is_the_one_this_run_expects() -> None:
    """orjson legs really encode with orjson and stdlib legs with the standard library."""
    installed = "orjson" if find_spec("orjson") else "stdlib"
    expected = os.environ.get("SLAOS_TEST_ENCODER", installed)
    actual = "orjson" if "_orjson_encoder" in make_encoder().__qualname__ else "stdlib"
    assert actual == expected, f"this leg should test the {expected} encoder, not {actual}"
