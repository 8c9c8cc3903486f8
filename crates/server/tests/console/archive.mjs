// A tool's archive read by an organization's admin in a real browser: from the tool's page to
// its archived entries, each opened to its fields and its own tables' rows.
//
// node archive.mjs <base URL>
// Run by the Rust test console::an_admin_reads_a_tools_archive_in_a_real_browser, which signs
// Ada up and archives her completed Value Proposition canvas first.

import { strict as assert } from 'node:assert';
import { open } from './browser.mjs';

const base = process.argv[2];
assert.ok(base, 'usage: node archive.mjs <base URL>');
const { browser, person, accessible, violations, checked } = await open(base);

const ada = await person();
await ada.goto('/sign-in');
await ada.getByLabel('Email').fill('ada@example.com');
await ada.getByLabel('Password').fill('correct horse battery');
await ada.getByRole('button', { name: 'Sign in' }).click();
await ada.getByRole('link', { name: 'Tools', exact: true }).click();
await ada.getByRole('link', { name: /Value Proposition/ }).first().click();
// The archived canvas is no longer among the entries in use.
await ada.getByText('No entries yet').waitFor();
await ada.getByRole('link', { name: 'Archived entries' }).click();
await ada.getByRole('heading', { name: /: archived entries$/, level: 1 }).waitFor();
const archived = ada.locator('ol.archive > li');
assert.equal(await archived.count(), 1);
await archived.locator('summary').click();
await archived.getByText('founders', { exact: true }).waitFor();
await archived.getByRole('cell', { name: 'founders pay for focus' }).waitFor();
await accessible(ada, 'archive');

assert.deepEqual(violations, [], 'Content-Security-Policy violations or script errors');
await browser.close();
console.log(`walked: ${checked.join(', ')}`);
