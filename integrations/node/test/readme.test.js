'use strict';

// The README's snippet, as written, is the application: copied into the throwaway application
// as `app.mjs` and run there with `node`, as a user runs theirs. The one change: VWO's SDK is
// pointed at the VWO stand-in (`gatewayService`, VWO's documented option for a self-hosted
// gateway) instead of VWO's CDN. Appended: one evaluation and one error, in one request scope.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const env = process.env;
const skip = env.VWO_GATEWAY_URL && env.SENTRY_DSN && env.README_PATH ? false : 'needs the stand-ins';

/** The first ```js block of the README. */
function snippet() {
  const readme = fs.readFileSync(env.README_PATH, 'utf8');
  const match = readme.match(/```js\n([\s\S]*?)```/);
  assert.ok(match, 'the README has a ```js block');
  return match[1];
}

test("the README's snippet, run as the application, sends the flag with the error", { skip }, async () => {
  const marker = `readme ${randomUUID()}`;
  const code = snippet();
  const pointed = code.replace('init({ sdkKey', 'init({ gatewayService: { url: process.env.VWO_GATEWAY_URL }, sdkKey');
  assert.notEqual(pointed, code, "the snippet calls VWO's init({ sdkKey, … })");
  const app = `${pointed}
await Sentry.withIsolationScope(async () => {
  await vwo.getFlag('search-v2', { id: 'user-1' });
  Sentry.captureException(new Error(${JSON.stringify(marker)}));
});
await Sentry.close(5000);
process.exit(0);
`;
  const file = path.join(process.cwd(), 'app.mjs');
  fs.writeFileSync(file, app);
  const out = spawnSync(process.execPath, [file], { env, encoding: 'utf8', timeout: 60000 });
  assert.equal(out.status, 0, out.stderr);
  assert.doesNotMatch(out.stderr, /sentry-vwo-flags:/);
  const events = await (await fetch(`${env.SENTRY_STANDIN_URL}/_stand-in/events`)).json();
  const event = events.find((e) => (e.exception?.values ?? []).some((v) => v.value === marker));
  assert.ok(event, `the Sentry stand-in received the event "${marker}"`);
  assert.deepEqual(event.contexts.flags.values, [{ flag: 'search-v2', result: true }]);
});
