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

function hasSubcommand(name) {
  try {
    execFileSync(deforma, [name, '--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function startServer() {
  const key = execFileSync(deforma, ['users', 'add', 'e2e', '--root', root], { encoding: 'utf8' }).trim().split('\n').pop();
  const catalogue = haveData && hasSubcommand('catalog');
  if (catalogue) {
    // The sample data the map tests look at; a set that cannot be read is reported by the command.
    const sets = ['yahtse-l8', 'egms-ustica', 's2-l2a-safe'].map((s) => path.join(dataDir, s)).filter((p) => fs.existsSync(p));
    try {
      execFileSync(deforma, ['catalog', 'add', '--root', root, ...sets], { stdio: 'inherit', timeout: 300000 });
    } catch (e) {
      log(`catalog add reported a failure (${e.message.split('\n')[0]}); continuing with what was catalogued`);
    }
  }
  const serveArgs = ['serve', '--root', root, '--listen', '127.0.0.1:0', '--offline', '--web', path.join(web, 'dist'),
    '--workers', '1', '--job-threads', '2', '--job-ram', '64'];
  if (haveData) serveArgs.push('--data', dataDir);
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
  return { url, key, catalogue };
}

async function main() {
  const { url, key, catalogue } = await startServer();
  const origin = new URL(url).origin;
  log(`server ${url}, catalogue ${catalogue ? 'yes' : 'no'}, sample data ${haveData ? dataDir : 'absent'}`);
  context = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: browserPath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
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
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  let shot = 0;
  const screenshot = async (name) => {
    shot += 1;
    await page.screenshot({ path: path.join(out, `${String(shot).padStart(2, '0')}-${name}.png`) });
  };

  // Small pictures of one part of the page, for docs/viewer.md.
  const partShot = async (selector, name) => {
    await page.locator(selector).first().screenshot({ path: path.join(out, `part-${name}.png`) });
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

  step('a correlation of the Yahtse pair runs from the form with a moving progress bar', async () => {
    if (!haveData) return 'skipped: sample data absent';
    await page.fill('#in-chip', '32');
    await page.fill('#in-min-corr', '');
    await page.fill('#in-ref', 'yahtse-l8/LC80630182016200LGN00_B8_yahtse.TIF');
    await page.fill('#in-sec', 'yahtse-l8/LC80630182016216LGN00_B8_yahtse.TIF');
    await page.fill('#in-search', '24');
    await page.fill('#in-step', '8');
    await page.check('#in-velocity');
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
    await screenshot('job-done');
    await partShot('li.job', 'job-done');
  });

  step('dismissing a job removes it from the list', async () => {
    if (!haveData) return 'skipped: sample data absent';
    const before = await page.$$eval('li.job', (l) => l.length);
    await page.click('li.job .dismiss');
    await waitFor(async () => (await page.$$eval('li.job:not(.dismissed)', (l) => l.length)) < before, 'the job to go', 15000);
    await screenshot('job-dismissed');
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

  for (const s of steps) {
    if (only && !s.name.includes(only)) continue;
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
