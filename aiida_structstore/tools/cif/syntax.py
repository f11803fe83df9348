"""CIF syntax, read by gemmi: data blocks, data names and values.

gemmi reads CIF 1.1, CIF 2.0 and mmCIF and reports every syntax error with its line (a truncated loop, an unclosed
quote or text field, a value without a data name, content before the first ``data_``). This module adds what the
readers of this package need on top:

* **Data names by category and item.** An item is looked up under its DDL1 spelling (``_atom_site_fract_x``) and its
  DDLm/DDL2 spelling (``_atom_site.fract_x``), case-insensitively, and nothing else: ``_diffrn_radiation_wavelength.id``
  and ``_diffrn_radiation.wavelength_id`` stay two items (turning ``.`` into ``_`` would merge them). A block that
  gives one item under both spellings with different values is an error.
* **Duplicates.** Blocks with the same name stay separate (they are separate structures); a data name given twice in
  one block is an error.
* **One leniency**, reported as a warning: an unquoted value with blanks that runs to the end of its line
  (``_symmetry_space_group_name_H-M P 21/c``, written by old programs and read whole by ASE) is read whole. gemmi,
  following the CIF grammar, refuses the line.
* **Values**: ``?`` and ``.`` are null (``None``); quotes, CIF 2.0 triple quotes and text fields are removed; numbers
  lose their standard uncertainty (``5.431(2)`` is 5.431); anything else where a number is expected is an error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from gemmi import cif

from ...core.exceptions import ParseError

__all__ = ('Block', 'Where', 'read_blocks')

_CONTROL_CHARS = re.compile(r'[\x00-\x08\x0b\x0e-\x1f\x7f]')
_PWX_HINT = re.compile(
    r'^\s*&(control|system|electrons|ions|cell)\b|^\s*(atomic_species|atomic_positions|cell_parameters|k_points)\b',
    re.IGNORECASE | re.MULTILINE,
)
_GEMMI_ERROR = re.compile(r'^[^:]*:(?P<line>\d+)(?::\d+)?(?:\(\d+\))?:?\s*(?:in data_\S*:\s*)?(?P<message>.*)$', re.S)
_UNQUOTED_WITH_BLANKS = re.compile(r'^(?P<tag>\s*_\S+)\s+(?P<value>[^\s\'";#\[\]_$][^\'"#]*?\s[^\'"#]*?)\s*$')
_MAX_LENIENT_LINES = 100


@dataclass
class Where:
    """Where a problem is: the file and the data block. :meth:`error` builds the :class:`ParseError`."""

    filename: str | None
    block: str | None = None

    def error(self, message: str, line: int | None = None) -> ParseError:
        return ParseError(self.note(message, line))

    def note(self, message: str, line: int | None = None) -> str:
        """The message with the file, block and line in front, as in errors (used for warnings)."""
        parts = [f'CIF file {self.filename!r}' if self.filename else 'CIF text']
        if self.block is not None:
            parts.append(f'data block {self.block!r}')
        if line is not None:
            parts.append(f'line {line}')
        return f'{", ".join(parts)}: {message}'


@dataclass(frozen=True)
class Item:
    """One data item: the data name as written, its values (``None`` for ``?`` and ``.``), its line."""

    tag: str
    values: tuple[str | None, ...]
    line: int
    in_loop: bool


@dataclass
class Block:
    """One data block, with lookups by category and item name."""

    block: cif.Block
    where: Where
    lines: dict[str, tuple[int, bool, str]] = field(default_factory=dict)  # lower-case name -> line, in a loop, name

    def __post_init__(self) -> None:
        for item in self.block:
            tags = [item.pair[0]] if item.pair is not None else list(item.loop.tags) if item.loop is not None else []
            if item.pair is not None and not item.pair[1]:
                raise self.where.error(f'data name {item.pair[0]} has no value', item.line_number)
            for tag in tags:
                key = tag.lower()
                if key in self.lines:
                    raise self.where.error(
                        f'data name {tag} appears twice (also line {self.lines[key][0]})', item.line_number
                    )
                self.lines[key] = (item.line_number, item.loop is not None, tag)

    @property
    def name(self) -> str:
        return self.block.name

    def all_tags(self) -> list[str]:
        """Every data name of the block (outside save frames), as written."""
        return [tag for _, _, tag in self.lines.values()]

    def has(self, category: str, name: str) -> bool:
        return any(self.block.find_values(tag) for tag in _spellings(category, name))

    def item(self, category: str, name: str) -> Item | None:
        """The item ``_category_name`` / ``_category.name``, or ``None`` if the block does not give it."""
        found = []
        for tag in _spellings(category, name):
            column = self.block.find_values(tag)
            if not column:
                continue
            line, in_loop, _ = self.lines[tag.lower()]
            values = tuple(value(column[index]) for index in range(len(column)))
            found.append(Item(column.tag, values, line, in_loop))
        if len(found) > 1 and found[0].values != found[1].values:
            raise self.where.error(f'{found[0].tag} and {found[1].tag} are the same item with different values')
        return found[0] if found else None

    def single(self, category: str, name: str) -> tuple[Item, str] | None:
        """The item and its one value, or ``None`` if absent or null."""
        item = self.item(category, name)
        if item is None:
            return None
        values = {value for value in item.values if value is not None}
        if not values:
            return None
        if len(values) > 1:
            raise self.where.error(f'{item.tag} has {len(values)} different values where one is expected', item.line)
        return item, values.pop()

    def number(self, category: str, name: str) -> float | None:
        found = self.single(category, name)
        if found is None:
            return None
        item, text = found
        number = to_float(text)
        if number is None:
            raise self.where.error(f'{item.tag} = {text!r} is not a number', item.line)
        return number


def _spellings(category: str, name: str) -> tuple[str, str]:
    return f'_{category}_{name}', f'_{category}.{name}'


def value(raw: str) -> str | None:
    """The value of a raw CIF token: ``None`` for the null values ``?`` and ``.``, else the unquoted text."""
    if cif.is_null(raw):
        return None
    if raw[:3] in ("'''", '"""') and raw.endswith(raw[:3]) and len(raw) >= 6:
        return raw[3:-3]
    if raw.startswith(';'):
        return cif.as_string(raw).strip()
    return cif.as_string(raw)


def to_float(text: str) -> float | None:
    """A CIF number (``5.431(2)``: the standard uncertainty is dropped); ``None`` if it is not a finite number."""
    number = cif.as_number(text.strip())
    return number if math.isfinite(number) else None


def read_blocks(text: object, where: Where) -> tuple[list[Block], list[str]]:
    """Read the CIF text into its data blocks (save frames and ``global_`` skipped) and the warnings of the reading."""
    if not isinstance(text, str):
        raise where.error(f'expected the CIF content as str, got {type(text).__name__}')
    text = text.removeprefix('\ufeff')
    if not text.strip():
        raise where.error('the text is empty')
    control = _CONTROL_CHARS.search(text)
    if control:
        line = text.count('\n', 0, control.start()) + 1
        raise where.error(
            f'contains binary data (control character {control.group()!r} on line {line}); a CIF file is text'
        )
    warnings: list[str] = []
    document = _parse(text, where, warnings)
    blocks = [Block(block, Where(where.filename, block.name)) for block in document if block.name]
    if not blocks:
        hint = ' (this looks like a Quantum ESPRESSO pw.x input, not a CIF file)' if _PWX_HINT.search(text) else ''
        raise where.error(f'no data_ block header found: this is not a CIF file{hint}')
    return blocks, warnings


def _parse(text: str, where: Where, warnings: list[str]) -> cif.Document:
    lines = text.replace('\r\n', '\n').replace('\r', '\n').split('\n')  # CIF lines end in CR, LF or CR LF only
    lenient: dict[str, list[int]] = {}  # tag -> lines read leniently, one warning per tag
    for _ in range(_MAX_LENIENT_LINES):
        try:
            # check_level 0: gemmi's own checks would refuse blocks of the same name; duplicates are checked below.
            document = cif.read_string('\n'.join(lines), check_level=0)
        except (ValueError, RuntimeError) as exc:
            line, message = _gemmi_error(exc)
            fixed = _quote_unquoted_value(lines, line) if message == 'parse error' else None
            if fixed is None:
                raise where.error(_describe(message, lines, line), line) from None
            lines[line - 1], tag = fixed
            lenient.setdefault(tag, []).append(line)
            continue
        for tag, numbers in lenient.items():
            where_text = f'line {numbers[0]}' if len(numbers) == 1 else f'lines {", ".join(map(str, numbers))}'
            warnings.append(
                f'{where_text}: the value of {tag} contains blanks but is not quoted; it is read to the end of the '
                'line (as ASE does)'
            )
        return document
    raise where.error(f'more than {_MAX_LENIENT_LINES} lines with unquoted values that contain blanks')


def _gemmi_error(exc: Exception) -> tuple[int | None, str]:
    match = _GEMMI_ERROR.match(str(exc))
    if match is None:
        return None, str(exc)
    return int(match.group('line')), match.group('message').strip()


def _quote_unquoted_value(lines: list[str], line: int | None) -> tuple[str, str] | None:
    if line is None or not 1 <= line <= len(lines):
        return None
    match = _UNQUOTED_WITH_BLANKS.match(lines[line - 1])
    if match is None:
        return None
    return f"{match.group('tag')} '{match.group('value')}'", match.group('tag').strip()


def _describe(message: str, lines: list[str], line: int | None) -> str:
    """gemmi's message, with the offending line shown where gemmi only says 'parse error'."""
    if message.startswith('expected block header'):
        text = '\n'.join(lines)
        if _PWX_HINT.search(text):
            return 'no data_ block header found: this looks like a Quantum ESPRESSO pw.x input, not a CIF file'
        first = next((text.strip() for text in lines if text.strip() and not text.lstrip().startswith('#')), '')
        return f'{first[:40]!r} before the first data_ block header: this is not a CIF file'
    if message.startswith('Wrong number of values in loop'):
        return f'{message[0].lower()}{message[1:]}: the loop is truncated or broken'
    if message.startswith('unterminated'):
        what = 'a quoted string is not closed on its line' if 'string' in message else f'{message[13:]} is not closed'
        return what
    if message == 'parse error' and line is not None and 1 <= line <= len(lines) and lines[line - 1].strip():
        return f'CIF syntax error at {lines[line - 1].strip()[:60]!r}'
    if message == 'parse error':
        return 'CIF syntax error at the end of the text (a save frame, loop or text field is not closed?)'
    return message
