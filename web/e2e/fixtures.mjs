// Stand-ins for the catalogue and map-server answers, following their URL contract (docs/viewer.md), for
// the browser tests of the viewer's map features on a server without a catalogue. Answers are small and
// deterministic: solid-colour PNG tiles inside an item's box and transparent ones outside, legends, point
// values with a series, and Mapbox Vector Tiles holding a few EGMS-like points.
import zlib from 'node:zlib';

// ---------------------------------------------------------------- PNG
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** A size x size RGBA PNG of one colour ([r, g, b, a]). */
export function solidPng([r, g, b, a], size = 256) {
  const row = Buffer.alloc(1 + size * 4);
  for (let x = 0; x < size; x++) row.set([r, g, b, a], 1 + x * 4);
  const raw = Buffer.concat(Array.from({ length: size }, () => row));
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// ---------------------------------------------------------------- MVT (protobuf)
function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return Buffer.from(out);
}
const key = (field, wire) => varint((field << 3) | wire);
const lenField = (field, buf) => Buffer.concat([key(field, 2), varint(buf.length), buf]);
const zigzag = (n) => (n << 1) ^ (n >> 31);
function doubleField(field, v) {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return Buffer.concat([key(field, 1), b]);
}
/** A vector tile with layer `points`: each point {x, y} in tile units (0..4096), pid, velocity_mm_per_yr. */
export function pointsMvt(points) {
  const values = [];
  const features = points.map((p, i) => {
    values.push(lenField(1, Buffer.from(String(p.pid))), doubleField(3, p.velocity));
    const tags = Buffer.concat([varint(0), varint(2 * i), varint(1), varint(2 * i + 1)]);
    const geom = Buffer.concat([varint(9), varint(zigzag(p.x)), varint(zigzag(p.y))]);
    return lenField(2, Buffer.concat([key(1, 0), varint(i + 1), lenField(2, tags), key(3, 0), varint(1), lenField(4, geom)]));
  });
  const layer = Buffer.concat([
    key(15, 0), varint(2),
    lenField(1, Buffer.from('points')),
    ...features,
    lenField(3, Buffer.from('pid')), lenField(3, Buffer.from('velocity_mm_per_yr')),
    ...values.map((v) => lenField(4, v)),
    key(5, 0), varint(4096),
  ]);
  return lenField(3, layer);
}

// ---------------------------------------------------------------- tiles and boxes
function tileBounds(z, x, y) {
  const n = 2 ** z;
  const lon = (i) => (i / n) * 360 - 180;
  const lat = (j) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * j) / n))) * 180) / Math.PI;
  return [lon(x), lat(y + 1), lon(x + 1), lat(y)];
}
const intersects = (a, b) => a[0] < b[2] && a[2] > b[0] && a[1] < b[3] && a[3] > b[1];
/** Where a lon/lat falls in tile z/x/y, in MVT units. */
function tileUnits(z, x, y, lon, lat) {
  const n = 2 ** z;
  const fx = ((lon + 180) / 360) * n - x;
  const s = Math.sin((lat * Math.PI) / 180);
  const fy = (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n - y;
  return [Math.round(fx * 4096), Math.round(fy * 4096)];
}

// ---------------------------------------------------------------- the catalogue
const BOX = [-141.5, 60.05, -141.1, 60.25]; // the Yahtse area
const EGMS_BOX = [13.1, 38.66, 13.22, 38.73]; // Ustica
const DATASET = (href, type, roles) => ({ href, type, roles });
// Years since the first date: the fixtures' series follow their stated velocity.
const years = (d) => (Date.parse(d) - Date.parse('2020-01-03')) / (365.25 * 86400000);
export const SERIES_DATES = ['2020-01-03', '2020-01-15', '2020-01-27', '2020-02-08', '2020-02-20', '2020-03-03', '2020-03-15'];

function item(collection, id, bbox, datetime, properties, assets) {
  const [w, s, e, n] = bbox;
  return {
    type: 'Feature', stac_version: '1.0.0', id, collection, bbox,
    geometry: { type: 'Polygon', coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] },
    properties: { datetime, ...properties }, assets, links: [],
  };
}

export const ITEMS = {
  'yahtse-velocity': [
    item('yahtse-velocity', 'velocity-2016', BOX, '2016-08-03T00:00:00Z', { 'processing:software': { deforma: '1' }, 'deforma:dates': SERIES_DATES },
      { data: DATASET('velocity.tif', 'image/tiff; application=geotiff; profile=cloud-optimized', ['data']) }),
  ],
  'landsat-8': [
    item('landsat-8', 'LC80630182016200', BOX, '2016-07-18T20:50:00Z', { 'eo:cloud_cover': 12, platform: 'landsat-8' },
      { B8: DATASET('b8a.tif', 'image/tiff; application=geotiff', ['data']) }),
    item('landsat-8', 'LC80630182016216', BOX, '2016-08-03T20:50:00Z', { 'eo:cloud_cover': 41, platform: 'landsat-8' },
      { B8: DATASET('b8b.tif', 'image/tiff; application=geotiff', ['data']) }),
  ],
  'egms-l2b': [
    item('egms-l2b', 'EGMS_L2b_022_0845', EGMS_BOX, '2020-01-03T00:00:00Z', { 'egms:level': 'L2b' },
      { data: DATASET('egms.zip', 'application/zip', ['data', 'points']) }),
    // A million points over a 100 km box: every tile holds DENSE_PER_TILE of them (the server's vector tiles
    // keep a tile's load bounded at any zoom, as a real product's would).
    item('egms-l2b', 'EGMS_dense_1M', [12.5, 38.2, 13.7, 39.1], '2020-01-03T00:00:00Z', { 'egms:level': 'L2b', 'egms:points': 1000000 },
      { data: DATASET('dense.zip', 'application/zip', ['data', 'points']) }),
  ],
};
export const DENSE_PER_TILE = 4096;
export const POINTS = [
  { pid: 'PT1', lon: 13.16, lat: 38.70, velocity: -8 },
  { pid: 'PT2', lon: 13.18, lat: 38.69, velocity: 6 },
];
// Colours per item (and per date for the mosaic), so a test can tell which layer it sees.
export const COLORS = {
  'velocity-2016': [230, 120, 30, 255],
  LC80630182016200: [90, 90, 90, 255],
  LC80630182016216: [200, 200, 200, 255],
};

function json(route, body, status = 200) {
  return route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
}

/** Serves the contract's answers for `origin` on `page`; `seen` collects the tile URLs requested. */
export async function installFixtures(page, origin, seen) {
  const all = Object.values(ITEMS).flat();
  await page.route(`${origin}/**`, async (route) => {
    const req = route.request();
    const u = new URL(req.url());
    const parts = u.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts.length === 0 && req.resourceType() !== 'document') {
      // The landing page of a server with a catalogue links to its collections.
      const res = await route.fetch();
      const doc = await res.json();
      doc.links.push({ href: `${origin}/collections`, rel: 'data', type: 'application/json' });
      return json(route, doc);
    }
    if (parts[0] === 'collections' && parts.length === 1) {
      return json(route, { collections: Object.keys(ITEMS).map((id) => ({ id, title: id, extent: { spatial: { bbox: [ITEMS[id][0].bbox] } } })) });
    }
    if (parts[0] === 'collections' && parts.length === 2) {
      const items = ITEMS[parts[1]];
      return items ? json(route, { id: parts[1], title: parts[1], extent: { spatial: { bbox: [items[0].bbox] } } }) : json(route, { detail: 'no such collection' }, 404);
    }
    if (parts[0] === 'collections' && parts[2] === 'items' && parts.length === 3) return json(route, { type: 'FeatureCollection', features: ITEMS[parts[1]] ?? [] });
    if (parts[0] === 'collections' && parts[2] === 'items' && parts.length === 4) {
      const it = (ITEMS[parts[1]] ?? []).find((i) => i.id === parts[3]);
      return it ? json(route, it) : json(route, { detail: 'no such item' }, 404);
    }
    if (parts[0] === 'search') {
      const body = req.method() === 'POST' ? JSON.parse(req.postData() ?? '{}') : {};
      let found = all;
      if (body.bbox) found = found.filter((i) => intersects(i.bbox, body.bbox));
      if (body.collections) found = found.filter((i) => body.collections.includes(i.collection));
      if (body.datetime) {
        const [a, b] = body.datetime.split('/');
        found = found.filter((i) => (a === '..' || i.properties.datetime >= a) && (b === '..' || i.properties.datetime <= b));
      }
      const maxCloud = body.aoi_cloud_cover ?? body.filter?.args?.[1];
      if (maxCloud !== undefined) found = found.filter((i) => (i.properties['eo:cloud_cover'] ?? 0) <= maxCloud);
      return json(route, { type: 'FeatureCollection', features: found });
    }
    if (parts[0] === 'collections' && (parts[2] === 'tiles' || parts[4] === 'tiles')) {
      seen.push(req.url());
      const mosaic = parts[2] === 'tiles';
      const [z, x, yPng] = mosaic ? parts.slice(4) : parts.slice(6);
      const y = Number(yPng.replace('.png', ''));
      const items = mosaic ? ITEMS[parts[1]] : [(ITEMS[parts[1]] ?? []).find((i) => i.id === parts[3])];
      const when = u.searchParams.get('datetime');
      // A mosaic at a date shows the most recent item at or before it.
      const pick = items.filter((i) => i && (!when || i.properties.datetime.slice(0, 10) <= when)).pop();
      const inside = pick && intersects(pick.bbox, tileBounds(Number(z), Number(x), y));
      return route.fulfill({ status: 200, contentType: 'image/png', body: solidPng(inside ? COLORS[pick.id] ?? [255, 0, 255, 255] : [0, 0, 0, 0]) });
    }
    if (parts[0] === 'collections' && parts[4] === 'legend.json') {
      return json(route, { title: 'speed', units: 'm/yr', min: 0, max: 2000, colormap: 'sequential',
        stops: [{ value: 0, color: '#301255' }, { value: 1000, color: '#2a788e' }, { value: 2000, color: '#fae628' }] });
    }
    if (parts[0] === 'collections' && parts[4] === 'point') {
      const [lon, lat] = parts[5].split(',').map(Number);
      const it = (ITEMS[parts[1]] ?? []).find((i) => i.id === parts[3]);
      const inside = it && lon >= it.bbox[0] && lon <= it.bbox[2] && lat >= it.bbox[1] && lat <= it.bbox[3];
      return json(route, {
        lon, lat,
        values: [{ asset: 'data', band: 10, name: 'speed_m_per_yr', units: 'm/yr', value: inside ? 1234.5 : null }],
        ...(inside && it.properties['deforma:dates'] ? { series: { dates: SERIES_DATES, values: SERIES_DATES.map((d) => -60 * years(d)), sigma: SERIES_DATES.map(() => 0.5), units: 'm', velocity: -60, velocity_sigma: 1, velocity_units: 'm/yr' } } : {}),
      });
    }
    if (parts[0] === 'collections' && parts[4] === 'vector-tiles') {
      const [z, x, yMvt] = parts.slice(6);
      const y = Number(yMvt.replace('.mvt', ''));
      if (parts[3] === 'EGMS_dense_1M') {
        const side = Math.sqrt(DENSE_PER_TILE);
        const dense = [];
        for (let i = 0; i < DENSE_PER_TILE; i++) {
          const gx = i % side;
          const gy = Math.floor(i / side);
          dense.push({ pid: `D${z}_${x}_${y}_${i}`, velocity: ((gx * 7 + gy * 13) % 41) - 20, x: Math.round(((gx + 0.5) * 4096) / side), y: Math.round(((gy + 0.5) * 4096) / side) });
        }
        return route.fulfill({ status: 200, contentType: 'application/vnd.mapbox-vector-tile', body: pointsMvt(dense) });
      }
      const pts = POINTS.map((p) => ({ ...p, xy: tileUnits(Number(z), Number(x), y, p.lon, p.lat) }))
        .filter((p) => p.xy.every((v) => v >= 0 && v < 4096))
        .map((p) => ({ pid: p.pid, velocity: p.velocity, x: p.xy[0], y: p.xy[1] }));
      return route.fulfill({ status: 200, contentType: 'application/vnd.mapbox-vector-tile', body: pointsMvt(pts) });
    }
    if (parts[0] === 'collections' && parts[4] === 'points' && parts.length === 6) {
      const p = POINTS.find((q) => q.pid === parts[5]);
      if (!p) return json(route, { detail: 'no such point' }, 404);
      return json(route, { pid: p.pid, lon: p.lon, lat: p.lat, dates: SERIES_DATES, values: SERIES_DATES.map((d, i) => p.velocity * years(d) + (i % 2 ? 1 : -1)),
        sigma: SERIES_DATES.map(() => 1.5), units: 'mm', velocity: p.velocity, velocity_sigma: 0.4, velocity_units: 'mm/yr' });
    }
    return route.continue();
  });
}
