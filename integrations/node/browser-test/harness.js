'use strict';

// What the browser suite and `bridge try --app browser` share: the web application's build (the
// README's snippets bundled by esbuild, a CDN-style Sentry), a static server for its pages, and
// headless Chromium. Run inside the throwaway web application (its node_modules), with README_PATH
// naming the integration's README.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const env = process.env;
const app = process.cwd();
const pages = path.join(__dirname, 'pages');

/** The README's block opened with ```<info>. */
function snippet(info) {
  const readme = fs.readFileSync(env.README_PATH, 'utf8');
  const start = readme.indexOf(`\`\`\`${info}\n`);
  assert.ok(start >= 0, `the README has a \`\`\`${info} block`);
  const body = readme.slice(start + info.length + 4);
  return body.slice(0, body.indexOf('```'));
}

/** The README's `info` snippet as the application's entry: the values it names read from the
 * page's query string, VWO pointed at its stand-in (`gatewayService`, VWO's option for a
 * self-hosted gateway), then `epilogue` (the application's own code). */
function readmeApp(info, epilogue, file) {
  const code = snippet(info);
  const pointed = code.replace(
    'init({ sdkKey',
    "init({ gatewayService: { url: q.get('gateway') }, logger: { level: 'ERROR' }, sdkKey",
  );
  assert.notEqual(pointed, code, `the ${info} snippet calls VWO's init({ sdkKey, … })`);
  const preamble = `const q = new URLSearchParams(location.search);
const SENTRY_DSN = q.get('dsn');
const VWO_SDK_KEY = q.get('sdkKey');
const VWO_ACCOUNT_ID = q.get('accountId');
`;
  const out = path.join(app, file);
  fs.writeFileSync(out, preamble + pointed + fs.readFileSync(path.join(pages, epilogue), 'utf8'));
  return out;
}

/** Builds what the pages load, as the application's own build would, with esbuild: the
 * CDN-style Sentry, and each `[info, epilogue, out]`: the README's `info` snippet followed by the
 * page's `epilogue`, bundled into `out`. */
async function build(bundles = BUNDLES) {
  const esbuild = require('esbuild');
  const common = { bundle: true, platform: 'browser', absWorkingDir: app, logLevel: 'error' };
  await esbuild.build({
    ...common,
    entryPoints: [path.join(pages, 'sentry-cdn.mjs')],
    format: 'iife',
    globalName: 'Sentry',
    outfile: path.join(app, 'sentry-cdn.js'),
  });
  for (const [info, epilogue, out] of bundles) {
    const entry = readmeApp(info, epilogue, `readme-${out.replace(/\.js$/, path.extname(epilogue))}`);
    await esbuild.build({
      ...common,
      entryPoints: [entry],
      format: 'esm',
      jsx: 'automatic',
      define: { 'process.env.NODE_ENV': '"production"' },
      outfile: path.join(app, out),
    });
  }
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript' };

/** The test pages' bundles: the README's browser and React snippets, each as an application. */
const BUNDLES = [
  ['js browser', 'bundle-epilogue.mjs', 'bundle.js'],
  ['jsx react', 'react-epilogue.jsx', 'react.js'],
];

/** Serves the pages and the application's folder (its node_modules included) on 127.0.0.1; the
 * server and its origin. */
function serve() {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      const name = decodeURIComponent(new URL(req.url, 'http://x').pathname).slice(1);
      const file = [path.join(pages, name), path.join(app, name)].find(
        (f) => !name.includes('..') && fs.existsSync(f) && fs.statSync(f).isFile(),
      );
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
      fs.createReadStream(file).pipe(res);
    });
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, origin: `http://127.0.0.1:${server.address().port}` }),
    );
  });
}

/** Headless Chromium: the system's, at CHROMIUM. */
function launch() {
  const { chromium } = require('playwright-core');
  return chromium.launch({ executablePath: env.CHROMIUM, args: ['--no-sandbox'] });
}

module.exports = { build, serve, launch };
