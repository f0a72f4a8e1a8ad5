// The search panel, Theia's three modes: geographic (a drawn box, or the view), temporal (a date range),
// thematic (collection, free text), plus the maximum cloud cover (on the drawn area when scenes carry a cloud
// mask). Results: a list with quicklook, date and cloud cover, footprints on the map, hovering one highlights
// the other; add a result to the map; download its assets.

import type Map from 'ol/Map';
import type VectorSource from 'ol/source/Vector';
import Draw, { createBox } from 'ol/interaction/Draw';
import GeoJSON from 'ol/format/GeoJSON';
import { transformExtent } from 'ol/proj';
import type Feature from 'ol/Feature';

import { fetchBytes, getJson, postJson } from '../api';
import type { StacCollection, StacItem } from '../api';
import { download, h, say } from '../dom';
import { viewBbox } from '../mapview';
import { dataAsset, thumbnailHref } from '../tiles';
import { catalogueAssetRef } from '../form';

/** A file input of the chosen process that a result can fill. */
export interface InputSlot {
  name: string;
  title: string;
  help: string;
  required: boolean;
}

/** Whether an asset's href is a URL of the deforma server itself: only those are requested by the page
 * (an item may name files by their path on the server's disk, or other hosts' URLs). */
export function sameOrigin(href: string): boolean {
  if (!/^https?:\/\//i.test(href)) return false;
  try {
    return new URL(href).origin === location.origin;
  } catch {
    return false;
  }
}

/** An image of the server loaded with the key (a plain <img> could not send it). */
function authImage(href: string, alt: string): HTMLImageElement {
  const img = h('img', { alt });
  fetchBytes(href)
    .then((bytes) => {
      img.src = URL.createObjectURL(new Blob([bytes]));
      img.addEventListener('load', () => URL.revokeObjectURL(img.src), { once: true });
    })
    .catch(() => img.replaceWith(h('div', { class: 'nothumb' })));
  return img;
}

export class SearchPanel {
  private drawn?: [number, number, number, number];
  private draw?: Draw;
  private results: StacItem[] = [];
  private list = h('ul', { id: 'search-results', class: 'results' });
  private collection = h('select', { id: 'search-collection' }, h('option', { value: '' }, 'all collections'));
  private q = h('input', { id: 'search-q', type: 'search', placeholder: 'e.g. glacier, Sentinel-2' });
  private from = h('input', { id: 'search-from', type: 'date' });
  private to = h('input', { id: 'search-to', type: 'date' });
  private cloud = h('input', { id: 'search-cloud', type: 'number', min: 0, max: 100, step: 'any', placeholder: '100' });
  private area = h('output', { id: 'search-area' }, 'the current view');
  private onArea = h('input', { id: 'search-cloud-aoi', type: 'checkbox' });

  constructor(
    root: HTMLElement,
    private map: Map,
    private footprints: VectorSource,
    private onAdd: (item: StacItem) => void,
    private onResults: (items: StacItem[]) => void,
    private inputs: { slots: () => InputSlot[]; process: () => string | undefined; use: (slot: string, ref: string) => void } = {
      slots: () => [],
      process: () => undefined,
      use: () => {},
    },
  ) {
    const form = h(
      'form',
      { id: 'search-form' },
      h('h2', {}, 'Find data'),
      h('div', { class: 'row area' }, h('span', {}, 'Area:'), this.area,
        h('button', { type: 'button', id: 'search-draw', onclick: () => this.startDraw() }, 'Draw a box'),
        h('button', { type: 'button', id: 'search-view', onclick: () => this.clearBox() }, 'Use the view')),
      h('div', { class: 'field two' }, h('label', { for: 'search-from' }, 'From'), this.from, h('label', { for: 'search-to' }, 'To'), this.to),
      h('div', { class: 'field' }, h('label', { for: 'search-collection' }, 'Collection'), this.collection),
      h('div', { class: 'field' }, h('label', { for: 'search-q' }, 'Text'), this.q),
      h('div', { class: 'field' }, h('label', { for: 'search-cloud' }, 'Max cloud cover [%]'), this.cloud,
        h('label', { class: 'check' }, this.onArea, ' measured on the drawn box (scenes with a cloud mask only)')),
      h('button', { type: 'submit', id: 'search-submit' }, 'Search'),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.search();
    });
    root.append(form, this.list);
    // Hovering a footprint highlights its result, and the other way round.
    map.on('pointermove', (e) => {
      if (e.dragging || root.hidden) return;
      const f = map.forEachFeatureAtPixel(e.pixel, (feat) => feat as Feature, { layerFilter: (l) => l.getSource() === footprints });
      this.highlight(f ? String(f.getId()) : undefined);
    });
  }

  async loadCollections(): Promise<StacCollection[]> {
    try {
      const doc = await getJson<{ collections: StacCollection[] }>('collections');
      this.collection.replaceChildren(h('option', { value: '' }, 'all collections'),
        ...doc.collections.map((c) => h('option', { value: c.id }, c.title ?? c.id)));
      return doc.collections;
    } catch {
      return [];
    }
  }

  private startDraw(): void {
    if (this.draw) this.map.removeInteraction(this.draw);
    // Freehand: the box follows a drag, as users expect of "draw a box" (the map does not pan meanwhile).
    this.draw = new Draw({ source: this.footprints, type: 'Circle', geometryFunction: createBox(), freehand: true });
    this.draw.on('drawend', (e) => {
      const ext = transformExtent(e.feature.getGeometry()!.getExtent(), 'EPSG:3857', 'EPSG:4326');
      this.setBox([ext[0]!, ext[1]!, ext[2]!, ext[3]!]);
      e.feature.setId('aoi');
      this.map.removeInteraction(this.draw!);
      this.draw = undefined;
    });
    this.map.addInteraction(this.draw);
    say('drag on the map to draw the search box');
  }

  /** The search area as a box [west, south, east, north] in degrees (drawn, or set by the tests). */
  setBox(bbox: [number, number, number, number]): void {
    this.drawn = bbox;
    this.area.textContent = bbox.map((v) => v.toFixed(3)).join(', ');
  }

  private clearBox(): void {
    this.drawn = undefined;
    this.area.textContent = 'the current view';
    const aoi = this.footprints.getFeatureById('aoi');
    if (aoi) this.footprints.removeFeature(aoi);
  }

  async search(): Promise<StacItem[]> {
    const body: Record<string, unknown> = { bbox: this.drawn ?? viewBbox(this.map), limit: 100 };
    if (this.from.value || this.to.value) {
      body.datetime = `${this.from.value ? `${this.from.value}T00:00:00Z` : '..'}/${this.to.value ? `${this.to.value}T23:59:59Z` : '..'}`;
    }
    if (this.collection.value) body.collections = [this.collection.value];
    if (this.q.value.trim()) body.q = this.q.value.trim();
    const cloud = this.cloud.value === '' ? undefined : Number(this.cloud.value);
    if (cloud !== undefined && Number.isFinite(cloud)) {
      // On a drawn box the server can measure the cover there from each scene's cloud mask (scenes without
      // one are left out); otherwise the scene's own cover is used.
      if (this.drawn && this.onArea.checked) body.aoi_cloud_cover = cloud;
      else {
        body['filter-lang'] = 'cql2-json';
        body.filter = { op: '<=', args: [{ property: 'eo:cloud_cover' }, cloud] };
      }
    }
    try {
      const doc = await postJson<{ features: StacItem[] }>('search', body);
      this.results = doc.features;
    } catch (e) {
      say(`search: ${(e as Error).message}`, true);
      this.results = [];
    }
    this.show();
    this.onResults(this.results);
    return this.results;
  }

  private show(): void {
    for (const f of this.footprints.getFeatures()) if (f.getId() !== 'aoi') this.footprints.removeFeature(f);
    const geojson = new GeoJSON();
    for (const item of this.results) {
      if (!item.geometry) continue;
      const f = geojson.readFeature({ type: 'Feature', geometry: item.geometry, properties: {} }, { featureProjection: 'EPSG:3857' }) as Feature;
      f.setId(item.id);
      this.footprints.addFeature(f);
    }
    say(`${this.results.length} result(s)`);
    this.list.replaceChildren(
      ...this.results.map((item) => {
        const thumb = thumbnailHref(item);
        const cloud = item.properties['eo:cloud_cover'];
        const assets = Object.entries(item.assets ?? {}).filter(([, a]) => sameOrigin(a.href));
        const li = h(
          'li',
          { 'data-item': item.id, tabindex: 0, 'aria-label': `${item.id}${item.properties.datetime ? ` of ${item.properties.datetime.slice(0, 10)}` : ''} (focus highlights its footprint)` },
          thumb && sameOrigin(thumb) ? authImage(thumb, `quicklook of ${item.id}`) : h('div', { class: 'nothumb' }),
          h('div', {},
            h('strong', {}, item.id),
            h('div', { class: 'muted' }, `${item.collection ?? ''} · ${(item.properties.datetime ?? '').slice(0, 10)}${typeof cloud === 'number' ? ` · cloud ${cloud.toFixed(0)}%` : ''}`),
            h('div', { class: 'row' },
              h('button', { type: 'button', class: 'add', onclick: () => this.onAdd(item) }, 'Add to map'),
              ...assets.slice(0, 4).map(([k, a]) =>
                h('button', { type: 'button', class: 'link', 'aria-label': `download ${k} of ${item.id}`, onclick: () => void fetchBytes(a.href).then((b) => download(a.href.split('/').pop() ?? k, new Blob([b]))) }, k))),
            this.useRow(item)),
        );
        li.addEventListener('mouseenter', () => this.highlight(item.id));
        li.addEventListener('mouseleave', () => this.highlight(undefined));
        li.addEventListener('focus', () => this.highlight(item.id));
        return li;
      }),
    );
  }

  /** The buttons that pick a result's data file as an input of the chosen process ("use as ref"). */
  private useRow(item: StacItem): HTMLElement {
    const key = dataAsset(item);
    const slots = this.inputs.slots();
    const row = h('div', { class: 'row use', 'data-use': item.id });
    if (!key || !item.collection || !slots.length) return row;
    const ref = catalogueAssetRef(item.collection, item.id, key);
    const process = this.inputs.process() ?? 'the process';
    // The required inputs as buttons, the optional ones (a mask, a first guess...) in one list.
    const optional = slots.filter((s) => !s.required);
    const other = h('select', { class: 'use-other', 'aria-label': `use ${item.id} as another input of ${process}` },
      h('option', { value: '' }, 'as another input…'),
      ...optional.map((s) => h('option', { value: s.name, title: s.help }, s.title)));
    other.addEventListener('change', () => {
      if (other.value) this.inputs.use(other.value, ref);
      other.value = '';
    });
    row.append(
      h('span', { class: 'muted' }, `${process}:`),
      ...slots.filter((s) => s.required).map((s) =>
        h('button', {
          type: 'button', class: 'use-as', 'data-slot': s.name, title: s.help || s.title,
          'aria-label': `use ${item.id} as ${s.title}${s.help ? ` (${s.help})` : ''} of ${process}`,
          onclick: () => this.inputs.use(s.name, ref),
        }, `use as ${s.title}`)),
      optional.length ? other : '',
    );
    return row;
  }

  /** Redraws the "use as" buttons of the results (the chosen process changed). */
  refreshInputs(): void {
    for (const item of this.results) {
      const row = this.list.querySelector(`[data-use="${CSS.escape(item.id)}"]`);
      row?.replaceWith(this.useRow(item));
    }
  }

  private highlight(id: string | undefined): void {
    for (const f of this.footprints.getFeatures()) f.set('highlight', f.getId() === id && id !== undefined);
    for (const li of Array.from(this.list.children) as HTMLElement[]) li.classList.toggle('highlight', li.dataset.item === id);
  }
}
