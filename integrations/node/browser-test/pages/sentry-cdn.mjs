// What Sentry's CDN bundle is: @sentry/browser as one classic script defining `window.Sentry`.
// Built by the test with esbuild (`--format=iife --global-name=Sentry`) from the application's
// own @sentry/browser, since the npm package carries no CDN bundle.
export * from '@sentry/browser';
