// Unit tests of the viewer's pure parts: kinds and their colours, download names from Content-Disposition.
import { describe, expect, test } from 'vitest';
import { offeredName } from './downloads.js';
import { atomKinds, elementOf, kindsOf, shade } from './kinds.js';

const JMOL = { Fe: 0xe06633, O: 0xff0d0d, Si: 0xf0c8a0 };
const hematite = {
  species: [
    { name: 'Fe1', chemical_symbols: ['Fe'], concentration: [1] },
    { name: 'Fe2', chemical_symbols: ['Fe'], concentration: [1] },
    { name: 'O', chemical_symbols: ['O'], concentration: [1] },
  ],
  species_at_sites: ['Fe1', 'Fe2', 'Fe1', 'Fe2', 'O', 'O', 'O', 'O', 'O', 'O'],
};

describe('kinds', () => {
  test('kinds of one element get distinct shades, a lone kind its element colour', () => {
    const kinds = kindsOf(hematite, JMOL);
    expect(kinds.map((k) => [k.name, k.element, k.sites])).toEqual([
      ['Fe1', 'Fe', 2],
      ['Fe2', 'Fe', 2],
      ['O', 'O', 6],
    ]);
    expect(kinds[0].hex).not.toBe(kinds[1].hex);
    expect(kinds[2].hex).toBe('#ff0d0d');
  });

  test('shades of a grey element still differ', () => {
    const colours = [0, 1, 2].map((i) => shade(0x909090, i, 3));
    expect(new Set(colours).size).toBe(3);
  });

  test('a disordered kind is drawn as its majority element, never as a vacancy', () => {
    expect(elementOf({ chemical_symbols: ['Si', 'Ge', 'vacancy'], concentration: [0.3, 0.5, 0.2] })).toBe('Ge');
    expect(elementOf({ chemical_symbols: ['vacancy'], concentration: [1] })).toBe('X');
  });

  test('one CIF atom per symbol of a site, one XYZ atom per site', () => {
    const alloy = {
      species: [
        { name: 'A', chemical_symbols: ['Si', 'Ge', 'vacancy'], concentration: [0.4, 0.4, 0.2] },
        { name: 'O', chemical_symbols: ['O'], concentration: [1] },
      ],
      species_at_sites: ['A', 'O'],
    };
    expect(atomKinds(alloy, 'cif')).toEqual(['A', 'A', 'O']);
    expect(atomKinds(alloy, 'xyz')).toEqual(['A', 'O']);
  });
});

describe('offeredName', () => {
  test('filename* wins over filename, paths are dropped, a missing header falls back', () => {
    const header = `attachment; filename="hematite.cif"; filename*=UTF-8''h%C3%A9matite.cif`;
    expect(offeredName(header, 'x.cif')).toBe('hématite.cif');
    expect(offeredName('attachment; filename="a/b.in"', 'x')).toBe('b.in');
    expect(offeredName(`attachment; filename*=UTF-8''%E0%A4%A`, 'x.txt')).toBe('x.txt');
    expect(offeredName(null, 'x.txt')).toBe('x.txt');
  });
});
