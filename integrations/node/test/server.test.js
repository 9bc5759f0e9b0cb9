'use strict';

// Per request in a concurrent server: an application's HTTP server, instrumented by
// @sentry/node as its docs say (Sentry.init before the server is created), evaluates a different
// flag in each of many overlapping requests; each request's error event carries its own flag
// only. Run in the throwaway application (see tracking.test.js).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');

const env = process.env;
const skip = env.VWO_GATEWAY_URL && env.SENTRY_DSN ? false : 'needs the stand-ins';

let Sentry;
let server;
let base;

before(async () => {
  if (skip) return;
  Sentry = require('@sentry/node');
  Sentry.init({ dsn: env.SENTRY_DSN, integrations: [Sentry.featureFlagsIntegration()] });
  const http = require('node:http');
  const { init } = require('vwo-fme-node-sdk');
  const { trackEvaluations } = require('sentry-vwo-flags');
  const vwo = trackEvaluations(
    await init({
      sdkKey: env.VWO_SDK_KEY,
      accountId: env.VWO_ACCOUNT_ID,
      gatewayService: { url: env.VWO_GATEWAY_URL },
      logger: { level: 'ERROR' },
    }),
  );
  server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const flag = url.searchParams.get('flag');
    await vwo.getFlag(flag, { id: url.searchParams.get('user') });
    // Overlap with the other requests before failing.
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 50));
    Sentry.captureException(new Error(url.searchParams.get('marker')));
    res.end('failed');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(async () => {
  if (server) server.close();
  if (Sentry) await Sentry.close(2000);
});

test('concurrent requests each carry only the flag they evaluated', { skip }, async () => {
  const flags = Array.from({ length: 20 }, (_, i) => `flag-${String(i).padStart(4, '0')}`);
  const runId = randomUUID();
  await Promise.all(
    flags.map((flag, i) =>
      fetch(`${base}/search?flag=${flag}&user=user-${i}&marker=${runId}-${flag}`).then((r) => r.text()),
    ),
  );
  await Sentry.flush(5000);
  let byMarker = new Map();
  for (let i = 0; i < 100 && byMarker.size < flags.length; i += 1) {
    const events = await (await fetch(`${env.SENTRY_STANDIN_URL}/_stand-in/events`)).json();
    byMarker = new Map(
      events
        .map((e) => [(e.exception?.values ?? [])[0]?.value, e])
        .filter(([m]) => typeof m === 'string' && m.startsWith(runId)),
    );
    if (byMarker.size < flags.length) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(byMarker.size, flags.length);
  for (const flag of flags) {
    const event = byMarker.get(`${runId}-${flag}`);
    assert.deepEqual(event.contexts.flags.values, [{ flag, result: true }], flag);
  }
});
