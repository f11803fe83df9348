"""A 50 MB raw input streams through the API over real HTTP with flat memory, on every backend.

Memory is measured with tracemalloc over the whole process (the uvicorn thread serving and the client reading):
the peak of Python allocations while the 50 MB go through must stay a small fraction of 50 MB. Reading the raw
input whole (``get_raw``) would hold it at least twice (the text and its UTF-8 encoding).
"""

from __future__ import annotations

import hashlib
import tracemalloc

import httpx
import pytest

from aiida_structstore.core.structures import Source, StructureContent, StructureKey
from aiida_structstore.store import MemoryStore
from aiida_structstore.store.convex import ConvexStructures
from aiida_structstore.store.memory import MemoryStructures

from .conftest import bearer, make_token

LINE = 'Fe1  0.1234567890  0.2345678901  0.3456789012  ! é \U0001f9f2\r\n'
#: Generous: a streaming read holds one page of chunks (2 MiB of UTF-8 on Convex, one 512 KiB chunk in memory) a few
#: times over: the reply bytes, the decoded text (up to 4 bytes per character in Python), its UTF-8 encoding.
PEAK_LIMIT = 40 * 1024 * 1024


@pytest.mark.slow
def test_50_mb_raw_streams_with_flat_memory(backend, live_server, tenant):
    text = LINE * (50_000_000 // len(LINE.encode()))
    expected = hashlib.sha256(text.encode()).hexdigest()
    content = StructureContent(key=StructureKey.of(tenant, 'big', 'huge'), source=Source(kind='pw-input'))
    backend.structures.put(content, raw=text)
    size = len(text.encode())
    del text
    headers = bearer(make_token(tenant, ['big']))

    digest, received = hashlib.sha256(), 0
    tracemalloc.start()
    try:
        with httpx.Client(base_url=live_server.url, timeout=120) as client:
            with client.stream('GET', '/api/structures/huge/raw', headers=headers) as response:
                assert response.status_code == 200
                assert int(response.headers['content-length']) == size
                for piece in response.iter_bytes():
                    digest.update(piece)
                    received += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # For comparison, the same raw input read whole by the store (what a non-streaming route would do).
    tracemalloc.start()
    try:
        assert len(backend.structures.get_raw(content.key)) > 0
        _, whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f'\n{backend.backend}: streamed {received:,} bytes with a tracemalloc peak of {peak / 2**20:.1f} MiB '
        f'(read whole: {whole / 2**20:.1f} MiB)'
    )
    assert received == size >= 49_000_000
    assert digest.hexdigest() == expected == response.headers['x-content-sha256']
    assert peak < PEAK_LIMIT, f'peak {peak:,} bytes while streaming {size:,}'
    assert peak < whole / 3


def test_a_corrupted_raw_input_cuts_the_response_short(backend, live_server, tenant, monkeypatch):
    """Every chunk is corrupted in the same-sized way: only the sha256, checked after the last chunk, can tell. The
    last piece is held back until then, so the body stays short of Content-Length and the client sees an error."""
    content = StructureContent(key=StructureKey.of(tenant, 'lab', 'torn'), source=Source(kind='pw-input'))
    backend.structures.put(content, raw='x' * (3 * backend.structures.chunk_bytes))
    if isinstance(backend, MemoryStore):
        original = MemoryStructures._chunks_of
        monkeypatch.setattr(
            MemoryStructures, '_chunks_of', staticmethod(lambda entry: [(i, t.upper()) for i, t in original(entry)])
        )
    else:
        read_page = ConvexStructures._read_chunk_page

        def corrupted(self, *args, **kwargs):
            pairs, next_index = read_page(self, *args, **kwargs)
            return [(i, t.upper()) for i, t in pairs], next_index

        monkeypatch.setattr(ConvexStructures, '_read_chunk_page', corrupted)
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        try:
            response = client.get('/api/structures/torn/raw', headers=bearer(make_token(tenant, ['lab'])))
        except httpx.RemoteProtocolError as exc:
            assert 'incomplete' in str(exc) or 'closed' in str(exc)
        else:
            raise AssertionError(f'a corrupted stream completed: HTTP {response.status_code}, {len(response.content)}')
