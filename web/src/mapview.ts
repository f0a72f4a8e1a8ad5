// The map: OpenLayers with canvas layers (works in a headless browser), the basemap (none = a neutral
// background, so the page requests nothing but the deforma server), catalogue layers as raster tiles or
// EGMS vector tiles, swipe and side-by-side compare.

import Map from 'ol/Map';
import View from 'ol/View';
import TileLayer from 'ol/layer/Tile';
import XYZ from 'ol/source/XYZ';
import VectorTileLayer from 'ol/layer/VectorTile';
import VectorTileSource from 'ol/source/VectorTile';
import MVT from 'ol/format/MVT';
import VectorLayer from 'ol/layer/Vector';
import VectorSource from 'ol/source/Vector';
import { Circle, Fill, RegularShape, Stroke, Style } from 'ol/style';
import { fromLonLat, toLonLat, transformExtent } from 'ol/proj';
import { getRenderPixel } from 'ol/render';
import type RenderEvent from 'ol/render/Event';
import type ImageTile from 'ol/ImageTile';
import type VectorTile from 'ol/VectorTile';
import type Tile from 'ol/Tile';
import type BaseLayer from 'ol/layer/Base';
import type { FeatureLike } from 'ol/Feature';
import { defaults as defaultControls } from 'ol/control/defaults';
import ScaleLine from 'ol/control/ScaleLine';

import { apiKey, fetchBytes, url } from './api';
import { colorOf, toHex } from './colors';
import { cellRadiusPx, isAggregated } from './tiles';

export const OSM_TEMPLATE = 'https://tile.openstreetmap.org/{z}/{x}/{y}.png';

/** Loads tiles with fetch, so the API key travels with them (private results); plain image loads without a key. */
function authImageLoader(tile: Tile, src: string): void {
  const image = (tile as ImageTile).getImage() as HTMLImageElement;
  if (!apiKey()) {
    image.src = src;
    return;
  }
  fetchBytes(src)
    .then((bytes) => {
      const objectUrl = URL.createObjectURL(new Blob([bytes], { type: 'image/png' }));
      image.addEventListener('load', () => URL.revokeObjectURL(objectUrl), { once: true });
      image.src = objectUrl;
    })
    // A tile outside the data or refused: an error state, drawn as nothing.
    .catch(() => image.dispatchEvent(new Event('error')));
}

export function rasterLayer(template: string): TileLayer<XYZ> {
  return new TileLayer({
    source: new XYZ({ url: url(template).replace(/%7B/g, '{').replace(/%7D/g, '}'), tileLoadFunction: authImageLoader, transition: 0 }),
  });
}

export function setRasterTemplate(layer: TileLayer<XYZ>, template: string): void {
  layer.getSource()?.setUrl(url(template).replace(/%7B/g, '{').replace(/%7D/g, '}'));
}

/** EGMS points coloured by their mean velocity on EGMS's red-to-blue scale over [-range, +range] mm/yr, as
 * vector tiles, at every zoom. Where a tile holds too many points the server sends it aggregated (one feature
 * per 4 px cell with its `count` and mean velocity): a cell is drawn as a square coloured by its mean and
 * sized by its count, so that a dense product reads as a density map until the points come one by one. */
export function pointsLayer(template: string, rangeMmPerYr: () => number): VectorTileLayer {
  const format = new MVT();
  const styles = new globalThis.Map<string, Style>();
  const source = new VectorTileSource({
    format,
    url: url(template).replace(/%7B/g, '{').replace(/%7D/g, '}'),
    tileLoadFunction: (tile: Tile, src: string) => {
      const vt = tile as VectorTile<FeatureLike>;
      vt.setLoader((extent, _resolution, projection) => {
        fetchBytes(src)
          .then((bytes) => vt.setFeatures(format.readFeatures(bytes, { extent, featureProjection: projection }) as FeatureLike[]))
          .catch(() => vt.setFeatures([]));
      });
    },
  });
  return new VectorTileLayer({
    source,
    renderMode: 'hybrid',
    style: (feature: FeatureLike) => {
      const v = Number(feature.get('velocity_mm_per_yr'));
      const r = rangeMmPerYr();
      const color = Number.isFinite(v) ? toHex(colorOf('egms', v, -r, r)) : '#888888';
      const cell = isAggregated(feature);
      // Styles are shared by colour and size (a few hundred at most), not made per feature.
      const radius = cell ? Math.round(cellRadiusPx(Number(feature.get('count'))) * 2) / 2 : 3;
      const key = `${color}|${cell ? radius : 'p'}`;
      let s = styles.get(key);
      if (!s) {
        const image = cell
          ? new RegularShape({ points: 4, radius, angle: Math.PI / 4, fill: new Fill({ color }) })
          : new Circle({ radius, fill: new Fill({ color }), stroke: new Stroke({ color: '#333', width: 0.5 }) });
        s = new Style({ image });
        styles.set(key, s);
      }
      return s;
    },
  });
}

export interface MapSetup {
  map: Map;
  view: View;
  /** The right-hand map of the side-by-side mode (shares the view: linked). */
  right: Map;
  footprints: VectorSource;
  footprintLayer: VectorLayer<VectorSource>;
}

export function basemapLayer(template: string | null): BaseLayer | null {
  if (!template || template === 'none') return null;
  const layer = new TileLayer({ source: new XYZ({ url: template, crossOrigin: 'anonymous', attributions: template === OSM_TEMPLATE ? '© OpenStreetMap contributors' : undefined }) });
  layer.set('basemap', true);
  return layer;
}

export function createMaps(target: HTMLElement, rightTarget: HTMLElement, basemap: string | null, center: [number, number], zoom: number): MapSetup {
  const view = new View({ center: fromLonLat(center), zoom, maxZoom: 22 });
  const footprints = new VectorSource();
  const footprintLayer = new VectorLayer({
    source: footprints,
    style: (f: FeatureLike) =>
      new Style({
        stroke: new Stroke({ color: f.get('highlight') ? '#ff7f00' : '#1f78b4', width: f.get('highlight') ? 3 : 1.5 }),
        fill: new Fill({ color: f.get('highlight') ? 'rgba(255,127,0,0.15)' : 'rgba(31,120,180,0.05)' }),
      }),
  });
  footprintLayer.setZIndex(1000);
  const base = basemapLayer(basemap);
  const map = new Map({
    target,
    view,
    layers: [...(base ? [base] : []), footprintLayer],
    controls: defaultControls({ attribution: !!base }).extend([new ScaleLine()]),
  });
  const rightBase = basemapLayer(basemap);
  const right = new Map({ target: rightTarget, view, layers: rightBase ? [rightBase] : [], controls: defaultControls({ attribution: false }) });
  return { map, view, right, footprints, footprintLayer };
}

/** Clips `layer` to the right of the swipe bar at `fraction()` of the map's width. */
export function clipRightOf(layer: BaseLayer, fraction: () => number): () => void {
  const pre = (event: RenderEvent) => {
    const ctx = event.context as CanvasRenderingContext2D;
    const size = event.frameState!.size;
    const x = size[0]! * fraction();
    const tl = getRenderPixel(event, [x, 0]);
    const tr = getRenderPixel(event, [size[0]!, 0]);
    const bl = getRenderPixel(event, [x, size[1]!]);
    const br = getRenderPixel(event, [size[0]!, size[1]!]);
    ctx.save();
    ctx.beginPath();
    ctx.moveTo(tl[0]!, tl[1]!);
    ctx.lineTo(bl[0]!, bl[1]!);
    ctx.lineTo(br[0]!, br[1]!);
    ctx.lineTo(tr[0]!, tr[1]!);
    ctx.closePath();
    ctx.clip();
  };
  const post = (event: RenderEvent) => (event.context as CanvasRenderingContext2D).restore();
  layer.on('prerender' as never, pre as never);
  layer.on('postrender' as never, post as never);
  return () => {
    layer.un('prerender' as never, pre as never);
    layer.un('postrender' as never, post as never);
  };
}

export function fitBbox(view: View, bbox: number[], size?: number[]): void {
  if (bbox.length < 4) return;
  const [w, s, e, n] = bbox.length === 6 ? [bbox[0]!, bbox[1]!, bbox[3]!, bbox[4]!] : (bbox as [number, number, number, number]);
  view.fit(transformExtent([w, s, e, n], 'EPSG:4326', 'EPSG:3857'), { padding: [30, 30, 30, 30], size, maxZoom: 17 });
}

export function viewBbox(map: Map): [number, number, number, number] {
  const ext = transformExtent(map.getView().calculateExtent(map.getSize()), 'EPSG:3857', 'EPSG:4326');
  return [Math.max(-180, ext[0]!), Math.max(-90, ext[1]!), Math.min(180, ext[2]!), Math.min(90, ext[3]!)];
}

export { toLonLat, fromLonLat, transformExtent };
