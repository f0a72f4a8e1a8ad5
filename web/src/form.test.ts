import { describe, expect, it } from 'vitest';
import { buildExecuteRequest, catalogueAssetRef, checkField, describeField, fieldsFromDescription, optionalOutputs, withDataset } from './form';
import type { ProcessDescription } from './form';

// The shape `deforma describe correlate --json` gives (trimmed to a few inputs of each kind).
const dataset = {
  oneOf: [
    { format: 'uri', type: 'string' },
    { properties: { href: { format: 'uri', type: 'string' } }, required: ['href'], type: 'object' },
  ],
};
const correlate: ProcessDescription = {
  id: 'correlate',
  inputs: {
    chip: { title: 'chip', description: 'template (chip) size', minOccurs: 0, maxOccurs: 1, unit: 'px',
      schema: { default: 32, maximum: 1024, minimum: 8, type: 'integer' } },
    method: { title: 'method', minOccurs: 0, maxOccurs: 1, schema: { default: 'ncc', enum: ['ncc', 'phase', 'flow'], type: 'string' } },
    'min-corr': { title: 'min-corr', minOccurs: 0, maxOccurs: 1, schema: { default: 0.2, maximum: 1, minimum: -1, type: 'number' } },
    ref: { title: 'ref', description: 'reference image (earlier date)', keywords: ['dataset'], minOccurs: 1, maxOccurs: 1, schema: dataset },
    sec: { title: 'sec', keywords: ['dataset'], minOccurs: 1, maxOccurs: 1, schema: dataset },
    velocity: { title: 'velocity', minOccurs: 0, maxOccurs: 1, schema: { default: false, type: 'boolean' } },
    search: { title: 'search', minOccurs: 0, maxOccurs: 1, unit: 'px', schema: { default: '16', type: 'string' } },
    images: { title: 'images', keywords: ['dataset'], minOccurs: 1, maxOccurs: 'unbounded',
      schema: { type: 'array', minItems: 1, items: dataset } },
  },
  outputs: { output: { 'x-required': true }, quicklook: { 'x-required': false } },
};

describe('fieldsFromDescription', () => {
  const fields = fieldsFromDescription(correlate);
  const byName = Object.fromEntries(fields.map((f) => [f.name, f]));

  it('puts the required inputs first, in the server order', () => {
    expect(fields.slice(0, 3).map((f) => f.name)).toEqual(['ref', 'sec', 'images']);
  });

  it('derives kinds, units, bounds, defaults and help from the JSON Schema', () => {
    expect(byName.chip).toMatchObject({ kind: 'integer', unit: 'px', minimum: 8, maximum: 1024, defaultText: '32', help: 'template (chip) size' });
    expect(byName.method).toMatchObject({ kind: 'choice', choices: ['ncc', 'phase', 'flow'], defaultText: 'ncc' });
    expect(byName['min-corr']).toMatchObject({ kind: 'number', minimum: -1, maximum: 1 });
    expect(byName.velocity).toMatchObject({ kind: 'boolean', defaultText: 'false' });
    expect(byName.ref).toMatchObject({ kind: 'dataset', required: true });
    expect(byName.images).toMatchObject({ kind: 'datasets', required: true });
    expect(byName.search).toMatchObject({ kind: 'text', unit: 'px' });
    expect(describeField(byName.chip!)).toBe('integer between 8 and 1024 px');
  });
});

describe('checkField', () => {
  const byName = Object.fromEntries(fieldsFromDescription(correlate).map((f) => [f.name, f]));
  it('flags values out of bounds, ill-typed and missing, naming the input', () => {
    expect(checkField(byName.chip!, '4').error).toBe('chip: 4 is out of bounds, expected integer between 8 and 1024 px');
    expect(checkField(byName.chip!, '12.5').error).toMatch(/not an integer/);
    expect(checkField(byName.chip!, '1e3').error).toMatch(/not an integer/);
    expect(checkField(byName['min-corr']!, 'abc').error).toMatch(/not a number/);
    expect(checkField(byName.method!, 'fft').error).toBe('method: expected one of ncc, phase, flow');
    expect(checkField(byName.ref!, ' ').error).toBe('ref is required (file)');
  });
  it('accepts good values with their JSON type', () => {
    expect(checkField(byName.chip!, '64')).toEqual({ value: 64 });
    expect(checkField(byName['min-corr']!, '-0.5')).toEqual({ value: -0.5 });
    expect(checkField(byName.ref!, 'yahtse-l8/a.tif')).toEqual({ value: { href: 'yahtse-l8/a.tif' } });
    expect(checkField(byName.images!, 'a.tif\nb.tif, c.tif').value).toEqual([{ href: 'a.tif' }, { href: 'b.tif' }, { href: 'c.tif' }]);
    expect(checkField(byName.chip!, '')).toEqual({});
    expect(checkField(byName.velocity!, true)).toEqual({ value: true });
    expect(checkField(byName.velocity!, false)).toEqual({});
  });
});

describe('buildExecuteRequest', () => {
  const fields = fieldsFromDescription(correlate);
  it('builds the OGC execute body from a valid form', () => {
    const r = buildExecuteRequest(
      fields,
      { ref: 'yahtse-l8/a.tif', sec: 'yahtse-l8/b.tif', images: 'x.tif', chip: '32', search: '24', velocity: true },
      optionalOutputs(correlate),
    );
    expect(r.errors).toEqual({});
    expect(r.request).toEqual({
      inputs: { ref: { href: 'yahtse-l8/a.tif' }, sec: { href: 'yahtse-l8/b.tif' }, images: [{ href: 'x.tif' }], chip: 32, search: '24', velocity: true },
      outputs: { quicklook: {} },
    });
  });
  it('refuses a form with errors, one per field', () => {
    const r = buildExecuteRequest(fields, { ref: '', sec: 'b.tif', images: 'x', chip: '2000' });
    expect(r.request).toBeUndefined();
    expect(Object.keys(r.errors).sort()).toEqual(['chip', 'ref']);
  });
});

describe('picking search results as inputs', () => {
  const fields = fieldsFromDescription(correlate);
  const ref = fields.find((f) => f.name === 'ref')!;
  const images = fields.find((f) => f.name === 'images')!;

  it('names a catalogue asset as the service takes it, encoded', () => {
    expect(catalogueAssetRef('landsat', 'LC08 x', 'B8')).toBe('collections/landsat/items/LC08%20x/assets/B8');
  });

  it('replaces a single file and appends to a list once', () => {
    expect(withDataset(ref, 'yahtse-l8/a.TIF', 'collections/c/items/i/assets/B8')).toBe('collections/c/items/i/assets/B8');
    const once = withDataset(images, 'a.tif', 'collections/c/items/i/assets/B8');
    expect(once).toBe('a.tif\ncollections/c/items/i/assets/B8');
    expect(withDataset(images, once, 'collections/c/items/i/assets/B8')).toBe(once);
    expect(checkField(images, once).value).toEqual([{ href: 'a.tif' }, { href: 'collections/c/items/i/assets/B8' }]);
  });
});
