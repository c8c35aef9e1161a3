// Cancels a running backup from the Backups page in headless Chromium
// (playwright-core, Debian's chromium) as a person would: sign in, watch the
// backup's progress bar, decline then confirm the cancel, and see the backup
// listed as failed with who cancelled it. Prints one JSON line of findings on
// success; exits non-zero with the reason otherwise.
//
// Environment: BASE_URL, INSTANCE (id), USER, PASSWORD, SCREENSHOTS (folder),
// TEST_NODE_MODULES (where playwright-core is installed), CHROMIUM (default
// /usr/bin/chromium).

import path from "node:path";

import { env, openPage, run, screenshots, signIn } from "./chromium.mjs";

const base = env("BASE_URL");
const instance = env("INSTANCE");
const shots = screenshots();
const TIMEOUT = 90_000;

await run(async (browser, findings) => {
  const { page, errors } = await openPage(browser, { height: 1000, timeout: TIMEOUT });

  await signIn(page, `${base}/service-instances/${instance}/backups`);

  const row = page.locator('tr[data-backup="1"]');
  const bar = row.locator("progress");
  await bar.waitFor();
  findings.barLabel = await bar.getAttribute("aria-label");
  findings.barText = (await row.locator('[data-slot="progress"] .small').innerText()).trim();
  await page.screenshot({ path: path.join(shots, "backup-progress.png"), fullPage: true });

  // No leaves the backup running.
  const button = row.getByRole("button", { name: "Cancel" });
  await button.click();
  const dialog = page.getByRole("dialog", { name: /^Cancel backup 1\?/ });
  await dialog.waitFor();
  findings.dialog = (await dialog.innerText()).replace(/\s+/g, " ").trim();
  await page.screenshot({ path: path.join(shots, "backup-cancel-dialog.png") });
  await dialog.getByRole("button", { name: "No" }).click();
  await dialog.waitFor({ state: "hidden" });
  findings.runningAfterNo = await row.locator(".badge.running").count();

  await button.click();
  await dialog.getByRole("button", { name: "Yes, cancel it" }).click();
  const status = page.getByRole("status").filter({ hasText: /^Backup 1 is stopping/ });
  await status.waitFor();
  findings.status = (await status.innerText()).trim();
  await page.locator('tr[data-backup="1"] .badge.failed').waitFor();
  findings.row = (await page.locator('tr[data-backup="1"]').innerText()).replace(/\s+/g, " ").trim();
  await page.screenshot({ path: path.join(shots, "backup-cancelled.png"), fullPage: true });
  findings.pageErrors = errors;
});
