// Drives the Metrics and Updates pages and the Restart / Recreate buttons in
// headless Chromium (playwright-core, Debian's chromium) as a person would.
// PHASE=lifecycle: sign in, read the metrics, decline then confirm a restart,
// confirm a recreate, apply the available update, watching each finish.
// PHASE=parachute: sign in and read what the overview and metrics say about
// an activated parachute. Prints one JSON line of findings on success; exits
// non-zero with the reason otherwise.
//
// Environment: PHASE, BASE_URL, INSTANCE (id), USER, PASSWORD, SCREENSHOTS (folder),
// TEST_NODE_MODULES (where playwright-core is installed), CHROMIUM (default /usr/bin/chromium).

import path from "node:path";

import { env, openPage, run, screenshots, signIn } from "./chromium.mjs";

const base = env("BASE_URL");
const instance = env("INSTANCE");
const shots = screenshots();
const phase = env("PHASE");
const TIMEOUT = 90_000;

await run(async (browser, findings) => {
  const { page, errors } = await openPage(browser, { height: 900, timeout: TIMEOUT });

  await signIn(page, `${base}/service-instances/${instance}`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const badge = page.locator("h1 .badge");
  const tab = (name) => page.getByRole("navigation", { name: "Instance" }).getByRole("link", { name, exact: true });

  // Marks the page's content as shown before the action; the page replaces it
  // when it reloads itself (and keeps doing so while a job is pending).
  const markStale = () => page.evaluate(() => { document.getElementById("main").dataset.stale = "1"; });
  async function waitUntilAvailableAgain() {
    await page.locator('main:not([data-stale])[data-busy="false"] h1 .badge.available').waitFor();
  }

  if (phase === "lifecycle") {
    findings.updateNotice = await page.locator(".notice").innerText();

    await tab("Metrics").click();
    await page.getByRole("heading", { name: "Node 0", exact: true }).waitFor();
    // Enough collections (one a second here) for every chart: CPU use needs three.
    for (let tries = 0; tries < 30 && (await page.locator(".chart polyline").count()) < 5; tries++) {
      await page.waitForTimeout(1000);
      await page.reload();
      await page.getByRole("heading", { name: "Node 0", exact: true }).waitFor();
    }
    findings.gauges = {};
    for (const g of await page.locator(".gauge").all()) {
      findings.gauges[await g.locator(".gauge-label").innerText()] = await g.locator(".gauge-value").innerText();
    }
    findings.load = await page.locator("#load").innerText();
    findings.cpu = await page.locator("#cpu").innerText();
    findings.engine = await page.locator("#engine").innerText();
    findings.charts = await page.locator(".chart svg[role=img]").count();
    findings.chartNames = await page.locator(".chart figcaption span").allInnerTexts();
    findings.parachuteRows = await page.locator("[data-parachute]").allInnerTexts();
    await page.screenshot({ path: path.join(shots, "metrics.png"), fullPage: true });

    // Restart: No does nothing; Yes restarts and the page follows it.
    await page.getByRole("button", { name: "Restart", exact: true }).click();
    const restartDialog = page.getByRole("dialog", { name: "Restart the instance?" });
    await restartDialog.waitFor();
    findings.restartExplains = await restartDialog.innerText();
    await restartDialog.getByRole("button", { name: "No" }).click();
    await restartDialog.waitFor({ state: "hidden" });
    await page.getByRole("button", { name: "Restart", exact: true }).click();
    await markStale();
    await restartDialog.getByRole("button", { name: "Yes, restart" }).click();
    await page.locator("#flash").filter({ hasText: "The restart is queued." }).waitFor();
    await waitUntilAvailableAgain();
    findings.afterRestart = await badge.innerText();

    // Recreate, from the overview.
    await tab("Overview").click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByRole("button", { name: "Recreate", exact: true }).click();
    const recreateDialog = page.getByRole("dialog", { name: "Recreate the instance?" });
    await recreateDialog.waitFor();
    findings.recreateExplains = await recreateDialog.innerText();
    await page.screenshot({ path: path.join(shots, "recreate-dialog.png") });
    await markStale();
    await recreateDialog.getByRole("button", { name: "Yes, recreate" }).click();
    await page.locator("#flash").filter({ hasText: "The recreate is queued." }).waitFor();
    await waitUntilAvailableAgain();
    findings.afterRecreate = await badge.innerText();

    // The update.
    await tab("Updates").click();
    await page.getByRole("heading", { name: "Updates" }).waitFor();
    findings.versionBefore = await page.locator("#running-version").innerText();
    findings.updatesListed = (await page.locator("#updates tbody tr").allInnerTexts()).map((t) => t.split("\t"));
    await page.screenshot({ path: path.join(shots, "updates.png"), fullPage: true });
    await page.getByRole("button", { name: "Update", exact: true }).click();
    await markStale();
    await page.getByRole("dialog", { name: "Update the instance?" }).getByRole("button", { name: "Yes, update" }).click();
    await page.locator("#flash").filter({ hasText: "queued" }).waitFor();
    await waitUntilAvailableAgain();
    await page.locator("#no-updates").waitFor();
    findings.versionAfter = await page.locator("#running-version").innerText();
  } else {
    findings.alert = await page.locator("#parachute-alert").innerText();
    findings.reason = await page.locator("#state-reason").innerText();
    await page.screenshot({ path: path.join(shots, "parachute-overview.png"), fullPage: true });
    await tab("Metrics").click();
    await page.getByRole("heading", { name: "Node 0", exact: true }).waitFor();
    findings.metricsAlert = await page.locator("#parachute-alert").isVisible();
    findings.parachuteRows = await page.locator("[data-parachute]").allInnerTexts();
    findings.engine = await page.locator("#engine").innerText();
    // Restarting while the disk is still full is refused, and the page says why.
    await page.getByRole("button", { name: "Restart", exact: true }).click();
    await page.getByRole("dialog", { name: "Restart the instance?" }).getByRole("button", { name: "Yes, restart" }).click();
    const flash = page.locator("#flash.error");
    await flash.waitFor();
    findings.refused = await flash.innerText();
    await page.screenshot({ path: path.join(shots, "parachute-metrics.png"), fullPage: true });
  }
  findings.pageErrors = errors;
});
