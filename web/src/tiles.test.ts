import { describe, expect, it } from 'vitest';
import { dataAsset, defaultBand, layerKind, cellRadiusPx, isAggregated, legendUrl, pointsAggregatedBelow, pointUrl, POINTS_PER_TILE, TILE_POINT_BUDGET, qgisUrls, tileTemplate, vectorTileTemplate } from './tiles';
import type { StacItem } from './api';

describe('map server URLs', () => {
  it('builds the item and mosaic tile templates of the contract', () => {
    expect(tileTemplate('yahtse', 'v 2016', { asset: 'data', band: 9, rescale: [0, 2000], colormap: 'viridis' })).toBe(
      'collections/yahtse/items/v%202016/tiles/WebMercatorQuad/{z}/{x}/{y}.png?assets=data&bidx=9&rescale=0,2000&colormap=viridis',
    );
    expect(tileTemplate('s2', undefined, { datetime: '2020-01-01' }, 'EuropeanETRS89_LAEAQuad')).toBe(
      'collections/s2/tiles/EuropeanETRS89_LAEAQuad/{z}/{x}/{y}.png?datetime=2020-01-01',
    );
    expect(legendUrl('c', 'i', { colormap: 'rdbu', datetime: 'x' })).toBe('collections/c/items/i/legend.json?colormap=rdbu');
    expect(pointUrl('c', 'i', -141.1234567, 60.1, true)).toBe('collections/c/items/i/point/-141.123457,60.100000?f=csv');
    expect(vectorTileTemplate('egms', 'burst')).toBe('collections/egms/items/burst/vector-tiles/WebMercatorQuad/{z}/{x}/{y}.mvt');
    expect(qgisUrls('http://127.0.0.1:8080').wmts).toBe('http://127.0.0.1:8080/wmts/1.0.0/WMTSCapabilities.xml');
  });

  it('chooses how an item is drawn and which asset', () => {
    const product: StacItem = {
      id: 'v',
      properties: { 'processing:software': { deforma: '1' } },
      assets: { quicklook: { href: 'q.png', type: 'image/png', roles: ['overview'] }, data: { href: 'v.tif', type: 'image/tiff; application=geotiff', roles: ['data'] } },
    };
    const egms: StacItem = { id: 'p', properties: {}, assets: { data: { href: 'p.csv', type: 'text/csv', roles: ['data', 'points'] } } };
    const scene: StacItem = { id: 's', properties: { 'eo:cloud_cover': 3 }, assets: { B08: { href: 'b.jp2', type: 'image/jp2' } } };
    expect(layerKind(product)).toBe('raster');
    expect(dataAsset(product)).toBe('data');
    expect(layerKind(egms)).toBe('points');
    expect(layerKind(scene)).toBe('quicklook');
    const velocity = { ...product, assets: { data: { ...product.assets.data!, 'raster:bands': [{ name: 'dx_px' }, { name: 'east_m_per_yr' }, { description: 'speed_m_per_yr' }] } } } as StacItem;
    expect(defaultBand(velocity, 'data')).toBe(3);
    expect(defaultBand(product, 'data')).toBeUndefined();
  });
});

describe('pointsAggregatedBelow', () => {
  it('draws small products point by point at every zoom', () => {
    expect(pointsAggregatedBelow(11590, [13.0, 38.6, 13.3, 38.8])).toBe(0);
    expect(pointsAggregatedBelow(undefined, undefined)).toBe(0);
  });
  it('says below which zoom a million points over a city come aggregated', () => {
    const bbox = [14.0056, 40.7047, 14.4953, 40.9953];
    const z = pointsAggregatedBelow(1_000_000, bbox);
    expect(z).toBe(15);
    // One zoom less would put more than the budget in a tile.
    const side = 360 / 2 ** (z - 1);
    const share = (side * side * Math.cos((40.85 * Math.PI) / 180)) / ((bbox[2]! - bbox[0]!) * (bbox[3]! - bbox[1]!));
    expect(1_000_000 * share).toBeGreaterThan(POINTS_PER_TILE);
    expect(POINTS_PER_TILE).toBeLessThan(TILE_POINT_BUDGET);
  });
});

describe('aggregated point tiles', () => {
  const props = (o: Record<string, unknown>) => ({ get: (k: string) => o[k] });
  it('tells a cell from a point', () => {
    expect(isAggregated(props({ count: 12, velocity_mm_per_yr: -2.5, aggregated: true }))).toBe(true);
    expect(isAggregated(props({ pid: '166ax5Ofja', velocity_mm_per_yr: -2.5 }))).toBe(false);
  });
  it('sizes cells by their points, within bounds', () => {
    expect(cellRadiusPx(1)).toBe(2);
    expect(cellRadiusPx(10)).toBeCloseTo(3);
    expect(cellRadiusPx(100)).toBeCloseTo(4);
    expect(cellRadiusPx(1e6)).toBe(4.5);
    expect(cellRadiusPx(1000)).toBeGreaterThan(cellRadiusPx(100));
  });
});
