"""Helpers shared by the import calcfunctions and ``verdi data structstore import``: reading the file, refusing
file names and file types that would break later, the cap on data blocks per file, reporting the readers' warnings
into the process log."""

from __future__ import annotations

import os
import pathlib
import re
import stat
import unicodedata
from collections.abc import Iterable

from aiida import orm

from ..core.exceptions import InvalidInputError, LimitExceededError, ParseError
from ..core.values import FILENAME_MAX_LENGTH, ensure_text, unsafe_character

__all__ = (
    'MAX_DATA_BLOCKS',
    'MAX_REPORTED_WARNINGS',
    'check_block_count',
    'check_file_type',
    'check_filename',
    'link_label',
    'read_file',
    'read_text',
    'report',
    'unique_warnings',
)

#: Data blocks one CIF file may hold: each becomes a ``StructureData`` output of one calcfunction, all stored in the
#: same database transaction. Split a larger file (``gemmi`` or a text editor) and import the parts.
MAX_DATA_BLOCKS = 1000

#: Distinct warnings printed (and put into the process log) per file; the rest are counted in one more line.
MAX_REPORTED_WARNINGS = 20

_FILE_TYPES = (
    (stat.S_ISFIFO, 'a FIFO (named pipe)'),
    (stat.S_ISSOCK, 'a socket'),
    (stat.S_ISCHR, 'a character device'),
    (stat.S_ISBLK, 'a block device'),
    (stat.S_ISDIR, 'a directory'),
)

_LABEL = re.compile(r'[^A-Za-z0-9_]')


def check_filename(name: str) -> str:
    """Return ``name`` if it can be stored and shown safely, else raise :class:`InvalidInputError`.

    A file name ends up in the AiiDA database, the store's records, log lines and terminals. Bytes that are not UTF-8
    (Python gives them as lone surrogates) break database queries later; control and bidirectional-formatting
    characters (U+202E turns ``txt.exe`` around) make names that print as something else. The characters refused
    are those of :func:`aiida_structstore.core.values.unsafe_character`, which the store's records refuse too.
    """
    try:
        ensure_text(name, 'the file name')
    except InvalidInputError:
        shown = name.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
        raise InvalidInputError(f'the file name {shown!r} is not valid UTF-8; rename the file') from None
    bad = next((char for char in name if unsafe_character(char)), None)
    if bad is not None:
        raise InvalidInputError(
            f'the file name {name!r} contains the character U+{ord(bad):04X} '
            f'({unicodedata.name(bad, "a control character")}); rename the file'
        )
    if not name.strip() or len(name) > FILENAME_MAX_LENGTH:
        raise InvalidInputError(f'the file name must have 1 to {FILENAME_MAX_LENGTH} characters; rename the file')
    return name


def check_file_type(path: pathlib.Path) -> os.stat_result:
    """Return the ``stat`` of ``path`` if it is a regular file (or a link to one), else raise
    :class:`InvalidInputError` naming its type.

    Checked with ``stat``, which does not open the file: opening a FIFO blocks until something writes to it, and
    reading a device such as ``/dev/zero`` never ends.
    """
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _FILE_TYPES if test(status.st_mode)), 'not a regular file')
        raise InvalidInputError(f'is {kind}, not a regular file; give the path of a structure file')
    return status


def check_block_count(text: str) -> None:
    """Raise :class:`LimitExceededError` if a CIF text has more than :data:`MAX_DATA_BLOCKS` data blocks.

    The blocks are counted by gemmi's syntax reader, before the structures are read (a fraction of the reading time);
    a text gemmi cannot read passes, and the reader reports its problem.
    """
    import gemmi

    try:
        count = len(gemmi.cif.read_string(text))
    except (RuntimeError, ValueError):
        return
    if count > MAX_DATA_BLOCKS:
        raise LimitExceededError(
            f'the file has {count} data blocks; an import takes up to {MAX_DATA_BLOCKS} per file: split the file'
        )


def read_file(path: pathlib.Path) -> bytes:
    """The bytes of ``path``, raising :class:`InvalidInputError` if the system cannot read them (an I/O error, a file
    removed meanwhile, a file such as ``/proc/self/mem`` that claims to be regular)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f'cannot read the file: {exc.strerror or exc}') from exc


def unique_warnings(messages: Iterable[str], limit: int = MAX_REPORTED_WARNINGS) -> list[str]:
    """The distinct messages in their first order, at most ``limit``, and one line counting the rest.

    A pw.x input with one variable assigned 100,000 times gives 99,999 warnings; a CIF of 1,000 blocks from one
    writer gives the same convention warning 1,000 times (block names differ, so the count says how many remain).
    """
    shown: dict[str, None] = {}
    total = 0
    for message in messages:
        total += 1
        if len(shown) < limit:
            shown.setdefault(message, None)
    lines = list(shown)
    if total > len(lines):
        lines.append(f'{total - len(lines)} more warnings not shown (repeats, or beyond the first {limit} distinct)')
    return lines


def read_text(file: orm.SinglefileData) -> str:
    """Return the content of ``file`` as text, raising :class:`ParseError` if it is not UTF-8."""
    try:
        return ensure_text(file.get_content(mode='rb'), f'file {file.filename!r}')
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(str(exc)) from exc


def report(messages: Iterable[str]) -> None:
    """Put each message into the log of the running process (``verdi process report`` shows them).

    A calcfunction has no ``self.report``; the running process is ``Process.current()``, whose ``report`` writes to
    the process node's logger, which AiiDA stores in the database with the node.
    """
    from aiida.engine import Process

    process = Process.current()
    for message in unique_warnings(messages):
        if process is not None:
            process.report(message)


def link_label(name: str, taken: set[str]) -> str:
    """A valid, unique AiiDA link label for ``name`` (letters, digits, single underscores)."""
    label = re.sub('_+', '_', _LABEL.sub('_', name)).strip('_') or 'block'
    if label[0].isdigit():
        label = f'block_{label}'
    candidate, index = label, 2
    while candidate in taken:
        candidate, index = f'{label}_{index}', index + 1
    taken.add(candidate)
    return candidate
