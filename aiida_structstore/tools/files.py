"""Helpers shared by the import calcfunctions and ``verdi data structstore import``: reading the file, refusing
file names that would break later, reporting the readers' warnings into the process log."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from aiida import orm

from ..core.exceptions import InvalidInputError, ParseError
from ..core.values import FILENAME_MAX_LENGTH, ensure_text, unsafe_character

__all__ = ('check_filename', 'link_label', 'read_text', 'report')

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
    for message in messages:
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
