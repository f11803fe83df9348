"""Download names of the read API: the ``Content-Disposition`` of ``/raw`` and of the CIF view.

A record's source keeps the name (or path) of the file it was imported from. ``/raw`` is offered under that name
(``fe2o3_bands.in``), the CIF view under the same stem with ``.cif`` (``fe2o3_bands.cif``; a CIF source's own name
is the raw input's, so its CIF view becomes ``fe2o3-p1.cif``). Without a file name, the structure id names them
(``<id>.cif``, ``<id>.in`` for a pw.x input, ``<id>.txt`` otherwise).

The stored name is not trusted: only its last path component is kept, characters that a file system or a header
could misread (control and formatting characters, ``/ \\ : * ? " < > |``, leading dots) are replaced, and the header
carries an ASCII ``filename="..."`` (no quote, backslash or non-ASCII character) beside the exact UTF-8 name in
``filename*=UTF-8''...`` (RFC 6266, RFC 8187), which browsers prefer.

This module imports no AiiDA module.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from ..core.structures import Source

__all__ = ('MAX_NAME_LENGTH', 'cif_name', 'content_disposition', 'raw_name', 'safe_file_name')

#: Longest download name, in characters (extension included).
MAX_NAME_LENGTH = 120
_RESERVED = set('/\\:*?"<>|')
#: Names Windows refuses whatever their extension.
_DEVICE_NAMES = {'CON', 'PRN', 'AUX', 'NUL', *(f'COM{i}' for i in range(1, 10)), *(f'LPT{i}' for i in range(1, 10))}
_RAW_EXTENSIONS = {'cif': '.cif', 'pw-input': '.in'}


def _replace(char: str) -> str:
    if char in _RESERVED or unicodedata.category(char) in ('Cc', 'Cf', 'Cs', 'Co', 'Cn', 'Zl', 'Zp'):
        return '_'
    if char.isspace():
        return ' '
    return char


def _split(name: str) -> tuple[str, str]:
    stem, dot, extension = name.rpartition('.')
    return (stem, f'.{extension}') if dot and stem else (name, '')


def safe_file_name(name: str | None) -> str | None:
    """``name``'s last path component made safe to save under, or ``None`` when nothing usable is left."""
    if not name:
        return None
    base = name.replace('\\', '/').rstrip('/').rpartition('/')[2]
    text = ''.join(_replace(char) for char in unicodedata.normalize('NFC', base))
    text = ' '.join(text.split()).lstrip('.').strip(' .')
    if not text.strip('_'):
        return None
    stem, extension = _split(text)
    if stem.upper() in _DEVICE_NAMES:
        stem = f'_{stem}'
    if len(extension) > 16:
        stem, extension = stem + extension, ''
    stem = stem[: MAX_NAME_LENGTH - len(extension)].rstrip(' .')
    return f'{stem}{extension}' if stem else None


def raw_name(source: Source | None, structure_id: str) -> str:
    """The download name of a record's raw input."""
    name = safe_file_name(source.filename if source else None)
    if name:
        return name
    return structure_id + _RAW_EXTENSIONS.get(source.kind if source else '', '.txt')


def cif_name(source: Source | None, structure_id: str) -> str:
    """The download name of a record's (kind-keeping P1) CIF."""
    original = safe_file_name(source.filename if source else None)
    if not original:
        return f'{structure_id}.cif'
    stem, _ = _split(original)
    name = f'{stem}.cif'
    if name.lower() == original.lower():
        name = f'{stem}-p1.cif'
    return name


def _ascii(name: str, fallback_stem: str) -> str:
    text = unicodedata.normalize('NFKD', name).encode('ascii', 'ignore').decode('ascii')
    text = ''.join(char if char.isprintable() and char not in '"\\%' else '_' for char in text)
    stem, dot, extension = text.rpartition('.')
    if not dot:
        stem, extension = text, ''
    if any(char.isalnum() for char in stem):
        return text
    return fallback_stem + (f'.{extension}' if extension.isalnum() else '')


def content_disposition(name: str, fallback_stem: str, disposition: str = 'attachment') -> str:
    """The ``Content-Disposition`` header offering ``name`` (already :func:`safe_file_name`-safe): an ASCII
    ``filename`` (``fallback_stem`` and the extension when the stem has no ASCII letter or digit) and the exact
    ``filename*``."""
    return f'{disposition}; filename="{_ascii(name, fallback_stem)}"; filename*=UTF-8\'\'{quote(name, safe="")}'
