"""The watch loop and the lease, in this process on the in-memory store: uploads made while the loop runs are
imported, :meth:`UploadLoop.wake` and :meth:`UploadLoop.request_stop` act at once, and the lease is renewed while an
import waits, so that no other importer can claim the upload meanwhile.

The loop and the import run in the test's main thread (AiiDA's runner wants it); a helper thread makes the uploads,
watches the store and stops the loop, driven by the loop's outcomes and by the store's records.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import secrets
import threading

import pytest
from aiida import orm

from aiida_structstore.uploads.importer import UploadImporter
from aiida_structstore.uploads.watch import UploadLoop

from .test_watch import group_locked, waiting_for_a_lock

ROOT = pathlib.Path(__file__).resolve().parents[2]
WAIT = 120  # a guard against a hang, not a timed assertion


class Outcomes:
    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.items: list = []

    def __call__(self, outcome) -> None:
        with self.condition:
            self.items.append(outcome)
            self.condition.notify_all()

    def wait_for(self, count: int) -> None:
        with self.condition:
            assert self.condition.wait_for(lambda: len(self.items) >= count, WAIT), self.items


def test_the_loop_imports_uploads_made_while_it_runs_and_stops_when_asked(memory_backend):
    store = memory_backend
    tenant, space = 'acme', f'loop-{secrets.token_hex(3)}'
    importer = UploadImporter(
        store, claimer='loop:1', lease_seconds=60, group_label=f'loop/{space}', tenant_id=tenant, workspace_id=space
    )
    outcomes = Outcomes()
    # An interval longer than any wait here: only wake() makes the loop look again before the test ends.
    loop = UploadLoop(importer, interval=3600, on_outcome=outcomes)
    files = [ROOT / 'examples' / 'cif' / 'si.cif', ROOT / 'examples' / 'pw' / 'si_scf.in']
    errors = []

    def drive() -> None:
        try:
            for index, path in enumerate(files):
                kind = 'cif' if path.suffix == '.cif' else 'pw'
                store.uploads.create(
                    tenant, space, filename=path.name, kind=kind, content=path.read_bytes(), uploaded_by='g'
                )
                loop.wake()
                outcomes.wait_for(index + 1)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            loop.request_stop()

    helper = threading.Thread(target=drive)
    helper.start()
    loop.run()
    helper.join(WAIT)
    assert not errors, errors
    assert [outcome.status for outcome in outcomes.items] == ['imported', 'imported']
    assert loop.stats.counts['imported'] == 2
    assert len(orm.load_group(f'loop/{space}').nodes) == 2


def test_the_lease_is_renewed_while_an_import_waits(memory_backend, request):
    if request.config.getoption('--db-backend') != 'psql':
        pytest.skip('holds a PostgreSQL row lock')
    store = memory_backend
    tenant, space, group = 'acme', f'lease-{secrets.token_hex(3)}', f'lease/{secrets.token_hex(3)}'
    orm.Group.collection.get_or_create(group)
    path = ROOT / 'examples' / 'cif' / 'fe2o3.cif'
    record, _ = store.uploads.create(
        tenant, space, filename=path.name, kind='cif', content=path.read_bytes(), uploaded_by='h'
    )
    importer = UploadImporter(
        store, claimer='slow:1', lease_seconds=3, group_label=group, tenant_id=tenant, workspace_id=space
    )
    seen: dict = {}
    errors = []
    holder_ready = threading.Event()

    def hold() -> None:
        try:
            with group_locked(group) as holder:
                holder_ready.set()
                # The import waits for the group inside its transaction; the lease is renewed meanwhile.
                done = threading.Event()
                expiries = []
                while len(set(expiries)) < 3 and not done.wait(0.05):
                    current = store.uploads.get(record.key)
                    if current.status == 'importing' and waiting_for_a_lock(holder):
                        expiries.append(current.claim_expires_at)
                    if expiries and dt.datetime.now(dt.timezone.utc) > max(expiries) + dt.timedelta(seconds=1):
                        break  # the lease ran out unrenewed
                seen['renewals'] = len(set(expiries)) - 1
                seen['other_claim'] = store.uploads.claim(claimer='other:2', lease_seconds=3, tenant_id=tenant)
        except BaseException as exc:
            errors.append(exc)
            holder_ready.set()

    helper = threading.Thread(target=hold)
    helper.start()
    assert holder_ready.wait(WAIT)
    outcome = importer.import_next()
    helper.join(WAIT)
    assert not errors, errors
    assert seen['renewals'] >= 2
    assert seen['other_claim'] is None
    assert outcome.status == 'imported', outcome
    assert store.uploads.get(record.key).attempts == 1


def test_an_import_the_database_refuses_is_tried_again_at_once(memory_backend, request):
    """Two importers writing AiiDA's process-state timestamp for the first time race on its unique key: the loser's
    transaction is refused (UniqueViolation). The import is tried again at once, not given up for the lease, and is
    not taken for a parse failure. Here another connection inserts the key and commits while the import waits."""
    if request.config.getoption('--db-backend') != 'psql':
        pytest.skip('holds a PostgreSQL row lock')
    import psycopg
    from aiida.manage import get_manager

    store = memory_backend
    tenant, space, group = 'acme', f'race-{secrets.token_hex(3)}', f'race/{secrets.token_hex(3)}'
    path = ROOT / 'examples' / 'pw' / 'si_scf.in'
    record, _ = store.uploads.create(
        tenant, space, filename=path.name, kind='pw', content=path.read_bytes(), uploaded_by='i'
    )
    importer = UploadImporter(store, claimer='race:1', lease_seconds=60, group_label=group, tenant_id=tenant)
    config = get_manager().get_profile().storage_config
    connection = psycopg.connect(
        host=config['database_hostname'],
        port=config['database_port'],
        user=config['database_username'],
        password=config['database_password'],
        dbname=config['database_name'],
    )
    key = 'process|state_change|calculation'
    connection.execute('DELETE FROM db_dbsetting WHERE key = %s', (key,))
    connection.commit()
    connection.execute("INSERT INTO db_dbsetting (key, val, description, time) VALUES (%s, '\"x\"', '', now())", (key,))
    errors = []

    def commit_when_waited_for() -> None:
        try:
            done = threading.Event()
            while not waiting_for_a_lock(connection) and not done.wait(0.05):
                pass
            connection.commit()
        except BaseException as exc:
            errors.append(exc)

    helper = threading.Thread(target=commit_when_waited_for)
    helper.start()
    try:
        outcome = importer.import_next()
    finally:
        helper.join(WAIT)
        connection.close()
    assert not errors, errors
    assert outcome.status == 'imported', outcome
    assert store.uploads.get(record.key).attempts == 1
