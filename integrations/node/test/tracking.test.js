'use strict';

// Evaluation tracking with the real packages: VWO's Node SDK reads its settings file from the
// bridge's VWO stand-in (`gatewayService`), and Sentry's Node SDK sends its events to the
// bridge's Sentry stand-in (a DSN on 127.0.0.1), which keeps them for these assertions.
// The workspace's test (`cargo test --test evaluation_tracking`) installs this package into a
// throwaway application as the README says (npm's `file:` link, or a packed tarball), with the
// application's own `@sentry/node` (the oldest supported and the current version), copies these
// tests into it and runs them there, without NODE_PATH; it starts the stand-ins and passes their
// addresses in the environment.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');

const { trackEvaluations, recordEvaluation } = require('sentry-vwo-flags');

const env = process.env;
const standIns = env.VWO_GATEWAY_URL && env.SENTRY_DSN && env.SENTRY_STANDIN_URL;
const skip = standIns ? false : 'needs the stand-ins: run `cargo test --test evaluation_tracking`';

let Sentry;
let vwo;

before(async () => {
  if (skip) return;
  Sentry = require('@sentry/node');
  Sentry.init({ dsn: env.SENTRY_DSN, integrations: [Sentry.featureFlagsIntegration()] });
  const { init } = require('vwo-fme-node-sdk');
  vwo = trackEvaluations(
    await init({
      sdkKey: env.VWO_SDK_KEY,
      accountId: env.VWO_ACCOUNT_ID,
      gatewayService: { url: env.VWO_GATEWAY_URL },
      logger: { level: 'ERROR' },
    }),
  );
});

after(async () => {
  if (Sentry) await Sentry.close(2000);
});

/** Evaluates `keys` for one user in a fresh scope (as per request in a server), then captures an
 * error there; returns the event the Sentry stand-in received. */
async function errorAfter(keys, client = vwo) {
  const marker = `evaluation-tracking ${randomUUID()}`;
  const results = {};
  await Sentry.withIsolationScope(() =>
    Sentry.withScope(async () => {
      for (const key of keys) {
        results[key] = (await client.getFlag(key, { id: 'user-1' })).isEnabled();
      }
      Sentry.captureException(new Error(marker));
    }),
  );
  await Sentry.flush(5000);
  for (let i = 0; i < 100; i += 1) {
    const events = await (await fetch(`${env.SENTRY_STANDIN_URL}/_stand-in/events`)).json();
    const event = events.find((e) =>
      (e.exception?.values ?? []).some((v) => v.value === marker),
    );
    if (event) return { event, results };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the Sentry stand-in never received the event "${marker}"`);
}

test('an error after an evaluation carries the flag that is on', { skip }, async () => {
  const { event, results } = await errorAfter(['search-v2']);
  assert.deepEqual(results, { 'search-v2': true });
  assert.deepEqual(event.contexts.flags.values, [{ flag: 'search-v2', result: true }]);
  assert.equal(event.sdk.name, 'sentry.javascript.node');
});

test('a flag that is off, or absent from the settings file, is recorded as false', { skip }, async () => {
  const { event, results } = await errorAfter(['checkout-new-flow', 'no-such-flag']);
  assert.deepEqual(results, { 'checkout-new-flow': false, 'no-such-flag': false });
  assert.deepEqual(event.contexts.flags.values, [
    { flag: 'checkout-new-flow', result: false },
    { flag: 'no-such-flag', result: false },
  ]);
});

test('past 100 evaluations the event keeps the latest 100', { skip }, async () => {
  const keys = Array.from({ length: 120 }, (_, i) => `flag-${String(i).padStart(4, '0')}`);
  const { event } = await errorAfter(keys);
  const flags = event.contexts.flags.values;
  assert.equal(flags.length, 100);
  assert.deepEqual(flags[0], { flag: 'flag-0020', result: true });
  assert.deepEqual(flags[99], { flag: 'flag-0119', result: true });
});

test('with flagPrefix the flag is recorded under the environment\'s name in Sentry', { skip }, async () => {
  // One VWO environment of several in one Sentry organisation (change tracking's flagPrefix).
  const staging = trackEvaluations(
    { getFlag: async (key) => ({ isEnabled: () => key === 'search-v2' }) },
    { flagPrefix: 'staging:' },
  );
  const { event } = await errorAfter(['search-v2'], staging);
  assert.deepEqual(event.contexts.flags.values, [{ flag: 'staging:search-v2', result: true }]);
});

test('wrapping twice records once and returns the same flag object', { skip }, async () => {
  assert.equal(trackEvaluations(vwo), vwo);
  const { event } = await errorAfter(['search-v2', 'search-v2']);
  assert.deepEqual(event.contexts.flags.values, [{ flag: 'search-v2', result: true }]);
});

test('without Sentry feature-flag integration nothing is recorded and nothing throws', () => {
  const noClient = { getClient: () => undefined };
  assert.equal(recordEvaluation(noClient, 'search-v2', true), false);
  assert.throws(() => trackEvaluations({}), TypeError);
});
