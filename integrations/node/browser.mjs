/**
 * Evaluation tracking for VWO's JavaScript SDK in the browser (vwo-fme-node-sdk's browser build,
 * and vwo-fme-react-sdk, which is built on it): every `getFlag` result is recorded in the Sentry
 * browser SDK's feature-flag context, so error events carry `contexts.flags.values` and Sentry
 * can show the flag on the issue and name it as a suspect.
 *
 * Sentry's side: `featureFlagsIntegration()` and its `addFeatureFlag(name, boolean)`
 * (`@sentry/browser` and `@sentry/react` >= 9.31). VWO's side: `getFlag(key, context)` resolves
 * to a flag whose `isEnabled()` is the result.
 *
 * No imports: a plain `<script type="module">` page loads this file as it is, and a bundler
 * picks it through the package's `browser` export. A browser has no module resolution to find
 * "the application's" Sentry SDK, so it is the one passed as `{ sentry }`, else `window.Sentry`
 * (Sentry's CDN bundle and Loader Script).
 */

const INTEGRATION_NAME = 'FeatureFlags';
const TRACKED = Symbol.for('sentry-vwo-flags.tracked');
const warned = new Set();

/** The Sentry SDK to record in: `sentry`, else the page's `window.Sentry`. */
function sentryOf(sentry) {
  const found = sentry || globalThis.Sentry;
  if (!found || typeof found.getClient !== 'function') {
    throw new TypeError(
      'sentry-vwo-flags: no Sentry browser SDK: pass the one you initialised, ' +
        "trackEvaluations(vwo, { sentry: Sentry }) with `import * as Sentry from '@sentry/browser'` " +
        "(or '@sentry/react'), or load Sentry's CDN bundle first",
    );
  }
  return found;
}

/** The SDK's feature-flag integration, or why there is none (said once on the console). */
function flagIntegration(sentry) {
  let problem;
  const client = sentry.getClient();
  if (typeof sentry.featureFlagsIntegration !== 'function') {
    problem = `Sentry ${sentry.SDK_VERSION || ''} has no featureFlagsIntegration(): upgrade it to 9.31 or newer`;
  } else if (!client) {
    problem = 'Sentry has no client: call Sentry.init() before evaluating flags';
  } else {
    const integration = client.getIntegrationByName(INTEGRATION_NAME);
    if (integration && typeof integration.addFeatureFlag === 'function') return integration;
    problem =
      'Sentry is initialised without Sentry.featureFlagsIntegration(): add it to ' +
      'Sentry.init({ integrations: [Sentry.featureFlagsIntegration()] }); VWO flag evaluations are not recorded';
  }
  if (!warned.has(problem)) {
    warned.add(problem);
    console.warn(`sentry-vwo-flags: ${problem}`);
  }
  return undefined;
}

/**
 * Makes `vwoClient.getFlag` record each result in Sentry, and returns the client (pass it to
 * `<VWOProvider client={...}>` in React). The same flag object comes back; an evaluation that
 * throws records nothing; calling it twice on one client records once.
 *
 * @param {object} vwoClient the client VWO's `init()` resolved to
 * @param {{sentry?: object, flagPrefix?: string}} [options] `sentry`: the Sentry SDK module the
 *   page initialised (default `window.Sentry`); `flagPrefix`: put before each flag's key in
 *   Sentry, the same as change tracking's `flagPrefix` for this VWO environment
 */
export function trackEvaluations(vwoClient, options = {}) {
  if (!vwoClient || typeof vwoClient.getFlag !== 'function') {
    throw new TypeError('trackEvaluations expects the client returned by VWO init()');
  }
  if (vwoClient[TRACKED]) return vwoClient;
  const sentry = sentryOf(options.sentry);
  const prefix = options.flagPrefix ? String(options.flagPrefix) : '';
  const getFlag = vwoClient.getFlag.bind(vwoClient);
  vwoClient.getFlag = async (featureKey, context) => {
    const flag = await getFlag(featureKey, context);
    const integration = flag && typeof flag.isEnabled === 'function' && flagIntegration(sentry);
    if (integration) integration.addFeatureFlag(`${prefix}${featureKey}`, flag.isEnabled() === true);
    return flag;
  };
  vwoClient[TRACKED] = true;
  return vwoClient;
}

export { INTEGRATION_NAME };
