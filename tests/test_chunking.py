"""Chunking by UTF-8 byte budget: never cuts a code point, deterministic, verified on join."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiida_structstore.core.chunking import DEFAULT_CHUNK_BYTES, join_chunks, split_text
from aiida_structstore.core.exceptions import IntegrityError, InvalidInputError

# Arbitrary Unicode scalar values (no surrogates: they cannot be UTF-8 encoded), weighted towards astral and CRLF.
texts = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=['Cs'])),
    st.lists(st.sampled_from(['\r\n', '\r', '\n', 'a', 'é', '中', '\U0001f600', '\U00010348', '\x00'])).map(''.join),
    st.just(''),
)
budgets = st.integers(min_value=4, max_value=64)


@given(text=texts, budget=budgets)
def test_split_never_cuts_code_points_and_round_trips(text, budget):
    chunked = split_text(text, budget)
    data = text.encode('utf-8')
    assert chunked.size == len(data)
    assert chunked.sha256 == hashlib.sha256(data).hexdigest()
    assert all(0 < len(chunk.encode('utf-8')) <= budget for chunk in chunked.chunks)
    assert ''.join(chunked.chunks) == text
    # Chunks are as full as possible: the next chunk's first code point would not have fit.
    for chunk, following in zip(chunked.chunks, chunked.chunks[1:], strict=False):
        assert len(chunk.encode('utf-8')) + len(following[0].encode('utf-8')) > budget
    assert (
        join_chunks(
            chunked.chunks, expected_count=chunked.count, expected_size=chunked.size, expected_sha256=chunked.sha256
        )
        == text
    )


@given(text=texts, budget=budgets)
def test_split_is_deterministic(text, budget):
    assert split_text(text, budget) == split_text(text, budget)


def test_empty_input_has_no_chunks():
    chunked = split_text('')
    assert chunked.chunks == ()
    assert chunked.size == 0
    assert chunked.sha256 == hashlib.sha256(b'').hexdigest()
    assert join_chunks([], expected_count=0, expected_size=0, expected_sha256=chunked.sha256) == ''


def test_default_budget_is_half_a_convex_document():
    assert DEFAULT_CHUNK_BYTES == 512 * 1024
    text = '\U0001f600' * (DEFAULT_CHUNK_BYTES // 4 + 1)
    chunked = split_text(text)
    assert [len(c.encode()) for c in chunked.chunks] == [DEFAULT_CHUNK_BYTES, 4]


def test_crlf_is_kept_byte_for_byte():
    text = 'a\r\nb\r\n'
    assert split_text(text, 4).chunks == ('a\r\nb', '\r\n')


@pytest.mark.parametrize('budget', [0, 3, -1])
def test_budget_must_fit_one_code_point(budget):
    with pytest.raises(InvalidInputError, match='at least 4'):
        split_text('abc', budget)


def test_non_utf8_bytes_are_refused():
    with pytest.raises(InvalidInputError, match=r'byte 0xff at offset 2'):
        split_text(b'ok\xff')


class TestJoinFailsLoudly:
    chunked = split_text('hello, world', 4)

    def join(self, chunks, **overrides):
        expected = {
            'expected_count': self.chunked.count,
            'expected_size': self.chunked.size,
            'expected_sha256': self.chunked.sha256,
        }
        return join_chunks(chunks, **(expected | overrides))

    def test_indexed_pairs_in_order(self):
        assert self.join(list(enumerate(self.chunked.chunks))) == 'hello, world'

    def test_missing_chunk(self):
        with pytest.raises(IntegrityError, match='2 chunks read, 3 committed'):
            self.join(self.chunked.chunks[:2])

    def test_out_of_order(self):
        pairs = list(enumerate(self.chunked.chunks))
        pairs[0], pairs[1] = pairs[1], pairs[0]
        with pytest.raises(IntegrityError, match='chunk 1 found where chunk 0 was expected'):
            self.join(pairs)

    def test_wrong_size(self):
        with pytest.raises(IntegrityError, match='bytes read'):
            self.join(self.chunked.chunks, expected_size=99)

    def test_wrong_hash(self):
        with pytest.raises(IntegrityError, match='sha256'):
            self.join(['hell', 'o, w', 'orlD'])
