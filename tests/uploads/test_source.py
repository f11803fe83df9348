"""The uploader in a structure record's source: optional, validated, kept by both backends, and out of the content
hash when absent (the hashes of records without it are those computed before it existed)."""

from __future__ import annotations

import hashlib

import pytest

from aiida_structstore.core.exceptions import InvalidInputError
from aiida_structstore.core.structures import HASH_VERSION, Source, StructureContent, StructureKey, content_hash
from aiida_structstore.core.values import canonical_json

CIF = """data_x
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0 0 0
"""


def old_hash(content: StructureContent) -> str:
    """The content hash as computed before sources had ``uploaded_by``: ``source`` was its two fields."""
    digest = hashlib.sha256(f'structstore-content-v{HASH_VERSION}\n'.encode())
    source = canonical_json({'kind': content.source.kind, 'filename': content.source.filename})
    for name, text in (('source', source), ('cif', content.cif), ('structure', None), ('params', None),
                       ('node_uuid', None), ('raw', None)):  # fmt: skip
        data = b'-' if text is None else text.encode()
        digest.update(f'{name}:{-1 if text is None else len(data)}:'.encode())
        digest.update(data)
    return digest.hexdigest()


def test_a_source_without_uploader_hashes_as_before_and_one_with_it_differs():
    key = StructureKey.of('t', 'w', 's')
    plain = StructureContent(key=key, source=Source.of('cif', 'x.cif'), cif='x')
    assert content_hash(plain, None, None) == old_hash(plain)
    uploaded = plain.model_copy(update={'source': Source.of('upload.cif', 'x.cif', 'alice')})
    anonymous = plain.model_copy(update={'source': Source.of('upload.cif', 'x.cif')})
    assert len({content_hash(c, None, None) for c in (plain, uploaded, anonymous)}) == 3


@pytest.mark.parametrize(
    ('value', 'match'), [('', '1 to 200'), ('a' * 201, '1 to 200'), ('eve\u202e', 'U\\+202E'), ('a\nb', 'U\\+000A')]
)
def test_a_bad_uploader_is_refused_with_its_problem(value, match):
    with pytest.raises(InvalidInputError, match=match):
        Source.of('upload.cif', 'x.cif', value)


@pytest.mark.parametrize('backend', ['memory_backend', 'convex_backend'])
def test_the_uploader_is_kept_by_the_store(request, backend):
    store = request.getfixturevalue(backend)
    key = StructureKey.of('acme', 'sources', f'na-{backend}')
    structure = {
        'lattice_vectors': [[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]],
        'species': [{'name': 'Na', 'chemical_symbols': ['Na'], 'concentration': [1.0]}],
        'species_at_sites': ['Na'],
        'cartesian_site_positions': [[0, 0, 0]],
        'dimension_types': [1, 1, 1],
        'nperiodic_dimensions': 3,
        'elements': ['Na'],
        'nelements': 1,
        'elements_ratios': [1.0],
        'chemical_formula_descriptive': 'Na',
        'chemical_formula_reduced': 'Na',
        'chemical_formula_anonymous': 'A',
        'nsites': 1,
    }
    content = StructureContent.build(
        key=key, source=Source.of('upload.cif', 'na.cif', 'alice@example.org'), cif=CIF, structure=structure
    )
    result = store.structures.put(content)
    record = store.structures.get(key)
    assert record.source == Source.of('upload.cif', 'na.cif', 'alice@example.org')
    assert record.content_hash == result.content_hash == content_hash(record.to_content(), None, None)
    summaries = store.structures.list('acme', 'sources').items
    assert next(s for s in summaries if s.key == key).source.uploaded_by == 'alice@example.org'
