"""pw.x input text → namelists and cards, read as pw.x reads them.

pw.x reads its namelists with Fortran namelist input and its cards line by line. qe-tools' reader does neither (it
drops strings with blanks, does not know ``&end``, loses atoms after a trailing ``!`` comment, refuses
``1.0D+00``), so this module does, and is the only hand-written syntax of the pw.x reader:

* Text before the first namelist is skipped (a title line is common in QE's own examples).
* ``!`` and ``#`` start comments outside quoted strings; Windows line endings and a byte-order mark are fine.
* A namelist ends with ``/`` or ``&end``. Fortran ignores the rest of the record after ``/``: an ``&end`` there, or
  alone on the next line (a writer that closes its namelists both ways), is skipped; other text there is ignored with
  a warning. Values are Fortran literals: integers, reals (``1.0E+01``, ``1.0d0``,
  ``.5``), logicals (``.true.``, ``t``), quoted strings (``''`` is a quote); ``celldm = 10.2, 1.0, 1.6`` fills
  ``celldm(1)``, ``celldm(2)``, ``celldm(3)`` and ``3*0.0`` repeats a value.
* A variable assigned twice takes the last value, as in Fortran, with one warning per variable (however often it is
  assigned); more than :data:`MAX_ASSIGNMENTS` assignments of one variable are an error.
* Warnings are deduplicated, and at most :data:`MAX_WARNINGS` are kept, followed by one line counting the others.
* Keys are lower-cased with blanks removed (``Hubbard_U(1)`` → ``'hubbard_u(1)'``), namelist names upper-cased.

Refused: unknown or repeated namelists, unterminated namelists (truncated files), unquoted strings, null values
(``a = 1,,2``), text between namelists or cards, binary content.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ...core.exceptions import ParseError

__all__ = (
    'MAX_ASSIGNMENTS',
    'MAX_WARNINGS',
    'Card',
    'Line',
    'Sections',
    'Where',
    'ignore_extra_lines',
    'read_sections',
    'to_float',
)

MAX_ASSIGNMENTS = 1000
"""How often one variable may be assigned in a namelist; more is refused (pw.x takes the last value)."""
MAX_WARNINGS = 50
"""Warnings kept per file; the rest are counted in one last warning."""

NAMELISTS = ('CONTROL', 'SYSTEM', 'ELECTRONS', 'IONS', 'CELL', 'FCP', 'RISM')
CARDS = frozenset(
    {
        'ATOMIC_SPECIES',
        'ATOMIC_POSITIONS',
        'K_POINTS',
        'ADDITIONAL_K_POINTS',
        'CELL_PARAMETERS',
        'CONSTRAINTS',
        'OCCUPATIONS',
        'ATOMIC_VELOCITIES',
        'ATOMIC_FORCES',
        'SOLVENTS',
        'HUBBARD',
    }
)
REAL_RE = re.compile(r'[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdDqQ][+-]?\d+)?')
INT_RE = re.compile(r'[+-]?\d+')
_LOGICAL_RE = re.compile(r'\.?(t|f|true|false)\.?', re.IGNORECASE)
_KEY_RE = re.compile(r'([a-z][a-z0-9_%]*)(?:\((\d+(?:,\d+)*)\))?')
_CARD_HEADER_RE = re.compile(r'\s*([A-Za-z_]+)\s*(.*)')
_CARD_OPTION_RE = re.compile(r'\{\s*([\w-]*)\s*\}|\(\s*([\w-]*)\s*\)|([\w-]+)')
_NAMELIST_TOKEN_RE = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comma>,)
    | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<eq>=)
    | (?P<name>[A-Za-z][A-Za-z0-9_%]*\s*\([^()=]*\))
    | (?P<word>[^\s,='"()]+)
    """,
    re.VERBOSE,
)
_BINARY_RE = re.compile(r'[\x00-\x08\x0e-\x1f\x7f]')
_CIF_HINT = re.compile(r'^\s*(data_|_cell_|loop_|_atom_site|_symmetry)', re.IGNORECASE | re.MULTILINE)


@dataclass
class Where:
    """The file being read: builds :class:`ParseError` messages and collects warnings."""

    filename: str | None
    warnings: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)
    _dropped: int = field(default=0, repr=False)

    def message(self, message: str, line: int | None = None) -> str:
        prefix = f'{self.filename}: ' if self.filename else ''
        where = f'line {line}: ' if line is not None else ''
        return f'{prefix}{where}{message}'

    def fail(self, message: str, line: int | None = None, *, cause: BaseException | None = None) -> NoReturn:
        raise ParseError(self.message(message, line)) from cause

    def warn(self, message: str, line: int | None = None) -> None:
        """Keep the warning unless the same message (whatever its line) was given, at most :data:`MAX_WARNINGS`."""
        if message in self._seen:
            return
        self._seen.add(message)
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(self.message(message, line))
            return
        self._dropped += 1
        summary = self.message(f'{self._dropped} more warning(s) not shown')
        if self._dropped == 1:
            self.warnings.append(summary)
        else:
            self.warnings[-1] = summary


@dataclass(frozen=True)
class Line:
    number: int
    text: str


@dataclass
class Card:
    name: str
    option: str | None
    number: int
    lines: list[Line]


@dataclass
class Sections:
    namelists: dict[str, dict[str, Any]]
    cards: dict[str, Card]


def to_float(token: str) -> float:
    return float(re.sub(r'[dDqQ]', 'e', token))


def read_sections(text: object, where: Where) -> Sections:
    """Split the text into namelists (read as values) and cards (lines)."""
    return _SectionReader(where).read(_lines(text, where))


def _lines(text: object, where: Where) -> list[Line]:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode('utf-8')
        except UnicodeDecodeError as exc:
            where.fail(f'not a pw.x input: the content is not UTF-8 text ({exc.reason} at byte {exc.start})', cause=exc)
    if not isinstance(text, str):
        where.fail(f'expected the text of a pw.x input, got {type(text).__name__}')
    text = text.removeprefix('\ufeff')
    if not text.strip():
        where.fail('the pw.x input is empty')
    binary = _BINARY_RE.search(text)
    if binary is not None:
        number = len(text[: binary.start()].splitlines()) or 1
        where.fail(
            f'not a pw.x input: binary content (control character {ord(binary.group()):#04x}); is this a text file?',
            number,
        )
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        content, open_quote = _strip_comment(raw)
        if open_quote:
            where.fail(f'unterminated {open_quote}-quoted string: {raw.strip()!r}', number)
        lines.append(Line(number, content.rstrip()))
    return lines


class _SectionReader:
    def __init__(self, where: Where) -> None:
        self.where = where
        self.fail = where.fail

    def read(self, lines: list[Line]) -> Sections:
        namelists: dict[str, dict[str, Any]] = {}
        cards: dict[str, Card] = {}
        current: str | None = None  # the open namelist
        start = 0
        body: list[Line] = []
        card: Card | None = None
        closed_by_slash = False  # the previous non-blank line closed a namelist with '/' and nothing after it
        for line in lines:
            stripped = line.text.strip()
            if closed_by_slash and stripped:
                closed_by_slash = False
                if _is_end_marker(stripped, alone=True):
                    continue  # '/' then '&end' on the next line: pw.x's namelist read skips the record
            if current is not None:
                keyword = card_keyword(stripped)
                if keyword is not None or (stripped.startswith('&') and not _is_end_marker(stripped)):
                    what = f'the {keyword} card' if keyword else stripped.split()[0]
                    self.fail(
                        f"namelist &{current} (opened at line {start}) is not terminated with '/' before {what}",
                        line.number,
                    )
                content, terminated, rest = _split_terminator(line.text)
                body.append(Line(line.number, content))
                if terminated:
                    closed_by_slash = self.close(current, body, rest, line.number, namelists)
                    current = None
                continue
            if not stripped:
                continue
            if stripped.startswith('&'):
                match = re.match(r'&(\w+)(.*)', stripped)
                name = match.group(1).upper() if match else ''
                if card is not None:
                    self.fail(f'namelist {stripped.split()[0]} after the cards: namelists must come first', line.number)
                if not match or name == 'END':
                    self.fail(f'unexpected {stripped.split()[0]!r} outside a namelist', line.number)
                if name not in NAMELISTS:
                    self.fail(
                        f'unknown namelist &{match.group(1)}: pw.x reads &{", &".join(NAMELISTS)} '
                        '(is this an input of another QE program?)',
                        line.number,
                    )
                if name in namelists:
                    self.fail(f'namelist &{name} appears twice', line.number)
                current, start, body = name, line.number, []
                content, terminated, rest = _split_terminator(match.group(2))
                body.append(Line(line.number, content))
                if terminated:
                    closed_by_slash = self.close(name, body, rest, line.number, namelists)
                    current = None
                continue
            keyword = card_keyword(stripped)
            if keyword is not None:
                if keyword in cards:
                    self.fail(f'card {keyword} appears twice (first at line {cards[keyword].number})', line.number)
                card = Card(keyword, self.card_option(keyword, stripped, line.number), line.number, [])
                cards[keyword] = card
                continue
            if card is None:
                if not namelists:
                    continue  # Fortran namelist input skips everything before the first namelist (a title line)
                shown = stripped if len(stripped) <= 60 else stripped[:57] + '...'
                self.fail(f'unexpected text outside namelists and cards: {shown!r}', line.number)
            card.lines.append(line)

        if current is not None:
            self.fail(
                f"namelist &{current} (opened at line {start}) is not terminated with '/': "
                'the file is truncated or the terminator is missing'
            )
        if not namelists:
            text = '\n'.join(line.text for line in lines)
            hint = ' (this looks like a CIF file)' if _CIF_HINT.search(text) else ''
            self.fail(f'not a pw.x input{hint}: no namelist (&CONTROL, &SYSTEM, ...) found')
        return Sections(namelists, cards)

    def close(self, name: str, body: list[Line], rest: str, number: int, namelists: dict) -> bool:
        """Read the namelist; ``True`` if it was closed by ``/`` alone (an ``&end`` may follow on the next line)."""
        namelists[name] = self.namelist(name, body)
        terminator, rest = rest[0], rest[1:].strip()
        if rest and not (_is_end_marker(rest, alone=True) or (terminator == '&' and rest == '/')):
            self.where.warn(
                f'the text {rest!r} after the end of namelist &{name} is ignored, as Fortran ignores the rest of the '
                'line after a namelist',
                number,
            )
        return terminator == '/' and not rest

    def card_option(self, card: str, stripped: str, number: int) -> str | None:
        match = _CARD_HEADER_RE.fullmatch(stripped)
        rest = match.group(2).strip() if match else ''
        if not rest:
            return None
        option_match = _CARD_OPTION_RE.fullmatch(rest)
        if option_match is None:
            self.fail(f'{card}: cannot read the card option {rest!r}', number)
        option = next(group for group in option_match.groups() if group is not None)
        return option.lower() or None

    # -- namelists ---------------------------------------------------------------------------------------------------

    def namelist(self, name: str, lines: list[Line]) -> dict[str, Any]:
        tokens: list[tuple[str, str, int]] = []
        for line in lines:
            position = 0
            while position < len(line.text):
                match = _NAMELIST_TOKEN_RE.match(line.text, position)
                if match is None:
                    self.fail(f'&{name}: cannot read {line.text[position:].strip()!r}', line.number)
                if match.lastgroup != 'ws':
                    tokens.append((match.lastgroup, match.group(), line.number))
                position = match.end()

        result: dict[str, Any] = {}
        assigned: dict[str, list[int]] = {}  # the lines of each key's assignments
        index = 0
        while index < len(tokens):
            kind, text, number = tokens[index]
            if kind == 'comma':
                index += 1
                continue
            if kind not in ('name', 'word') or index + 1 >= len(tokens) or tokens[index + 1][0] != 'eq':
                self.fail(f"&{name}: expected 'key = value', got {text!r}", number)
            key = re.sub(r'\s+', '', text).lower()
            key_match = _KEY_RE.fullmatch(key)
            if key_match is None:
                self.fail(f'&{name}: invalid variable name {text!r}', number)
            index += 2
            values: list[Any] = []
            expect_value = True
            while index < len(tokens):
                t_kind, t_text, t_number = tokens[index]
                if t_kind in ('name', 'word') and index + 1 < len(tokens) and tokens[index + 1][0] == 'eq':
                    break
                if t_kind == 'comma':
                    if expect_value:
                        self.fail(f'&{name}: {key}: empty (null) values are not supported', t_number)
                    expect_value = True
                elif t_kind == 'eq':
                    self.fail(f"&{name}: {key}: unexpected '='", t_number)
                elif t_kind == 'name':
                    self.fail(f'&{name}: {key}: unexpected {t_text!r}', t_number)
                else:
                    repeat = re.fullmatch(r'(\d+)\*', t_text) if t_kind == 'word' else None
                    if repeat and index + 1 < len(tokens) and tokens[index + 1][0] == 'str':  # 3*'abc'
                        index += 1
                        t_text = t_text + tokens[index][1]
                    values.extend(self.values(name, key, t_kind, t_text, t_number))
                    expect_value = False
                index += 1
            if not values:
                self.fail(f'&{name}: {key}: no value given', number)
            for item_key, item_value in self.expand(name, key_match, values, number):
                if item_key in result:
                    del result[item_key]  # the last assignment decides the order too
                    lines_of = assigned[item_key]
                    if len(lines_of) >= MAX_ASSIGNMENTS:
                        self.fail(
                            f'&{name}: {item_key} is assigned more than {MAX_ASSIGNMENTS} times (first at line '
                            f'{lines_of[0]}); this is not an input pw.x is meant to read',
                            number,
                        )
                    lines_of.append(number)
                else:
                    assigned[item_key] = [number]
                result[item_key] = item_value
        for item_key, lines_of in assigned.items():
            if len(lines_of) > 1:
                times = 'twice (also' if len(lines_of) == 2 else f'{len(lines_of)} times (first at'
                self.where.warn(
                    f'&{name}: {item_key} is assigned {times} line {lines_of[0]}); the last value, '
                    f'{result[item_key]!r}, is used, as pw.x does',
                    lines_of[-1],
                )
        return result

    def values(self, name: str, key: str, kind: str, token: str, number: int) -> list[Any]:
        if kind == 'str':
            quote = token[0]
            return [token[1:-1].replace(quote * 2, quote)]
        repeat = re.fullmatch(r'(\d+)\*(.*)', token)
        if repeat:
            count, rest = int(repeat.group(1)), repeat.group(2)
            if not rest:
                self.fail(f'&{name}: {key}: null repeat {token!r} is not supported', number)
            if count < 1 or count > 10000:
                self.fail(f'&{name}: {key}: invalid repeat count in {token!r}', number)
            kind = 'str' if rest[:1] in ('"', "'") else 'word'
            return self.values(name, key, kind, rest, number) * count
        if INT_RE.fullmatch(token):
            return [int(token)]
        if REAL_RE.fullmatch(token):
            value = to_float(token)
            if not math.isfinite(value):
                self.fail(f'&{name}: {key}: the number {token!r} is not finite', number)
            return [value]
        if _LOGICAL_RE.fullmatch(token):
            return [token.strip('.').lower().startswith('t')]
        self.fail(
            f'&{name}: {key}: cannot read the value {token!r} (strings must be quoted, logicals are .true./.false.)',
            number,
        )

    def expand(self, name: str, key_match: re.Match, values: list[Any], number: int) -> list[tuple[str, Any]]:
        key = key_match.group(0)
        if len(values) == 1:
            return [(key, values[0])]
        base, index = key_match.group(1), key_match.group(2)
        if index is None:
            start = 1
        elif ',' not in index:
            start = int(index)
        else:
            self.fail(f'&{name}: {key}: a list of values for a multi-dimensional index is not supported', number)
        return [(f'{base}({start + offset})', value) for offset, value in enumerate(values)]


def _strip_comment(line: str) -> tuple[str, str | None]:
    """Return the line without its ``!``/``#`` comment (quotes respected) and the unclosed quote character, if any."""
    if "'" not in line and '"' not in line:
        return re.split(r'[!#]', line, maxsplit=1)[0], None
    quote: str | None = None
    for index, char in enumerate(line):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in '\'"':
            quote = char
        elif char in '!#':
            return line[:index], None
    return line, quote


def _is_end_marker(text: str, *, alone: bool = False) -> bool:
    pattern = r'&end' if alone else r'&end\b.*'
    return re.fullmatch(pattern, text.strip(), re.IGNORECASE) is not None


def _split_terminator(text: str) -> tuple[str, bool, str]:
    """Split a namelist line at its terminator (``/`` or ``&end``, outside quotes): (content, terminated, rest).

    ``rest`` starts with the terminator's first character (``/`` or ``&``), followed by the rest of the line.
    """
    quote: str | None = None
    for index, char in enumerate(text):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in '\'"':
            quote = char
        elif char == '/':
            return text[:index], True, '/' + text[index + 1 :]
        elif char == '&' and re.match(r'&end(?![\w])', text[index:], re.IGNORECASE):
            return text[:index], True, '&' + text[index + 4 :]
    return text, False, ''


def ignore_extra_lines(card: Card, used: int, where: Where, what: str | None = None) -> list[Line]:
    """The first ``used`` lines of the card; pw.x takes each further line for a card it does not know and ignores it
    (with a warning in its output): so do we, with a warning."""
    extra = card.lines[used:]
    if extra:
        shown = ', '.join(repr(line.text.strip()[:40]) for line in extra[:3]) + (', ...' if len(extra) > 3 else '')
        where.warn(
            f'{what or card.name}: {len(extra)} line(s) after its data ({shown}) are ignored, as pw.x ignores them',
            extra[0].number,
        )
    return card.lines[:used]


def card_keyword(stripped: str) -> str | None:
    """Return the card name if the line is a card header (``occupations = 'smearing'`` is not)."""
    match = re.match(r'([A-Za-z_]+)', stripped)
    if match and match.group(1).upper() in CARDS and '=' not in stripped:
        return match.group(1).upper()
    return None
