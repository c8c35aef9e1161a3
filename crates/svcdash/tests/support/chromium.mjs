// What the browser scripts share: settings from the environment, and headless
// Chromium (playwright-core, Debian's chromium) started for this machine.
//
// Environment: TEST_NODE_MODULES (where playwright-core is installed),
// SCREENSHOTS (folder), CHROMIUM (default /usr/bin/chromium).

import { createRequire } from "node:module";
import path from "node:path";
import fs from "node:fs";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/**
 * Opens `url` without a session, signs in on the login page it leads to as USER
 * with PASSWORD, and waits to be back on `url`.
 */
export async function signIn(page, url) {
  await page.goto(url);
  await page.waitForURL(/\/auth\/login/);
  await page.getByLabel("User name").fill(env("USER"));
  await page.getByLabel("Password").fill(env("PASSWORD"));
  await page.keyboard.press("Enter");
  await page.waitForURL(url);
}

/** The screenshot folder, created. */
export function screenshots() {
  const shots = env("SCREENSHOTS");
  fs.mkdirSync(shots, { recursive: true });
  return shots;
}

export function launch() {
  const require = createRequire(path.join(env("TEST_NODE_MODULES"), "noop.js"));
  const { chromium } = require("playwright-core");
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // Root in a container, and a closed network: see FACTS on headless Chromium.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

/**
 * A page of a new browser context, its default timeout set, collecting script
 * errors and Content-Security-Policy violations (the pages must work under
 * svcdash's policy: something it blocks is an error, not a silent gap).
 */
export async function openPage(browser, { width = 1280, height = 800, timeout = 60_000 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const errors = [];
  await context.exposeBinding("__reportCspViolation", (_source, text) => errors.push(text));
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__reportCspViolation(
        `Content Security Policy: ${e.effectiveDirective} blocked ${e.blockedURI || "inline content"} ` +
          `in ${e.documentURI} (${e.sourceFile || "the document"}:${e.lineNumber})`,
      );
    });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) errors.push(`console: ${message.text()}`);
  });
  return { page, errors };
}

/**
 * Runs `drive(browser, findings)`, then prints the findings as one JSON line; on
 * failure prints the reason and the findings so far and exits non-zero.
 */
export async function run(drive) {
  const browser = await launch();
  const findings = {};
  try {
    await drive(browser, findings);
    console.log(JSON.stringify(findings));
  } catch (e) {
    console.error(`browser test failed: ${e.stack || e}`);
    console.error(`findings so far: ${JSON.stringify(findings)}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
