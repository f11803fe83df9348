"""The Convex limits are recorded once (convex/limits.json) and the client's sizes fit them."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import zipfile

from aiida_structstore.core.chunking import DEFAULT_CHUNK_BYTES
from aiida_structstore.core.limits import CONVEX, PROTOCOL
from aiida_structstore.store import structures as contract
from aiida_structstore.store.convex import structures as convex_store
from aiida_structstore.store.convex import transport

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_client_reads_the_one_file():
    recorded = json.loads((ROOT / 'convex' / 'limits.json').read_text())
    assert (CONVEX, PROTOCOL) == (recorded['convex'], recorded['protocol'])


def test_the_clients_sizes_fit_what_the_functions_and_convex_accept():
    assert DEFAULT_CHUNK_BYTES <= PROTOCOL['maxChunkBytes'] < CONVEX['documentBytes']
    assert contract.INLINE_BYTES <= PROTOCOL['maxInlineBytes']
    assert convex_store.LIST_PAGE <= PROTOCOL['maxListPage']
    assert convex_store.READ_PAGE_BYTES <= PROTOCOL['maxReadPageBytes'] <= CONVEX['returnBytes']
    assert convex_store.BATCH_BYTES < transport.DEFAULT_WRITE_RATE <= CONVEX['argumentBytes']


def test_a_wheel_carries_the_limits(tmp_path):
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob('aiida_structstore-*.whl')
    with zipfile.ZipFile(wheel) as archive:
        carried = json.loads(archive.read('aiida_structstore/core/convex_limits.json'))
    assert carried['protocol'] == PROTOCOL
