// Drives the Point-in-Time Recovery panel of the Backups page in headless Chromium
// (playwright-core, Debian's chromium) as a person would: sign in, read the window,
// find the field bounded to it, decline then confirm a restore to TARGET, and
// watch it finish in the restore history. Prints one JSON line of findings on
// success; exits non-zero with the reason otherwise.
//
// Environment: BASE_URL, INSTANCE (id), USER, PASSWORD, TARGET (UTC,
// YYYY-MM-DDTHH:MM:SS.sss), SCREENSHOTS (folder), TEST_NODE_MODULES (where
// playwright-core is installed), CHROMIUM (default /usr/bin/chromium).

import path from "node:path";

import { env, openPage, run, screenshots, signIn } from "./chromium.mjs";

const base = env("BASE_URL");
const instance = env("INSTANCE");
const target = env("TARGET");
const shots = screenshots();
const TIMEOUT = 90_000;

await run(async (browser, findings) => {
  const { page, errors } = await openPage(browser, { height: 1000, timeout: TIMEOUT });

  await signIn(page, `${base}/service-instances/${instance}/backups`);
  const panel = page.locator("section#pitr");
  await panel.getByRole("heading", { name: "Point-in-Time Recovery" }).waitFor();
  findings.window = (await panel.locator("#pitr-window").innerText()).trim();
  findings.bar = await panel.getByRole("img").getAttribute("aria-label");
  findings.barParts = await panel.locator("svg.pitr-bar rect").count();

  const field = panel.getByLabel("Restore to (UTC)");
  findings.min = await field.getAttribute("min");
  findings.max = await field.getAttribute("max");
  // Before the window: the browser refuses the value itself.
  await field.fill("2000-01-01T00:00:00.000");
  findings.tooEarlyValid = await field.evaluate((input) => input.checkValidity());
  await field.fill(target);
  findings.targetValid = await field.evaluate((input) => input.checkValidity());
  await panel.getByText("Restore into a new instance instead").click();
  findings.newInstanceCommand = (await panel.locator("#pitr-new-instance code").innerText()).trim();
  await page.screenshot({ path: path.join(shots, "pitr-panel.png"), fullPage: true });

  // A dialog names what is lost; No leaves everything as it was.
  const button = panel.getByRole("button", { name: "Restore to this moment" });
  await button.click();
  const dialog = page.getByRole("dialog", { name: /Restore to/ });
  await dialog.waitFor();
  findings.dialog = (await dialog.innerText()).replace(/\s+/g, " ").trim();
  await page.screenshot({ path: path.join(shots, "pitr-dialog.png") });
  await dialog.getByRole("button", { name: "No" }).click();
  await dialog.waitFor({ state: "hidden" });
  findings.restoresAfterNo = await page.locator("#restores-title ~ div tbody tr").count();

  await button.click();
  await dialog.getByRole("button", { name: "Yes" }).click();
  await page.getByRole("status").filter({ hasText: /Restore 1 to .* is queued\./ }).waitFor();
  const history = page.locator('tr[data-restore="1"]').first();
  await history.locator(".badge.done").waitFor();
  findings.restoreRow = (await history.innerText()).split("\t").map((s) => s.trim());
  await page.screenshot({ path: path.join(shots, "pitr-restored.png"), fullPage: true });
  findings.pageErrors = errors;
});
