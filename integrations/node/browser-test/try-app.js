'use strict';

// The application step of `bridge try --app browser`: the shop's search page (the README's
// browser snippet and `pages/try-epilogue.mjs`, bundled) opened in headless Chromium against
// `bridge local`'s VWO and Sentry. Configured by the environment as the Python example is
// (VWO_GATEWAY_URL, VWO_SDK_KEY, VWO_ACCOUNT_ID, SENTRY_DSN, FLAG, RUN) plus CHROMIUM and
// README_PATH; prints one JSON line: {flag, enabled, error}.

const { build, serve, launch } = require('./harness');

async function main() {
  const env = process.env;
  await build([['js browser', 'try-epilogue.mjs', 'try.js']]);
  const { server, origin } = await serve();
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const query = new URLSearchParams({
      dsn: env.SENTRY_DSN,
      sdkKey: env.VWO_SDK_KEY,
      accountId: env.VWO_ACCOUNT_ID,
      gateway: env.VWO_GATEWAY_URL,
      flag: env.FLAG || 'search-v2',
      run: env.RUN || 'local',
    });
    await page.goto(`${origin}/try.html?${query}`);
    await page.waitForFunction(() => window.results, null, { timeout: 30000 });
    console.log(JSON.stringify(await page.evaluate(() => window.results)));
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
