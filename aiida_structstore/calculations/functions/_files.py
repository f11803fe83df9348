"""Helpers shared by the import calcfunctions."""

from __future__ import annotations

import re

from aiida import orm

from ...exceptions import ParseError
from ...models import ensure_text

_LABEL = re.compile(r'[^A-Za-z0-9_]')


def read_text(file: orm.SinglefileData) -> str:
    """Return the content of ``file`` as text, raising :class:`ParseError` if it is not UTF-8."""
    try:
        return ensure_text(file.get_content(mode='rb'), f'file {file.filename!r}')
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(str(exc)) from exc


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
