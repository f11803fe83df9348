"""Identifier rules and record validation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiida_structstore.core.exceptions import InvalidInputError
from aiida_structstore.core.structures import Source, StructureContent, StructureKey, content_hash
from aiida_structstore.core.values import ID_PATTERN, validate_id


@given(st.text(max_size=140))
def test_validate_id_accepts_exactly_the_documented_set(value):
    expected = re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._-]{0,127}', value) is not None
    try:
        validate_id(value)
    except InvalidInputError:
        assert not expected
    else:
        assert expected


@given(st.from_regex(ID_PATTERN, fullmatch=True))
def test_valid_ids_make_keys(value):
    key = StructureKey.of(value, value, value)
    assert str(key) == f'{value}/{value}/{value}'


@pytest.mark.parametrize(
    ('value', 'match'),
    [
        ('', 'must not be empty'),
        ('x' * 129, '129 characters long; the limit is 128'),
        ('a/b', "character '/' is not allowed"),
        ('a\x07', "character '\\\\x07' is not allowed"),
        ('_lead', 'must start with an ASCII letter or digit'),
        (5, 'must be a string'),
    ],
)
def test_invalid_id_messages_name_the_problem(value, match):
    with pytest.raises(InvalidInputError, match=match):
        validate_id(value, 'structure_id')


def test_key_errors_name_the_field():
    with pytest.raises(InvalidInputError, match='workspace_id'):
        StructureKey.of('t', 'a b', 's')


def test_content_hash_ignores_key_and_depends_on_everything_else():
    a = StructureContent(key=StructureKey.of('t', 'w', 'a'), source=Source(kind='cif'), cif='x')
    b = StructureContent(key=StructureKey.of('u', 'v', 'b'), source=Source(kind='cif'), cif='x')
    assert content_hash(a, None, None) == content_hash(b, None, None)
    variants = [
        content_hash(a, 1, 'f' * 64),
        content_hash(a, None, None),
        content_hash(a.model_copy(update={'cif': 'y'}), None, None),
        content_hash(a.model_copy(update={'params': {'k': 1}}), None, None),
        content_hash(a.model_copy(update={'params': {'k': 1.0}}), None, None),
        content_hash(a.model_copy(update={'source': Source(kind='cif', filename='f.cif')}), None, None),
    ]
    assert len(set(variants)) == len(variants)


@pytest.mark.parametrize(
    ('fields', 'match'),
    [
        ({'source': {'kind': 'CIF!'}}, 'source kind'),
        ({'source': {'kind': 'cif', 'filename': 'a\nb'}}, 'control or formatting character U\\+000A'),
        ({'source': {'kind': 'cif', 'filename': 'a\tb.cif'}}, 'control or formatting character U\\+0009'),
        ({'source': {'kind': 'cif', 'filename': 'evil\u202efic.exe'}}, 'formatting character U\\+202E'),
        ({'source': {'kind': 'cif', 'filename': 'zero\u200bwidth'}}, 'formatting character U\\+200B'),
        ({'source': {'kind': 'cif'}, 'node_uuid': 'nope'}, 'not a UUID'),
        ({'source': {'kind': 'cif'}, 'cif': 'bad \ud800'}, 'surrogate'),
        ({'source': {'kind': 'cif'}, 'params': {'x': float('nan')}}, 'not a finite number'),
        ({'source': {'kind': 'cif'}, 'unknown': 1}, 'Extra inputs are not permitted'),
    ],
)
def test_content_validation(fields, match):
    with pytest.raises(InvalidInputError, match=match):
        StructureContent.build(key=StructureKey.of('t', 'w', 's'), **fields)


@pytest.mark.parametrize(
    'name', ['si.cif', 'quartz \u03b1.cif', 'ферум.in', '\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.cif']
)
def test_ordinary_file_names_are_kept(name):
    assert Source.of('cif', name).filename == name


def test_source_of_raises_the_package_error():
    with pytest.raises(InvalidInputError, match='source kind'):
        Source.of('CIF!', None)


def test_cached_json_texts_follow_model_copy():
    content = StructureContent(
        key=StructureKey.of('t', 'w', 's'), source=Source(kind='cif'), structure={'nsites': 1}, params={'x': 1}
    )
    assert (content.structure_json, content.params_json) == ('{"nsites":1}', '{"x":1}')
    changed = content.model_copy(update={'params': {'x': 2}, 'structure': {'nsites': 2}})
    assert (changed.structure_json, changed.params_json) == ('{"nsites":2}', '{"x":2}')
    assert content_hash(changed, None, None) != content_hash(content, None, None)


def test_trusted_structure_still_refuses_non_finite_numbers_when_hashed():
    content = StructureContent.from_trusted_structure(
        key=StructureKey.of('t', 'w', 's'), source=Source(kind='aiida'), structure={'positions': [[float('nan')]]}
    )
    with pytest.raises(InvalidInputError, match='not representable as JSON'):
        content_hash(content, None, None)
    with pytest.raises(InvalidInputError, match='params'):
        StructureContent.from_trusted_structure(
            key=StructureKey.of('t', 'w', 's'), source=Source(kind='aiida'), structure={}, params={'x': float('inf')}
        )
