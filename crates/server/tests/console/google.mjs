// Signing in with Google in a real browser. The sign-in page offers it when the service has a
// provider (a local server speaking OpenID Connect, where Grace is already signed in); the
// provider sends the browser back, and the console opens the page that asked for a sign-in,
// signed in by its cookie alone: no script of the page ever holds the session's token. Its
// first write reads the session's CSRF token back. A forged return (someone else's link) is
// refused and said on the sign-in page.
//
// node google.mjs <base URL>
// Run by the Rust test console::signing_in_with_google_in_a_real_browser.

import { strict as assert } from 'node:assert';
import { open } from './browser.mjs';

const base = process.argv[2];
assert.ok(base, 'usage: node google.mjs <base URL>');
const { browser, person, accessible, violations, checked } = await open(base);

// A forged return from the provider (a link someone else made, with their code and state) is
// refused: the browser is told so at sign-in, signed in as no one.
const mallory = await person();
await mallory.goto('/v1/auth/oidc/callback?code=stolen&state=stolen');
await mallory.waitForURL(/\/sign-in\?failed=oidc$/);
await mallory.getByText('Signing in with Google did not complete').waitFor();
await mallory.goto('/me');
await mallory.waitForURL(/\/sign-in\?next=%2Fme$/);

// Grace opens her profile's address, is asked to sign in, and chooses Google.
const grace = await person();
await grace.goto('/me');
await grace.waitForURL(/\/sign-in\?next=%2Fme$/);
const google = grace.getByRole('link', { name: 'Sign in with Google' });
await google.waitFor();
await accessible(grace, 'sign-in with Google');
await google.click();
await grace.waitForURL(`${base}/me`);
await grace.getByRole('heading', { name: 'Your profile', level: 1 }).waitFor();
await grace.getByText('Signed in as grace@example.com.').waitFor();

// The browser holds the session as an HttpOnly cookie only: no script of the page can read it.
const cookies = await grace.context().cookies();
assert.ok(cookies.some((c) => c.name === 'tenantry_session' && c.httpOnly), JSON.stringify(cookies.map((c) => c.name)));
assert.doesNotMatch(await grace.evaluate(() => document.cookie), /tenantry_session/);

// Her first write has no CSRF token yet: the console reads it back by the cookie, and saves.
await grace.getByLabel('Name', { exact: true }).fill('Grace B. Hopper');
await grace.getByRole('button', { name: 'Save profile' }).click();
await grace.getByText('Profile saved.').waitFor();
assert.equal(await grace.getByLabel('Name', { exact: true }).inputValue(), 'Grace B. Hopper');
await accessible(grace, 'profile after Google');

assert.deepEqual(violations, [], 'Content-Security-Policy violations or script errors');
await browser.close();
console.log(`walked: ${checked.join(', ')}`);
