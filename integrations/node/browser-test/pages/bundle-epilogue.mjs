// Appended to the README's browser snippet (which defines `Sentry` and `vwo`): one evaluation,
// then an error captured, as the application's own code would.
const flag = await vwo.getFlag('search-v2', { id: 'user-1' });
window.results = { 'search-v2': flag.isEnabled() };
Sentry.captureException(new Error(q.get('marker')));
await Sentry.flush(5000);
