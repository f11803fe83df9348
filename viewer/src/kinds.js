// Kinds (AiiDA kinds, OPTIMADE species) of a structure payload: which kind each drawn atom belongs to, and the
// colour of each kind. An element with one kind keeps its element colour (Jmol's); the kinds of an element that has
// several (Fe1, Fe2 of hematite) get distinct shades of it, so kinds that the project keeps apart look apart.

/** The element a kind is drawn as: its symbol, or for a disordered site its majority symbol (no vacancy). */
export function elementOf(species) {
  const symbols = species.chemical_symbols ?? [];
  const concentrations = species.concentration ?? [];
  let best = null;
  symbols.forEach((symbol, i) => {
    if (symbol === 'vacancy') return;
    const weight = concentrations[i] ?? 0;
    if (best === null || weight > best.weight) best = { symbol, weight };
  });
  return best ? best.symbol : 'X';
}

function hexOf(colour) {
  return `#${colour.toString(16).padStart(6, '0')}`;
}

function hsl(colour) {
  const r = ((colour >> 16) & 255) / 255;
  const g = ((colour >> 8) & 255) / 255;
  const b = (colour & 255) / 255;
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const l = (max + min) / 2;
  if (max === min) return [0, 0, l];
  const d = max - min;
  const s = l > 0.5 ? d / (2 - max - min) : d / (max + min);
  let h;
  if (max === r) h = (g - b) / d + (g < b ? 6 : 0);
  else if (max === g) h = (b - r) / d + 2;
  else h = (r - g) / d + 4;
  return [h * 60, s, l];
}

function fromHsl(h, s, l) {
  const k = (n) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n) => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1))));
  return (f(0) << 16) | (f(8) << 8) | f(4);
}

/** Shade `i` of `n` of an element colour: lightness spread from dark to light, hue turned a little. */
export function shade(colour, i, n) {
  const [h, s, l] = hsl(colour);
  const t = n === 1 ? 0 : i / (n - 1) - 0.5; // -0.5 .. 0.5
  const lightness = Math.min(0.8, Math.max(0.25, (n === 1 ? l : 0.5) + t * 0.4));
  const saturation = Math.max(s, 0.45); // greys (C, Si) need some colour for their shades to differ
  return fromHsl((h + t * 24 + 360) % 360, saturation, lightness);
}

/**
 * The kinds of an OPTIMADE structure payload, in payload order: `[{name, element, sites, colour, hex}]`, where
 * `elementColours` maps element symbols to colours (numbers, as $3Dmol.elementColors.Jmol).
 */
export function kindsOf(structure, elementColours) {
  const sitesOf = new Map();
  for (const name of structure.species_at_sites ?? []) sitesOf.set(name, (sitesOf.get(name) ?? 0) + 1);
  const kinds = (structure.species ?? []).map((species) => ({
    name: species.name,
    element: elementOf(species),
    symbols: (species.chemical_symbols ?? []).filter((symbol) => symbol !== 'vacancy'),
    sites: sitesOf.get(species.name) ?? 0,
  }));
  const byElement = new Map();
  for (const kind of kinds) byElement.set(kind.element, [...(byElement.get(kind.element) ?? []), kind]);
  for (const [element, group] of byElement) {
    const base = elementColours[element] ?? 0xff1493;
    group.forEach((kind, i) => {
      kind.colour = group.length === 1 ? base : shade(base, i, group.length);
      kind.hex = hexOf(kind.colour);
    });
  }
  return kinds;
}

/**
 * The kind name of each atom as the viewer loads the structure: for a CIF (the API's kind-keeping P1 CIF) one atom
 * per symbol of each site's kind, for XYZ one atom per site.
 */
export function atomKinds(structure, format) {
  const symbols = new Map((structure.species ?? []).map((s) => [s.name, s.chemical_symbols ?? []]));
  const atoms = [];
  for (const name of structure.species_at_sites ?? []) {
    const count = format === 'cif' ? (symbols.get(name) ?? []).filter((s) => s !== 'vacancy').length : 1;
    for (let i = 0; i < Math.max(count, 1); i += 1) atoms.push(name);
  }
  return atoms;
}
