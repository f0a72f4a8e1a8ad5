// A synthetic EGMS L2b-like product of many points, for the panning test: no real product dense enough is
// part of the sample data. Same columns as an EGMS L2b CSV (a subset: pid, EPSG:3035 easting/northing, mean
// velocity and its σ, a few dates of displacement), points spread as PS/DS are over a coastal city: most in
// built-up clusters, the rest sparse, with a smooth uplift bowl (a caldera's) and a subsiding plain in the
// velocities. Deterministic (seeded), written in chunks so the million rows never sit in memory at once.
import fs from 'node:fs';

// EGMS pids are ten characters of [0-9A-Za-z].
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function pidOf(i) {
  let s = '';
  let v = i + 62 ** 8; // ten characters for every index below a few billion
  for (let k = 0; k < 10; k++) {
    s = ALPHABET[v % 62] + s;
    v = Math.floor(v / 62);
  }
  return s;
}

// A small seeded generator (mulberry32) and Gaussian draws from it.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(next() || 1e-12)) * Math.cos(2 * Math.PI * next());
  return { next, gauss };
}

/**
 * Writes FILE (a CSV named like an EGMS product so the catalogue reads it as one) with `count` points and
 * `dates` (YYYYMMDD) columns over a box of `widthM` x `heightM` metres centred at EPSG:3035 (`e0`, `n0`).
 * Returns its box in EPSG:3035 and the number of points written.
 */
export function writeDenseEgms(file, { count = 1_000_000, dates = ['20200103', '20200901', '20210428', '20211225', '20220822', '20230419'],
  e0 = 4680800, n0 = 1982500, widthM = 40000, heightM = 30000, seed = 11 } = {}) {
  const r = rng(seed);
  const years = dates.map((d) => (Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8)) - Date.UTC(+dates[0].slice(0, 4), +dates[0].slice(4, 6) - 1, +dates[0].slice(6, 8))) / (365.25 * 86400e3));
  // Built-up areas: clusters of a few km where most points are (roofs, roads), sized like a city's districts;
  // at their centres a few thousand points a km², as EGMS has in dense cities.
  const clusters = Array.from({ length: 40 }, () => ({
    e: e0 + (r.next() - 0.5) * widthM * 0.9, n: n0 + (r.next() - 0.5) * heightM * 0.9, s: 900 + r.next() * 1800, w: 0.3 + r.next(),
  }));
  const total = clusters.reduce((a, c) => a + c.w, 0);
  const bowl = { e: e0 - widthM * 0.2, n: n0 + heightM * 0.1, s: 4000 };
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, `pid,easting,northing,mean_velocity,mean_velocity_std,${dates.join(',')}\n`);
  let rows = [];
  for (let i = 0; i < count; i++) {
    let e;
    let n;
    if (r.next() < 0.8) {
      let pick = r.next() * total;
      let c = clusters[0];
      for (c of clusters) if ((pick -= c.w) <= 0) break;
      e = c.e + r.gauss() * c.s;
      n = c.n + r.gauss() * c.s;
    } else {
      e = e0 + (r.next() - 0.5) * widthM;
      n = n0 + (r.next() - 0.5) * heightM;
    }
    e = Math.min(e0 + widthM / 2, Math.max(e0 - widthM / 2, e));
    n = Math.min(n0 + heightM / 2, Math.max(n0 - heightM / 2, n));
    const d2 = ((e - bowl.e) ** 2 + (n - bowl.n) ** 2) / bowl.s ** 2;
    // Uplift in the bowl, slow subsidence towards the plain (south-east), noise of a few mm/yr.
    const velocity = 18 * Math.exp(-d2) - 4 * Math.max(0, (e - e0) / widthM + (n0 - n) / heightM) + r.gauss() * 1.2;
    const series = years.map((t) => (velocity * t + r.gauss() * 2).toFixed(1));
    rows.push(`${pidOf(i)},${e.toFixed(2)},${n.toFixed(2)},${velocity.toFixed(1)},${(0.3 + r.next() * 0.6).toFixed(1)},${series.join(',')}`);
    if (rows.length === 20000) {
      fs.writeSync(fd, rows.join('\n') + '\n');
      rows = [];
    }
  }
  if (rows.length) fs.writeSync(fd, rows.join('\n') + '\n');
  fs.closeSync(fd);
  return { count, bbox3035: [e0 - widthM / 2, n0 - heightM / 2, e0 + widthM / 2, n0 + heightM / 2] };
}
