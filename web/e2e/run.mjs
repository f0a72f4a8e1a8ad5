// End-to-end tests of the viewer in a real browser: Debian's Chromium headless, driven by playwright-core,
// against a real `deforma serve` on 127.0.0.1 (free port) over a temporary root, with the sample data as
// its data root (and catalogued when the server has a catalogue). Every step saves a screenshot under the
// output folder (default build/web-e2e/). The page must request nothing but the server and log no errors.
//
// Usage: node e2e/run.mjs [--out DIR]   (env: DEFORMA_BIN, DEFORMA_DATA, CHROMIUM)
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { writeDenseEgms } from './dense.mjs';
import { COLORS, installFixtures, ITEMS, POINTS, SERIES_DATES } from './fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, '..');
const project = path.resolve(web, '..');
const args = process.argv.slice(2);
const out = path.resolve(args.includes('--out') ? args[args.indexOf('--out') + 1] : path.join(project, 'build', 'web-e2e'));
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : '';
const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const deforma = process.env.DEFORMA_BIN ?? path.join(project, 'build', 'apps', 'deforma', 'deforma');
const dataDir = process.env.DEFORMA_DATA ?? path.resolve(project, '..', 'shared', 'data');

if (!fs.existsSync(browserPath)) {
  console.log(`web e2e: SKIPPED: ${browserPath} is absent (install Debian's chromium package to run the browser tests)`);
  process.exit(0);
}
for (const [what, p] of [['deforma binary', deforma], ['built viewer (npm run build)', path.join(web, 'dist', 'index.html')]]) {
  if (!fs.existsSync(p)) {
    console.error(`web e2e: ${what} not found at ${p}`);
    process.exit(1);
  }
}
const haveData = fs.existsSync(path.join(dataDir, 'yahtse-l8'));

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deforma-web-e2e-'));
const root = path.join(tmp, 'root');
let server;
let context;
const failures = [];
const started = Date.now();

const browserArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** Cores left idle over the next second (from /proc/stat; the load average's complement where it is absent). */
async function idleCores() {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3] + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await new Promise((r) => setTimeout(r, 1000));
    const b = read();
    return ((b.idle - a.idle) / Math.max(1, b.total - a.total)) * os.cpus().length;
  } catch {
    return Math.max(0, os.cpus().length - os.loadavg()[0]);
  }
}

function log(line) {
  console.log(`web e2e: ${line}`);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function waitFor(fn, what, timeoutMs = 10000, everyMs = 100) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function startServer() {
  const addUser = (name, admin) =>
    execFileSync(deforma, ['users', 'add', name, '--root', root, ...(admin ? ['--admin'] : [])], { encoding: 'utf8' }).trim().split('\n').pop();
  const key = addUser('e2e', false);
  const adminKey = addUser('e2e-admin', true);
  const serveArgs = ['serve', '--root', root, '--listen', '127.0.0.1:0', '--offline', '--web', path.join(web, 'dist'),
    '--workers', '1', '--job-threads', '2', '--job-ram', '64'];
  if (haveData) serveArgs.push('--data', dataDir);
  // The million-point product of the panning step lives in a data root of its own (the temporary folder).
  const denseDir = path.join(tmp, 'dense');
  fs.mkdirSync(denseDir);
  serveArgs.push('--data', denseDir);
  // No real EGMS product dense enough is part of the sample data: a synthetic one of a million points
  // (e2e/dense.mjs), catalogued below like any other.
  const dense = path.join(denseDir, 'EGMS_L2b_146_0123_IW2_VV_2020_2024_1.csv');
  if (haveData && !process.env.DEFORMA_E2E_FIXTURES) {
    const t0 = Date.now();
    const made = writeDenseEgms(dense);
    log(`wrote a synthetic EGMS product of ${made.count} points (${(fs.statSync(dense).size / 1e6).toFixed(0)} MB) in ${Date.now() - t0} ms`);
  }
  server = spawn(deforma, serveArgs, { stdio: ['ignore', fs.openSync(path.join(out, 'serve.log'), 'w'), fs.openSync(path.join(out, 'serve.err'), 'w')] });
  const info = path.join(root, 'server.json');
  const url = await waitFor(() => {
    if (server.exitCode !== null) throw new Error(`deforma serve exited with ${server.exitCode}; see ${out}/serve.err`);
    try {
      return JSON.parse(fs.readFileSync(info, 'utf8')).url;
    } catch {
      return undefined;
    }
  }, 'deforma serve to listen', 20000);
  // A server with a catalogue links to its collections from its landing page; the sample data the map
  // steps look at are then catalogued by an administrator, as `POST /collections/{id}/items` allows.
  // DEFORMA_E2E_FIXTURES=1 runs the map steps against the fixtures all the same.
  const landing = await (await fetch(`${url}/`, { headers: { Accept: 'application/json' } })).json();
  const catalogue = haveData && landing.links.some((l) => l.rel === 'data') && !process.env.DEFORMA_E2E_FIXTURES;
  if (catalogue) {
    const ingest = async (collection, paths) => {
      const res = await fetch(`${url}/collections/${collection}/items`, {
        method: 'POST', headers: { Authorization: `Bearer ${adminKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ paths: paths.map((p) => path.join(dataDir, p)) }),
      });
      const report = await res.json();
      log(`catalogued into ${collection}: ${res.status} ${JSON.stringify(report).slice(0, 300)}`);
      check(res.status === 201, `ingest into ${collection} answered ${res.status}`);
    };
    await ingest('landsat', ['yahtse-l8/LC80630182016200LGN00_MTL.txt', 'yahtse-l8/LC80630182016216LGN00_B8_MTL.txt']);
    await ingest('egms-l2b', ['egms-ustica/EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip']);
    const t1 = Date.now();
    const res = await fetch(`${url}/collections/egms-l2b/items`, {
      method: 'POST', headers: { Authorization: `Bearer ${adminKey}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ paths: [dense] }),
    });
    check(res.status === 201, `ingest of the dense product answered ${res.status}: ${await res.text()}`);
    log(`catalogued the dense product in ${Date.now() - t1} ms`);
  }
  return { url, key, catalogue };
}


// What the map steps look at, from the fixtures (e2e/fixtures.mjs).
function fixtureScenario() {
  const v = ITEMS['yahtse-velocity'][0];
  const scenes = ITEMS['landsat-8'];
  return {
    velocity: { collection: v.collection, item: v.id, bbox: v.bbox, color: COLORS[v.id], band: 'speed_m_per_yr', valueAt: async () => 1234.5, seriesDates: SERIES_DATES.length },
    scene: { collection: scenes[1].collection, item: scenes[1].id, color: COLORS[scenes[1].id] },
    egms: { collection: 'egms-l2b', item: ITEMS['egms-l2b'][0].id, pid: POINTS[0].pid, lon: POINTS[0].lon, lat: POINTS[0].lat, dates: SERIES_DATES.length },
    search: { bbox: [-141.45, 60.1, -141.15, 60.2], from: '2016-07-01', to: '2016-08-31', cloud: 20, collection: 'landsat-8', expect: [scenes[0].id] },
    mosaic: { collection: 'landsat-8', dates: scenes.length },
    dense: { collection: 'egms-l2b', item: 'EGMS_dense_1M', bbox: ITEMS['egms-l2b'][1].bbox, count: ITEMS['egms-l2b'][1].properties['egms:points'] },
  };
}

// What the map steps look at in the real catalogue: the Yahtse scenes and the EGMS burst catalogued at
// start, and the velocity product of the correlation job run from the form (known once it has run).
async function realScenario(url, key) {
  const get = async (p) => {
    const res = await fetch(`${url}/${p}`, { headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' } });
    check(res.ok, `GET ${p} answered ${res.status}`);
    return res.json();
  };
  const scenes = (await get('collections/landsat/items')).features.sort((a, b) => a.properties.datetime.localeCompare(b.properties.datetime));
  check(scenes.length === 2, `expected the 2 Yahtse scenes in the catalogue, found ${scenes.length}`);
  const egmsItems = (await get('collections/egms-l2b/items')).features;
  const egms = egmsItems.find((i) => i.id.startsWith('EGMS_L2b_022'));
  const dense = egmsItems.find((i) => i.id.startsWith('EGMS_L2b_146'));
  check(egms, 'the EGMS burst is not in the catalogue');
  const pointDoc = await get(`collections/egms-l2b/items/${encodeURIComponent(egms.id)}/points?limit=1`);
  const first = pointDoc.features[0];
  const pid = first.properties.pid ?? first.id;
  const series = await get(`collections/egms-l2b/items/${encodeURIComponent(egms.id)}/points/${encodeURIComponent(pid)}`);
  const covers = scenes.map((sc) => sc.properties['eo:cloud_cover']);
  // A cloud limit between the two scenes' covers keeps only the clearer one (both when they are equal).
  const limit = Math.min(...covers) === Math.max(...covers) ? 100 : (Math.min(...covers) + Math.max(...covers)) / 2;
  const [w, s, e, n] = scenes[0].bbox;
  const union = scenes.map((sc) => sc.bbox).reduce((a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])]);
  return {
    pair: { collection: 'landsat', items: scenes.map((sc) => sc.id), bbox: union },
    scene: { collection: 'landsat', item: scenes[1].id },
    egms: { collection: 'egms-l2b', item: egms.id, pid, lon: first.geometry.coordinates[0], lat: first.geometry.coordinates[1], dates: series.dates.length },
    search: { bbox: [w + (e - w) * 0.3, s + (n - s) * 0.3, e - (e - w) * 0.3, n - (n - s) * 0.3], from: '2016-07-01', to: '2016-08-31', cloud: limit,
      collection: 'landsat', expect: scenes.filter((sc) => sc.properties['eo:cloud_cover'] <= limit).map((sc) => sc.id) },
    mosaic: { collection: 'landsat', dates: 2 },
    dense: dense && { collection: 'egms-l2b', item: dense.id, bbox: dense.bbox, count: dense.properties['egms:points'] },
    // The job's velocity product: its item in the user's collection, its file for the values.
    async prepare(jobId) {
      const items = (await get('collections/user-e2e/items?limit=100')).features;
      const product = items.find((i) => /output/.test(i.id)) ?? items[0];
      check(product, `the job's outputs are not in the user's collection (${items.map((i) => i.id)})`);
      const file = path.join(root, 'jobs', jobId, 'outputs', 'output.tif');
      const bands = JSON.parse(execFileSync('gdalinfo', ['-json', file], { encoding: 'utf8' })).bands;
      const band = bands.findIndex((b) => b.description === 'speed_m_per_yr') + 1;
      check(band > 0, `no speed_m_per_yr band in ${file}`);
      const valuesAt = (points) => execFileSync('gdallocationinfo', ['-wgs84', '-valonly', '-b', String(band), file],
        { input: points.map((p) => `${p[0]} ${p[1]}`).join('\n') + '\n', encoding: 'utf8' }).trim().split('\n').map(Number);
      // A point on the glacier: the fastest of a grid over the product where the speed is valid.
      const [pw, ps, pe, pn] = product.bbox;
      const grid = [];
      for (let i = 1; i < 12; i++) for (let j = 1; j < 12; j++) grid.push([pw + ((pe - pw) * i) / 12, ps + ((pn - ps) * j) / 12]);
      const v = valuesAt(grid);
      let best = -1;
      v.forEach((x, i) => { if (Number.isFinite(x) && x > -9000 && (best < 0 || x > v[best])) best = i; });
      check(best >= 0, 'no valid speed in the product');
      this.velocity = { collection: product.collection, item: product.id, bbox: product.bbox, band: 'speed_m_per_yr', inside: grid[best],
        valueAt: async (lon, lat) => valuesAt([[lon, lat]])[0] };
      log(`product ${product.collection}/${product.id}: speed ${v[best]} m/yr at ${grid[best].map((x) => x.toFixed(4))}`);
    },
  };
}

async function main() {
  const { url, key, catalogue } = await startServer();
  const origin = new URL(url).origin;
  log(`server ${url}, catalogue ${catalogue ? 'yes' : 'no'}, sample data ${haveData ? dataDir : 'absent'}`);
  context = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: browserPath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: browserArgs,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const foreign = [];
  const consoleErrors = [];
  const requests = [];
  page.on('request', (r) => {
    const u = r.url();
    requests.push(u);
    if (!u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin) foreign.push(u);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location()?.url ?? ''})`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  const tileRequests = [];
  // Without a catalogue on the server, the map steps run against stand-ins of the catalogue and map-server
  // answers (e2e/fixtures.mjs, same URL contract); with one, against the real thing.
  const scenario = catalogue ? await realScenario(url, key) : fixtureScenario();
  if (!catalogue) await installFixtures(page, origin, tileRequests);
  else page.on('request', (r) => /\/(vector-)?tiles\//.test(r.url()) && tileRequests.push(r.url()));
  log(`map steps use ${catalogue ? 'the real catalogue' : 'contract fixtures (no catalogue on this server, or DEFORMA_E2E_FIXTURES set)'}`);
  let shot = 0;
  const screenshot = async (name) => {
    shot += 1;
    await page.screenshot({ path: path.join(out, `${String(shot).padStart(2, '0')}-${name}.png`) });
  };

  // Small pictures of one part of the page, for docs/viewer.md.
  // A panel redrawn while it is taken (the jobs list, every half second) is taken again.
  const partShot = async (selector, name) => {
    for (let i = 0; ; i++) {
      try {
        return await page.locator(selector).first().screenshot({ path: path.join(out, `part-${name}.png`), timeout: 5000 });
      } catch (e) {
        if (i === 4) throw e;
      }
    }
  };

  const steps = [];
  const step = (name, fn) => steps.push({ name, fn });

  step('the viewer loads at / and the API keeps its landing page', async () => {
    const t0 = Date.now();
    const res = await page.goto(url + '/');
    check(res.status() === 200, `GET / answered ${res.status()}`);
    check((res.headers()['cache-control'] ?? '') === 'no-cache', 'index.html must be revalidated (no-cache)');
    await page.waitForSelector('#map canvas, #map .ol-viewport');
    log(`map ready ${Date.now() - t0} ms after navigation`);
    const api = await (await fetch(url + '/', { headers: { Accept: 'application/json' } })).json();
    check(api.links?.some((l) => l.rel === 'service-desc'), 'JSON clients of / must get the landing page');
    const asset = requests.find((u) => u.includes('/assets/') && u.endsWith('.js'));
    check(asset, 'no script asset requested');
    const head = await fetch(asset);
    check(/immutable/.test(head.headers.get('cache-control') ?? ''), `hashed assets must be immutable, got ${head.headers.get('cache-control')}`);
    check((await page.textContent('#panel-jobs')).includes('sign in'), 'anonymous users are asked to sign in');
    await screenshot('start');
  });

  step('a wrong key is refused, the right one signs in', async () => {
    await page.fill('#api-key', 'not-a-key');
    await page.click('#signin-button');
    await waitFor(async () => /not valid/.test(await page.textContent('#status')), 'the refusal');
    // The server's 401 shows in the browser's console as a failed load: expected here, not an error of the page.
    consoleErrors.length = 0;
    await page.fill('#api-key', key);
    await page.click('#signin-button');
    await page.waitForSelector('#signed-in:not([hidden])');
    check((await page.textContent('#user-name')).includes('e2e'), 'the user name is shown');
    check((await page.evaluate(() => sessionStorage.getItem('deforma.apiKey'))) === key, 'the key is kept in session storage');
    await screenshot('signed-in');
  });

  step('the process form is generated from the description and flags invalid values', async () => {
    await page.click('#tab-process');
    await page.selectOption('#process-select', 'correlate');
    await page.waitForSelector('#in-chip');
    const label = await page.textContent('label[for=in-chip]');
    check(label.includes('[px]'), `the chip label shows its unit, got '${label}'`);
    const help = await page.textContent('#in-chip-help');
    check(help.includes('between 8 and 1024 px'), `the chip help shows its bounds, got '${help}'`);
    check((await page.getAttribute('#in-chip', 'placeholder')) === 'default 32', 'the default is shown');
    await page.fill('#in-chip', '4');
    await page.dispatchEvent('#in-chip', 'change');
    check((await page.textContent('#in-chip-error')).includes('out of bounds'), 'chip 4 is flagged');
    check((await page.getAttribute('#in-chip', 'aria-invalid')) === 'true', 'the field is marked invalid');
    await page.fill('#in-min-corr', 'high');
    await page.click('#process-submit');
    check((await page.textContent('#process-errors')).includes('to correct'), 'submit is refused while values are invalid');
    check((await page.textContent('#in-ref-error')).includes('required'), 'the missing reference image is flagged');
    await screenshot('form-invalid');
    await page.locator('#in-chip').scrollIntoViewIfNeeded();
    await partShot('#in-chip >> xpath=..', 'form-field-invalid');
  });

  step('a correlation of the Yahtse pair, its scenes picked from the search results, runs with a moving progress bar', async () => {
    if (!haveData) return 'skipped: sample data absent';
    await page.fill('#in-chip', '32');
    await page.fill('#in-min-corr', '');
    if (scenario.pair) {
      // The inputs are picked from the search results, as a user would: the catalogued Yahtse pair found
      // by date and collection over its area, the earlier scene as the reference, the later as the secondary.
      await page.evaluate(([bbox]) => window.deforma.fit(bbox), [scenario.pair.bbox]);
      await page.click('#tab-search');
      await page.click('#search-view');
      await page.fill('#search-from', '2016-07-01');
      await page.fill('#search-to', '2016-08-31');
      await page.selectOption('#search-collection', scenario.pair.collection);
      await page.click('#search-submit');
      await waitFor(async () => (await page.$$('#search-results li')).length === 2, 'the two Yahtse scenes in the search results');
      const [earlier, later] = scenario.pair.items;
      await page.click(`#search-results li[data-item="${earlier}"] button.use-as[data-slot="ref"]`);
      await page.click(`#search-results li[data-item="${later}"] button.use-as[data-slot="sec"]`);
      await screenshot('search-pick-inputs');
      await partShot('#search-results', 'search-pick-inputs');
      await page.click('#tab-process');
      const refValue = await page.inputValue('#in-ref');
      const secValue = await page.inputValue('#in-sec');
      check(refValue === `collections/${scenario.pair.collection}/items/${earlier}/assets/B8`, `the reference field holds the earlier scene's asset, got '${refValue}'`);
      check(secValue === `collections/${scenario.pair.collection}/items/${later}/assets/B8`, `the secondary field holds the later scene's asset, got '${secValue}'`);
      check((await page.textContent('#in-ref-error')) === '' && (await page.textContent('#in-sec-error')) === '', 'the picked inputs are accepted by the form');
      log(`inputs picked from the search results: ${refValue}, ${secValue}`);
    } else {
      await page.fill('#in-ref', 'yahtse-l8/LC80630182016200LGN00_B8_yahtse.TIF');
      await page.fill('#in-sec', 'yahtse-l8/LC80630182016216LGN00_B8_yahtse.TIF');
    }
    await page.fill('#in-search', '24');
    await page.fill('#in-step', '8');
    await page.check('#in-velocity');
    check((await page.textContent('#process-errors')) === '', 'the refusal of the earlier submit is gone once the fields are right');
    await page.locator('#in-ref').scrollIntoViewIfNeeded();
    await screenshot('form-filled');
    await page.click('#process-submit');
    await page.waitForSelector('#panel-jobs:not([hidden]) li.job');
    const seen = new Set();
    let midShot = false;
    const final = await waitFor(async () => {
      const job = await page.$('li.job');
      const status = job ? await job.getAttribute('class') : '';
      const value = job ? Number(await (await job.$('progress')).getAttribute('value')) : 0;
      seen.add(value);
      if (!midShot && value > 10 && value < 90) {
        midShot = true;
        await screenshot('job-running');
        await partShot('li.job', 'job-running');
      }
      return /successful|failed/.test(status) ? status : undefined;
    }, 'the job to end', 240000, 100);
    check(/successful/.test(final), `the job ended ${final}: ${await page.textContent('li.job')}`);
    const between = [...seen].filter((v) => v > 0 && v < 100);
    log(`progress values seen: ${[...seen].sort((a, b) => a - b).join(' ')}`);
    check(between.length >= 1, `the progress bar never showed an intermediate value (${[...seen].join(',')})`);
    await page.waitForSelector('li.job .add-result');
    // A long message (a file's path) wraps inside the job's box instead of running out of the panel.
    check(await page.$eval('li.job', (el) => el.scrollWidth <= el.clientWidth + 1), 'the job\'s text stays inside its box');
    await screenshot('job-done');
    await partShot('li.job', 'job-done');
  });

  step('the URL keeps the view: reload restores centre, zoom and compare mode', async () => {
    await page.click('#tab-layers');
    await page.evaluate(() => {
      const d = window.deforma;
      d.view.setCenter(d.map.getView().getCenter().map((v, i) => v + (i ? 1000 : 2000)));
      d.view.setZoom(7);
    });
    await page.check('input[name=compare][value=swipe]');
    await waitFor(async () => /cmp=swipe/.test(await page.evaluate(() => location.hash)), 'the hash to follow the view');
    const hash = await page.evaluate(() => location.hash);
    check(/z=7/.test(hash), `zoom not in the hash: ${hash}`);
    await page.reload();
    await page.waitForSelector('#signed-in:not([hidden])');
    check(await page.isChecked('input[name=compare][value=swipe]'), 'compare mode restored');
    const zoom = await page.evaluate(() => window.deforma.view.getZoom());
    check(Math.abs(zoom - 7) < 1e-6, `zoom restored, got ${zoom}`);
    await page.check('input[name=compare][value=none]');
    await screenshot('reloaded');
  });


  // ---------------------------------------------------------------- the map
  // Pixels as drawn: the map's layer canvases composed with their opacity (as OpenLayers' export example).
  const sample = (which, lon, lat) =>
    page.evaluate(([which, lon, lat]) => {
      const map = window.deforma[which];
      const pixel = map.getPixelFromCoordinate(window.deforma.fromLonLat([lon, lat]));
      const size = map.getSize();
      const out = document.createElement('canvas');
      out.width = size[0];
      out.height = size[1];
      const ctx = out.getContext('2d');
      for (const canvas of map.getViewport().querySelectorAll('.ol-layer canvas, canvas.ol-layer')) {
        if (!canvas.width) continue;
        const opacity = canvas.parentNode.style.opacity || canvas.style.opacity;
        ctx.globalAlpha = opacity === '' ? 1 : Number(opacity);
        const m = canvas.style.transform.match(/^matrix\(([^(]*)\)$/);
        if (m) ctx.setTransform(...m[1].split(',').map(Number));
        else ctx.setTransform(1, 0, 0, 1, 0, 0);
        ctx.drawImage(canvas, 0, 0);
      }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      return [...ctx.getImageData(Math.round(pixel[0]), Math.round(pixel[1]), 1, 1).data];
    }, [which, lon, lat]);
  const rendered = (which = 'map') =>
    page.evaluate((which) => new Promise((resolve) => {
      const map = window.deforma[which];
      map.once('rendercomplete', () => resolve(true));
      map.render();
    }), which);
  const openCollection = async (c) => {
    await page.click('#tab-layers');
    if (!(await page.$eval(`details[data-collection="${c}"]`, (d) => d.open))) await page.click(`details[data-collection="${c}"] > summary`);
  };
  const ensureLayer = async (c, item) => {
    if (await page.$(`#layer-list li[data-layer="${c}/${item}"]`)) return;
    await openCollection(c);
    await page.click(`button.add[data-item="${item}"]`);
    await page.waitForSelector(`#layer-list li[data-layer="${c}/${item}"]`);
  };
  const near = (a, b, tol = 12) => a.every((v, i) => Math.abs(v - b[i]) <= tol);
  // The product's box, a point inside it with data, and one outside it (known once the product is).
  const where = () => {
    const [w, s, e, n] = scenario.velocity.bbox;
    return { w, s, e, n, inside: scenario.velocity.inside ?? [(w + e) / 2, (s + n) / 2], outside: [e + (e - w) * 0.4, n + (n - s) * 0.3] };
  };

  step('catalogue layers draw tiles where data are, transparent elsewhere; opacity and legend change them', async () => {
    const t0 = Date.now();
    if (scenario.prepare) {
      // The correlation's result, added from the jobs panel in one click.
      const jobId = await page.getAttribute('li.job', 'data-job');
      await scenario.prepare(jobId);
      await page.click('#tab-jobs');
      await page.click(`li.job[data-job="${jobId}"] .add-result`);
      await page.click('#tab-layers');
    } else {
      await openCollection(scenario.velocity.collection);
      await page.click(`button.add[data-item="${scenario.velocity.item}"]`);
    }
    await page.waitForSelector(`#layer-list li[data-layer="${scenario.velocity.collection}/${scenario.velocity.item}"]`);
    const { inside, outside } = where();
    await rendered();
    log(`first tiles of the layer drawn ${Date.now() - t0} ms after the click`);
    const drawn = await sample('map', ...inside);
    const empty = await sample('map', ...outside);
    check(drawn[3] > 200, `no data drawn inside the product: ${drawn}`);
    if (scenario.velocity.color) check(near(drawn, scenario.velocity.color), `colour ${drawn} is not the tile's ${scenario.velocity.color}`);
    check(empty[3] === 0, `outside the product the map must be transparent, got ${empty}`);
    await page.waitForSelector('#layer-list .legend .bar');
    const legend = await page.textContent('#layer-list .legend');
    check(/\[.+\]/.test(legend), `the legend shows the units: '${legend}'`);
    await screenshot('map-layer');
    await partShot('#layer-list li', 'layer-legend');
    await page.fill('#layer-list li input.opacity', '0.5');
    await page.dispatchEvent('#layer-list li input.opacity', 'input');
    await rendered();
    const half = await sample('map', ...inside);
    check(Math.abs(half[3] - drawn[3] / 2) < 20, `opacity 0.5 must halve the alpha: ${drawn[3]} -> ${half[3]}`);
    await page.fill('#layer-list li input.opacity', '1');
    await page.dispatchEvent('#layer-list li input.opacity', 'input');
    await page.uncheck('#layer-list li input[type=checkbox]');
    await rendered();
    check((await sample('map', ...inside))[3] === 0, 'a hidden layer draws nothing');
    await page.check('#layer-list li input[type=checkbox]');
    await rendered();
  });

  step('swipe compare draws each layer on its side of the bar; side by side links the views', async () => {
    await ensureLayer(scenario.velocity.collection, scenario.velocity.item);
    await openCollection(scenario.scene.collection);
    await page.click(`button.add[data-item="${scenario.scene.item}"]`);
    const sceneId = `${scenario.scene.collection}/${scenario.scene.item}`;
    await page.waitForSelector(`#layer-list li[data-layer="${sceneId}"]`);
    await page.evaluate(([bbox]) => window.deforma.fit(bbox), [scenario.velocity.bbox]);
    // Each layer's own colour at the two points: the scene alone (on top), then the product alone.
    const mid = await page.evaluate(() => window.deforma.toLonLat(window.deforma.view.getCenter()));
    const { w, e } = where();
    const dx = (e - w) / 4;
    const productId = `${scenario.velocity.collection}/${scenario.velocity.item}`;
    await rendered();
    const sceneRight = await sample('map', mid[0] + dx, mid[1]);
    await page.uncheck(`#layer-list li[data-layer="${sceneId}"] input[type=checkbox]`);
    await rendered();
    const productLeft = await sample('map', mid[0] - dx, mid[1]);
    await page.check(`#layer-list li[data-layer="${sceneId}"] input[type=checkbox]`);
    check(sceneRight[3] > 200 && productLeft[3] > 200, `both layers draw there (${sceneRight} / ${productLeft})`);
    check(!near(sceneRight, productLeft, 3), `the two layers look alike there (${sceneRight} / ${productLeft})`);
    await page.selectOption('#compare-layer', sceneId);
    await page.check('input[name=compare][value=swipe]');
    await page.fill('#swipe', '0.5');
    await page.dispatchEvent('#swipe', 'input');
    await rendered();
    // Points a quarter of the product's width either side of the bar (the bar is at the map's middle).
    const left = await sample('map', mid[0] - dx, mid[1]);
    const right = await sample('map', mid[0] + dx, mid[1]);
    check(near(left, productLeft, 3), `left of the bar: the product ${productLeft}, got ${left}`);
    check(near(right, sceneRight, 3), `right of the bar: the scene ${sceneRight}, got ${right}`);
    if (scenario.scene.color) check(near(right, scenario.scene.color), `the scene's tile colour ${scenario.scene.color}, got ${right}`);
    await screenshot('swipe');
    // The middle of the map around the bar, small enough for the docs.
    const mapBox = await page.locator('#map').boundingBox();
    await page.screenshot({ path: path.join(out, 'part-swipe.png'),
      clip: { x: mapBox.x + mapBox.width / 2 - 240, y: mapBox.y + mapBox.height / 2 - 150, width: 480, height: 300 } });
    await page.check('input[name=compare][value=side]');
    await Promise.all([rendered('map'), rendered('right')]);
    const l2 = await sample('map', mid[0], mid[1]);
    const r2 = await sample('right', mid[0], mid[1]);
    check(!near(l2, r2, 3), `side by side: the two maps show different layers (${l2} / ${r2})`);
    const linked = await page.evaluate(() => window.deforma.map.getView() === window.deforma.right.getView());
    check(linked, 'the two maps share one view (linked)');
    await screenshot('side-by-side');
    await page.check('input[name=compare][value=none]');
    // The scene goes: the steps after look at the product.
    await page.click(`#layer-list li[data-layer="${sceneId}"] button.remove`);
  });

  step('clicking the product shows its values and its series plot; CSV download', async () => {
    await ensureLayer(scenario.velocity.collection, scenario.velocity.item);
    await page.evaluate(([bbox]) => window.deforma.fit(bbox), [scenario.velocity.bbox]);
    await rendered();
    const { inside } = where();
    const px = await page.evaluate(([lon, lat]) => window.deforma.map.getPixelFromCoordinate(window.deforma.fromLonLat([lon, lat])), inside);
    const box = await page.locator('#map').boundingBox();
    await page.mouse.click(box.x + px[0], box.y + px[1]);
    await page.waitForSelector('#point-panel:not([hidden]) #point-values tr');
    const cell = await page.textContent(`#point-values tr[data-name="${scenario.velocity.band}"] td.value`);
    const shown = Number(cell);
    const expected = await scenario.velocity.valueAt(inside[0], inside[1]);
    check(Math.abs(shown - expected) <= Math.max(1e-3, Math.abs(expected) * 1e-3), `panel shows ${cell}, the file has ${expected} there`);
    log(`value at the click: panel ${shown}, file ${expected}`);
    if (scenario.velocity.seriesDates) {
      await waitFor(() => page.evaluate(() => window.deforma.point.plottedSeries.length > 0), 'the series plot');
      const plotted = await page.evaluate(() => window.deforma.point.plottedSeries);
      check(plotted[0].dates === scenario.velocity.seriesDates, `series of ${plotted[0].dates} dates, expected ${scenario.velocity.seriesDates}`);
      check(await page.$('#plot canvas'), 'the plot is drawn');
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#plot-csv')]);
      const csv = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
      check(csv.length === scenario.velocity.seriesDates + 1, `CSV of ${csv.length - 1} rows`);
    }
    await screenshot('point-panel');
    await partShot('#point-panel', 'point-panel');
    await page.click('#plot-clear');
    await page.click('#point-close');
  });

  step('clicking an EGMS point plots its series with the right number of dates', async () => {
    await openCollection(scenario.egms.collection);
    await page.click(`button.add[data-item="${scenario.egms.item}"]`);
    await page.waitForSelector(`#layer-list li[data-layer="${scenario.egms.collection}/${scenario.egms.item}"]`);
    await page.evaluate(([lon, lat]) => { window.deforma.view.setCenter(window.deforma.fromLonLat([lon, lat])); window.deforma.view.setZoom(18); }, [scenario.egms.lon, scenario.egms.lat]);
    await rendered();
    const px = await page.evaluate(([lon, lat]) => window.deforma.map.getPixelFromCoordinate(window.deforma.fromLonLat([lon, lat])), [scenario.egms.lon, scenario.egms.lat]);
    const box = await page.locator('#map').boundingBox();
    await page.mouse.click(box.x + px[0], box.y + px[1]);
    await waitFor(() => page.evaluate(() => window.deforma.point.plottedSeries.length > 0), 'the EGMS series plot', 15000);
    const plotted = await page.evaluate(() => window.deforma.point.plottedSeries);
    // The point clicked, or a neighbour within the few pixels of the click's tolerance: same dates.
    check(/^pid /.test(plotted[0].label), `plotted ${plotted[0].label}, expected a point's series`);
    if (plotted[0].label !== `pid ${scenario.egms.pid}`) log(`clicked near pid ${scenario.egms.pid}, got ${plotted[0].label}`);
    check(plotted[0].dates === scenario.egms.dates, `EGMS series of ${plotted[0].dates} dates, expected ${scenario.egms.dates}`);
    await screenshot('egms-series');
    await partShot('#point-panel', 'egms-series');
    await page.click('#plot-clear');
    await page.click('#point-close');
    await page.click(`#layer-list li[data-layer="${scenario.egms.collection}/${scenario.egms.item}"] button.remove`);
  });

  step('search by drawn box, dates and cloud cover finds the expected scenes; hover highlights', async () => {
    await page.evaluate(([bbox]) => window.deforma.fit(bbox), [scenario.velocity.bbox]);
    await page.click('#tab-search');
    await page.click('#search-draw');
    const box = await page.locator('#map').boundingBox();
    const [sw, ne] = await page.evaluate(([bbox]) => [
      window.deforma.map.getPixelFromCoordinate(window.deforma.fromLonLat([bbox[0], bbox[1]])),
      window.deforma.map.getPixelFromCoordinate(window.deforma.fromLonLat([bbox[2], bbox[3]])),
    ], [scenario.search.bbox]);
    await page.mouse.move(box.x + sw[0], box.y + sw[1]);
    await page.mouse.down();
    await page.mouse.move(box.x + (sw[0] + ne[0]) / 2, box.y + (sw[1] + ne[1]) / 2, { steps: 4 });
    await page.mouse.move(box.x + ne[0], box.y + ne[1], { steps: 4 });
    await page.mouse.up();
    await waitFor(async () => (await page.textContent('#search-area')) !== 'the current view', 'the drawn box');
    await page.fill('#search-from', scenario.search.from);
    await page.fill('#search-to', scenario.search.to);
    await page.fill('#search-cloud', String(scenario.search.cloud));
    if (scenario.search.collection) await page.selectOption('#search-collection', scenario.search.collection);
    await page.click('#search-submit');
    await page.waitForSelector('#search-results li');
    const ids = await page.$$eval('#search-results li', (l) => l.map((x) => x.dataset.item));
    check(JSON.stringify(ids.sort()) === JSON.stringify([...scenario.search.expect].sort()), `found ${ids}, expected ${scenario.search.expect}`);
    await page.hover('#search-results li');
    const lit = await page.evaluate(() => window.deforma.footprints.getFeatures().filter((f) => f.get('highlight')).map((f) => f.getId()));
    check(lit.length === 1 && lit[0] === ids[0], `hovering the first result highlights its footprint (${lit})`);
    await screenshot('search');
    await partShot('#panel-search', 'search');
  });

  step('panning and zooming over a million EGMS-like points stays responsive (vector tiles)', async () => {
    if (!scenario.dense) return 'skipped: no dense point product';
    const layerId = `${scenario.dense.collection}/${scenario.dense.item}`;
    const denseTiles = () => tileRequests.filter((u) => u.includes(`/items/${encodeURIComponent(scenario.dense.item)}/vector-tiles/`));
    tileRequests.length = 0;
    await ensureLayer(scenario.dense.collection, scenario.dense.item);
    // Added, the map fits the whole product: too many points for a tile there, so the server sends its tiles
    // aggregated (a feature per cell with the count and mean velocity of its points), drawn at once, and the
    // legend says below which zoom.
    const aggregatedBelow = await page.evaluate((id) => window.deforma.layers.find((l) => l.id === id).aggregatedBelow, layerId);
    let t0 = Date.now();
    await rendered();
    const fitZoom = await page.evaluate(() => window.deforma.view.getZoom());
    if (aggregatedBelow > 0) {
      check(fitZoom < aggregatedBelow - 0.5, `the product's extent is shown below the zoom of single points (${fitZoom.toFixed(1)} / ${aggregatedBelow})`);
      check(denseTiles().length > 0, 'point tiles are asked for at the whole product\'s extent');
      // The features drawn, found by the layer's hit detection over a grid of pixels (a vector tile source
      // has no query by extent).
      const cells = await page.evaluate(async (id) => {
        const { map, layers } = window.deforma;
        const layer = layers.find((x) => x.id === id).ol;
        const [w, h] = map.getSize();
        const seen = new Set();
        const out = { features: 0, cells: 0, points: 0 };
        for (let i = 1; i < 40; i++) {
          for (let j = 1; j < 30; j++) {
            for (const f of await layer.getFeatures([(w * i) / 40, (h * j) / 30])) {
              if (seen.has(f)) continue;
              seen.add(f);
              out.features++;
              if (f.get('count') !== undefined && f.get('pid') === undefined) {
                out.cells++;
                out.points += Number(f.get('count'));
              }
            }
          }
        }
        return out;
      }, layerId);
      // Tiles at the edges of the product, under the budget, come point by point: most features are cells.
      check(cells.cells > cells.features / 2 && cells.points > cells.cells, `the overview is drawn from aggregated cells: ${JSON.stringify(cells)}`);
      const note = await page.textContent(`#layer-list li[data-layer="${layerId}"] .zoom-note`);
      check(note.includes(`aggregated below zoom ${aggregatedBelow}`), `the legend says below which zoom the points are aggregated: '${note}'`);
      log(`dense product: overview at zoom ${fitZoom.toFixed(1)} drawn in ${Date.now() - t0} ms from ${cells.cells} cells holding ${cells.points} points`);
      await screenshot('dense-points-overview');
    }
    const [w, s, e, n] = scenario.dense.bbox;
    const z0 = Math.max(aggregatedBelow, 15);
    await page.evaluate(([lon, lat, z]) => { window.deforma.view.setCenter(window.deforma.fromLonLat([lon, lat])); window.deforma.view.setZoom(z); },
      [w + (e - w) * 0.4, s + (n - s) * 0.55, z0]);
    t0 = Date.now();
    await rendered();
    log(`dense product: first view at zoom ${z0} drawn in ${Date.now() - t0} ms${catalogue ? ' (the server reads the product once)' : ''}`);
    // Moves as a user makes them (pans of half a view, zooms in and out), each followed to its last tile
    // drawn, while the page's frames are timed: a long frame is a map that does not follow the hand.
    await page.evaluate(() => {
      const rec = { frames: [], last: performance.now(), on: true };
      const tick = (now) => { rec.frames.push(now - rec.last); rec.last = now; if (rec.on) requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
      window.__frames = rec;
    });
    const moves = [[0.5, 0], [0.5, 0], [0, 0.5], [-0.5, 0], ['zoom', 1], [0.5, 0], [0, -0.5], ['zoom', 1], [-0.5, -0.5], ['zoom', -2], [0, -0.5], [-0.5, 0.5]];
    const renderMs = [];
    const before = denseTiles().length;
    for (const [dx, dy] of moves) {
      t0 = Date.now();
      await page.evaluate(([dx, dy]) => {
        const { view, map } = window.deforma;
        if (dx === 'zoom') return view.setZoom(view.getZoom() + dy);
        const [wpx, hpx] = map.getSize();
        const c = view.getCenter();
        view.setCenter([c[0] + dx * wpx * view.getResolution(), c[1] + dy * hpx * view.getResolution()]);
      }, [dx, dy]);
      await rendered();
      renderMs.push(Date.now() - t0);
    }
    // A continuous drag: 120 px a frame for 2 s.
    const drag = await page.evaluate(() => new Promise((resolve) => {
      const { view } = window.deforma;
      const t0 = performance.now();
      const step = (now) => {
        const c = view.getCenter();
        view.setCenter([c[0] + 120 * view.getResolution(), c[1]]);
        if (now - t0 < 2000) requestAnimationFrame(step);
        else resolve();
      };
      requestAnimationFrame(step);
    }));
    void drag;
    t0 = Date.now();
    await rendered();
    renderMs.push(Date.now() - t0);
    const frames = await page.evaluate(() => { window.__frames.on = false; return window.__frames.frames; });
    const pct = (xs, p) => { const v = [...xs].sort((a, b) => a - b); return v[Math.min(v.length - 1, Math.floor(v.length * p))]; };
    // Points loaded in the view at the end (the source's features there).
    const drawn = await page.evaluate((id) => {
      const { map, layers } = window.deforma;
      return layers.find((x) => x.id === id).ol.getSource().getFeaturesInExtent(map.getView().calculateExtent(map.getSize())).length;
    }, layerId).catch(() => null);
    const load = os.loadavg()[0];
    log(`dense product (${scenario.dense.count ?? '?'} points, aggregated below zoom ${aggregatedBelow}): ${moves.length + 1} moves, ${denseTiles().length - before} point tiles fetched; ` +
      `time to the last tile drawn after a move p50 ${pct(renderMs, 0.5)} ms, p95 ${pct(renderMs, 0.95)} ms, max ${Math.max(...renderMs)} ms; ` +
      `${frames.length} frames, frame p50 ${pct(frames, 0.5).toFixed(0)} ms, p95 ${pct(frames, 0.95).toFixed(0)} ms, max ${Math.max(...frames).toFixed(0)} ms` +
      `${drawn ? `; ${drawn} points in the last view` : ''} (load average ${load.toFixed(1)} on ${os.cpus().length} cores)`);
    await screenshot('dense-points');
    // Bounds that hold on a busy two-core machine: the page keeps drawing frames while tiles arrive (no
    // frame blocked for seconds), and each move's tiles come within seconds.
    // Measured on a two-core machine at a load average of 14 to 19 (several builds and browsers beside):
    // frame p50 17 ms, p95 0.4 to 1.1 s, a move's last tile p95 7.5 to 9 s.
    check(pct(frames, 0.95) <= 2000, `frame p95 ${pct(frames, 0.95).toFixed(0)} ms while panning (bound 2000 ms)`);
    check(pct(renderMs, 0.95) <= 20000, `time to the last tile after a move, p95 ${pct(renderMs, 0.95)} ms (bound 20 s)`);
    await page.click(`#layer-list li[data-layer="${layerId}"] button.remove`);
  });

  step('a series product\'s time slider changes the tile requests\' time', async () => {
    await openCollection(scenario.mosaic.collection);
    await page.click(`details[data-collection="${scenario.mosaic.collection}"] button.add-mosaic`);
    await page.waitForSelector('#time-bar:not([hidden])');
    const slider = page.locator('#time-slider');
    const max = Number(await slider.getAttribute('max'));
    check(max + 1 === scenario.mosaic.dates, `the slider offers ${max + 1} dates, expected ${scenario.mosaic.dates}`);
    await rendered();
    tileRequests.length = 0;
    await slider.fill('0');
    await slider.dispatchEvent('input');
    await rendered();
    const first = (await page.textContent('#time-value')).trim();
    await waitFor(() => tileRequests.some((u) => u.includes(`datetime=${first}`)), `tile requests for ${first}`, 5000);
    check(tileRequests.filter((u) => u.includes('/tiles/')).every((u) => !u.includes(`/collections/${scenario.mosaic.collection}/tiles/`) || u.includes(`datetime=${first}`)),
      'every mosaic tile asked after the change carries the new time');
    check(/t=/.test(await page.evaluate(() => location.hash)), 'the time is in the URL');
    await screenshot('time-slider');
  });

  step('add-to-QGIS URLs are offered', async () => {
    const wmts = await page.inputValue('#wmts-url');
    check(wmts === `${origin}/wmts/1.0.0/WMTSCapabilities.xml`, `WMTS URL ${wmts}`);
    check((await page.inputValue('#wms-url')).startsWith(`${origin}/wms?`), 'WMS URL');
  });

  // Every control of a panel, walked with Tab from the top of the page: each one reached must have an
  // accessible name, and every visible control must be reached (radio groups: one of the group).
  const walkPanel = async (tab) => {
    await page.click(`#tab-${tab}`);
    // A click on the title puts the start of the Tab order at the top of the page.
    await page.evaluate(() => document.activeElement?.blur?.());
    await page.click('header h1');
    const reached = [];
    let outside = 0;
    for (let i = 0; i < 400; i++) {
      await page.keyboard.press('Tab');
      const info = await page.evaluate(() => {
        const el = document.activeElement;
        if (!el || el === document.body) return null;
        const t = (x) => (x ?? '').replace(/\s+/g, ' ').trim();
        let name = t(el.getAttribute('aria-label'));
        const by = el.getAttribute('aria-labelledby');
        if (!name && by) name = t(by.split(/\s+/).map((id) => document.getElementById(id)?.textContent).join(' '));
        if (!name && el.labels?.length) name = t([...el.labels].map((l) => l.textContent).join(' '));
        if (!name && (['BUTTON', 'SUMMARY', 'A'].includes(el.tagName) || el.getAttribute('role') === 'tab')) name = t(el.textContent);
        if (!name) name = t(el.getAttribute('title'));
        window.__walk = window.__walk ?? 0;
        if (!el.dataset.walk) el.dataset.walk = String(++window.__walk);
        return { walk: el.dataset.walk, name, what: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ')[0]}` : ''}` };
      });
      // Past the last control the focus leaves the page once, then comes back to the first.
      if (!info) { if (++outside > 1) break; continue; }
      if (reached.length && info.walk === reached[0].walk) break;
      reached.push(info);
    }
    const unnamed = reached.filter((r) => !r.name);
    check(unnamed.length === 0, `${tab}: controls without an accessible name: ${unnamed.map((r) => r.what).join(', ')}`);
    const missed = await page.evaluate((walked) => {
      const seen = new Set(walked);
      const radios = new Set([...document.querySelectorAll('input[type=radio]')].filter((r) => seen.has(r.dataset.walk)).map((r) => r.name));
      return [...document.querySelectorAll('button, input, select, textarea, summary, a[href], [tabindex]')]
        .filter((el) => el.tabIndex >= 0 && !el.disabled && el.checkVisibility({ visibilityProperty: true }) && el.getClientRects().length)
        .filter((el) => !seen.has(el.dataset.walk) && !(el.type === 'radio' && radios.has(el.name)))
        .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} '${(el.getAttribute('aria-label') ?? el.textContent ?? '').trim().slice(0, 30)}'`);
    }, reached.map((r) => r.walk));
    check(missed.length === 0, `${tab}: visible controls Tab does not reach: ${missed.join(', ')}`);
    return reached.length;
  };

  step('every control has an accessible name and is reachable with Tab', async () => {
    // The process panel with its form, the search panel with its results, the layers with a legend.
    await page.click('#tab-process');
    if ((await page.inputValue('#process-select')) !== 'correlate') await page.selectOption('#process-select', 'correlate');
    await page.waitForSelector('#in-chip');
    const counts = {};
    for (const tab of ['layers', 'search', 'process', 'jobs']) counts[tab] = await walkPanel(tab);
    log(`keyboard: controls reached with Tab, each named: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    await page.click('#tab-layers');
  });

  step('a tablet (768 x 1024): the map and every panel on the screen', async () => {
    await page.setViewportSize({ width: 768, height: 1024 });
    try {
      for (const tab of ['layers', 'search', 'process', 'jobs']) {
        await page.click(`#tab-${tab}`);
        const panel = await page.locator(`#panel-${tab}`).boundingBox();
        const map = await page.locator('#map').boundingBox();
        check(panel && panel.width >= 300 && panel.y < 1024 && panel.height > 50, `${tab}: the panel is on the screen (${JSON.stringify(panel)})`);
        check(map && map.width >= 700 && map.height >= 300, `${tab}: the map keeps the width and a good part of the height (${JSON.stringify(map)})`);
        if (tab === 'layers' || tab === 'search') await screenshot(`tablet-${tab}`);
        // Its last control can be scrolled to and reached.
        const last = page.locator(`#panel-${tab}`).locator('button, input, select, textarea').last();
        if (await last.count()) {
          await last.scrollIntoViewIfNeeded();
          const b = await last.boundingBox();
          check(b && b.y >= 0 && b.y + b.height <= 1024, `${tab}: its last control can be scrolled into view (${JSON.stringify(b)})`);
        }
      }
      await walkPanel('layers');
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.click('#tab-layers');
    }
  });

  step('a shared link restores the layers with their opacity, and first tiles come within 1.5 s', async () => {
    const hash = await page.evaluate(() => location.hash);
    const layerId = `${scenario.velocity.collection}/${scenario.velocity.item}`;
    check(hash.includes(layerId), `the layer is in the URL: ${hash}`);
    // A first visit: a browser of its own with nothing cached (no scripts, no tiles), opening the link of a
    // signed-in user (the layers may be private), against the server that has just drawn the view for the
    // user who shared it (its files open: what a shared link finds). The page marks the frame that first
    // draws a data tile (performance.mark, from the navigation's start) and the first complete view.
    const browser = await chromium.launch({ executablePath: browserPath, headless: true, args: browserArgs });
    const idle = await idleCores();
    const visits = [];
    try {
      for (let i = 0; i < 3; i++) {
        const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        const page2 = await ctx.newPage();
        page2.on('console', (m) => m.type() === 'error' && consoleErrors.push(`shared page: ${m.text()} (${m.location()?.url ?? ''})`));
        page2.on('pageerror', (e) => consoleErrors.push(`shared page error: ${e.message}`));
        page2.on('request', (r) => { const u = r.url(); if (!u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin) foreign.push(u); });
        await page2.addInitScript((k) => sessionStorage.setItem('deforma.apiKey', k), key);
        if (!catalogue) await installFixtures(page2, origin, []);
        await page2.goto(`${url}/${hash}`);
        await page2.waitForFunction(() => performance.getEntriesByName('deforma:view-complete').length > 0, null, { timeout: 30000 });
        const marks = await page2.evaluate(() => ({
          first: performance.getEntriesByName('deforma:first-tile')[0].startTime,
          complete: performance.getEntriesByName('deforma:view-complete')[0].startTime,
          layers: window.deforma.layers.map((l) => ({ id: l.id, opacity: l.opacity })),
        }));
        visits.push(marks);
        if (i === 0) {
          check(marks.layers.some((l) => l.id === layerId), `layers restored: ${marks.layers.map((l) => l.id)}`);
          await page2.screenshot({ path: path.join(out, `${String(++shot).padStart(2, '0')}-shared-link.png`) });
        }
        await ctx.close();
      }
    } finally {
      await browser.close();
    }
    const firsts = visits.map((v) => Math.round(v.first)).sort((a, b) => a - b);
    const median = firsts[1];
    log(`shared link, first visits (empty cache): first tile drawn ${visits.map((v) => Math.round(v.first)).join(', ')} ms after navigation ` +
      `(median ${median} ms), view complete ${visits.map((v) => Math.round(v.complete)).join(', ')} ms; ${idle.toFixed(1)} of ${os.cpus().length} cores idle before`);
    // The budget is the viewer's on a machine with room for it: at least one core idle when the visits
    // start. On a saturated machine the figure is printed, not held against the viewer.
    if (idle >= 1) check(median <= 1500, `first tile drawn ${median} ms after navigation (median of 3 first visits; budget 1500 ms)`);
    else log(`1.5 s budget not checked: the machine is saturated (${idle.toFixed(2)} cores idle, load average ${os.loadavg()[0].toFixed(1)})`);
  });

  step('dismissing a job removes it from the list', async () => {
    if (!haveData) return 'skipped: sample data absent';
    await page.click('#tab-jobs');
    await page.waitForSelector('li.job .dismiss');
    const before = await page.$$eval('li.job', (l) => l.length);
    await page.click('li.job .dismiss');
    await waitFor(async () => (await page.$$eval('li.job:not(.dismissed)', (l) => l.length)) < before, 'the job to go', 15000);
    await screenshot('job-dismissed');
  });

  for (const s of steps) {
    // --only REGEX runs the matching steps after the first (which loads the page).
    if (only && s !== steps[0] && !new RegExp(only).test(s.name)) continue;
    const t0 = Date.now();
    try {
      const note = await s.fn();
      log(`ok   ${s.name} (${Date.now() - t0} ms)${note ? ` ${note}` : ''}`);
    } catch (e) {
      failures.push(`${s.name}: ${e.message}`);
      log(`FAIL ${s.name}: ${e.message}`);
      await screenshot('failure').catch(() => {});
    }
  }
  if (foreign.length) failures.push(`requests to other hosts than the server: ${[...new Set(foreign)].slice(0, 5).join(' ')}`);
  if (consoleErrors.length) failures.push(`console errors: ${consoleErrors.slice(0, 5).join(' | ')}`);
  log(`${requests.length} requests, all to ${origin}${foreign.length ? ' NOT' : ''}; ${consoleErrors.length} console errors`);
}

async function cleanup() {
  await context?.close().catch(() => {});
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await waitFor(() => server.exitCode !== null || server.signalCode !== null, 'deforma serve to stop', 10000).catch(() => server.kill('SIGKILL'));
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

try {
  await main();
} catch (e) {
  failures.push(e.stack ?? String(e));
} finally {
  await cleanup();
}
log(`screenshots in ${out} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
if (failures.length) {
  for (const f of failures) console.error(`web e2e: FAILED: ${f}`);
  process.exit(1);
}
log('all passed');
