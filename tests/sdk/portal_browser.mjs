// Drives Debian's Chromium through mediagate's portal (tests/portal.rs starts the server and
// answers the CALL lines with API requests made with reqwest). Saves a screenshot of each page
// into MG_SHOTS (docs/portal/). Prints OK at the end; any failure exits non-zero.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";

const base = process.env.MG_HTTP;
const key = process.env.MG_KEY;
const adminKey = process.env.MG_ADMIN_KEY;
const shots = process.env.MG_SHOTS;
const today = process.env.MG_TODAY;
const prompt = process.env.MG_PROMPT;
const failed = process.env.MG_FAILED;

const replies = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
/** Asks the Rust side to call the API with `secret`; returns the HTTP status it got. */
async function callApi(secret) {
  console.log(`CALL ${secret}`);
  const { value } = await replies.next();
  return Number(value);
}

// playwright's launch() starts the browser with a fresh, temporary user-data-dir of its own.
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const violations = [];
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  page.on("pageerror", (e) => violations.push(String(e)));
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  // Sign in with an API key.
  await page.goto(`${base}/portal`);
  assert.equal(await page.title(), "Sign in · mediagate portal");
  await shot("sign-in");
  await page.fill("#key", "key_not-a-real-key");
  await page.click("button[type=submit]");
  assert.match(await page.textContent("main"), /This key is not valid\./);
  assert.doesNotMatch(await page.content(), /not-a-real-key/);
  await page.fill("#key", key);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}/portal/keys`);
  const cookies = await context.cookies();
  assert.equal(cookies.length, 1);
  assert.equal(cookies[0].httpOnly, true);
  assert.equal(cookies[0].sameSite, "Strict");
  assert.equal(await page.evaluate(() => document.cookie), "", "the session cookie is not readable by script");
  assert.doesNotMatch(await page.content(), new RegExp(key), "the key never reaches the page");

  // Create a scoped key, use it over the API, disable it, see the API refuse it.
  await page.fill("#description", "ci <b>robot</b>");
  await page.fill("#scopes", "task:imageInference");
  await page.click("#create-key button[type=submit]");
  const secret = (await page.textContent("#new-secret")).trim();
  assert.match(secret, /^key_[0-9a-f]+$/);
  await shot("keys-created");
  assert.equal(await callApi(secret), 200, "the new key works over the API");
  const row = page.locator("tr", { hasText: "ci <b>robot</b>" });
  assert.equal(await row.locator("td").nth(2).textContent(), "task:imageInference");
  await row.locator("button[data-action=disable]").click();
  await page.waitForURL(`${base}/portal/keys`);
  assert.equal(await page.locator("tr", { hasText: "ci <b>robot</b>" }).locator(".status").textContent(), "disabled");
  assert.equal(await callApi(secret), 401, "a disabled key is refused");
  await shot("keys");

  // Usage: today's spend on the chart.
  await page.click("nav >> text=Usage");
  await page.waitForURL(/\/portal\/usage/);
  const bars = page.locator(`#spend-chart rect.bar[data-day="${today}"]`);
  assert.ok((await bars.count()) >= 1, "today's bar is drawn");
  assert.ok(Number(await bars.first().getAttribute("height")) > 0);
  assert.match(await page.textContent("#spend"), new RegExp(today));
  await shot("usage");

  // Request history: filters as a GET form, the hostile prompt shown as text.
  await page.click("nav >> text=Requests");
  await page.waitForURL(`${base}/portal/history`);
  assert.ok((await page.locator("#history tbody tr").count()) >= 3);
  assert.match(await page.locator(`tr[data-task="${failed}"]`).textContent(), /assetAspectRatio/);
  await shot("history");
  await page.selectOption("select[name=status]", "success");
  await page.fill("input[name=q]", "__pwned");
  await page.click("#history-filters button[type=submit]");
  await page.waitForURL(/status=success/);
  const rows = page.locator("#history tbody tr");
  assert.equal(await rows.count(), 1);
  await rows.first().locator("a").click();
  await page.waitForURL(/\/portal\/history\/[0-9a-f-]{36}$/);
  assert.ok((await page.textContent("#task-request")).includes(JSON.stringify(prompt)), "the prompt is shown as text");
  assert.equal(await page.locator("main script, main img").count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no script of the prompt ran");
  await shot("history-task");
  await page.goto(`${base}/portal/history/${failed}`);
  assert.match(await page.textContent("#task-error"), /assetAspectRatio/);
  assert.match(await page.getAttribute("#error-doc", "href"), /\/docs\/errors#assetAspectRatio$/);
  assert.equal(await page.textContent("#task-uuid"), failed);
  assert.equal(await page.locator("button[data-copy=task-uuid]").count(), 1);
  await shot("history-error");

  // Sign out: the session is gone, the old cookie does not come back to life.
  await page.click("#sign-out");
  await page.waitForURL(`${base}/portal`);
  assert.equal((await context.cookies()).length, 0);
  const after = await page.goto(`${base}/portal/keys`);
  assert.equal(after.status(), 401);

  // Operator sign-in with an admin key.
  await page.goto(`${base}/portal`);
  await page.fill("#key", adminKey);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}/portal/operator`);
  assert.ok(await page.locator('tr[data-account="default"]').count(), "the accounts are listed");
  await page.fill("#name", "acme");
  await page.fill("#credit", "3");
  await page.click("#create-account button[type=submit]");
  await page.waitForURL(`${base}/portal/operator`);
  assert.match(await page.locator('tr[data-account="acme"]').textContent(), /\$3\.00/);
  await shot("operator");
  await page.click('tr[data-account="default"] a');
  await page.waitForURL(/\/portal\/operator\/accounts\/default/);
  await shot("operator-account");
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(violations, [], "no CSP violation or script error on any page");
  console.log("OK");
} finally {
  await browser.close();
  process.stdin.destroy();
}
