"""The AiiDA test profile is the one the session asked for (PostgreSQL unless ``--db-backend sqlite``)."""

from __future__ import annotations

from aiida import orm


def test_profile_storage_backend(aiida_profile, request):
    expected = {'psql': 'core.psql_dos', 'sqlite': 'core.sqlite_dos'}[request.config.getoption('--db-backend')]
    assert aiida_profile.storage_backend == expected


def test_nodes_can_be_stored(aiida_profile):
    node = orm.Int(5).store()
    assert orm.load_node(node.pk).value == 5
