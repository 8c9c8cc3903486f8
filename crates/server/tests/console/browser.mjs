// The browser the console's tests drive: Debian's Chromium, headless, every host but this
// machine unreachable; people in fresh profiles, pages checked by axe-core, pictures kept.
//
// SCREENSHOTS=<dir> keeps a picture of each main page; CHROMIUM names another browser binary.

import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { strict as assert } from 'node:assert';
import { chromium } from 'playwright-core';

export async function open(base) {
  const screenshots = process.env.SCREENSHOTS;
  if (screenshots) mkdirSync(screenshots, { recursive: true });
  const require = createRequire(import.meta.url);
  const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
  // Content-Security-Policy violations and script errors of every page.
  const violations = [];
  // The pages axe-core checked.
  const checked = [];

  /** A fresh browser profile (its own cookies and storage), failing on any CSP violation. */
  async function person(viewport = { width: 1280, height: 900 }) {
    // Numbers and dates as the assertions spell them.
    const context = await browser.newContext({ viewport, baseURL: base, locale: 'en-US', timezoneId: 'UTC' });
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) {
        violations.push(message.text());
      }
    });
    page.on('pageerror', (error) => violations.push(`script error: ${error.message}`));
    return page;
  }

  /** axe-core on the page as it is: no serious or critical violation. */
  async function accessible(page, what) {
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    await page.evaluate(axeSource);
    const result = await page.evaluate(async () =>
      // eslint-disable-next-line no-undef
      axe.run(document, { resultTypes: ['violations'] }));
    const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(
      bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
      [],
      `${what}: accessibility violations`,
    );
    checked.push(what);
  }

  async function picture(page, name) {
    if (screenshots) await page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });
  }

  return { browser, person, accessible, picture, violations, checked };
}
