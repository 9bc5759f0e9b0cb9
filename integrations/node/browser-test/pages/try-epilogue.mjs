// Appended to the README's browser snippet for `bridge try --app browser`: the shop's search page
// evaluates the flag for a user and, when it is on, hits the new code path's error, which its
// Sentry SDK captures with the evaluation (`contexts.flags`).
class SearchIndexError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SearchIndexError';
  }
}

const FLAG = q.get('flag');
const enabled = (await vwo.getFlag(FLAG, { id: 'user-42' })).isEnabled();
let error = null;
try {
  if (enabled) throw new SearchIndexError(`search-v2 index has no shard for 'running shoes' (${q.get('run')})`);
} catch (e) {
  error = e.message;
  Sentry.captureException(e);
}
await Sentry.flush(5000);
window.results = { flag: FLAG, enabled, error };
