"""Fixtures shared by the integration tests. A module that defines a ``server`` fixture (a live
server) gets ``user``: a fresh account logged in on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import LiveServer, UserClient, register_user


@pytest.fixture
def user(server: LiveServer) -> Iterator[UserClient]:
    u = register_user(server)
    yield u
    u.client.close()
