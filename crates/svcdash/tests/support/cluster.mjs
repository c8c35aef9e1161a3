// Drives the pages of a Redis cluster instance in headless Chromium (playwright-core,
// Debian's chromium) as a person would: sign in, read the nodes and their roles on
// the overview and the Metrics tabs, restore backup 1 after confirming, and read its
// rows in the restore history (one per node). Prints one JSON line of findings on
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
// A restore of three nodes on a loaded 2-core machine can take a minute and more.
const TIMEOUT = 180_000;

const cells = async (row) => (await row.innerText()).split("\t").map((s) => s.trim());

await run(async (browser, findings) => {
  const { page, errors } = await openPage(browser, { height: 1000, timeout: TIMEOUT });

  await signIn(page, `${base}/service-instances/${instance}`);
  const nodes = page.getByRole("table").filter({ has: page.getByRole("columnheader", { name: "Role" }) });
  await nodes.waitFor();
  findings.nodes = [];
  for (const row of await nodes.locator("tbody tr").all()) {
    findings.nodes.push((await cells(row)).slice(0, 2));
  }
  await page.screenshot({ path: path.join(shots, "cluster-overview.png"), fullPage: true });

  await page.getByRole("link", { name: "Metrics" }).first().click();
  const tabs = page.getByRole("navigation", { name: "Nodes" });
  await tabs.waitFor();
  findings.tabs = (await tabs.getByRole("link").allInnerTexts()).map((s) => s.trim());
  await page.screenshot({ path: path.join(shots, "cluster-metrics.png"), fullPage: true });

  await page.goto(`${base}/service-instances/${instance}/backups`);
  const backup = page.locator('tr[data-backup="1"]');
  findings.takenFrom = (await backup.locator("td.backup-node").innerText()).trim();
  await backup.getByRole("button", { name: "Restore" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  await dialog.getByRole("button", { name: "Yes" }).click();
  await page.getByRole("status").filter({ hasText: "Restore 1 of backup 1 is queued." }).waitFor();
  const rows = page.locator('tr[data-restore="1"]');
  // Every node's row done: the restore ran on each.
  await page.waitForFunction(
    () => document.querySelectorAll('tr[data-restore="1"] .badge.done').length === 3,
    null,
    { timeout: TIMEOUT },
  );
  findings.restoreRows = [];
  for (const row of await rows.all()) {
    findings.restoreRows.push(await cells(row));
  }
  findings.fusedCells = await rows.first().locator('td[rowspan="3"]').count();
  await page.screenshot({ path: path.join(shots, "cluster-restores.png"), fullPage: true });
  findings.pageErrors = errors;
});
