// Drives the Swagger UI at /docs/ in headless Debian Chromium, offline:
// every request to a host other than 127.0.0.1 is aborted and fails the test.
// Env (set by run.sh): BASE_URL, TOKEN, TASK_TITLE, SCREENSHOT, USER_DATA_DIR.
import { chromium } from 'playwright-core';

const { BASE_URL, TOKEN, TASK_TITLE, SCREENSHOT, USER_DATA_DIR } = process.env;
for (const [k, v] of Object.entries({ BASE_URL, TOKEN, TASK_TITLE, SCREENSHOT, USER_DATA_DIR })) {
  if (!v) throw new Error(`${k} is not set (run this through run.sh)`);
}

const context = await chromium.launchPersistentContext(USER_DATA_DIR, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
  viewport: { width: 1280, height: 900 },
});
context.setDefaultTimeout(15_000);

// Off-host loads can be stopped in two places: the server's CSP blocks most
// inside the page (never reaching the network), and this route aborts the rest.
// Both count as an attempt.
const offHost = [];
const isOffHost = (href) => /^(https?|wss?):/.test(href) && new URL(href).hostname !== '127.0.0.1';
await context.route('**/*', (route) => {
  const href = route.request().url();
  if (!isOffHost(href)) return route.continue();
  offHost.push(href);
  return route.abort('blockedbyclient');
});
await context.exposeFunction('reportCspViolation', (href, directive) => {
  if (isOffHost(href)) offHost.push(`${href} (blocked by CSP ${directive})`);
  else console.warn(`note: CSP blocked ${href || 'something'} (${directive})`);
});
await context.addInitScript(() => document.addEventListener('securitypolicyviolation',
  (e) => window.reportCspViolation(e.blockedURI, e.effectiveDirective)));

const button = (scope, text) => scope.locator('button', { hasText: new RegExp(`^\\s*${text}\\s*$`) });

let failure;
const page = context.pages()[0] ?? (await context.newPage());
try {
  await page.goto(`${BASE_URL}/docs/`);

  // Authorize with the bearer token.
  await page.locator('.scheme-container button.authorize').click();
  const dialog = page.locator('.dialog-ux .modal-ux');
  await dialog.locator('.auth-container input').first().fill(TOKEN);
  // Swagger UI's aria-labels differ from the visible text, so match the text.
  await button(dialog, 'Authorize').click();
  await button(dialog, 'Logout').waitFor(); // shows it took
  await button(dialog, 'Close').click();
  await dialog.waitFor({ state: 'detached' });

  // GET /api/v1/tasks (tag "tasks", operationId "list"): Try it out, Execute.
  const op = page.locator('#operations-tasks-list');
  await op.locator('.opblock-summary').first().click();
  await button(op, 'Try it out').click();
  await button(op, 'Execute').click();

  const live = op.locator('.live-responses-table .response');
  await live.waitFor();
  const status = (await live.locator('.response-col_status').innerText()).trim();
  const body = await live.locator('.response-col_description pre').first().innerText();
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`screenshot: ${SCREENSHOT}`);

  if (status !== '200') throw new Error(`Swagger UI shows status ${JSON.stringify(status)}, expected 200`);
  if (!body.includes(TASK_TITLE)) {
    throw new Error(`response body shown does not contain "${TASK_TITLE}":\n${body.slice(0, 500)}`);
  }

  // The token lives as long as the page: nothing stored, and a reload forgets it.
  const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
  if (stored.includes(TOKEN)) throw new Error(`the token was stored by the page: ${stored.slice(0, 200)}`);
  await page.reload();
  await page.locator('.scheme-container button.authorize').click();
  await button(dialog, 'Authorize').waitFor(); // not "Logout": no token any more
} catch (err) {
  failure = err;
  await page.screenshot({ path: SCREENSHOT, fullPage: true }).catch(() => {});
} finally {
  await context.close();
}

if (offHost.length) {
  console.error(`FAIL: the page tried to load from other hosts (not offline):\n  ${offHost.join('\n  ')}`);
  process.exitCode = 1;
}
if (failure) {
  console.error(`FAIL: ${failure.message}`);
  process.exitCode = 1;
}
if (!process.exitCode) console.log(`ok: Swagger UI listed the task "${TASK_TITLE}" with status 200, offline`);
