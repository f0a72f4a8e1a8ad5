// The viewer: map, layers from the catalogue and the user's results, compare, time slider, point panel,
// search, process form and jobs, sign-in; the view kept in the URL.

import 'ol/ol.css';
import './style.css';

import type TileLayer from 'ol/layer/Tile';
import type XYZ from 'ol/source/XYZ';
import type BaseLayer from 'ol/layer/Base';
import VectorTileLayer from 'ol/layer/VectorTile';

import { apiKey, getJson, setApiKey, url } from './api';
import type { JobStatus, StacCollection, StacItem } from './api';
import { cssGradient, legendTicks, parseRescale } from './colors';
import type { Legend } from './colors';
import { $, h, say } from './dom';
import Attribution from 'ol/control/Attribution';
import { basemapLayer, clipRightOf, createMaps, fitBbox, fromLonLat, OSM_TEMPLATE, pointsLayer, rasterLayer, setRasterTemplate, toLonLat } from './mapview';
import type { PointAnswer, Series } from './series';
import { dataAsset, defaultBand, layerKind, legendUrl, pointSeriesUrl, isAggregated, pointsAggregatedBelow, pointUrl, qgisUrls, tileTemplate, vectorTileTemplate } from './tiles';
import type { LayerKind, RasterParams } from './tiles';
import { formatView, parseView } from './urlstate';
import { catalogueAssetRef } from './form';
import type { CompareMode } from './urlstate';
import { JobsPanel } from './ui/jobs';
import type { ResultRef } from './ui/jobs';
import { PointPanel } from './ui/point';
import { ProcessPanel } from './ui/process';
import { SearchPanel } from './ui/search';

interface LayerEntry {
  id: string; // COLLECTION/ITEM or COLLECTION (mosaic)
  collection: string;
  item?: string;
  title: string;
  kind: LayerKind | 'mosaic';
  params: RasterParams;
  opacity: number;
  visible: boolean;
  ol: BaseLayer;
  right?: BaseLayer; // its twin in the right-hand map
  bbox?: number[];
  dates: string[]; // for the time slider
  legend?: Legend;
  velocityRange: number; // EGMS points: colour range, mm/yr
  aggregatedBelow: number; // EGMS points: below this tile zoom the server sends cells, not points (a dense product)
  count?: number; // EGMS points: how many the product holds
}

const initial = parseView(location.hash);
// `?basemap=none|osm|TEMPLATE` overrides the server's choice (`deforma serve --offline` makes it none).
const params = new URLSearchParams(location.search);
let basemap: string | null = params.get('basemap');
if (basemap === 'osm') basemap = OSM_TEMPLATE;

const layers: LayerEntry[] = [];
let compare: CompareMode = initial.compare;
let compareLayer = initial.compareLayer;
let swipe = initial.swipe;
let time = initial.time;
let unclip: (() => void) | undefined;
const itemsById = new Map<string, StacItem>();
let userName = '';

async function boot(): Promise<void> {
  // The basemap setting is asked for while the map starts: a first view never waits on it.
  const config: Promise<{ basemap?: string; anonymous_read?: boolean }> = fetch(url('viewer-config.json'))
    .then((r) => r.json())
    .catch(() => ({}));
  const basemapSetting: Promise<string> = basemap !== null ? Promise.resolve(basemap) : config.then((c) => c.basemap ?? 'none');
  const maps = createMaps($('#map'), $('#map-right'), null, initial.center, initial.zoom);
  const { map, right, view, footprints } = maps;
  void basemapSetting.then((template) => {
    const a = basemapLayer(template);
    const b = basemapLayer(template);
    if (a && b) {
      map.getLayers().insertAt(0, a);
      right.getLayers().insertAt(0, b);
      // A basemap's licence asks for its attribution on the map.
      map.addControl(new Attribution({ collapsible: false }));
    }
  });

  const point = new PointPanel($('#point-panel'));
  const process = new ProcessPanel($('#panel-process'), () => {
    showTab('jobs');
    jobs.start();
  });
  const jobs = new JobsPanel($('#panel-jobs'), (job, files) => void addJobResult(job, files));
  const search = new SearchPanel(
    $('#panel-search'),
    map,
    footprints,
    (item) => addItem(item, true),
    (items) => process.setDatasetChoices(items.flatMap((i) => {
      const key = dataAsset(i);
      return key && i.collection ? [catalogueAssetRef(i.collection, i.id, key)] : [];
    })),
    { slots: () => process.datasetFields(), process: () => process.processId(), use: (slot, ref) => process.useDataset(slot, ref) },
  );
  process.onFieldsChanged = () => search.refreshInputs();
  // The viewer's parts, for the browser console and the end-to-end tests.
  (window as unknown as Record<string, unknown>).deforma = {
    map, right, layers, view, search, process, jobs, point, footprints, fromLonLat, toLonLat,
    fit: (bbox: number[]) => fitBbox(view, bbox, map.getSize()),
  };

  // ---------------------------------------------------------------- tabs
  function showTab(name: string): void {
    for (const tab of document.querySelectorAll<HTMLButtonElement>('[role=tab]')) {
      const on = tab.id === `tab-${name}`;
      tab.setAttribute('aria-selected', String(on));
      $(`#${tab.getAttribute('aria-controls')}`).hidden = !on;
    }
    if (name === 'jobs') jobs.start();
  }
  for (const tab of document.querySelectorAll<HTMLButtonElement>('[role=tab]')) {
    tab.addEventListener('click', () => showTab(tab.id.replace('tab-', '')));
  }

  // ---------------------------------------------------------------- sign-in
  async function signIn(key: string | null): Promise<void> {
    setApiKey(key);
    if (key) {
      try {
        const me = await getJson<{ name?: string; user?: string }>('users/me');
        userName = me.name ?? me.user ?? '';
        $('#user-name').textContent = `signed in as ${userName || 'user'}`;
        say('signed in');
      } catch (e) {
        setApiKey(null);
        say(`sign-in: ${(e as Error).message}`, true);
      }
    }
    const signedIn = !!apiKey();
    $('#signin').hidden = signedIn;
    $('#signed-in').hidden = !signedIn;
    // Without a key only public resources are asked for: a 401 would be an error in the browser's console.
    await Promise.all([signedIn ? process.load() : process.signedOut(), loadCatalogue(), signedIn ? jobs.refresh() : jobs.signedOut(),
      signedIn ? restoreLayers() : Promise.resolve()]);
  }
  $('#signin').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('#api-key') as HTMLInputElement;
    void signIn(input.value.trim() || null);
    input.value = '';
  });
  $('#signout-button').addEventListener('click', () => void signIn(null));

  // ---------------------------------------------------------------- first tiles
  // The page marks (Performance API, relative to the navigation) the frame that first draws a data tile, and
  // the first view complete with layers: how fast a shared link shows something, measured where it happens.
  let firstTileMarked = false;
  function watchFirstTile(layer: BaseLayer): void {
    if (firstTileMarked) return;
    const source = (layer as unknown as { getSource(): { once(type: string, f: () => void): void } | null }).getSource();
    source?.once('tileloadend', () =>
      map.once('postrender', () => {
        if (firstTileMarked) return;
        firstTileMarked = true;
        performance.mark('deforma:first-tile');
        map.once('rendercomplete', () => performance.mark('deforma:view-complete'));
      }),
    );
  }

  // ---------------------------------------------------------------- catalogue and layers
  // Whether the server has a catalogue: its landing page links to the collections ("data").
  let hasCatalogue: boolean | undefined;
  async function loadCatalogue(): Promise<void> {
    const box = $('#catalogue');
    if (hasCatalogue === undefined) {
      const landing = await getJson<{ links?: { rel: string }[] }>('').catch(() => ({ links: [] }));
      hasCatalogue = (landing.links ?? []).some((l) => l.rel === 'data');
    }
    // Without a key the catalogue answers only when the server lets anonymous users read it.
    const readable = hasCatalogue && (!!apiKey() || !!(await config).anonymous_read);
    const collections: StacCollection[] = readable ? await search.loadCollections() : [];
    if (hasCatalogue && !readable) {
      box.replaceChildren(h('p', { class: 'muted' }, 'sign in to see the catalogue'));
      return;
    }
    if (!collections.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'no catalogued collections on this server (deforma catalog add)'));
      return;
    }
    box.replaceChildren(
      ...collections.map((c) => {
        const details = h('details', { 'data-collection': c.id }, h('summary', {}, c.title ?? c.id));
        details.addEventListener('toggle', () => {
          if (details.open && details.children.length === 1) void listItems(c, details);
        }, { once: false });
        return details;
      }),
    );
    renderLayers();
  }

  // Layers named in the URL come back at load, fetched at once (not after the catalogue's listing), so a
  // shared view draws its first tiles as early as it can.
  let restored = false;
  async function restoreLayers(): Promise<void> {
    if (restored || !initial.layers.length) return;
    restored = true;
    // A private link's layers wait for the sign-in (the server would refuse them).
    if (!apiKey() && !(await config).anonymous_read) {
      restored = false;
      return say('sign in to see the layers of this link');
    }
    await Promise.all(initial.layers.map(async (l) => {
      const [coll, item] = l.id.split('/');
      try {
        const e = item
          ? addItem(await getJson<StacItem>(`collections/${encodeURIComponent(coll!)}/items/${encodeURIComponent(item)}`), false)
          : await addMosaic(await getJson<StacCollection>(`collections/${encodeURIComponent(coll!)}`));
        e.opacity = l.opacity;
        e.visible = l.visible;
        e.ol.setOpacity(l.opacity);
        e.ol.setVisible(l.visible);
      } catch {
        say(`layer ${l.id} of the link is not available`, true);
      }
    }));
    // Back in the link's order (they arrived in any order).
    const order = initial.layers.map((l) => l.id);
    layers.sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
    for (const e of layers) {
      map.removeLayer(e.ol);
      map.getLayers().insertAt(map.getLayers().getLength() - 1, e.ol);
    }
    renderLayers();
  }

  async function listItems(c: StacCollection, details: HTMLElement): Promise<void> {
    const doc = await getJson<{ features: StacItem[] }>(`collections/${encodeURIComponent(c.id)}/items?limit=100`);
    const dated = doc.features.filter((f) => f.properties.datetime);
    details.append(
      dated.length > 1 && !doc.features.every((f) => layerKind(f) === 'points') ? h('button', { type: 'button', class: 'add-mosaic', onclick: () => void addMosaic(c) }, `Add all ${doc.features.length} as one layer (time slider)`) : '',
      h('ul', { class: 'items' }, ...doc.features.map((f) =>
        h('li', {}, h('span', {}, `${f.id} ${(f.properties.datetime ?? '').slice(0, 10)}`),
          h('button', { type: 'button', class: 'add', 'data-item': f.id, onclick: () => addItem({ ...f, collection: f.collection ?? c.id }, true) }, 'Add')))),
    );
  }

  function rightTwin(entry: LayerEntry): BaseLayer {
    if (entry.ol instanceof VectorTileLayer) return pointsLayer(vectorTileTemplate(entry.collection, entry.item!), () => entry.velocityRange);
    return rasterLayer(currentTemplate(entry));
  }

  function currentTemplate(e: LayerEntry): string {
    return tileTemplate(e.collection, e.kind === 'mosaic' ? undefined : e.item, { ...e.params, datetime: e.dates.length > 1 ? time ?? e.dates[e.dates.length - 1] : undefined });
  }

  function seriesDates(item: StacItem): string[] {
    const p = item.properties as Record<string, unknown>;
    const dims = p['cube:dimensions'] as Record<string, { values?: string[] }> | undefined;
    const dates = (p['deforma:dates'] as string[] | undefined) ?? dims?.time?.values ?? [];
    return Array.isArray(dates) ? dates.map(String) : [];
  }

  function addItem(item: StacItem, fit: boolean): LayerEntry {
    const collection = item.collection ?? '';
    const id = `${collection}/${item.id}`;
    itemsById.set(id, item);
    const existing = layers.find((l) => l.id === id);
    if (existing) return existing;
    const kind = layerKind(item);
    const asset = dataAsset(item);
    const entry: LayerEntry = {
      id, collection, item: item.id, title: String(item.properties.title ?? item.id), kind,
      // The server picks the colour scale from the data (diverging for signed values) unless one is chosen.
      params: { asset, band: kind === 'raster' ? defaultBand(item, asset) : undefined },
      opacity: 1, visible: true, bbox: item.bbox, dates: seriesDates(item), velocityRange: 10,
      ol: undefined as unknown as BaseLayer, aggregatedBelow: 0,
    };
    if (kind === 'points') {
      const count = Number(item.properties['egms:points']);
      entry.count = Number.isFinite(count) ? count : undefined;
      entry.aggregatedBelow = pointsAggregatedBelow(entry.count, item.bbox);
    }
    entry.ol = kind === 'points'
      ? pointsLayer(vectorTileTemplate(collection, item.id), () => entry.velocityRange)
      : rasterLayer(currentTemplate(entry));
    entry.ol.set('deforma', id);
    watchFirstTile(entry.ol);
    layers.push(entry);
    map.getLayers().insertAt(map.getLayers().getLength() - 1, entry.ol);
    if (fit && item.bbox) fitBbox(view, item.bbox, map.getSize());
    void loadLegend(entry);
    renderLayers();
    say(`added ${id}`);
    return entry;
  }

  async function addMosaic(c: StacCollection): Promise<LayerEntry> {
    const existing = layers.find((l) => l.id === c.id);
    if (existing) return existing;
    const doc = await getJson<{ features: StacItem[] }>(`collections/${encodeURIComponent(c.id)}/items?limit=1000`);
    const dates = [...new Set(doc.features.map((f) => (f.properties.datetime ?? '').slice(0, 10)).filter(Boolean))].sort();
    const entry: LayerEntry = {
      id: c.id, collection: c.id, title: c.title ?? c.id, kind: 'mosaic', params: {}, opacity: 1, visible: true,
      bbox: c.extent?.spatial?.bbox?.[0], dates, velocityRange: 10, ol: undefined as unknown as BaseLayer, aggregatedBelow: 0,
    };
    entry.ol = rasterLayer(currentTemplate(entry));
    watchFirstTile(entry.ol);
    layers.push(entry);
    map.getLayers().insertAt(map.getLayers().getLength() - 1, entry.ol);
    if (entry.bbox) fitBbox(view, entry.bbox, map.getSize());
    renderLayers();
    return entry;
  }

  // A finished job's outputs are catalogued in its owner's collection (`user-NAME`), one item per file,
  // titled by the file's name and dated when the job made it: the job's items are those.
  async function addJobResult(job: JobStatus, files: Record<string, ResultRef>): Promise<void> {
    try {
      const names = new Set(Object.values(files).map((f) => (f.href ?? '').split('/').pop()));
      const doc = await getJson<{ features: StacItem[] }>(`collections/user-${encodeURIComponent(userName)}/items?limit=1000`);
      const finished = Date.parse(job.finished ?? job.updated ?? '') || Date.now();
      const made = (i: StacItem) => Date.parse(String(i.properties['processing:datetime'] ?? i.properties.datetime ?? '')) || 0;
      const mine = doc.features
        .filter((i) => names.has(String(i.properties.title ?? '')) && layerKind(i) !== 'quicklook')
        .sort((a, b) => Math.abs(made(a) - finished) - Math.abs(made(b) - finished));
      const pick = mine[0];
      if (!pick) throw new Error('its outputs are not in the catalogue');
      addItem({ ...pick, collection: pick.collection ?? `user-${userName}` }, true);
      showTab('layers');
    } catch (e) {
      say(`result of job ${job.jobID}: ${(e as Error).message}`, true);
    }
  }

  async function loadLegend(entry: LayerEntry): Promise<void> {
    if (entry.kind !== 'raster' || !entry.item) return;
    try {
      entry.legend = await getJson<Legend>(legendUrl(entry.collection, entry.item, entry.params));
      if (!entry.params.rescale) entry.params.rescale = [entry.legend.min, entry.legend.max];
    } catch {
      entry.legend = undefined;
    }
    renderLayers();
  }

  function restyle(e: LayerEntry): void {
    setRasterTemplate(e.ol as TileLayer<XYZ>, currentTemplate(e));
    if (e.right) setRasterTemplate(e.right as TileLayer<XYZ>, currentTemplate(e));
    void loadLegend(e);
  }

  function legendBox(e: LayerEntry): HTMLElement | string {
    if (e.kind === 'points') {
      const range = h('input', { type: 'number', min: 0.5, step: 0.5, value: e.velocityRange, class: 'range', 'aria-label': `colour range of ${e.title} (± mm/yr)` });
      range.addEventListener('change', () => {
        const r = Number(range.value);
        range.setAttribute('aria-invalid', r > 0 ? 'false' : 'true');
        if (!(r > 0)) return say('colour range: expected a positive number of mm/yr', true);
        e.velocityRange = r;
        // The style reads the range: a redraw recolours the points without reloading their tiles.
        (e.ol as VectorTileLayer).changed();
        e.right?.changed();
        renderLayers();
      });
      return h('div', { class: 'legend', 'data-legend': e.id }, h('div', { class: 'legend-title' }, 'mean velocity [mm/yr]'),
        h('div', { class: 'bar', style: `background:${cssGradient('egms')}` }),
        h('div', { class: 'ticks' }, h('span', {}, `${-e.velocityRange}`), h('span', {}, '0'), h('span', {}, `+${e.velocityRange}`)),
        h('label', {}, 'range ± ', range),
        e.aggregatedBelow > 0
          ? h('p', { class: 'muted zoom-note' }, `${e.count?.toLocaleString('en') ?? 'many'} points: aggregated below zoom ${e.aggregatedBelow} ` +
            '(squares: the mean velocity of the points in a cell, larger for more points)')
          : '');
    }
    const l = e.legend;
    if (!l) return '';
    const min = e.params.rescale?.[0] ?? l.min;
    const max = e.params.rescale?.[1] ?? l.max;
    const gradient = l.stops?.length
      ? `linear-gradient(to right, ${[...l.stops].sort((a, b) => a.value - b.value).map((s) => s.color).join(', ')})`
      : cssGradient(l.colormap);
    const range = h('input', { type: 'text', class: 'range', value: `${Number(min.toPrecision(4))},${Number(max.toPrecision(4))}`, 'aria-label': `colour range of ${e.title} (min,max)` });
    range.addEventListener('change', () => {
      const r = parseRescale(range.value);
      range.setAttribute('aria-invalid', r ? 'false' : 'true');
      if (!r) return say('colour range: expected MIN,MAX with MIN < MAX', true);
      e.params.rescale = r;
      restyle(e);
    });
    const scale = h('select', { 'aria-label': `colour scale of ${e.title}` },
      ...[['', 'by the data'], ['sequential', 'sequential'], ['diverging', 'diverging']].map(([v, t]) =>
        h('option', { value: v!, selected: (e.params.colormap ?? '') === v }, t!)));
    scale.addEventListener('change', () => {
      e.params.colormap = scale.value || undefined;
      restyle(e);
    });
    return h('div', { class: 'legend', 'data-legend': e.id },
      h('div', { class: 'legend-title' }, `${l.title}${l.units ? ` [${l.units}]` : ''}`),
      h('div', { class: 'bar', style: `background:${gradient}` }),
      // Ticks where their value lies on the bar.
      h('div', { class: 'ticks placed' }, ...legendTicks(min, max, 4).map((t) =>
        h('span', { style: `left:${(((t - min) / (max - min || 1)) * 100).toFixed(2)}%` }, String(t)))),
      h('div', { class: 'row' }, h('label', {}, 'range ', range), scale));
  }

  function renderLayers(): void {
    const list = $('#layer-list');
    list.replaceChildren(
      ...[...layers].reverse().map((e) => {
        const visible = h('input', { type: 'checkbox', checked: e.visible, 'aria-label': `show ${e.title}` });
        visible.addEventListener('change', () => {
          e.visible = visible.checked;
          e.ol.setVisible(e.visible);
          saveView();
        });
        const opacity = h('input', { type: 'range', min: 0, max: 1, step: 0.05, value: e.opacity, class: 'opacity', 'aria-label': `opacity of ${e.title}` });
        opacity.addEventListener('input', () => {
          e.opacity = Number(opacity.value);
          e.ol.setOpacity(e.opacity);
          e.right?.setOpacity(e.opacity);
          saveView();
        });
        return h('li', { 'data-layer': e.id },
          h('div', { class: 'row' }, visible, h('span', { class: 'layer-title', title: e.id }, e.title),
            h('button', { type: 'button', class: 'zoom', 'aria-label': `zoom to ${e.title}`, onclick: () => e.bbox && fitBbox(view, e.bbox, map.getSize()) }, '⤢'),
            h('button', { type: 'button', class: 'remove', 'aria-label': `remove ${e.title}`, onclick: () => removeLayer(e) }, '×')),
          h('label', { class: 'row' }, 'opacity ', opacity),
          legendBox(e));
      }),
    );
    const sel = $('#compare-layer') as HTMLSelectElement;
    sel.replaceChildren(...layers.map((l) => h('option', { value: l.id, selected: l.id === compareLayer }, l.title)));
    if (!compareLayer && layers.length) compareLayer = layers[layers.length - 1]!.id;
    $('#qgis').replaceChildren(...qgisBox());
    updateTimeBar();
    applyCompare();
    saveView();
  }

  function removeLayer(e: LayerEntry): void {
    map.removeLayer(e.ol);
    if (e.right) right.removeLayer(e.right);
    layers.splice(layers.indexOf(e), 1);
    renderLayers();
  }

  function qgisBox(): HTMLElement[] {
    const u = qgisUrls(url(''));
    const copy = (text: string) => () => void navigator.clipboard?.writeText(text).then(() => say('copied'), () => say(text));
    return [
      h('p', { class: 'muted' }, 'In QGIS: Layer › Add Layer › Add WMS/WMTS Layer, new connection with this URL.'),
      h('div', { class: 'row' }, h('input', { type: 'text', readonly: true, value: u.wmts, 'aria-label': 'WMTS URL', id: 'wmts-url' }), h('button', { type: 'button', onclick: copy(u.wmts) }, 'Copy WMTS')),
      h('div', { class: 'row' }, h('input', { type: 'text', readonly: true, value: u.wms, 'aria-label': 'WMS URL', id: 'wms-url' }), h('button', { type: 'button', onclick: copy(u.wms) }, 'Copy WMS')),
      ...layers.filter((l) => l.kind !== 'points').map((l) =>
        h('div', { class: 'row' }, h('input', { type: 'text', readonly: true, value: url(currentTemplate(l)).replace(/%7B/g, '{').replace(/%7D/g, '}'), 'aria-label': `XYZ URL of ${l.title}` }))),
    ];
  }

  // ---------------------------------------------------------------- time slider
  function timeLayer(): LayerEntry | undefined {
    return [...layers].reverse().find((l) => l.visible && l.dates.length > 1);
  }

  function updateTimeBar(): void {
    const l = timeLayer();
    const bar = $('#time-bar');
    bar.hidden = !l;
    if (!l) return;
    const slider = $('#time-slider') as HTMLInputElement;
    slider.max = String(l.dates.length - 1);
    const i = time ? Math.max(0, l.dates.findIndex((d) => d.slice(0, 10) === time!.slice(0, 10))) : l.dates.length - 1;
    slider.value = String(i);
    $('#time-value').textContent = l.dates[i]!.slice(0, 10);
  }

  $('#time-slider').addEventListener('input', () => {
    const l = timeLayer();
    if (!l) return;
    time = l.dates[Number(($('#time-slider') as HTMLInputElement).value)]!.slice(0, 10);
    $('#time-value').textContent = time;
    for (const e of layers) {
      if (e.dates.length > 1 && e.kind !== 'points') {
        setRasterTemplate(e.ol as TileLayer<XYZ>, currentTemplate(e));
        if (e.right) setRasterTemplate(e.right as TileLayer<XYZ>, currentTemplate(e));
      }
    }
    saveView();
  });

  // ---------------------------------------------------------------- compare
  function applyCompare(): void {
    unclip?.();
    unclip = undefined;
    for (const e of layers) {
      if (e.right) right.removeLayer(e.right);
      e.right = undefined;
      e.ol.setVisible(e.visible);
    }
    const target = layers.find((l) => l.id === compareLayer);
    const side = compare === 'side' && !!target;
    $('#map-right').hidden = !side;
    $('#maps').classList.toggle('side', side);
    ($('#swipe') as HTMLInputElement).hidden = !(compare === 'swipe' && target);
    if (compare === 'swipe' && target) {
      unclip = clipRightOf(target.ol, () => swipe);
      ($('#swipe') as HTMLInputElement).value = String(swipe);
    } else if (side) {
      // The right-hand map shows the chosen layer; the left one keeps the others.
      target.ol.setVisible(false);
      target.right = rightTwin(target);
      target.right.setOpacity(target.opacity);
      right.addLayer(target.right);
    }
    map.updateSize();
    right.updateSize();
    map.render();
  }

  for (const radio of document.querySelectorAll<HTMLInputElement>('input[name=compare]')) {
    radio.checked = radio.value === compare;
    radio.addEventListener('change', () => {
      compare = radio.value as CompareMode;
      applyCompare();
      saveView();
    });
  }
  $('#compare-layer').addEventListener('change', () => {
    compareLayer = ($('#compare-layer') as HTMLSelectElement).value;
    applyCompare();
    saveView();
  });
  $('#swipe').addEventListener('input', () => {
    swipe = Number(($('#swipe') as HTMLInputElement).value);
    map.render();
    saveView();
  });

  // ---------------------------------------------------------------- click: values and series
  map.on('singleclick', (evt) => void clickAt(evt.coordinate, evt.pixel));
  async function clickAt(coordinate: number[], pixel: number[]): Promise<void> {
    const [lon, lat] = toLonLat(coordinate) as [number, number];
    const rows: { layer: string; values: PointAnswer['values'] }[] = [];
    const visible = layers.filter((l) => l.visible && l.item);
    await Promise.all(
      visible.map(async (l) => {
        if (l.kind === 'points') {
          // The layer's own hit detection: the map's misses vector-tile points in OpenLayers 10.
          const [f] = await (l.ol as VectorTileLayer).getFeatures(pixel);
          if (!f) return;
          if (isAggregated(f)) {
            // A cell of an aggregated tile: its points and their mean; their series need a closer zoom.
            const count = Number(f.get('count'));
            rows.push({ layer: l.title, values: [{ asset: 'points', band: 1, name: `mean of ${count.toLocaleString('en')} points (zoom in for each point)`, units: 'mm/yr', value: Number(f.get('velocity_mm_per_yr')) }] });
            return;
          }
          const pid = f.get('pid');
          const s = await getJson<Series | { series: Series }>(pointSeriesUrl(l.collection, l.item!, pid));
          const series = 'series' in s ? s.series : s;
          rows.push({ layer: l.title, values: [{ asset: 'points', band: 1, name: `pid ${pid}`, units: 'mm/yr', value: Number(f.get('velocity_mm_per_yr')) }] });
          point.addSeries(`pid ${pid}`, lon, lat, series);
          return;
        }
        try {
          const a = await getJson<PointAnswer>(pointUrl(l.collection, l.item!, lon, lat));
          rows.push({ layer: l.title, values: a.values });
          if (a.series?.dates?.length) point.addSeries(`${l.title} ${lat.toFixed(4)},${lon.toFixed(4)}`, lon, lat, a.series);
        } catch (e) {
          rows.push({ layer: l.title, values: [{ asset: '', band: 0, name: (e as Error).message, units: '', value: null }] });
        }
      }),
    );
    point.showValues(lon, lat, rows);
  }

  // ---------------------------------------------------------------- URL state
  let saveTimer: number | undefined;
  function saveView(): void {
    clearTimeout(saveTimer);
    saveTimer = window.setTimeout(() => {
      const [lon, lat] = toLonLat(view.getCenter() ?? [0, 0]) as [number, number];
      const hash = formatView({
        center: [lon, lat], zoom: view.getZoom() ?? 2,
        layers: layers.map((l) => ({ id: l.id, opacity: l.opacity, visible: l.visible })),
        time, compare, compareLayer: compare === 'none' ? undefined : compareLayer, swipe,
      });
      history.replaceState(null, '', `#${hash}`);
    }, 150);
  }
  map.on('moveend', saveView);
  await Promise.all([restoreLayers(), signIn(apiKey())]);
}

void boot().catch((e) => say(`viewer: ${(e as Error).message}`, true));
