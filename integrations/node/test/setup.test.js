'use strict';

// A wrong set-up says what is actually wrong. Run in the throwaway application (see
// tracking.test.js): each case is a fresh `node` process there, as a user's application is.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const fs = require('node:fs');
const path = require('node:path');

const { applicationSentry, recordEvaluation } = require('sentry-vwo-flags');

const env = process.env;
const skip = env.SENTRY_DSN ? false : 'needs the stand-ins: run `cargo test --test evaluation_tracking`';

/** Runs `source` as the application's own script (in its folder) and returns its stderr. */
function runApp(source) {
  const file = path.join(process.cwd(), `setup-case-${process.pid}.js`);
  fs.writeFileSync(file, source);
  try {
    const out = spawnSync(process.execPath, [file], { env, encoding: 'utf8', timeout: 30000 });
    assert.equal(out.status, 0, out.stderr);
    return out.stderr;
  } finally {
    fs.unlinkSync(file);
  }
}

const FAKE_VWO = "{ getFlag: async () => ({ isEnabled: () => true }) }";

test('Sentry.init() without featureFlagsIntegration() is named as the problem', { skip }, () => {
  const stderr = runApp(`
    const Sentry = require('@sentry/node');
    Sentry.init({ dsn: process.env.SENTRY_DSN });
    const { trackEvaluations } = require('sentry-vwo-flags');
    trackEvaluations(${FAKE_VWO}).getFlag('search-v2').then(() => Sentry.close(2000));
  `);
  assert.match(stderr, /initialised without Sentry\.featureFlagsIntegration\(\)/);
});

test('an evaluation before Sentry.init() says to call it first', { skip }, () => {
  const stderr = runApp(`
    const { trackEvaluations } = require('sentry-vwo-flags');
    trackEvaluations(${FAKE_VWO}).getFlag('search-v2');
  `);
  assert.match(stderr, /@sentry\/node \(.*node_modules.*\) has no client: call Sentry\.init\(\)/);
});

test("the application's own @sentry/node is the one found, not a copy elsewhere", { skip }, () => {
  const { resolved } = applicationSentry();
  assert.equal(
    fs.realpathSync(resolved).startsWith(fs.realpathSync(path.join(process.cwd(), 'node_modules'))),
    true,
    resolved,
  );
});

test('an application without @sentry/node is told to install it or pass { sentry }', () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'no-sentry-'));
  try {
    assert.throws(
      () => applicationSentry([path.join(empty, 'app.js')]),
      /has no @sentry\/node .*npm install @sentry\/node.*\{ sentry: Sentry \}/,
    );
  } finally {
    fs.rmSync(empty, { recursive: true });
  }
});

test('a Sentry SDK older than 9.31 is named as too old', () => {
  const old = { SDK_VERSION: '8.55.0', getClient: () => ({}) };
  assert.equal(recordEvaluation(old, 'search-v2', true, '@sentry/node'), false);
});
