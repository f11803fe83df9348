"""The value rules every record kind shares: ids, text that must encode to UTF-8, canonical JSON.

Identifiers
-----------
Tenant, workspace and structure ids share one safe character set, chosen so that an id can appear unescaped in a
URL path segment, a file name, a log line and a Convex index range:

* 1 to 128 characters;
* ASCII letters, digits, ``_``, ``-`` and ``.``;
* the first character is a letter or a digit (so no ``.``/``..`` path tricks, no leading dash that looks like an
  option on a command line).

Anything else (empty, too long, path separators, whitespace, control characters, non-ASCII) is rejected with
:class:`~.exceptions.InvalidInputError` naming the field and the offending value.

This module imports no AiiDA module.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from .exceptions import InvalidInputError

__all__ = (
    'FILENAME_MAX_LENGTH',
    'ID_MAX_LENGTH',
    'ID_PATTERN',
    'canonical_json',
    'ensure_text',
    'unsafe_character',
    'validate_id',
)

ID_MAX_LENGTH = 128
ID_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,127}')
FILENAME_MAX_LENGTH = 255


def validate_id(value: object, what: str = 'id') -> str:
    """Return ``value`` if it is a valid tenant, workspace or structure id, else raise :class:`InvalidInputError`."""
    if not isinstance(value, str):
        raise InvalidInputError(f'{what} must be a string, got {type(value).__name__}')
    if not value:
        raise InvalidInputError(f'{what} must not be empty')
    if len(value) > ID_MAX_LENGTH:
        raise InvalidInputError(f'{what} is {len(value)} characters long; the limit is {ID_MAX_LENGTH}')
    if ID_PATTERN.fullmatch(value) is None:
        bad = next((c for c in value if not (c.isascii() and (c.isalnum() or c in '._-'))), None)
        if bad is not None:
            detail = f'character {bad!r} is not allowed'
        else:
            detail = 'it must start with an ASCII letter or digit'
        raise InvalidInputError(
            f'{what} {value!r} is invalid: {detail} (allowed: ASCII letters, digits, "_", "-", "."; '
            f'first character a letter or digit; at most {ID_MAX_LENGTH} characters)'
        )
    return value


def unsafe_character(char: str) -> bool:
    """Whether ``char`` is a control or formatting character: C0/C1 controls, DEL, bidirectional overrides and
    isolates (U+202A-U+202E, U+2066-U+2069, which make a name display differently from what it is), other
    invisible format characters, and line or paragraph separators. Such characters are refused in names shown to
    people. The zero-width (non-)joiners U+200C and U+200D are allowed: Persian, Indic scripts and emoji need them."""
    return unicodedata.category(char) in ('Cc', 'Cf', 'Zl', 'Zp', 'Cs') and char not in '\u200c\u200d'


def ensure_text(value: str | bytes, what: str = 'text') -> str:
    """Return ``value`` as a ``str`` that encodes to UTF-8, decoding bytes strictly; raise on anything else."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode('utf-8')
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f'{what} is not valid UTF-8: byte {bytes(value)[exc.start]:#04x} at offset {exc.start}'
            ) from exc
    if not isinstance(value, str):
        raise InvalidInputError(f'{what} must be text, got {type(value).__name__}')
    try:
        value.encode('utf-8')
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f'{what} cannot be encoded as UTF-8: lone surrogate {value[exc.start]!r} at index {exc.start}'
        ) from exc
    return value


def canonical_json(value: Any) -> str:
    """Serialize ``value`` deterministically: sorted keys, compact separators, no NaN or Infinity."""
    try:
        return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise InvalidInputError(f'value is not representable as JSON: {exc}') from exc
    except TypeError as exc:
        raise InvalidInputError(f'value is not JSON-serializable: {exc}') from exc
