// The jobs panel: the user's jobs with live progress bars, status, duration, errors in plain words; a
// finished job's files to download and its result to add to the map; dismiss.

import { apiKey, del, fetchBytes, getJson } from '../api';
import type { JobStatus } from '../api';
import { download, formatDuration, h, say } from '../dom';

export interface ResultRef {
  href?: string;
  type?: string;
}

const ACTIVE = new Set(['accepted', 'running']);

function seconds(from?: string, to?: string): number {
  if (!from) return NaN;
  const end = to ? Date.parse(to) : Date.now();
  return (end - Date.parse(from)) / 1000;
}

export class JobsPanel {
  private timer?: number;
  private results = new Map<string, Record<string, ResultRef>>();
  private list: HTMLElement;

  constructor(
    root: HTMLElement,
    private onAddToMap: (job: JobStatus, files: Record<string, ResultRef>) => void,
  ) {
    this.list = root.querySelector('#job-list')!;
  }

  start(): void {
    this.stop();
    if (apiKey()) void this.refresh();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  signedOut(): Promise<void> {
    this.stop();
    this.list.replaceChildren(h('li', { class: 'muted' }, 'sign in to see your jobs'));
    return Promise.resolve();
  }

  async refresh(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    let jobs: JobStatus[] = [];
    try {
      jobs = (await getJson<{ jobs: JobStatus[] }>('jobs?limit=50')).jobs;
    } catch (e) {
      this.list.replaceChildren(h('li', { class: 'muted' }, (e as { status?: number }).status === 401 ? 'sign in to see your jobs' : (e as Error).message));
      return;
    }
    this.render(jobs);
    // Running jobs are followed closely; otherwise a slow poll notices jobs submitted elsewhere.
    this.timer = window.setTimeout(() => void this.refresh(), jobs.some((j) => ACTIVE.has(j.status)) ? 500 : 5000);
  }

  private render(jobs: JobStatus[]): void {
    if (!jobs.length) {
      this.list.replaceChildren(h('li', { class: 'muted' }, 'no jobs yet: submit one from the Process panel'));
      return;
    }
    this.list.replaceChildren(...jobs.map((j) => this.row(j)));
  }

  private row(j: JobStatus): HTMLElement {
    const progress = j.status === 'successful' ? 100 : (j.progress ?? 0);
    const duration = formatDuration(seconds(j.started ?? j.created, j.finished));
    const li = h(
      'li',
      { class: `job ${j.status}`, 'data-job': j.jobID },
      h('div', { class: 'row' }, h('strong', {}, j.processID ?? 'job'), h('code', { title: j.jobID }, j.jobID.slice(0, 8)),
        h('span', { class: `badge ${j.status}` }, j.status), h('span', { class: 'muted' }, duration)),
      h('progress', { max: 100, value: progress, 'aria-label': `progress of job ${j.jobID}` }, `${progress}%`),
      h('span', { class: 'percent' }, `${progress}%`),
      j.message ? h('div', { class: j.status === 'failed' ? 'error' : 'muted' }, j.message) : '',
    );
    const buttons = h('div', { class: 'row' });
    if (j.status === 'successful') {
      const files = this.results.get(j.jobID);
      if (files) {
        for (const [name, ref] of Object.entries(files)) {
          // Downloads carry the key: a plain link could not send it.
          const href = ref.href;
          if (href) {
            buttons.append(h('button', { type: 'button', class: 'file', title: `download ${name}`,
              onclick: () => void fetchBytes(href).then((b) => download(href.split('/').pop() ?? name, new Blob([b])), (e: Error) => say(e.message, true)) }, `⤓ ${name}`));
          }
        }
        buttons.append(h('button', { type: 'button', class: 'add-result', onclick: () => this.onAddToMap(j, files) }, 'Add to map'));
      } else {
        void this.loadResults(j.jobID);
      }
    }
    if (j.status !== 'dismissed') {
      buttons.append(h('button', { type: 'button', class: 'dismiss', onclick: () => void this.dismiss(j.jobID) }, ACTIVE.has(j.status) ? 'Cancel' : 'Dismiss'));
    }
    li.append(buttons);
    return li;
  }

  private async loadResults(id: string): Promise<void> {
    try {
      const doc = await getJson<Record<string, ResultRef>>(`jobs/${encodeURIComponent(id)}/results`);
      const files: Record<string, ResultRef> = {};
      for (const [k, v] of Object.entries(doc)) if (v && typeof v === 'object' && 'href' in v) files[k] = v;
      this.results.set(id, files);
      void this.refresh();
    } catch (e) {
      say(`results of ${id}: ${(e as Error).message}`, true);
    }
  }

  private async dismiss(id: string): Promise<void> {
    try {
      await del(`jobs/${encodeURIComponent(id)}`);
      say(`job ${id} dismissed`);
    } catch (e) {
      say(`dismiss ${id}: ${(e as Error).message}`, true);
    }
    void this.refresh();
  }
}

