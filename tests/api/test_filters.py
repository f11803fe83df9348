"""The filter compiler and the evaluator, without a store: literal strings, JSON queries, limits, totality."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiida_structstore.api.optimade.filters import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    FilterError,
    compile_filter,
    parse_timestamp,
)
from aiida_structstore.core import query as evaluate

from .test_optimade import FILTERS, LITERAL

QUERIES = [query for query, _ in FILTERS + LITERAL]
REDOS = '(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*!'
UTC = dt.timezone.utc


def test_the_limits_are_what_the_docs_say():
    assert (MAX_FILTER_LENGTH, MAX_FILTER_DEPTH, MAX_FILTER_TERMS) == (4096, 16, 100)


@pytest.mark.parametrize('query', QUERIES)
def test_compiled_queries_are_json_without_regular_expressions(query):
    compiled = compile_filter(query).query
    text = json.dumps(compiled)
    assert json.loads(text) == compiled
    assert '$regex' not in text and '#only' not in text and '#known' not in text
    evaluate.check_query(compiled)


@pytest.mark.parametrize(
    ('query', 'expected'),
    [
        ('id CONTAINS "."', {'id': {'$contains': '.'}}),
        ('id STARTS WITH "a("', {'id': {'$startswith': 'a('}}),
        ('id ENDS "$"', {'id': {'$endswith': '$'}}),
        (r'id = "a\"b\\c"', {'id': {'$eq': 'a"b\\c'}}),
        ('elements HAS ONLY "Si"', {'elements': {'$only': ['Si']}}),
        ('structure_features LENGTH > 1', {'structure_features': {'$size': {'$gt': 1}}}),
        ('last_modified > "2020-01-01"', {'last_modified': {'$gt': '2020-01-01T00:00:00.000000Z'}}),
        ('last_modified <= "2020-01-01T02:30:00.5+02:00"', {'last_modified': {'$lte': '2020-01-01T00:30:00.500000Z'}}),
    ],
)
def test_compiled_form(query, expected):
    assert compile_filter(query).query == expected


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        ('2020-01-01', dt.datetime(2020, 1, 1, tzinfo=UTC)),
        ('2020-01-01T10:00:00Z', dt.datetime(2020, 1, 1, 10, tzinfo=UTC)),
        ('2020-01-01t10:00:00z', dt.datetime(2020, 1, 1, 10, tzinfo=UTC)),
        ('2020-01-01T10:00:00', dt.datetime(2020, 1, 1, 10, tzinfo=UTC)),
        ('2020-01-01T10:00:00.123456789-01:30', dt.datetime(2020, 1, 1, 11, 30, 0, 123456, tzinfo=UTC)),
    ],
)
def test_timestamps(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    'text', ['not a date', '2020-13-01', '2020-01-01T25:00:00Z', '2020-01-01T10:00:00+24:00', '0000-01-01', '']
)
def test_bad_timestamps_name_the_value(text):
    with pytest.raises(ValueError, match='is not an RFC 3339 timestamp'):
        parse_timestamp(text)


def test_the_oldest_timestamp_with_an_offset_is_a_400_not_an_overflow():
    with pytest.raises(FilterError) as info:
        compile_filter('last_modified > "0001-01-01T00:00:00+01:00"')
    assert info.value.status == 400


def test_nesting_far_past_the_recursion_limit_is_refused_before_parsing():
    deep = '(' * (sys.getrecursionlimit() * 2) + 'nsites > 0' + ')' * (sys.getrecursionlimit() * 2)
    with pytest.raises(FilterError, match='deeper than 16') as info:
        compile_filter(deep[:MAX_FILTER_LENGTH])
    assert info.value.status == 400


def test_parentheses_and_keywords_inside_strings_are_not_counted():
    inside = '"' + '(' * 40 + ' OR , = HAS ' * 30 + '"'
    assert compile_filter(f'id = {inside}').query == {'id': {'$eq': inside[1:-1]}}


class TestEvaluate:
    DOC = {
        'id': 'fe2o3',
        'nsites': 30,
        'nelements': 2,
        'elements': ['Fe', 'O'],
        'structure_features': [],
        'last_modified': dt.datetime(2024, 5, 1, 12, tzinfo=UTC),
        'flag': True,
        'none': None,
        'source': {'kind': 'cif', 'filename': 'fe2o3.cif'},
        'species': [{'name': 'Fe1'}, {'name': 'O'}],
    }

    @pytest.mark.parametrize(
        ('query', 'expected'),
        [
            ({}, True),
            ({'id': 'fe2o3'}, True),
            ({'id': {'$contains': 'e2'}}, True),
            ({'id': {'$contains': '.'}}, False),
            ({'id': {'$startswith': 'fe'}, 'nsites': {'$gte': 30}}, True),
            ({'elements': {'$contains': 'F'}}, True),
            ({'elements': 'O'}, True),
            ({'elements': {'$all': ['O', 'Fe']}}, True),
            ({'elements': {'$only': ['O', 'Fe', 'Si']}}, True),
            ({'elements': {'$only': ['O']}}, False),
            ({'structure_features': {'$only': ['x']}}, False),
            ({'elements': {'$size': 2}}, True),
            ({'elements': {'$size': {'$gt': 1, '$lt': 3}}}, True),
            ({'elements': {'$not': {'$size': {'$gt': 1}}}}, False),
            ({'elements': {'$in': ['Si', 'O']}}, True),
            ({'elements': {'$nin': ['Si', 'O']}}, False),
            ({'nsites': {'$gt': '3'}}, False),  # a number is not a string
            ({'flag': 1}, False),  # a boolean is not a number
            ({'nsites': True}, False),
            ({'flag': True}, True),
            ({'none': None, 'missing': None}, True),
            ({'none': {'$exists': True}, 'missing': {'$exists': False}}, True),
            ({'missing': {'$ne': 1}}, True),
            ({'missing': {'$lt': 1}}, False),
            ({'source.kind': 'cif', 'source.filename': {'$endswith': '.cif'}}, True),
            ({'species.name': {'$in': ['Fe1']}}, True),
            ({'last_modified': {'$gt': '2024-05-01T11:59:59.999999Z'}}, True),
            ({'last_modified': '2024-05-01T12:00:00.000000Z'}, True),
            ({'last_modified': {'$startswith': '2024-05'}}, True),
            ({'$or': [{'id': 'x'}, {'$and': [{'nsites': 30}, {'nelements': 2}]}]}, True),
            ({'$or': [{'id': 'x'}, {'nsites': {'$lt': 0}}]}, False),
            ({'$nor': [{'id': 'x'}]}, False),  # outside the language: never a match
            ({'id': {'$regex': '.*'}}, False),
        ],
    )
    def test_semantics(self, query, expected):
        assert evaluate.matches(query, self.DOC) is expected

    def test_a_backtracking_pattern_is_plain_text(self):
        assert not evaluate.matches({'id': {'$contains': REDOS}}, {'id': 'a' * 10_000})
        assert evaluate.matches({'id': {'$contains': REDOS}}, {'id': f'x{REDOS}y'})

    def test_deep_documents_and_queries_end_the_descent(self):
        value = leaf = []
        for _ in range(100_000):  # far deeper than the interpreter's stack
            leaf.append([])
            leaf = leaf[0]
        assert evaluate.matches({'a': {'$exists': True}}, {'a': value})
        assert not evaluate.matches({'a': {'$eq': [[[]]]}}, {'a': value})
        assert not evaluate.matches({'a': {'$in': [[[[]]]]}}, {'a': value})
        query = {'id': 'x'}
        for _ in range(evaluate.MAX_QUERY_DEPTH + 5):
            query = {'$or': [query, {'id': 'y'}]}
        assert not evaluate.matches(query, {'id': 'x'})
        with pytest.raises(evaluate.QueryError, match='nested deeper'):
            evaluate.check_query(query)

    @pytest.mark.parametrize(
        'query',
        [
            [],
            {'$and': []},
            {'$bad': 1},
            {'a': {'$regex': 'x'}},
            {'a': {'$size': 'two'}},
            {'a': {'$contains': 5}},
            {'a': {'$in': []}},
            {'a': {'$not': 5}},
            {'a': dt.datetime(2020, 1, 1)},
            {'a': float('nan')},
            {'a..b': 1},
        ],
    )
    def test_check_query_refuses_what_the_language_does_not_have(self, query):
        with pytest.raises(evaluate.QueryError):
            evaluate.check_query(query)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.datetimes(timezones=st.just(UTC))
)
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
)
_NAMES = st.sampled_from(
    ['id', 'nsites', 'elements', 'last_modified', 'species', '_structstore_source', 'chemical_formula_reduced']
)
_DOCUMENTS = st.dictionaries(_NAMES | st.text(max_size=6), _VALUES, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_DOCUMENTS, query=st.sampled_from(QUERIES))
def test_the_evaluator_is_total_on_any_document(document, query):
    """Whatever a record holds, a filter answers True or False: never an exception, so never a 500."""
    compiled = compile_filter(query)
    assert compiled.matches(document) in (True, False)
    assert compiled.matches({'_structstore_source': document}) in (True, False)
