"""``store.structures.get_many``: a page of full records in one call, the same records ``get`` returns."""

from __future__ import annotations

import pytest

from aiida_structstore.core.exceptions import InvalidInputError
from aiida_structstore.core.structures import StructureKey
from aiida_structstore.store.structures import INLINE_BYTES


def test_get_many_returns_what_get_returns_in_order(store, make_content, tenant):
    big_cif = 'data_big\n' + '# padding\n' * (INLINE_BYTES // 10 + 100)  # over the inline budget: chunked
    store.structures.put_many(
        [
            (make_content('a'), 'raw a'),
            (make_content('b', cif=big_cif), None),
            (make_content('c'), None),
            (make_content('d', workspace='other'), None),
        ]
    )
    keys = [
        StructureKey.of(tenant, 'ws', 'c'),
        StructureKey.of(tenant, 'ws', 'missing'),
        StructureKey.of(tenant, 'ws', 'b'),
        StructureKey.of(tenant, 'other', 'd'),
        StructureKey.of(f'{tenant}-x', 'ws', 'a'),  # another tenant: nothing
        StructureKey.of(tenant, 'ws', 'a'),
        StructureKey.of(tenant, 'ws', 'c'),
    ]
    found = store.structures.get_many(keys)
    assert [None if r is None else r.key for r in found] == [
        keys[0],
        None,
        keys[2],
        keys[3],
        None,
        keys[5],
        keys[6],
    ]
    for key, record in zip(keys, found, strict=True):
        if record is not None:
            assert record == store.structures.get(key)
    assert found[2].cif == big_cif
    assert store.structures.get_many([]) == []


def test_get_many_reads_a_page_in_one_call(store, make_content, tenant):
    if not hasattr(store, 'transport'):
        pytest.skip('counts Convex calls')
    store.structures.put_many([(make_content(f's{i:03d}'), None) for i in range(150)])
    keys = [StructureKey.of(tenant, 'ws', f's{i:03d}') for i in range(150)]
    before = store.transport.calls
    found = store.structures.get_many(keys)
    assert store.transport.calls - before == 2  # 100 keys per call
    assert [r.key for r in found] == keys


def test_get_many_refuses_what_is_not_a_key(store):
    with pytest.raises(InvalidInputError):
        store.structures.get_many(['t/ws/a'])
