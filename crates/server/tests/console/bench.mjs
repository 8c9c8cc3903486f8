// The console's dashboard in headless Chromium: time until all of an organization's KPI cards
// are on the page, cold (an empty cache) and warm (the versioned assets cached), beside the
// dashboard's own API request in the same loads; and the bytes of script and style sent.
//
// node bench.mjs <base URL> <organization id> <session token> <KPI count> <rounds>
// Run by `tenantry bench console` (crates/bench), which builds the data and starts the service.

import { gzipSync } from 'node:zlib';
import { strict as assert } from 'node:assert';
import { chromium } from 'playwright-core';

const [base, org, token, kpiText, roundText] = process.argv.slice(2);
assert.ok(base && org && token, 'usage: node bench.mjs <base URL> <org> <session token> <KPI count> <rounds>');
const kpis = Number(kpiText || 50);
const rounds = Number(roundText || 10);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});

/** A signed-in browser profile: the session cookie the API sets at sign-in. */
async function profile() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, baseURL: base });
  await context.addCookies([{ name: 'tenantry_session', value: token, url: base, httpOnly: true, secure: true, sameSite: 'Lax' }]);
  // When the last card lands: read by a mutation observer from the first script on, so the
  // time does not depend on how often the test asks.
  await context.addInitScript((count) => {
    new MutationObserver((_, observer) => {
      if (document.querySelectorAll('.kpis > li').length >= count) {
        window.usableAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { childList: true, subtree: true });
  }, kpis);
  return context;
}

/** One load of the dashboard: ms to usable, the API request's ms, and the resources fetched. */
async function load(page) {
  await page.goto(`/orgs/${org}`);
  await page.waitForFunction(() => window.usableAt !== undefined, null, { timeout: 30000 });
  return page.evaluate(() => {
    const resources = performance.getEntriesByType('resource');
    const api = resources.find((r) => r.name.endsWith('/dashboard'));
    return {
      usable: window.usableAt,
      api: api ? api.responseEnd - api.requestStart : null,
      assets: resources.filter((r) => /\/console\//.test(r.name))
        .map((r) => ({ name: r.name, transfer: r.transferSize, body: r.encodedBodySize })),
    };
  });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const p90 = (values) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * 0.9))];

const cold = [];
const warm = [];
let assets = [];
for (let round = 0; round < rounds; round += 1) {
  // Cold: a new profile, nothing cached.
  const context = await profile();
  const page = await context.newPage();
  const first = await load(page);
  cold.push(first);
  assets = first.assets;
  // Warm: the same profile again; the assets' URLs are immutable, so they come from its cache.
  await page.evaluate(() => { window.usableAt = undefined; });
  warm.push(await load(page));
  await context.close();
}
let sent = 0;
let compressed = 0;
for (const asset of assets) {
  const body = Buffer.from(await (await fetch(asset.name)).arrayBuffer());
  sent += asset.transfer;
  compressed += gzipSync(body, { level: 9 }).length;
}
await browser.close();

const line = (label, loads) => {
  const usable = loads.map((l) => l.usable);
  const api = loads.map((l) => l.api).filter((v) => v !== null);
  return `${label}: usable after median ${median(usable).toFixed(0)} ms (p90 ${p90(usable).toFixed(0)}), `
    + `its /dashboard request median ${median(api).toFixed(1)} ms; usable / request ${(median(usable) / median(api)).toFixed(1)}`;
};
console.log(`console dashboard, ${kpis} KPIs, ${rounds} loads each:`);
console.log(line('  cold (empty cache)', cold));
console.log(line('  warm (assets cached)', warm));
console.log(`  script and style on a cold load: ${assets.length} files, ${(sent / 1024).toFixed(1)} KB sent (as served), `
  + `${(compressed / 1024).toFixed(1)} KB gzip -9: ${assets.map((a) => a.name.split('/').pop()).join(', ')}`);
