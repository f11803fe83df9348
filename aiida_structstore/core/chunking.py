"""Split text into chunks of at most a UTF-8 byte budget, and join them back with verification.

Why 512 KiB by default: a Convex document may be at most 1 MiB, and a chunk document carries its key fields
besides the text. Half the document limit leaves ample room for them while keeping the number of chunk documents
(and so index entries and round trips) small: a 50 MB pw.x input becomes 96 chunks. Sixteen such chunks fill 8 MiB,
half of the 16 MiB a single Convex mutation may receive as arguments or write, which is how the Convex backend
batches them.

Splitting works on the UTF-8 encoding and never cuts a code point: a chunk boundary is moved back over UTF-8
continuation bytes (``0b10xxxxxx``). The result depends only on the text and the budget. CRLF and every other
character are kept byte for byte; an empty text has zero chunks.

This module imports no AiiDA module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .exceptions import IntegrityError, InvalidInputError
from .values import ensure_text

__all__ = (
    'DEFAULT_CHUNK_BYTES',
    'MIN_CHUNK_BYTES',
    'ChunkedText',
    'iter_verified',
    'join_chunks',
    'sha256_text',
    'split_text',
)

DEFAULT_CHUNK_BYTES = 512 * 1024
#: The longest UTF-8 encoding of one code point: a smaller budget could not make progress.
MIN_CHUNK_BYTES = 4


@dataclass(frozen=True)
class ChunkedText:
    """The chunks of a text, with the size (UTF-8 bytes) and sha256 of the whole text."""

    chunks: tuple[str, ...]
    size: int
    sha256: str

    @property
    def count(self) -> int:
        return len(self.chunks)


def sha256_text(text: str) -> str:
    """Return the sha256 hex digest of the UTF-8 encoding of ``text``."""
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def split_text(text: str | bytes, max_bytes: int = DEFAULT_CHUNK_BYTES) -> ChunkedText:
    """Split ``text`` into chunks whose UTF-8 encodings are at most ``max_bytes`` long.

    Bytes are decoded as strict UTF-8 first; non-UTF-8 input raises :class:`InvalidInputError`.
    """
    if max_bytes < MIN_CHUNK_BYTES:
        raise InvalidInputError(f'chunk budget must be at least {MIN_CHUNK_BYTES} bytes, got {max_bytes}')
    data = ensure_text(text, 'raw input').encode('utf-8')
    size = len(data)
    chunks: list[str] = []
    start = 0
    while start < size:
        end = min(start + max_bytes, size)
        # Move the boundary back to the start of a code point: continuation bytes are 0b10xxxxxx.
        while end < size and (data[end] & 0xC0) == 0x80:
            end -= 1
        chunks.append(data[start:end].decode('utf-8'))
        start = end
    return ChunkedText(chunks=tuple(chunks), size=size, sha256=hashlib.sha256(data).hexdigest())


def iter_verified(
    chunks: Iterable[tuple[int, str]] | Sequence[str],
    *,
    expected_count: int,
    expected_size: int,
    expected_sha256: str,
    what: str = 'raw input',
) -> Iterator[str]:
    """Yield the texts of ``chunks`` in order while verifying index, count, size and sha256 as they pass.

    ``chunks`` is either a sequence of strings (already in order) or an iterable of ``(index, text)`` pairs, which
    must be exactly ``0 .. expected_count - 1`` in that order. A wrong index, or more bytes or chunks than committed,
    raises :class:`IntegrityError` before the offending chunk is yielded; a short read or a sha256 mismatch raises
    after the last chunk. A consumer that streams the texts must therefore treat that final error as "abort".
    """
    digest = hashlib.sha256()
    size = 0
    count = 0
    for position, item in enumerate(chunks):
        if isinstance(item, str):
            index, text = position, item
        else:
            index, text = item
        if index != position:
            raise IntegrityError(f'{what}: chunk {index} found where chunk {position} was expected')
        if position >= expected_count:
            raise IntegrityError(f'{what}: more than the {expected_count} committed chunks read')
        encoded = text.encode('utf-8')
        size += len(encoded)
        if size > expected_size:
            raise IntegrityError(f'{what}: more than the {expected_size} committed bytes read')
        digest.update(encoded)
        count += 1
        yield text
    if count != expected_count:
        raise IntegrityError(f'{what}: {count} chunks read, {expected_count} committed')
    if size != expected_size:
        raise IntegrityError(f'{what}: {size} bytes read, {expected_size} committed')
    if digest.hexdigest() != expected_sha256:
        raise IntegrityError(f'{what}: sha256 of the data read does not match the committed sha256')


def join_chunks(
    chunks: Iterable[tuple[int, str]] | Sequence[str],
    *,
    expected_count: int,
    expected_size: int,
    expected_sha256: str,
    what: str = 'raw input',
) -> str:
    """Join chunks back into the text, verifying count, order, size and sha256; raise :class:`IntegrityError`.

    ``chunks`` is either a sequence of strings (already in order) or an iterable of ``(index, text)`` pairs, which
    must be exactly ``0 .. expected_count - 1`` in that order.
    """
    return ''.join(
        iter_verified(
            chunks,
            expected_count=expected_count,
            expected_size=expected_size,
            expected_sha256=expected_sha256,
            what=what,
        )
    )
