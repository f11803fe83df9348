"""The species names OPTIMADE clients see: names no client reads as another element or as a charged ion.

The store keeps AiiDA's kind names (``Fe1``, ``Fe2``, ``O1``) as the payload's species names, and the read API and
the viewer show them. OPTIMADE allows any unique string as a species name, but clients read more into it:
pymatgen's ``OptimadeRester`` builds its sites from ``species_at_sites`` with ``get_el_sp``, which reads ``Fe1`` as
Fe with oxidation state +1, ``O1`` as O+ and ``26`` as iron (hematite comes back with a charge of +30). So the
OPTIMADE API serves, for each species (each kind):

* the **element symbol** (``Fe``) when the kind is one ordered element and the only kind of that element in the
  structure: every client reads it as the neutral element;
* otherwise (two kinds of one element, such as the magnetic sublattices ``Fe1``/``Fe2``; a disordered kind) the
  kind name, made unreadable as an ion or an element by an ``_`` before its first digit, sign or dot (``Fe_1``,
  ``Fe_2``) or at its end (``Fe_``), and numbered further only if that name is taken. Such names cannot be element
  symbols and stay distinct, so pymatgen refuses the entry (it logs "Failed to parse returned data") instead of
  misreading it; clients that read the chemistry from ``species`` (optimade-python-tools' adapters, ASE through
  them) read it right.

``original_name`` of each species is always the AiiDA kind name, so a client can map names back. Filters on
``species_at_sites`` and ``species`` are evaluated on these served names (the payload part of a filter is evaluated
in the API, on the documents built here).

This module imports no AiiDA module.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ('client_names', 'client_payload', 'misread_as')

#: pymatgen's ``Species.from_str`` pattern (``Fe2+,spin=5``): symbol, oxidation state, sign, properties.
_SPECIES_STRING = re.compile(r'([A-Z][a-z]*)([0-9.]*)([+\-]*)(.*)')
#: pymatgen's ``DummySpecies.from_str`` pattern, whole (anything after it needs a property, ``=``, to be read).
_DUMMY_STRING = re.compile(r'([A-Za-z]*)[0-9.]*[+\-]*')
#: Element symbols (Z 1-118), to tell a name that a client would read as an element.
ELEMENTS = frozenset(
    'H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr Rb Sr Y Zr '
    'Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt '
    'Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv '
    'Ts Og'.split()
)


def misread_as(name: str) -> str | None:
    """What a client that reads species names as pymatgen does (``get_el_sp``: an atomic number, a species string
    such as ``Fe2+`` or ``Fe1``, an element symbol, a dummy species such as ``X``) takes ``name`` for; ``None`` when
    it cannot read it at all. Errs on the side of "read": a name it returns ``None`` for is one pymatgen refuses."""
    if name in ('D', 'T'):  # deuterium and tritium: hydrogen
        return 'H'
    try:
        number = float(name)
    except ValueError:
        pass
    else:
        return f'Z={number:g}'
    if name in ELEMENTS:
        return name
    if '=' in name:  # properties, as in Fe2+,spin=5
        return f'a species with properties ({name})'
    species = _SPECIES_STRING.search(name)
    if species and not species[4] and (species[2] or species[3]):
        return f'{species[1]}{species[3][:1] or "+"}{species[2] or "1"}'  # an ion: Fe1 is Fe+1
    dummy = _DUMMY_STRING.fullmatch(name)
    if dummy and not (dummy[1][:1] in ELEMENTS or dummy[1][:2] in ELEMENTS):
        return f'dummy species {name}'  # pymatgen's DummySpecies: X, Qz, -
    return None


def _safe(name: str, symbols: Sequence[str]) -> bool:
    """Whether a client reads ``name`` as nothing, or as the one element the species is."""
    read = misread_as(name)
    return read is None or (len(symbols) == 1 and read == symbols[0])


def _unreadable(name: str) -> str:
    """``name`` with an ``_`` before its first digit, sign or dot, else at its end (``Fe1`` → ``Fe_1``)."""
    match = re.search(r'[0-9.+\-]', name)
    return f'{name[: match.start()]}_{name[match.start() :]}' if match else f'{name}_'


def client_names(species: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The served name of each species, by its kind name (see the module docstring)."""
    ordered = [
        entry['chemical_symbols'][0]
        for entry in species
        if len(entry['chemical_symbols']) == 1 and entry['chemical_symbols'][0] in ELEMENTS
    ]
    alone = {symbol for symbol, count in Counter(ordered).items() if count == 1}
    names: dict[str, str] = {}
    taken: set[str] = set()
    for index, entry in enumerate(species, 1):
        kind, symbols = entry['name'], entry['chemical_symbols']
        if len(symbols) == 1 and symbols[0] in alone:
            name = symbols[0]
        elif _safe(kind, symbols):
            name = kind
        else:
            name = _unreadable(re.sub(r'[=,\s]', '_', kind))  # `=` and `,` would read as properties (spin=...)
            if not _safe(name, symbols):
                name = f'species_{index}'
        base, number = name, 2
        while name in taken:  # `_2` after a name no client reads keeps it unreadable
            name, number = f'{base}_{number}', number + 1
        taken.add(name)
        names[kind] = name
    return names


def client_payload(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its ``species`` and ``species_at_sites`` under the served names (a new dict; the species
    carry ``original_name``, the kind name). A document without a payload is returned as it is."""
    species = document.get('species')
    if not species:
        return document
    names = client_names(species)
    served = dict(document)
    served['species'] = [{**entry, 'name': names[entry['name']], 'original_name': entry['name']} for entry in species]
    at_sites = document.get('species_at_sites')
    if at_sites is not None:
        served['species_at_sites'] = [names[name] for name in at_sites]
    return served
