// The structure page (?id=...): the record's details, downloads of its CIF and raw input, the drawing (3Dmol.js)
// with atoms coloured and labelled by kind and a legend of the kinds, and the executions that took or produced it.
import $3Dmol from '3dmol';
import { downloadButton } from './downloads.js';
import { showExecutions } from './executions.js';
import { atomKinds, kindsOf } from './kinds.js';
import { requestApi } from './request-api.js';

/** Kind labels are drawn on every atom up to this many atoms (more would hide the structure); a toggle changes it. */
export const LABEL_ATOMS_MAX = 60;

const $ = (id) => document.getElementById(id);

export function sourceText(source) {
  return source.filename ? `${source.filename} (${source.kind})` : source.kind;
}

function showTitle(record) {
  const formula = record.summary.chemical_formula_reduced;
  const heading = formula ? `${formula} · ${record.id}` : record.id;
  $('title').textContent = heading;
  document.title = `${heading} · Structure viewer`;
}

function showDetails(record) {
  showTitle(record);
  $('back').href = `?${new URLSearchParams({ workspace: record.workspace })}`;
  $('back').textContent = `← workspace ${record.workspace}`;
  $('formula').textContent = record.summary.chemical_formula_reduced ?? '';
  $('site-count').textContent = String(record.summary.nsites ?? '');
  $('source').textContent = sourceText(record.source);
  $('node').textContent = record.aiida_node_uuid ?? '—';
  $('updated').textContent = new Date(record.updated_at).toLocaleString();
  $('details').hidden = false;
}

function showDownloads(record, workspace) {
  const base = `/api/structures/${encodeURIComponent(record.id)}`;
  const cif = $('download-cif');
  const raw = $('download-raw');
  cif.hidden = !record.views.includes('cif');
  raw.hidden = record.raw === null;
  if (record.source.filename) raw.textContent = `Download input (${record.source.filename.split(/[\\/]/).pop()})`;
  const status = $('download-status');
  downloadButton(cif, status, `${base}/view`, {
    query: { workspace, format: 'cif' },
    fallbackName: `${record.id}.cif`,
  });
  downloadButton(raw, status, `${base}/raw`, { query: { workspace }, fallbackName: `${record.id}.txt` });
  $('downloads').hidden = cif.hidden && raw.hidden;
}

function showLegend(kinds) {
  const list = $('legend-items');
  list.replaceChildren();
  for (const kind of kinds) {
    const item = document.createElement('li');
    item.dataset.kind = kind.name;
    item.dataset.colour = kind.hex;
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.backgroundColor = kind.hex; // CSSOM, not a style attribute: allowed by style-src 'self'
    const name = document.createElement('span');
    name.className = 'kind-name';
    name.textContent = kind.name;
    const what = document.createElement('span');
    what.className = 'kind-what';
    const element = kind.symbols.length > 1 ? kind.symbols.join('/') : kind.element;
    what.textContent = `${element === kind.name ? '' : `${element}, `}${kind.sites} site${kind.sites === 1 ? '' : 's'}`;
    item.append(swatch, name, what);
    list.append(item);
  }
  $('legend').hidden = kinds.length === 0;
}

function labelAtoms(viewer, atoms, kindOfAtom) {
  viewer.removeAllLabels();
  atoms.forEach((atom, i) => {
    viewer.addLabel(kindOfAtom[i], {
      position: { x: atom.x, y: atom.y, z: atom.z },
      fontSize: 11,
      fontColor: 'black',
      backgroundColor: 'white',
      backgroundOpacity: 0.7,
      inFront: true,
      alignment: 'center',
    });
  });
}

function draw(text, format, structure, whenDrawn) {
  const box = $('canvas-box');
  box.hidden = false;
  const viewer = $3Dmol.createViewer(box, { backgroundColor: 'white' });
  const model = viewer.addModel(text, format);
  if (format === 'cif') viewer.addUnitCell(model, { box: { color: '#444' } });
  const atoms = model.selectedAtoms({});
  const kinds = structure ? kindsOf(structure, $3Dmol.elementColors.Jmol) : [];
  const kindOfAtom = structure ? atomKinds(structure, format) : [];
  const byKind = kindOfAtom.length === atoms.length && kinds.length > 0;
  if (byKind) {
    for (const kind of kinds) {
      const index = atoms.filter((_, i) => kindOfAtom[i] === kind.name).map((atom) => atom.index);
      if (index.length === 0) continue;
      model.setStyle({ index }, { sphere: { scale: 0.3, color: kind.hex }, stick: { radius: 0.12, color: kind.hex } });
    }
    showLegend(kinds);
  } else {
    viewer.setStyle({}, { sphere: { scale: 0.3, colorscheme: 'Jmol' }, stick: { radius: 0.12, colorscheme: 'Jmol' } });
  }
  // What was drawn, for the page's tests: the colour each kind's atoms carry.
  const drawn = {};
  atoms.forEach((atom, i) => {
    const colour = atom.style?.sphere?.color;
    if (byKind && colour !== undefined) {
      drawn[kindOfAtom[i]] = typeof colour === 'number' ? `#${colour.toString(16).padStart(6, '0')}` : colour;
    }
  });
  box.dataset.kindColours = JSON.stringify(drawn);
  const toggle = $('labels-toggle');
  toggle.checked = byKind && atoms.length <= LABEL_ATOMS_MAX;
  $('labels-control').hidden = !byKind;
  const relabel = () => {
    if (toggle.checked) labelAtoms(viewer, atoms, kindOfAtom);
    else viewer.removeAllLabels();
    document.body.dataset.labels = toggle.checked ? String(atoms.length) : '0';
    viewer.render();
  };
  toggle.addEventListener('change', relabel);
  if (toggle.checked) labelAtoms(viewer, atoms, kindOfAtom);
  document.body.dataset.labels = toggle.checked ? String(atoms.length) : '0';
  viewer.zoomTo();
  viewer.render(() => {
    document.body.dataset.atoms = String(atoms.length);
    whenDrawn();
  });
}

/** Show structure `id` of `workspace`; `setState` reports progress. Rejects with requestApi's errors. */
export async function showStructure(id, workspace, setState) {
  setState('loading', `Loading ${id}…`);
  const record = await requestApi(`/api/structures/${encodeURIComponent(id)}`, { query: { workspace } });
  showDetails(record);
  showDownloads(record, workspace);
  const format = record.views.includes('cif') ? 'cif' : 'xyz';
  const text = await requestApi(`/api/structures/${encodeURIComponent(id)}/view`, {
    query: { workspace, format },
    as: 'text',
  });
  draw(text, format, record.structure, () => setState('drawn'));
  await showExecutions(id, workspace);
}
