// URLs of the map server (code against its contract: tiles, legends, point queries, vector tiles, WMTS/WMS).
// Pure logic, unit-tested.

import type { StacItem } from './api';

export type Tms = 'WebMercatorQuad' | 'WorldCRS84Quad' | 'EuropeanETRS89_LAEAQuad';

export interface RasterParams {
  asset?: string;
  band?: number;
  rescale?: [number, number];
  colormap?: string;
  expression?: string;
  datetime?: string;
}

const enc = encodeURIComponent;

function query(p: RasterParams, extra: Record<string, string> = {}): string {
  const q: string[] = [];
  if (p.asset) q.push(`assets=${enc(p.asset)}`);
  if (p.band !== undefined) q.push(`bidx=${p.band}`);
  if (p.rescale) q.push(`rescale=${p.rescale[0]},${p.rescale[1]}`);
  if (p.colormap) q.push(`colormap=${enc(p.colormap)}`);
  if (p.expression) q.push(`expression=${enc(p.expression)}`);
  if (p.datetime) q.push(`datetime=${enc(p.datetime)}`);
  for (const [k, v] of Object.entries(extra)) q.push(`${k}=${enc(v)}`);
  return q.length ? `?${q.join('&')}` : '';
}

/** Tile template of an item ({z}/{x}/{y} left for OpenLayers), or of a collection's mosaic when `item` is empty. */
export function tileTemplate(collection: string, item: string | undefined, p: RasterParams, tms: Tms = 'WebMercatorQuad'): string {
  const base = item ? `collections/${enc(collection)}/items/${enc(item)}` : `collections/${enc(collection)}`;
  return `${base}/tiles/${tms}/{z}/{x}/{y}.png${query(p)}`;
}

export function legendUrl(collection: string, item: string, p: RasterParams, format: 'json' | 'png' = 'json'): string {
  return `collections/${enc(collection)}/items/${enc(item)}/legend.${format}${query({ ...p, datetime: undefined })}`;
}

export function pointUrl(collection: string, item: string, lon: number, lat: number, csv = false): string {
  return `collections/${enc(collection)}/items/${enc(item)}/point/${lon.toFixed(6)},${lat.toFixed(6)}${csv ? '?f=csv' : ''}`;
}

export function vectorTileTemplate(collection: string, item: string, tms: Tms = 'WebMercatorQuad'): string {
  return `collections/${enc(collection)}/items/${enc(item)}/vector-tiles/${tms}/{z}/{x}/{y}.mvt`;
}

export function pointSeriesUrl(collection: string, item: string, pid: string | number): string {
  return `collections/${enc(collection)}/items/${enc(item)}/points/${enc(String(pid))}`;
}

/** The "add to QGIS" URLs of the server (absolute). */
export function qgisUrls(base: string): { wmts: string; wms: string } {
  const b = base.endsWith('/') ? base : `${base}/`;
  return { wmts: `${b}wmts/1.0.0/WMTSCapabilities.xml`, wms: `${b}wms?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0` };
}

export type LayerKind = 'raster' | 'points' | 'quicklook';

/** What an item is drawn as: EGMS point products as vector tiles, scenes as their true-colour quicklook,
 * every other raster (deforma products, Ortho grids) through the tile endpoint with a colour scale. */
export function layerKind(item: StacItem): LayerKind {
  const assets = Object.values(item.assets ?? {});
  const props = item.properties ?? {};
  const isPoints =
    assets.some((a) => (a.roles ?? []).includes('points') || /csv|zip|geopackage|vnd\.mapbox/.test(a.type ?? '')) &&
    !assets.some((a) => /tiff/.test(a.type ?? ''));
  if (isPoints || String(props['egms:level'] ?? '') !== '' && !assets.some((a) => /tiff/.test(a.type ?? ''))) return 'points';
  const isScene = props['eo:cloud_cover'] !== undefined || props['platform'] !== undefined;
  const isProduct = props['processing:software'] !== undefined || props['deforma:operation'] !== undefined;
  return isScene && !isProduct ? 'quicklook' : 'raster';
}

/** The asset to draw: the one with role "data" holding a GeoTIFF, else the first GeoTIFF, else the first. */
export function dataAsset(item: StacItem): string | undefined {
  const entries = Object.entries(item.assets ?? {});
  const tiff = (t?: string) => /tiff|jp2/.test(t ?? '');
  return (
    entries.find(([, a]) => (a.roles ?? []).includes('data') && tiff(a.type))?.[0] ??
    entries.find(([, a]) => tiff(a.type))?.[0] ??
    entries.find(([, a]) => (a.roles ?? []).includes('visual'))?.[0] ??
    entries[0]?.[0]
  );
}

/** The quicklook (thumbnail/overview) asset's href of an item, for the search results. */
export function thumbnailHref(item: StacItem): string | undefined {
  const entries = Object.values(item.assets ?? {});
  return (
    entries.find((a) => (a.roles ?? []).some((r) => r === 'thumbnail' || r === 'overview'))?.href ??
    item.links?.find((l) => l.rel === 'preview')?.href
  );
}

/** The band drawn by default: a product's speed (or magnitude) band when its asset names its bands, else the
 * first (1-based; undefined = the server's default). */
export function defaultBand(item: StacItem, asset: string | undefined): number | undefined {
  const bands = (asset ? (item.assets?.[asset] as unknown as Record<string, unknown>)?.['raster:bands'] : undefined) as
    | { name?: string; description?: string }[]
    | undefined;
  if (!Array.isArray(bands)) return undefined;
  const names = bands.map((b) => `${b?.name ?? ''} ${b?.description ?? ''}`);
  for (const pattern of [/speed/i, /magnitude/i, /velocity/i]) {
    const i = names.findIndex((n) => pattern.test(n));
    if (i >= 0) return i + 1;
  }
  return undefined;
}

/** Points a vector tile of the map server carries one by one; above it the server sends the tile aggregated:
 * one feature per cell of 4 px with the cell's point `count` and mean `velocity_mm_per_yr` (docs/maps.md). */
export const TILE_POINT_BUDGET = 4096;

/** Points a vector tile holds on average where the server's tiles are point by point: the peaks of a city's
 * points are a few times the average, and a tile over the budget comes aggregated. */
export const POINTS_PER_TILE = 1500;

/**
 * The tile zoom below which the map server sends an EGMS point product of `count` points over `bbox`
 * (degrees) aggregated (its tiles hold more than TILE_POINT_BUDGET points): the zoom where a tile holds at most
 * POINTS_PER_TILE points on average. An estimate for the legend (the server decides tile by tile); 0 for
 * products small enough to be drawn point by point everywhere.
 */
export function pointsAggregatedBelow(count: number | undefined, bbox: number[] | undefined): number {
  // A product of up to 20,000 points (an EGMS burst of a rural area) is light enough in one tile.
  if (!count || !bbox || bbox.length < 4 || count <= 20000) return 0;
  const [w, s, e, n] = bbox as [number, number, number, number];
  const area = Math.max((e - w) * (n - s), 1e-9);
  const coslat = Math.cos((((s + n) / 2) * Math.PI) / 180);
  for (let z = 0; z < 18; z++) {
    const side = 360 / 2 ** z;
    if (count * Math.min(1, (side * side * coslat) / area) <= POINTS_PER_TILE) return z;
  }
  return 18;
}

/** Whether a feature of a point vector tile stands for a cell of several points (an aggregated tile). */
export function isAggregated(props: { get(key: string): unknown }): boolean {
  return props.get('count') !== undefined && props.get('pid') === undefined;
}

/** The radius in pixels of an aggregated cell's symbol: grows with the log of its points, within the 4 px cell
 * and a little over it for the densest cells so that they stand out. */
export function cellRadiusPx(count: number): number {
  if (!(count > 1)) return 2;
  return Math.min(4.5, 2 + Math.log10(count));
}
