import { describe, expect, it } from 'vitest';
import { dataAsset, defaultBand, layerKind, legendUrl, pointUrl, qgisUrls, tileTemplate, vectorTileTemplate } from './tiles';
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
