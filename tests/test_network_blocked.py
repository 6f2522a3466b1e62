"""The suite runs with the network blocked (pytest-recording's --block-network)."""

from __future__ import annotations

import socket

import pytest


def test_outside_connections_are_refused() -> None:
    with pytest.raises(Exception, match=r"(?i)network|block"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
