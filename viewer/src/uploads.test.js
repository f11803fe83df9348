// Unit tests of the uploads panel's pure parts: the kind a file name suggests, the backoff of status reads, the
// status line, the structure link and the upload query.
import { describe, expect, test } from 'vitest';
import { BACKOFF, FINAL, kindOfName, nextDelay, statusText, structureHref, uploadQuery } from './uploads.js';

const upload = (fields) => ({ upload_id: 'u1', workspace: 'lab', filename: 'si.cif', kind: 'cif', ...fields });

describe('uploads', () => {
  test('the kind comes from the file name, or is left to the user', () => {
    expect(kindOfName('si.cif')).toBe('cif');
    expect(kindOfName('Fe2O3.CIF')).toBe('cif');
    for (const name of ['si_scf.in', 'relax.pwi', 'scf.pw', 'x.inp']) expect(kindOfName(name)).toBe('pw');
    for (const name of ['notes.txt', 'cif', 'si.cif.gz', '', undefined]) expect(kindOfName(name)).toBeNull();
  });

  test('reads back off while nothing changes, and start over after a change', () => {
    const delays = [];
    let delay;
    for (let n = 0; n < 8; n += 1) {
      delay = nextDelay(delay, false);
      delays.push(delay);
    }
    expect(delays).toEqual([500, 750, 1125, 1688, 2532, 3798, 5000, 5000]);
    expect(nextDelay(5000, true)).toBe(BACKOFF.first);
    expect(nextDelay(100, false, { first: 100, factor: 2, max: 300 })).toBe(200);
  });

  test('the status line says where the upload stands', () => {
    expect(statusText(upload({ status: 'pending' }))).toBe('si.cif: pending, waiting for the importer');
    expect(statusText(upload({ status: 'importing' }))).toBe('si.cif: importing into AiiDA…');
    expect(statusText(upload({ status: 'imported', result_structure_id: 'si' }))).toBe('si.cif: imported as si');
    expect(statusText(upload({ status: 'failed', message: 'no cell' }))).toBe('si.cif: failed: no cell');
    expect([...FINAL].sort()).toEqual(['failed', 'imported']);
  });

  test('an imported upload links to its structure', () => {
    expect(structureHref(upload({ status: 'imported', result_structure_id: 'si 2' }))).toBe('?workspace=lab&id=si+2');
    expect(structureHref(upload({ status: 'importing' }))).toBeNull();
    expect(structureHref(upload({ status: 'failed', message: 'x' }))).toBeNull();
  });

  test('the upload query leaves out a blank structure id', () => {
    const base = { workspace: 'lab', kind: 'pw', filename: 'si_scf.in' };
    expect(uploadQuery({ ...base, structureId: '  ' })).toEqual(base);
    expect(uploadQuery({ ...base, structureId: ' si-1 ' })).toEqual({ ...base, structure_id: 'si-1' });
  });
});
