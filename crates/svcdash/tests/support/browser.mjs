// Drives svcdash's pages in headless Chromium (playwright-core, Debian's
// chromium) the way a person would: sign in, trigger a backup, watch it finish,
// restore it after confirming, read the restore history, set a personal key and
// download a backup made with it, change the backup settings, recover another
// instance's backups into this one, switch on automatic reload. Saves a screenshot of each page. Prints one JSON line of findings on
// success; exits non-zero with the reason otherwise.
//
// Environment: BASE_URL, INSTANCE (id), USER, PASSWORD, PERSONAL_KEY, ORIGIN_BACKUP_GUID
// and ORIGIN_KEY (another instance's backups, for disaster recovery), SCREENSHOTS (folder),
// TEST_NODE_MODULES (where playwright-core is installed),
// CHROMIUM (default /usr/bin/chromium).

import path from "node:path";

import { env, openPage, run, screenshots } from "./chromium.mjs";

const base = env("BASE_URL");
const instance = env("INSTANCE");
const shots = screenshots();
const TIMEOUT = 60_000;

await run(async (browser, findings) => {
  const { page, errors } = await openPage(browser, { height: 800, timeout: TIMEOUT });

  // Asking for the backups page without a session lands on the login page.
  await page.goto(`${base}/service-instances/${instance}/backups`);
  await page.waitForURL(/\/auth\/login/);
  await page.screenshot({ path: path.join(shots, "login.png") });
  await page.getByLabel("User name").fill(env("USER"));
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "Wrong user name or password." }).waitFor();
  await page.getByLabel("Password").fill(env("PASSWORD"));
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/service-instances/${instance}/backups`);
  await page.getByRole("heading", { name: "Available Backups" }).waitFor();
  findings.emptyState = await page.getByText("No backups yet.").isVisible();

  // Settings menu → Manually Trigger A Backup, with the keyboard.
  await page.getByRole("button", { name: "Settings", exact: true }).focus();
  await page.keyboard.press("Enter");
  const trigger = page.getByRole("menuitem", { name: "Manually Trigger A Backup" });
  await trigger.waitFor();
  await page.screenshot({ path: path.join(shots, "backup-menu.png") });
  await page.keyboard.press("Enter");
  await page.getByRole("status").filter({ hasText: "Backup 1 is queued." }).waitFor();
  // The page follows the running job by itself, without a full reload.
  await page.evaluate(() => { window.__sameDocument = true; });
  const row = page.locator('tr[data-backup="1"]');
  await row.locator(".badge.done").waitFor();
  findings.backupSize = (await row.locator("td").nth(5).innerText()).trim();
  findings.sameDocument = await page.evaluate(() => window.__sameDocument === true);
  await page.screenshot({ path: path.join(shots, "backups.png"), fullPage: true });

  // Restore: a dialog asks first; No leaves everything as it was.
  await row.getByRole("button", { name: "Restore" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  await page.screenshot({ path: path.join(shots, "restore-dialog.png") });
  await dialog.getByRole("button", { name: "No" }).click();
  await dialog.waitFor({ state: "hidden" });
  findings.restoresAfterNo = await page.locator("#restores-title ~ div tbody tr").count();
  await row.getByRole("button", { name: "Restore" }).click();
  await dialog.getByRole("button", { name: "Yes" }).click();
  await page.getByRole("status").filter({ hasText: "Restore 1 of backup 1 is queued." }).waitFor();
  const history = page.locator('tr[data-restore="1"]').first();
  await history.locator(".badge.done").waitFor();
  findings.restoreRow = (await history.innerText()).split("\t").map((s) => s.trim());
  await page.screenshot({ path: path.join(shots, "restore-history.png"), fullPage: true });

  // A personal key: the browser enforces its minimum length, then backups made
  // afterwards can be downloaded.
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  await page.getByRole("menuitem", { name: "Set Encryption Key" }).click();
  const keyDialog = page.getByRole("dialog", { name: "Set Encryption Key" });
  await keyDialog.getByLabel("Encryption Key").fill("short");
  findings.shortKeyValid = await keyDialog.getByLabel("Encryption Key").evaluate((input) => input.checkValidity());
  await keyDialog.getByLabel("Encryption Key").fill(env("PERSONAL_KEY"));
  await page.screenshot({ path: path.join(shots, "set-key.png") });
  // Saving reloads the page; the copy is held back until the person has opened
  // the Settings menu, which the copy arriving then must leave open.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const pagePath = new URL(page.url()).pathname;
  await page.route((url) => url.pathname === pagePath, async (route) => {
    if (route.request().resourceType() !== "fetch") return route.continue();
    await held;
    return route.continue();
  }, { times: 1 });
  await keyDialog.getByRole("button", { name: "Save" }).click();
  await page.getByRole("status").filter({ hasText: "The encryption key is set." }).waitFor();
  findings.firstBackupDownloadDisabled = await row.getByRole("button", { name: "Download" }).isDisabled();
  await page.evaluate(() => { window.__mainBeforeReload = document.getElementById("main"); });
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  const trigger2 = page.getByRole("menuitem", { name: "Manually Trigger A Backup" });
  await trigger2.waitFor();
  const arrived = page.waitForResponse((res) => new URL(res.url()).pathname === pagePath);
  release();
  await arrived;
  await page.waitForTimeout(500);
  findings.menuKeptThroughReload = await page.evaluate(
    () => document.getElementById("main") === window.__mainBeforeReload,
  ) && await trigger2.isVisible();
  await trigger2.click();
  const second = page.locator('tr[data-backup="2"]');
  await second.locator(".badge.done").waitFor();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    second.getByRole("link", { name: "Download" }).click(),
  ]);
  const saved = path.join(shots, "..", download.suggestedFilename());
  await download.saveAs(saved);
  findings.downloadName = download.suggestedFilename();
  findings.downloadPath = saved;

  // Backup settings: saved through the form.
  await page.getByLabel("Keep at least (backups)").fill("2");
  await page.getByLabel("Retention time (days)").fill("3");
  await page.getByLabel("Exclude from scheduled backups").check();
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByRole("status").filter({ hasText: "The backup settings are saved." }).waitFor();

  // Disaster recovery from another instance's backups: a wrong key is refused
  // with the reason; the right one, confirmed, restores here.
  const drGuid = page.getByLabel("Backup guid of the lost instance");
  const drKey = page.getByLabel("Its encryption key");
  await drGuid.fill(env("ORIGIN_BACKUP_GUID"));
  await drKey.fill("not the origin's key");
  await page.getByRole("button", { name: "Restore into this instance" }).click();
  await page.getByRole("dialog", { name: "Replace this instance's data?" }).getByRole("button", { name: "Yes" }).click();
  await page.getByRole("alert").filter({ hasText: "no finished backup" }).waitFor();
  await drKey.fill(env("ORIGIN_KEY"));
  await page.getByRole("button", { name: "Restore into this instance" }).click();
  await page.screenshot({ path: path.join(shots, "disaster-recovery.png"), fullPage: true });
  await page.getByRole("dialog", { name: "Replace this instance's data?" }).getByRole("button", { name: "Yes" }).click();
  await page.getByRole("status").filter({ hasText: "Disaster recovery: restore 2 is queued." }).waitFor();
  await page.locator('tr[data-restore="2"]').first().locator(".badge.done").waitFor();
  findings.disasterRecovery = true;

  // Automatic reload: the switch is remembered by the browser.
  const auto = page.getByRole("switch", { name: "Automatic Reload" });
  findings.autoReloadBefore = await auto.isChecked();
  await auto.check();
  await page.reload();
  findings.autoReloadAfterReload = await page.getByRole("switch", { name: "Automatic Reload" }).isChecked();
  await page.getByRole("button", { name: "Reload" }).click();

  await page.getByRole("link", { name: "Overview" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.screenshot({ path: path.join(shots, "overview.png"), fullPage: true });
  await page.getByRole("link", { name: "svcdash" }).click();
  await page.getByRole("heading", { name: "Service instances" }).waitFor();
  findings.instancesListed = await page.locator(`a[href="/service-instances/${instance}"]`).count();
  await page.screenshot({ path: path.join(shots, "instances.png"), fullPage: true });

  // A phone-sized screen gets the same page, laid out for it.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/service-instances/${instance}/backups`);
  await page.screenshot({ path: path.join(shots, "backups-phone.png"), fullPage: true });

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/auth\/login/);
  findings.signedOut = true;
  findings.pageErrors = errors;
});
