// The process panel: a process chosen from the server's list, its form generated from the process
// description (types, units, bounds, defaults, help), invalid values flagged as they are typed, submit.

import { getJson, postJson } from '../api';
import type { JobStatus } from '../api';
import { h, say } from '../dom';
import { buildExecuteRequest, checkField, describeField, fieldsFromDescription, optionalOutputs, withDataset } from '../form';
import type { Field, ProcessDescription } from '../form';

interface ProcessSummary {
  id: string;
  title?: string;
  description?: string;
}

export class ProcessPanel {
  private fields: Field[] = [];
  private desc?: ProcessDescription;
  private form = h('form', { id: 'process-form', novalidate: true });
  private select = h('select', { id: 'process-select' });
  private datasets = h('datalist', { id: 'dataset-choices' });

  /** Called when the chosen process changes (its dataset fields are what search results can fill). */
  onFieldsChanged: () => void = () => {};

  constructor(
    root: HTMLElement,
    private onSubmitted: (job: JobStatus) => void,
  ) {
    root.append(
      h('h2', {}, 'Run a process'),
      h('label', { for: 'process-select' }, 'Process'),
      this.select,
      this.datasets,
      this.form,
    );
    this.select.addEventListener('change', () => void this.choose(this.select.value));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
  }

  /** Offers these files (search results' assets) in every dataset field. */
  setDatasetChoices(hrefs: string[]): void {
    this.datasets.replaceChildren(...[...new Set(hrefs)].map((v) => h('option', { value: v })));
  }

  signedOut(): Promise<void> {
    this.select.replaceChildren(h('option', { value: '' }, 'sign in to list the processes'));
    this.form.replaceChildren();
    return Promise.resolve();
  }

  async load(): Promise<void> {
    try {
      const list = await getJson<{ processes: ProcessSummary[] }>('processes');
      this.select.replaceChildren(
        h('option', { value: '' }, 'choose a process'),
        ...list.processes.map((p) => h('option', { value: p.id }, `${p.id}${p.title && p.title !== p.id ? ` — ${p.title}` : ''}`)),
      );
    } catch (e) {
      this.select.replaceChildren(h('option', { value: '' }, 'sign in to list the processes'));
      this.form.replaceChildren();
      if ((e as { status?: number }).status !== 401) say(`processes: ${(e as Error).message}`, true);
    }
  }

  async choose(id: string): Promise<void> {
    this.form.replaceChildren();
    this.fields = [];
    this.desc = undefined;
    if (!id) return this.onFieldsChanged();
    this.select.value = id;
    this.desc = await getJson<ProcessDescription>(`processes/${encodeURIComponent(id)}`);
    this.fields = fieldsFromDescription(this.desc);
    const rows = this.fields.map((f) => this.fieldRow(f));
    const outputs = optionalOutputs(this.desc).map((o) =>
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: `output:${o}`, checked: o === 'quicklook' }), ` also write ${o}`),
    );
    this.form.append(
      h('p', { class: 'help' }, this.desc.description ?? ''),
      ...rows,
      outputs.length ? h('fieldset', {}, h('legend', {}, 'Optional outputs'), ...outputs) : '',
      h('button', { type: 'submit', id: 'process-submit' }, 'Submit'),
      h('p', { id: 'process-errors', class: 'error', role: 'alert' }),
    );
    this.onFieldsChanged();
  }

  /** The chosen process's file inputs (a search result can be picked as one of them). */
  datasetFields(): { name: string; title: string; help: string; required: boolean }[] {
    return this.fields
      .filter((f) => f.kind === 'dataset' || f.kind === 'datasets')
      .map((f) => ({ name: f.name, title: f.title, help: f.help, required: f.required }));
  }

  /** The process chosen, if any. */
  processId(): string | undefined {
    return this.desc?.id;
  }

  /** Picks a file (a catalogue asset's reference) as a dataset input: it replaces a single file, or joins a
   * list of files; the field is checked as if typed. */
  useDataset(name: string, ref: string): void {
    const f = this.fields.find((x) => x.name === name);
    const input = this.form.querySelector<HTMLInputElement | HTMLTextAreaElement>(`[name="${CSS.escape(name)}"]`);
    if (!f || !input) return;
    input.value = withDataset(f, input.value, ref);
    input.dataset.touched = '1';
    input.dispatchEvent(new Event('input'));
    say(`${f.title} ← ${ref}`);
  }

  /** Fills a field (from a search result, or the end-to-end tests). */
  setValue(name: string, value: string): void {
    const input = this.form.querySelector<HTMLInputElement>(`[name="${CSS.escape(name)}"]`);
    if (!input) return;
    input.value = value;
    input.dispatchEvent(new Event('input'));
  }

  private fieldRow(f: Field): HTMLElement {
    const id = `in-${f.name}`;
    const unit = f.unit ? ` [${f.unit}]` : '';
    let input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
    if (f.kind === 'boolean') {
      input = h('input', { id, name: f.name, type: 'checkbox', checked: f.defaultText === 'true' });
    } else if (f.kind === 'choice') {
      input = h('select', { id, name: f.name }, ...(f.required ? [] : [h('option', { value: '' }, `(default ${f.defaultText || 'none'})`)]),
        ...(f.choices ?? []).map((c) => h('option', { value: c }, c)));
    } else if (f.kind === 'datasets') {
      input = h('textarea', { id, name: f.name, rows: 3, placeholder: 'one file per line' });
    } else {
      const numeric = f.kind === 'integer' || f.kind === 'number';
      input = h('input', {
        id,
        name: f.name,
        type: 'text',
        inputmode: numeric ? (f.kind === 'integer' ? 'numeric' : 'decimal') : undefined,
        list: f.kind === 'dataset' ? 'dataset-choices' : undefined,
        placeholder: f.defaultText ? `default ${f.defaultText}` : f.kind === 'dataset' ? 'file in a data root, uploads/…, jobs/…' : '',
      });
    }
    const error = h('span', { class: 'field-error', id: `${id}-error`, role: 'alert' });
    input.setAttribute('aria-describedby', `${id}-help ${id}-error`);
    if (f.required) input.setAttribute('aria-required', 'true');
    const check = () => {
      const c = checkField(f, input instanceof HTMLInputElement && input.type === 'checkbox' ? input.checked : input.value);
      // An empty required field is flagged only at submit, not while the user has not reached it yet.
      const show = c.error && !(input.value === '' && !(input as HTMLElement).dataset.touched);
      error.textContent = show ? c.error! : '';
      input.setAttribute('aria-invalid', show ? 'true' : 'false');
      return c;
    };
    input.addEventListener('input', () => {
      check();
      this.refreshSummary();
    });
    input.addEventListener('change', () => {
      (input as HTMLElement).dataset.touched = '1';
      check();
      this.refreshSummary();
    });
    return h(
      'div',
      { class: `field${f.required ? ' required' : ''}${f.kind === 'boolean' ? ' check' : ''}` },
      h('label', { for: id }, `${f.title}${unit}${f.required ? ' *' : ''}`),
      input,
      h('small', { id: `${id}-help`, class: 'help' }, `${f.help}${f.help ? ' — ' : ''}${describeField(f)}`),
      error,
    );
  }

  /** A refused submit's summary follows the corrections (gone once every field is right). */
  private refreshSummary(): void {
    const summary = this.form.querySelector('#process-errors');
    if (!summary?.textContent) return;
    const left = this.fields.filter((f) => {
      const el = this.form.querySelector<HTMLInputElement>(`[name="${CSS.escape(f.name)}"]`);
      return el && checkField(f, el.type === 'checkbox' ? el.checked : el.value).error;
    }).length;
    summary.textContent = left ? `${left} input(s) to correct before submitting` : '';
  }

  private async submit(): Promise<void> {
    if (!this.desc) return;
    const values: Record<string, string | boolean> = {};
    const outputs: string[] = [];
    for (const el of Array.from(this.form.elements) as HTMLInputElement[]) {
      if (!el.name) continue;
      if (el.name.startsWith('output:')) {
        if (el.checked) outputs.push(el.name.slice(7));
      } else values[el.name] = el.type === 'checkbox' ? el.checked : el.value;
    }
    const { request, errors } = buildExecuteRequest(this.fields, values, outputs);
    const summary = this.form.querySelector('#process-errors')!;
    for (const f of this.fields) {
      const el = this.form.querySelector<HTMLElement>(`[name="${CSS.escape(f.name)}"]`);
      const err = this.form.querySelector(`#in-${CSS.escape(f.name)}-error`);
      if (el) el.setAttribute('aria-invalid', errors[f.name] ? 'true' : 'false');
      if (err) err.textContent = errors[f.name] ?? '';
    }
    if (!request) {
      summary.textContent = `${Object.keys(errors).length} input(s) to correct before submitting`;
      return;
    }
    summary.textContent = '';
    try {
      const job = await postJson<JobStatus>(`processes/${encodeURIComponent(this.desc.id)}/execution`, request, {
        Prefer: 'respond-async',
      });
      say(`job ${job.jobID} submitted (${this.desc.id})`);
      this.onSubmitted(job);
    } catch (e) {
      summary.textContent = `refused by the server: ${(e as Error).message}`;
    }
  }
}
