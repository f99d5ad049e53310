"""The recorded FRR stream and the addresses in it (see vectors/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

VECTOR = Path(__file__).parent / "vectors" / "frr-8.4-pre-policy.bmp"
PEER_A, PEER_B = "127.171.165.2", "127.171.165.3"
ROUTER_ADDRESS = "127.171.165.1"


@pytest.fixture
def frr_stream() -> bytes:
    return VECTOR.read_bytes()
