"""Conformance cases shared by the two filter evaluators: the Python one
(:mod:`aiida_structstore.core.query`) and its TypeScript port
(``convex/optimadeFilter.ts``), which must agree on every case.

The cases are produced by the Python side: compiled OPTIMADE filters (:func:`compile_filter` on real filter strings)
and hand-written queries, evaluated on varied documents (summary-like ones and odd ones: missing fields, nulls,
lists, objects, unicode, timestamps); entry documents built by :func:`document` from Convex ``structures``
documents (through the store's own conversion); timestamp texts of millisecond times; and queries that
:func:`check_query` accepts or refuses. ``convex/optimadeFilter.test.ts`` runs the port over the same file;
``test_filter_cases.py`` checks that the committed file is what this module generates.

Regenerate after changing the evaluator, the compiler or this module::

    PYTHONPATH=. .venv/bin/python -m tests.api.filter_cases

What JSON cannot carry is left out: NaN and infinities, and the difference between ``2`` and ``2.0`` (Python keeps
it, JSON and JavaScript do not; it matters only for ``$size`` arguments, which the compiler writes as integers).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from aiida_structstore.api.optimade.fields import document
from aiida_structstore.api.optimade.filters import compile_filter
from aiida_structstore.core import query as evaluate
from aiida_structstore.core.structures import StructureSummary
from aiida_structstore.store.convex.structures import ConvexStructures, _ms_to_datetime

PATH = Path(__file__).resolve().parents[2] / 'convex' / 'testdata' / 'filter_cases.json'
UTC = dt.timezone.utc

#: OPTIMADE filters compiled with the project's compiler.
FILTERS = [
    'elements HAS "Si"',
    'elements HAS ALL "Fe","O"',
    'elements HAS ANY "Si","Fe"',
    'elements HAS ONLY "Si"',
    'elements HAS ONLY "Si","O"',
    'NOT elements HAS "Fe"',
    'NOT elements HAS ONLY "Si"',
    'elements LENGTH 1',
    'elements LENGTH >= 2',
    'NOT elements LENGTH > 1',
    'elements IS KNOWN',
    'elements IS UNKNOWN',
    'nelements = 2',
    'nelements != 2',
    'nelements >= 2 AND nelements < 4',
    '2 < nsites AND nsites <= 30',
    'nsites > 8 OR chemical_formula_reduced = "Si"',
    'NOT nsites = 2',
    'nsites < 0',
    'nsites IS UNKNOWN',
    '"Fe2O3" = chemical_formula_reduced',
    'chemical_formula_reduced < "Fe"',
    'chemical_formula_reduced >= "Si"',
    'chemical_formula_anonymous = "A2B3"',
    'chemical_formula_descriptive STARTS WITH "Fe"',
    'chemical_formula_descriptive STARTS "ü"',
    'chemical_formula_hill CONTAINS "O"',
    'chemical_formula_hill IS UNKNOWN',
    'id = "si" OR id = "fe2o3"',
    'id ENDS "scf"',
    'id CONTAINS "."',
    'NOT id CONTAINS "."',
    'id CONTAINS "-"',
    'id CONTAINS "("',
    'id CONTAINS "(.*)*(.*)*(.*)*!"',
    'id STARTS WITH ".*"',
    'id ENDS WITH "$"',
    'id CONTAINS "\\""',
    'id CONTAINS "\\\\"',
    'id CONTAINS ""',
    'id > "fe" AND id < "si"',
    'id = "\U0001d518nicode"',
    'id > "\ue000"',
    'id CONTAINS "😀"',
    'structure_features LENGTH 0',
    'structure_features LENGTH > 0',
    'NOT structure_features LENGTH > 0',
    'structure_features HAS "disorder"',
    'nperiodic_dimensions = 3 AND dimension_types HAS ALL 1',
    'dimension_types HAS ONLY 1',
    'dimension_types HAS 0',
    'elements_ratios HAS 0.5',
    'elements_ratios HAS ANY 0.4, 0.6',
    'lattice_vectors IS KNOWN',
    'species_at_sites HAS "Fe2"',
    'species_at_sites LENGTH 2',
    'last_modified >= "2000-01-01T00:00:00Z"',
    'last_modified < "2000-01-01T00:00:00Z"',
    'last_modified > "2024-05-01"',
    'last_modified = "2024-05-01T12:00:00Z"',
    'last_modified <= "2024-05-01T14:00:00.5+02:00"',
    'last_modified != "2024-05-01T12:00:00Z"',
    'last_modified IS UNKNOWN',
    '_structstore_source.kind = "pw-input"',
    '_structstore_source.filename ENDS ".cif"',
    '_structstore_source.filename CONTAINS "[a-z]"',
    '_structstore_source.filename IS UNKNOWN',
    '_structstore_aiida_node IS KNOWN',
    '_structstore_aiida_node STARTS "0"',
    '_id = "x"',
    '_id IS UNKNOWN',
    'NOT (nsites > 2 AND (elements HAS "O" OR id ENDS "x"))',
    '(nsites >= 2 OR nelements >= 2) AND NOT chemical_formula_reduced CONTAINS "Fe"',
    'type = "structures"',
]

#: Queries written by hand: operators and shapes the compiler does not produce, and odd arguments.
RAW_QUERIES: list[dict[str, Any]] = [
    {},
    {'nsites': 2},
    {'nsites': 2.5},
    {'nsites': True},
    {'flag': 1},
    {'flag': True},
    {'none': None},
    {'missing': None},
    {'none': {'$exists': True}, 'missing': {'$exists': False}},
    {'missing': {'$ne': 1}},
    {'missing': {'$lt': 1}},
    {'missing': {'$all': [None]}},
    {'missing': {'$in': [None, 1]}},
    {'missing': {'$nin': [None]}},
    {'elements': ['Fe', 'O']},
    {'elements': ['O', 'Fe']},
    {'elements': {'$eq': ['Fe', 'O']}},
    {'elements': {'$all': ['O', 'Fe']}},
    {'elements': {'$only': ['O', 'Fe', 'Si']}},
    {'elements': {'$size': 2}},
    {'elements': {'$size': {'$gt': 1, '$lt': 3}}},
    {'elements': {'$size': {'$eq': 0}}},
    {'elements': {'$not': {'$size': {'$gt': 1}}}},
    {'elements': {'$not': {'$not': {'$contains': 'F'}}}},
    {'elements': {'$contains': 'F'}},
    {'elements': {'$gt': 'N'}},
    {'nsites': {'$gt': '3'}},
    {'nsites': {'$gte': 2, '$lte': 2}},
    {'nsites': {'$in': [2, 30]}},
    {'nsites': {'$in': [[2]]}},
    {'lattice_vectors': [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]},
    {'lattice_vectors': {'$size': 3}},
    {'lattice_vectors': [1.0, 0.0, 0.0]},
    {'lattice_vectors': {'$gt': 0.5}},
    {'source.kind': 'cif', 'source.filename': {'$endswith': '.cif'}},
    {'source': {'$exists': True}},
    {'species.name': {'$in': ['Fe1']}},
    {'species.name': 'O'},
    {'species.mass': {'$exists': True}},
    {'species.name.x': {'$exists': True}},
    {'nested.a.b': 1},
    {'nested.a': {'$size': 2}},
    {'id': {'$contains': 'ü'}},
    {'id': {'$lt': '\ue000'}},
    {'id': {'$gt': '\ue000'}},
    {'id': {'$startswith': ''}},
    {'last_modified': {'$gt': '2024-05-01T11:59:59.999999Z'}},
    {'last_modified': '2024-05-01T12:00:00.000000Z'},
    {'last_modified': {'$startswith': '2024-05'}},
    {'last_modified': {'$lt': 5}},
    {'$or': [{'id': 'x'}, {'$and': [{'nsites': 30}, {'nelements': 2}]}]},
    {'$or': [{'id': 'x'}, {'nsites': {'$lt': 0}}]},
    {'$and': [{'nsites': {'$exists': True}}, {'$or': [{'elements': 'Fe'}, {'elements': 'Si'}]}]},
    {'$nor': [{'id': 'x'}]},
    {'id': {'$regex': '.*'}},
    {'id': {'$contains': 5}},
    {'id': {'$size': 'two'}},
    {'elements': {'$only': 'Fe'}},
    {'elements': {'$all': []}},
    {'elements': {'$size': {}}},
    {'elements': {'$size': {'$ne': 2}}},
    {'elements': {'$not': 5}},
    {'$and': 'x'},
    {'obj': {'k': 1}},
    {'obj': {'$eq': {'k': 1}}},
]


def _deep_query(depth: int) -> dict[str, Any]:
    query: dict[str, Any] = {'id': 'x'}
    for _ in range(depth):
        query = {'$or': [query, {'id': 'y'}]}
    return query


def _deep_not(depth: int) -> dict[str, Any]:
    condition: dict[str, Any] = {'$eq': 'x'}
    for _ in range(depth):
        condition = {'$not': condition}
    return {'id': condition}


def _deep_value(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


RAW_QUERIES += [
    _deep_query(evaluate.MAX_QUERY_DEPTH - 2),
    _deep_query(evaluate.MAX_QUERY_DEPTH + 5),
    _deep_not(evaluate.MAX_QUERY_DEPTH - 2),
    _deep_not(evaluate.MAX_QUERY_DEPTH + 5),
    {'deep': _deep_value(evaluate.MAX_VALUE_DEPTH - 1)},
    {'deep': _deep_value(evaluate.MAX_VALUE_DEPTH + 3)},
    {'deep': {'$in': [_deep_value(evaluate.MAX_VALUE_DEPTH + 3)]}},
]

#: Queries :func:`check_query` is asked about (valid or not), beyond the ones above.
CHECKED: list[Any] = [
    [],
    None,
    'nsites',
    5,
    {'$and': []},
    {'$or': [{}]},
    {'$or': [5]},
    {'$bad': 1},
    {'a': {'$regex': 'x'}},
    {'a': {'$size': 'two'}},
    {'a': {'$size': True}},
    {'a': {'$size': {'$ne': 1}}},
    {'a': {'$size': {'$lt': 1.5}}},
    {'a': {'$contains': 5}},
    {'a': {'$in': []}},
    {'a': {'$in': 'x'}},
    {'a': {'$in': [{'k': 1}]}},
    {'a': {'$not': 5}},
    {'a': {'$not': {}}},
    {'a': {'$not': {'b': 1}}},
    {'a': {'$exists': 1}},
    {'a': {'k': 1}},
    {'a': {}},
    {'a..b': 1},
    {'.a': 1},
    {'a.': 1},
    {'': 1},
    {'a': [1, [2, [3, None, True, 'x']]]},
    {'a': 1e300},
    {'a': -0.0},
]

_DOC = {
    'id': 'fe2o3',
    'type': 'structures',
    'nsites': 30,
    'nelements': 2,
    'elements': ['Fe', 'O'],
    'elements_ratios': [0.4, 0.6],
    'chemical_formula_reduced': 'Fe2O3',
    'chemical_formula_descriptive': 'Fe2O3',
    'chemical_formula_anonymous': 'A2B3',
    'chemical_formula_hill': 'Fe2O3',
    'dimension_types': [1, 1, 1],
    'nperiodic_dimensions': 3,
    'lattice_vectors': [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    'structure_features': [],
    'last_modified': dt.datetime(2024, 5, 1, 12, tzinfo=UTC),
    '_structstore_source': {'kind': 'cif', 'filename': 'fe2o3.cif'},
    '_structstore_aiida_node': '0b6f8e4e-1b59-4a53-9a55-3c7e7f0e5a11',
    'flag': True,
    'none': None,
    'source': {'kind': 'cif', 'filename': 'fe2o3.cif'},
    'species': [{'name': 'Fe1', 'mass': 55.8}, {'name': 'O'}, 'not an object', [{'name': 'nested'}]],
    'nested': {'a': [{'b': 1}, {'b': [2, 3]}, {'c': 4}]},
    'obj': {'k': 1},
}

#: Documents filters are evaluated on: summary-like ones and odd ones.
DOCUMENTS: list[dict[str, Any]] = [
    _DOC,
    {
        'id': 'si',
        'type': 'structures',
        'nsites': 2,
        'nelements': 1,
        'elements': ['Si'],
        'elements_ratios': [1.0],
        'chemical_formula_reduced': 'Si',
        'chemical_formula_descriptive': 'Si2',
        'chemical_formula_anonymous': 'A',
        'chemical_formula_hill': None,
        'dimension_types': [1, 1, 1],
        'nperiodic_dimensions': 3,
        'structure_features': ['disorder'],
        'last_modified': dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        '_structstore_source': {'kind': 'pw-input', 'filename': None},
        '_structstore_aiida_node': None,
    },
    {'id': 'si-scf', 'elements': ['Si', 'O'], 'nsites': 2.0, 'nelements': 2, 'last_modified': '2024-05-01T12:00:00Z'},
    {'id': 'a.b(c)', 'elements': 'Fe', 'nsites': '30', 'nelements': True, 'chemical_formula_reduced': 5},
    {'id': 'a"b\\c', 'elements': [], 'structure_features': None, 'nsites': -1, 'lattice_vectors': [[None, 1.5]]},
    {'id': '\U0001d518nicode', 'chemical_formula_descriptive': 'ü-Fe😀', 'elements': ['😀', 'Fe'], 'nsites': 1e20},
    {'id': '\uffff', 'elements': [None, 1, True, ['Fe']], 'elements_ratios': [0.5, 0.5], 'dimension_types': [0, 1, 0]},
    {'id': 'x', 'elements': [['Fe', 'O']], 'species': {'name': 'Fe1'}, 'nested': {'a': {'b': 1}}, 'obj': {'k': 1.0}},
    {'id': 'y', 'elements': [{'k': 1}], 'obj': {'k': 1, 'j': 2}, 'flag': 1, 'none': False, 'missing': 0},
    {'id': None, 'type': None, 'last_modified': None, '_structstore_source': None},
    {'deep': _deep_value(evaluate.MAX_VALUE_DEPTH - 1), 'id': 'deep-ok'},
    {'deep': _deep_value(evaluate.MAX_VALUE_DEPTH + 3), 'id': 'deep-too'},
    {},
]

#: Convex ``structures`` documents whose entry documents are compared.
RECORDS: list[dict[str, Any]] = [
    {
        'tenant_id': 't1',
        'workspace_id': 'w1',
        'structure_id': 'fe2o3',
        'source': {'kind': 'cif', 'filename': 'fe2o3.cif'},
        'summary': {
            'elements': ['Fe', 'O'],
            'nelements': 2,
            'elements_ratios': [0.4, 0.6],
            'chemical_formula_descriptive': 'Fe2O3',
            'chemical_formula_reduced': 'Fe2O3',
            'chemical_formula_anonymous': 'A2B3',
            'chemical_formula_hill': 'Fe2O3',
            'dimension_types': [1, 1, 1],
            'nperiodic_dimensions': 3,
            'lattice_vectors': [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 13.7]],
            'nsites': 30,
            'structure_features': [],
        },
        'node_uuid': '0b6f8e4e-1b59-4a53-9a55-3c7e7f0e5a11',
        'content_hash': 'a' * 64,
        'chunk_count': 1,
        'raw_size': 10,
        'raw_sha256': 'b' * 64,
        'created_at': 1714564800000,
        'updated_at': 1714564800123,
    },
    {
        'tenant_id': 't1',
        'workspace_id': 'w1',
        'structure_id': 'si',
        'source': {'kind': 'aiida', 'filename': None},
        'summary': {},
        'node_uuid': None,
        'content_hash': 'c' * 64,
        'chunk_count': 0,
        'raw_size': None,
        'raw_sha256': None,
        'created_at': 0,
        'updated_at': 0,
    },
    {
        'tenant_id': 't1',
        'workspace_id': 'w1',
        'structure_id': 'odd.one-1',
        'source': {'kind': 'pw-input', 'filename': 'ü 😀.in'},
        'summary': {'elements': ['Si'], 'nsites': 2.0, 'chemical_formula_hill': None, 'lattice_vectors': [[None, 1.0]]},
        'node_uuid': None,
        'content_hash': 'd' * 64,
        'chunk_count': 0,
        'raw_size': None,
        'raw_sha256': None,
        'created_at': 1,
        'updated_at': 1714564800000.5,
    },
]

#: Millisecond times whose timestamp text is compared (the store's conversion, then timestamp_text).
TIMES = [
    0,
    1,
    999,
    1000,
    -1,
    -1001,
    1714564800000,
    1714564800123,
    1714564800999,
    1714564800000.5,
    1714564800000.4995,
    1714564800000.0005,
    1714564800123.7,
    123.456,
    0.0005,
    0.0015,
    0.0025,
    946684799999,
    253402300799999,
    -62135596800000,
    1e15,
    -1e15,
]


def _json(value: Any) -> Any:
    """``value`` as JSON data: timestamps as their fixed-width text (which the evaluator compares them as)."""
    if isinstance(value, dt.datetime):
        return evaluate.timestamp_text(value)
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value


def _timestamp(ms: float) -> str | None:
    try:
        return evaluate.timestamp_text(_ms_to_datetime(ms))
    except (ValueError, OverflowError, OSError):
        return None


def _valid(query: Any) -> bool:
    try:
        evaluate.check_query(query)
    except evaluate.QueryError:
        return False
    return True


def generate() -> dict[str, Any]:
    """The cases, as the JSON data the committed file holds."""
    queries = [{'filter': text, 'query': compile_filter(text).query} for text in FILTERS]
    queries += [{'filter': None, 'query': query} for query in RAW_QUERIES]
    documents = [_json(doc) for doc in DOCUMENTS]
    expected = []
    for item in queries:
        row = ''
        for doc, data in zip(DOCUMENTS, documents, strict=True):
            result = evaluate.matches(item['query'], doc)
            # The JSON form (timestamps as text) must give the same answer, or the case would test nothing.
            assert evaluate.matches(item['query'], data) is result, (item, doc)
            row += '1' if result else '0'
        expected.append(row)
    entries, entry_documents = [], []
    for record in RECORDS:
        summary = StructureSummary(**ConvexStructures._summary_fields(record))
        entry_documents.append(document(summary))
        entries.append({'record': record, 'document': _json(entry_documents[-1])})
    # Which entries each query matches, evaluated on the documents the API builds from the store's summaries:
    # what queryStructures must return for them.
    entry_expected = [
        ''.join('1' if evaluate.matches(item['query'], doc) else '0' for doc in entry_documents) for item in queries
    ]
    checked = [{'query': query, 'valid': _valid(query)} for query in [item['query'] for item in queries] + CHECKED]
    return {
        'comment': 'Generated by tests/api/filter_cases.py from the Python evaluator; do not edit by hand. '
        'expected[i][j] is 1 when queries[i] matches documents[j]; entry_expected[i][k] when it matches '
        'the document of entries[k].',
        'queries': queries,
        'documents': documents,
        'expected': expected,
        'entries': entries,
        'entry_expected': entry_expected,
        'timestamps': [{'ms': ms, 'text': _timestamp(ms)} for ms in TIMES],
        'checked': checked,
    }


def render() -> str:
    """The file's text: one JSON value, keys sorted, ASCII only (so no editor or tool changes it)."""
    return json.dumps(generate(), indent=1, sort_keys=True, ensure_ascii=True, allow_nan=False) + '\n'


def main() -> None:
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(render(), encoding='ascii')
    print(f'wrote {PATH}')


if __name__ == '__main__':
    main()
