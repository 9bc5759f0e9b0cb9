'use strict';

/**
 * Evaluation tracking for VWO's Node SDK: every `getFlag` result is recorded in the Sentry SDK's
 * feature-flag context, under the flag's key, so error events carry
 * `contexts.flags.values = [{flag, result}]` and Sentry can show the flag on the issue and name it
 * as a suspect when change tracking reports a change to it.
 *
 * Sentry's side: `featureFlagsIntegration()` and its `addFeatureFlag(name, boolean)`
 * (`@sentry/node` >= 9.31; getsentry/sentry-javascript `packages/core/src/integrations/featureFlags/`).
 * VWO's side: `getFlag(key, context)` resolves to a flag whose `isEnabled()` is the result
 * (vwo-fme-node-sdk `lib/api/GetFlag.ts`); a flag absent from the settings file is `false`.
 *
 * The Sentry SDK used is always the application's: the one passed as `{ sentry }`, else the
 * `@sentry/node` the application itself resolves (from its entry script, then its working
 * folder), never a copy of this package's own: a Sentry SDK records flags only on the client its
 * own `init()` made, and an integration linked with npm's `file:` (a symlink) resolves modules
 * from its real folder, outside the application.
 */

const path = require('node:path');
const { createRequire } = require('node:module');

const INTEGRATION_NAME = 'FeatureFlags';
const SENTRY_PACKAGE = '@sentry/node';
const TRACKED = Symbol.for('sentry-vwo-flags.tracked');

const warned = new Set();

/** Prints `message` once per process. */
function warnOnce(message) {
  if (!warned.has(message)) {
    warned.add(message);
    console.warn(`sentry-vwo-flags: ${message}`);
  }
}

/** Where the application resolves its packages from: its entry script, then its working folder. */
function applicationOrigins() {
  const origins = [];
  if (require.main && require.main.filename) origins.push(require.main.filename);
  if (process.argv[1]) origins.push(path.resolve(process.argv[1]));
  origins.push(path.join(process.cwd(), 'package.json'));
  return origins;
}

/**
 * The application's `@sentry/node` module and the file it was resolved to. Throws, saying what
 * to do, when the application has none.
 */
function applicationSentry(origins = applicationOrigins()) {
  for (const origin of origins) {
    let resolved;
    try {
      resolved = createRequire(origin).resolve(SENTRY_PACKAGE);
    } catch (e) {
      if (e && e.code === 'MODULE_NOT_FOUND') continue;
      throw e;
    }
    return { sentry: require(resolved), resolved };
  }
  const folders = [...new Set(origins.map((o) => path.dirname(o)))].join(', ');
  throw new Error(
    `sentry-vwo-flags: the application has no ${SENTRY_PACKAGE} (looked from ${folders}): ` +
      `install it in the application (npm install ${SENTRY_PACKAGE}) and call Sentry.init() first, ` +
      `or pass the SDK you use: trackEvaluations(vwo, { sentry: Sentry })`,
  );
}

/**
 * Why `sentry` cannot record a flag now, or `undefined` when it can. `where` names the copy in
 * the messages.
 */
function setupProblem(sentry, where) {
  if (typeof sentry.featureFlagsIntegration !== 'function') {
    const version = sentry.SDK_VERSION || 'this version';
    return `${where} ${version} has no featureFlagsIntegration(): upgrade it to 9.31 or newer`;
  }
  const client = typeof sentry.getClient === 'function' ? sentry.getClient() : undefined;
  if (!client) {
    return (
      `${where} has no client: call Sentry.init() before evaluating flags, ` +
      `or, if the application initialises another copy of the Sentry SDK, pass that one: ` +
      `trackEvaluations(vwo, { sentry: Sentry })`
    );
  }
  const integration = client.getIntegrationByName(INTEGRATION_NAME);
  if (!integration || typeof integration.addFeatureFlag !== 'function') {
    return (
      'Sentry is initialised without Sentry.featureFlagsIntegration(): add it to ' +
      'Sentry.init({ integrations: [Sentry.featureFlagsIntegration()] }); VWO flag evaluations are not recorded'
    );
  }
  return undefined;
}

/**
 * Records one evaluation in the current scope of `sentry` (the Sentry SDK module). Returns
 * whether it was recorded: `false`, with a warning printed once saying why, when that SDK cannot
 * record it (not initialised, no `featureFlagsIntegration()`, too old).
 */
function recordEvaluation(sentry, featureKey, enabled, where = 'the Sentry SDK') {
  const problem = setupProblem(sentry, where);
  if (problem) {
    warnOnce(problem);
    return false;
  }
  const integration = sentry.getClient().getIntegrationByName(INTEGRATION_NAME);
  integration.addFeatureFlag(String(featureKey), enabled === true);
  return true;
}

/**
 * Makes `vwoClient.getFlag` record each result in Sentry, and returns the client. Evaluation
 * itself is untouched: the same flag object comes back, and an evaluation that throws records
 * nothing. Calling it twice on one client records once.
 *
 * @param {object} vwoClient the client `init()` of vwo-fme-node-sdk resolved to
 * @param {{sentry?: object, flagPrefix?: string}} [options] `sentry`: the application's Sentry
 *   SDK module (default: the `@sentry/node` the application resolves); `flagPrefix`: put before
 *   each flag's key in Sentry (`staging:` → `staging:search-v2`), the same as change tracking's
 *   `flagPrefix` for this VWO environment (none by default)
 */
function trackEvaluations(vwoClient, options = {}) {
  if (!vwoClient || typeof vwoClient.getFlag !== 'function') {
    throw new TypeError('trackEvaluations expects the client returned by VWO init()');
  }
  if (vwoClient[TRACKED]) {
    return vwoClient;
  }
  const found = options.sentry
    ? { sentry: options.sentry, where: 'the Sentry SDK passed as { sentry }' }
    : (({ sentry, resolved }) => ({ sentry, where: `${SENTRY_PACKAGE} (${resolved})` }))(
        applicationSentry(),
      );
  const prefix = options.flagPrefix ? String(options.flagPrefix) : '';
  const getFlag = vwoClient.getFlag.bind(vwoClient);
  vwoClient.getFlag = async function getFlagTracked(featureKey, context) {
    const flag = await getFlag(featureKey, context);
    if (flag && typeof flag.isEnabled === 'function') {
      recordEvaluation(found.sentry, `${prefix}${featureKey}`, flag.isEnabled(), found.where);
    }
    return flag;
  };
  vwoClient[TRACKED] = true;
  return vwoClient;
}

module.exports = { trackEvaluations, recordEvaluation, applicationSentry, INTEGRATION_NAME };
