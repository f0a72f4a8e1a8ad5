// A process's input form, derived from its OGC API - Processes description (the JSON Schema of each input):
// the field kinds, units, bounds, defaults and help come from the server's declarations, never from a copy
// kept here. Pure logic: the DOM side lives in ui/process.ts.

export type FieldKind = 'dataset' | 'datasets' | 'integer' | 'number' | 'boolean' | 'choice' | 'text';

export interface Field {
  name: string;
  title: string;
  help: string;
  kind: FieldKind;
  required: boolean;
  unit?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  choices?: string[];
  /** The default as the form shows it ('' = none). */
  defaultText: string;
}

export interface ProcessInput {
  title?: string;
  description?: string;
  keywords?: string[];
  minOccurs?: number;
  maxOccurs?: number | string;
  unit?: string;
  schema?: Record<string, unknown>;
}

export interface ProcessDescription {
  id: string;
  title?: string;
  description?: string;
  inputs?: Record<string, ProcessInput>;
  outputs?: Record<string, { title?: string; description?: string; 'x-required'?: boolean }>;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function isDatasetSchema(schema: Record<string, unknown>): boolean {
  return Array.isArray(schema.oneOf) && (schema.oneOf as Record<string, unknown>[]).some((s) => s?.type === 'object');
}

/** The fields of a process description, required ones first, each group in the server's order. */
export function fieldsFromDescription(desc: ProcessDescription): Field[] {
  const fields: Field[] = [];
  for (const [name, input] of Object.entries(desc.inputs ?? {})) {
    const schema = (input.schema ?? {}) as Record<string, unknown>;
    const isDataset = (input.keywords ?? []).includes('dataset');
    const many = input.maxOccurs === 'unbounded' || (typeof input.maxOccurs === 'number' && input.maxOccurs > 1);
    const itemSchema = schema.type === 'array' ? ((schema.items ?? {}) as Record<string, unknown>) : schema;
    let kind: FieldKind;
    if (isDataset || isDatasetSchema(itemSchema)) kind = many || schema.type === 'array' ? 'datasets' : 'dataset';
    else if (Array.isArray(schema.enum)) kind = 'choice';
    else if (schema.type === 'integer') kind = 'integer';
    else if (schema.type === 'number') kind = 'number';
    else if (schema.type === 'boolean') kind = 'boolean';
    else kind = 'text';
    const field: Field = {
      name,
      title: input.title ?? name,
      help: input.description ?? '',
      kind,
      required: (input.minOccurs ?? 0) > 0,
      defaultText: schema.default === undefined || schema.default === null ? '' : String(schema.default),
    };
    if (input.unit) field.unit = input.unit;
    const bounds = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const;
    for (const b of bounds) {
      const v = num(schema[b]);
      if (v !== undefined) field[b] = v;
    }
    if (kind === 'choice') field.choices = (schema.enum as unknown[]).map(String);
    fields.push(field);
  }
  return [...fields.filter((f) => f.required), ...fields.filter((f) => !f.required)];
}

export interface Checked {
  /** The value to send; undefined = leave the input out (the server's default applies). */
  value?: unknown;
  /** A one-line reason the text is not acceptable, naming what is expected. */
  error?: string;
}

function boundsText(f: Field): string {
  const lo = f.minimum ?? f.exclusiveMinimum;
  const hi = f.maximum ?? f.exclusiveMaximum;
  const unit = f.unit ? ` ${f.unit}` : '';
  if (lo !== undefined && hi !== undefined) return `between ${lo} and ${hi}${unit}`;
  if (lo !== undefined) return `${f.exclusiveMinimum !== undefined ? 'above' : 'at least'} ${lo}${unit}`;
  if (hi !== undefined) return `${f.exclusiveMaximum !== undefined ? 'below' : 'at most'} ${hi}${unit}`;
  return '';
}

/** A human line of the field's constraints: "integer between 8 and 1024 px". */
export function describeField(f: Field): string {
  const what: Record<FieldKind, string> = {
    dataset: 'file',
    datasets: 'files, one per line',
    integer: 'integer',
    number: 'number',
    boolean: 'yes/no',
    choice: `one of ${(f.choices ?? []).join(', ')}`,
    text: 'text',
  };
  const b = boundsText(f);
  return [what[f.kind], b, !b && f.unit ? `in ${f.unit}` : ''].filter(Boolean).join(' ');
}

/** Checks the text a user typed for a field, as the server would, so mistakes are flagged before submit. */
export function checkField(f: Field, raw: string | boolean): Checked {
  if (f.kind === 'boolean') {
    const on = raw === true || raw === 'true';
    return String(on) === f.defaultText || (!on && f.defaultText === '') ? {} : { value: on };
  }
  const text = String(raw).trim();
  if (text === '') return f.required ? { error: `${f.title} is required (${describeField(f)})` } : {};
  switch (f.kind) {
    case 'dataset':
      return { value: { href: text } };
    case 'datasets': {
      const hrefs = text.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
      return { value: hrefs.map((href) => ({ href })) };
    }
    case 'choice':
      return f.choices?.includes(text) ? { value: text } : { error: `${f.title}: expected ${describeField(f)}` };
    case 'integer':
    case 'number': {
      const pattern = f.kind === 'integer' ? /^[-+]?\d+$/ : /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
      const v = Number(text);
      if (!pattern.test(text) || !Number.isFinite(v)) {
        return { error: `${f.title}: '${text}' is not ${f.kind === 'integer' ? 'an integer' : 'a number'}` };
      }
      const out =
        (f.minimum !== undefined && v < f.minimum) ||
        (f.maximum !== undefined && v > f.maximum) ||
        (f.exclusiveMinimum !== undefined && v <= f.exclusiveMinimum) ||
        (f.exclusiveMaximum !== undefined && v >= f.exclusiveMaximum);
      if (out) return { error: `${f.title}: ${text} is out of bounds, expected ${describeField(f)}` };
      return { value: v };
    }
    default:
      return { value: text };
  }
}

export interface ExecuteRequest {
  inputs: Record<string, unknown>;
  outputs: Record<string, Record<string, never>>;
}

/** The execute request of the filled form, or the errors of the fields that are not acceptable. */
export function buildExecuteRequest(
  fields: Field[],
  values: Record<string, string | boolean>,
  optionalOutputs: string[] = [],
): { request?: ExecuteRequest; errors: Record<string, string> } {
  const inputs: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const c = checkField(f, values[f.name] ?? (f.kind === 'boolean' ? f.defaultText === 'true' : ''));
    if (c.error) errors[f.name] = c.error;
    else if (c.value !== undefined) inputs[f.name] = c.value;
  }
  if (Object.keys(errors).length) return { errors };
  const outputs: Record<string, Record<string, never>> = {};
  for (const o of optionalOutputs) outputs[o] = {};
  return { request: { inputs, outputs }, errors };
}

/** The outputs a client may ask for (the required ones are always written). */
export function optionalOutputs(desc: ProcessDescription): string[] {
  return Object.entries(desc.outputs ?? {})
    .filter(([, o]) => o['x-required'] === false)
    .map(([name]) => name);
}

/** The reference a process input takes for a catalogue item's asset: the service resolves it to the file
 * and checks the user may read it (a search result is named this way, not by a path on the server's disk). */
export function catalogueAssetRef(collection: string, item: string, key: string): string {
  const enc = encodeURIComponent;
  return `collections/${enc(collection)}/items/${enc(item)}/assets/${enc(key)}`;
}

/** The text of a dataset field once `ref` is picked for it: a single-file field takes it in place of what it
 * held, a many-file field adds it as one more line (once). */
export function withDataset(f: Field, current: string, ref: string): string {
  if (f.kind !== 'datasets') return ref;
  const lines = current.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
  return lines.includes(ref) ? lines.join('\n') : [...lines, ref].join('\n');
}
