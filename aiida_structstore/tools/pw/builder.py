"""A pw.x input as a ``PwCalculation`` builder, as aiida-quantumespresso's ``create_builder_from_file`` makes one.

What differs from ``create_builder_from_file``: the input is read by :func:`~aiida_structstore.tools.pw.parse_pw_input`
(every ``ibrav``, not only 0; elements from the species labels; the k-point traps fixed), and

* **parameters** lose the keywords ``PwCalculation`` sets itself (its ``_blocked_keywords``: ``pseudo_dir``,
  ``outdir``, ``prefix``, ``celldm``, ``nat``, ``ntyp``, ``A`` ... ``cosBC``) and those of ``space_group``
  (the structure holds every atom), and variables indexed by species
  (``starting_magnetization(2)``, ``Hubbard_U(1)``, ``starting_ns_eigenvalue(1,1,2)``, ...) are keyed by kind name,
  because ``PwCalculation`` writes the species in its own (alphabetical) order; entries of unused species go;
* **k-points**: a mesh, Γ only (with the setting ``gamma_only``), a list, or a band path expanded to the points pw.x
  generates, labels kept;
* **settings**: ``FIXED_COORDS`` from the ``if_pos`` flags;
* **pseudopotentials**: from an installed aiida-pseudo family (``pseudo_family``), from the files in a folder
  (``pseudo_folder``, the file names of ``ATOMIC_SPECIES``), or, with neither, from the one installed family that
  holds every file the input names (:func:`pseudo_family_hint` lists the candidates). Otherwise they stay unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiida import orm

from . import PwInput
from .kpoints import expand_band_path
from .structure import INDEXED_KEY, SPECIES_INDEXED, SPECIES_LAST_INDEX

__all__ = ('create_builder', 'pseudo_family_hint')

#: &SYSTEM variables of ``crystal_sg`` positions: the structure holds every atom, so they go (with them pw.x would
#: expect the inequivalent atoms only).
SPACE_GROUP_KEYS = frozenset({'space_group', 'uniqueb', 'origin_choice', 'rhombohedral'})


def create_builder(
    parsed: PwInput,
    code: orm.AbstractCode | str | None = None,
    *,
    pseudo_family: str | None = None,
    pseudo_folder: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
):
    """A ``PwCalculation`` builder with the structure, parameters, k-points, settings and pseudopotentials of a
    parsed pw.x input (see the module docstring).

    :param parsed: the parsed input; its ``structure`` and ``kpoints`` may be stored nodes (the outputs of
        ``structstore.import_pw_input``), which then become the calculation's inputs, keeping the provenance.
    :param code: the pw.x code (node or label), optional.
    :param pseudo_family: label of an installed aiida-pseudo family.
    :param pseudo_folder: a folder with the pseudopotential files named in ``ATOMIC_SPECIES``.
    :param metadata: the builder's ``metadata`` (e.g. ``options.resources``).
    """
    from aiida.plugins import CalculationFactory

    pw_calculation = CalculationFactory('quantumespresso.pw')
    builder = pw_calculation.get_builder()
    if code is not None:
        builder.code = orm.load_code(code) if isinstance(code, str) else code
    if metadata:
        builder.metadata = metadata
    builder.structure = parsed.structure
    builder.parameters = orm.Dict(_parameters(parsed, pw_calculation._blocked_keywords))
    settings: dict[str, Any] = {}
    if parsed.kpoints is not None:
        builder.kpoints = expand_band_path(parsed.kpoints) if parsed.kpoints_kind == 'band_path' else parsed.kpoints
    if parsed.kpoints_kind == 'gamma':
        settings['gamma_only'] = True
    if any(any(flags) for flags in parsed.fixed_coords):
        settings['FIXED_COORDS'] = [list(flags) for flags in parsed.fixed_coords]
    if settings:
        builder.settings = orm.Dict(settings)
    pseudos = _pseudos(parsed, pseudo_family, pseudo_folder)
    if pseudos:
        builder.pseudos = pseudos
    return builder


def pseudo_family_hint(parsed: PwInput) -> list[str]:
    """Labels of the installed aiida-pseudo families that hold every pseudopotential file the input uses."""
    wanted = _used_pseudos(parsed)
    families: dict[str, set[str]] = {}
    query = orm.QueryBuilder()
    query.append(orm.Group, filters={'type_string': {'like': 'pseudo.family%'}}, project=['label'], tag='family')
    query.append(orm.Data, with_group='family', project=['attributes.filename'])  # pseudo types: data.pseudo.*
    for label, filename in query.iterall():
        families.setdefault(label, set()).add(filename)
    return sorted(label for label, files in families.items() if set(wanted.values()) <= files)


def _used_pseudos(parsed: PwInput) -> dict[str, str]:
    kinds = set(parsed.structure.get_kind_names())
    return {label: Path(pseudo).name for label, pseudo in parsed.pseudopotentials if label in kinds}


def _pseudos(parsed: PwInput, family: str | None, folder: str | Path | None) -> dict[str, orm.Data] | None:
    if family is None and folder is None:
        hint = pseudo_family_hint(parsed)
        if len(hint) != 1:
            return None
        family = hint[0]
    if family is not None:
        group = orm.load_group(family)
        wanted = _used_pseudos(parsed)
        by_name = {node.filename: node for node in group.nodes}
        if all(name in by_name for name in wanted.values()):
            return {kind: by_name[name] for kind, name in wanted.items()}
        return group.get_pseudos(structure=parsed.structure)
    from aiida.plugins import DataFactory

    upf = DataFactory('pseudo.upf')
    return {kind: upf.get_or_create(Path(folder) / name) for kind, name in _used_pseudos(parsed).items()}


def _parameters(parsed: PwInput, blocked: list[tuple[str, ...]]) -> dict[str, dict[str, Any]]:
    blocked_keys = {(namelist.upper(), key.lower()) for namelist, key, *_ in blocked}
    labels = [label for label, _ in parsed.pseudopotentials]
    kinds = set(parsed.structure.get_kind_names())
    result: dict[str, dict[str, Any]] = {}
    for namelist, values in parsed.parameters.items():
        converted: dict[str, Any] = {}
        for key, value in values.items():
            match = INDEXED_KEY.fullmatch(key)
            base = match.group(1) if match else key
            if (namelist, base) in blocked_keys or (namelist == 'SYSTEM' and key in SPACE_GROUP_KEYS):
                continue
            if match and namelist == 'SYSTEM' and base in SPECIES_INDEXED | SPECIES_LAST_INDEX:
                indices = [int(index) for index in match.group(2).split(',')]
                species = indices[-1]
                if not 1 <= species <= len(labels) or (base in SPECIES_INDEXED and len(indices) != 1):
                    converted[key] = value  # not a species index pw.x would accept; pw.x will say so
                    continue
                label = labels[species - 1]
                if label not in kinds:
                    continue  # a species no atom uses is no kind of the structure
                if base in SPECIES_INDEXED:
                    converted.setdefault(base, {})[label] = value
                else:
                    converted.setdefault(base, []).append([*indices[:-1], label, value])
                continue
            converted[key] = value
        result[namelist] = converted
    return result
