"""The local Convex server is the subject here: its index lookups are checked against full scans."""

from __future__ import annotations

import pytest


@pytest.fixture(scope='module')
def convex_server(verifying_convex_server):
    return verifying_convex_server
