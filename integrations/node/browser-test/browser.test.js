'use strict';

// Evaluation tracking in a real browser: headless Chromium (the system's, driven by
// playwright-core, nothing downloaded) opens pages of a throwaway web application that installed
// this package as its README says, with the application's own @sentry/browser and @sentry/react
// (the oldest supported and the current version), VWO's browser build and VWO's React SDK. VWO's
// SDK reads its settings file from the VWO stand-in, and Sentry's SDK sends its envelopes to the
// Sentry stand-in, both on other origins than the page (CORS as each answers it). The workspace's
// test (`cargo test --test evaluation_tracking`) installs the application, copies this folder
// into it, and passes the stand-ins' addresses and CHROMIUM (the browser's path).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');

const { build, serve, launch } = require('./harness');

const env = process.env;
const ready =
  env.VWO_GATEWAY_URL && env.SENTRY_DSN && env.SENTRY_STANDIN_URL && env.CHROMIUM && env.README_PATH;
const skip = ready ? false : 'needs the stand-ins and CHROMIUM: run `cargo test --test evaluation_tracking`';

let server;
let origin;
let browser;

before(async () => {
  if (skip) return;
  await build();
  ({ server, origin } = await serve());
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.close();
});

/** The event the Sentry stand-in received whose exception is `marker`. */
async function eventWith(marker) {
  for (let i = 0; i < 200; i += 1) {
    const events = await (await fetch(`${env.SENTRY_STANDIN_URL}/_stand-in/events`)).json();
    const event = events.find((e) => (e.exception?.values ?? []).some((v) => v.value === marker));
    if (event) return event;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the Sentry stand-in never received the event "${marker}"`);
}

/** No request to a stand-in failed, and the browser blocked none (CORS). VWO's SDK also reports
 * its own errors to VWO's host, unreachable here: those are not the stand-ins'. */
function assertNothingBlocked(logs) {
  const standIns = [new URL(env.SENTRY_DSN).host, new URL(env.VWO_GATEWAY_URL).host];
  const blocked = logs.filter(
    (l) => /CORS policy/.test(l) || (l.startsWith('requestfailed') && standIns.some((h) => l.includes(h))),
  );
  assert.deepEqual(blocked, [], logs.join('\n'));
}

/** Opens `page` with the stand-ins' addresses; what it evaluated, the event, its console. */
async function open(page, extra = {}) {
  const marker = `${page} ${randomUUID()}`;
  const query = new URLSearchParams({
    dsn: env.SENTRY_DSN,
    sdkKey: env.VWO_SDK_KEY,
    accountId: env.VWO_ACCOUNT_ID,
    gateway: env.VWO_GATEWAY_URL,
    marker,
    ...extra,
  });
  const tab = await browser.newPage();
  const logs = [];
  tab.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  tab.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  tab.on('requestfailed', (r) => logs.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  try {
    await tab.goto(`${origin}/${page}.html?${query}`);
    await tab.waitForFunction(() => window.results, null, { timeout: 20000 });
    const results = await tab.evaluate(() => window.results);
    return { results, marker, tab, logs };
  } catch (e) {
    throw new Error(`${page}: ${e.message}\n${logs.join('\n')}`);
  }
}

/** Opens `page`; once it evaluated (and `selector` shows, if given), the event it sent. Its
 * requests to the stand-ins all went through. */
async function sentEvent(page, { extra, selector } = {}) {
  const { results, marker, tab, logs } = await open(page, extra);
  if (selector) await tab.waitForSelector(selector);
  const event = await eventWith(marker);
  await tab.close();
  assertNothingBlocked(logs);
  return { results, event, logs };
}

test('a plain module page records each evaluation with the CDN-style Sentry', { skip }, async () => {
  const { results, event, logs } = await sentEvent('plain');
  assert.deepEqual(results, { 'search-v2': true, 'checkout-new-flow': false });
  assert.deepEqual(event.contexts.flags.values, [
    { flag: 'search-v2', result: true },
    { flag: 'checkout-new-flow', result: false },
  ]);
  assert.equal(event.sdk.name, 'sentry.javascript.browser');
  assert.ok(!logs.some((l) => l.includes('sentry-vwo-flags')), logs.join('\n'));
});

test("the README's browser snippet, bundled as the application, records the flag", { skip }, async () => {
  const { results, event } = await sentEvent('bundle');
  assert.deepEqual(results, { 'search-v2': true });
  assert.deepEqual(event.contexts.flags.values, [{ flag: 'search-v2', result: true }]);
  assert.equal(event.sdk.name, 'sentry.javascript.browser');
});

test("with the README's React snippet, a component's error caught by Sentry's ErrorBoundary carries the flag", { skip }, async () => {
  const { results, event } = await sentEvent('react', { selector: '#fallback' });
  assert.deepEqual(results, { 'search-v2': true });
  assert.deepEqual(event.contexts.flags.values, [{ flag: 'search-v2', result: true }]);
  assert.equal(event.sdk.name, 'sentry.javascript.react');
});

test('a page whose Sentry lacks featureFlagsIntegration() is told so on the console', { skip }, async () => {
  const { event, logs } = await sentEvent('plain', { extra: { withoutFlags: '1' } });
  assert.equal(event.contexts?.flags, undefined);
  const said = logs.filter((l) => l.includes('sentry-vwo-flags:'));
  assert.equal(said.length, 1, logs.join('\n'));
  assert.match(said[0], /without Sentry\.featureFlagsIntegration\(\)/);
});
