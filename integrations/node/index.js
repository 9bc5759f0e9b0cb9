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
 */

const INTEGRATION_NAME = 'FeatureFlags';
const TRACKED = Symbol.for('sentry-vwo-flags.tracked');

let warned = false;

/**
 * Records one evaluation in the current scope of `sentry` (the `@sentry/node` module).
 * Returns whether it was recorded: `false` when Sentry is not initialised with
 * `featureFlagsIntegration()` (a warning is printed once).
 */
function recordEvaluation(sentry, featureKey, enabled) {
  const integration = sentry.getClient && sentry.getClient()
    ? sentry.getClient().getIntegrationByName(INTEGRATION_NAME)
    : undefined;
  if (!integration || typeof integration.addFeatureFlag !== 'function') {
    if (!warned) {
      warned = true;
      console.warn(
        'sentry-vwo-flags: Sentry is not initialised with Sentry.featureFlagsIntegration(); VWO flag evaluations are not recorded',
      );
    }
    return false;
  }
  integration.addFeatureFlag(String(featureKey), enabled === true);
  return true;
}

/**
 * Makes `vwoClient.getFlag` record each result in Sentry, and returns the client. Evaluation
 * itself is untouched: the same flag object comes back, and an evaluation that throws records
 * nothing. Calling it twice on one client records once.
 *
 * @param {object} vwoClient the client `init()` of vwo-fme-node-sdk resolved to
 * @param {{sentry?: object}} [options] the `@sentry/node` module (default: `require('@sentry/node')`)
 */
function trackEvaluations(vwoClient, options = {}) {
  if (!vwoClient || typeof vwoClient.getFlag !== 'function') {
    throw new TypeError('trackEvaluations expects the client returned by VWO init()');
  }
  if (vwoClient[TRACKED]) {
    return vwoClient;
  }
  const sentry = options.sentry || require('@sentry/node');
  const getFlag = vwoClient.getFlag.bind(vwoClient);
  vwoClient.getFlag = async function getFlagTracked(featureKey, context) {
    const flag = await getFlag(featureKey, context);
    if (flag && typeof flag.isEnabled === 'function') {
      recordEvaluation(sentry, featureKey, flag.isEnabled());
    }
    return flag;
  };
  vwoClient[TRACKED] = true;
  return vwoClient;
}

module.exports = { trackEvaluations, recordEvaluation, INTEGRATION_NAME };
