// svcdash pages: reload without a full page load, the Automatic Reload switch
// (remembered per browser), the settings menu, and actions through the JSON API.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  const AUTO_KEY = "svcdash.autoReload";
  const AUTO_EVERY_MS = 5000;
  const BUSY_EVERY_MS = 1500;
  const flash = document.getElementById("flash");

  function say(text, isError) {
    flash.textContent = text;
    flash.className = isError ? "error" : "";
  }

  // A dialog or menu the person has open: a reload now would take it away.
  function inUse() {
    return document.querySelector("dialog[open]") || document.querySelector(".menu-items:not([hidden])");
  }

  // Swaps in <main> of a fresh copy of this page, keeping focus; while a dialog
  // or menu is open (also one opened while the copy was on its way), it tries
  // again later instead.
  async function reload() {
    if (inUse()) { schedule(); return; }
    const res = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (res.redirected && new URL(res.url).pathname === "/auth/login") { location.assign(res.url); return; }
    if (!res.ok) { say(`Reload failed: HTTP ${res.status}`, true); return; }
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const fresh = doc.getElementById("main");
    const main = document.getElementById("main");
    if (!fresh || !main) return;
    if (inUse()) { schedule(); return; }
    const focused = document.activeElement?.dataset?.backup;
    main.replaceWith(fresh);
    bind();
    if (focused) document.querySelector(`[data-action="restore"][data-backup="${focused}"]`)?.focus();
    schedule();
  }

  let timer = null;
  function schedule() {
    clearTimeout(timer);
    const busy = document.getElementById("main")?.dataset.busy === "true";
    const auto = localStorage.getItem(AUTO_KEY) === "on";
    if (busy || auto) timer = setTimeout(() => reload().catch((e) => say(`Reload failed: ${e}`, true)), busy ? BUSY_EVERY_MS : AUTO_EVERY_MS);
  }

  async function call(url, method = "POST", payload = {}) {
    const res = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: JSON.stringify(payload),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.description || body.msg || `HTTP ${res.status}`);
    return body;
  }

  function closeMenus() {
    document.querySelectorAll(".menu-items").forEach((m) => { m.hidden = true; });
    document.querySelectorAll("[aria-haspopup]").forEach((b) => b.setAttribute("aria-expanded", "false"));
  }

  function bind() {
    document.querySelectorAll("[aria-haspopup]").forEach((btn) => {
      btn.addEventListener("click", () => {
        const menu = document.getElementById(btn.getAttribute("aria-controls"));
        const open = menu.hidden;
        closeMenus();
        menu.hidden = !open;
        btn.setAttribute("aria-expanded", String(open));
        if (open) menu.querySelector("button")?.focus();
      });
    });
    document.querySelectorAll('[data-action="backup"]').forEach((btn) => {
      btn.addEventListener("click", async () => {
        closeMenus();
        try {
          const body = await call(btn.dataset.url);
          say(`Backup ${body.id} is queued.`);
          await reload();
        } catch (e) { say(`The backup could not be triggered: ${e.message}`, true); }
      });
    });
    document.querySelectorAll('[data-action="set-key"]').forEach((btn) => {
      btn.addEventListener("click", () => {
        closeMenus();
        const dialog = document.getElementById("set-key");
        const form = dialog.querySelector("form");
        const error = dialog.querySelector('[data-slot="error"]');
        form.reset();
        error.textContent = "";
        dialog.querySelector("[data-close]").onclick = () => dialog.close();
        form.onsubmit = async (e) => {
          e.preventDefault();
          const key = form.elements.encryption_key.value;
          try {
            await call(form.dataset.url, "PATCH", { encryption_key: key });
            dialog.close();
            say("The encryption key is set. Backups triggered from now on can be downloaded.");
            await reload();
          } catch (err) { error.textContent = err.message; }
        };
        dialog.showModal();
      });
    });
    document.querySelectorAll('form[data-action="settings"]').forEach((form) => {
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const error = form.querySelector('[data-slot="error"]');
        error.textContent = "";
        try {
          await call(form.dataset.url, "PATCH", {
            min_backup_count: Number(form.elements.min_backup_count.value),
            retention_time: Number(form.elements.retention_time.value),
            exclude_from_auto_backup: form.elements.exclude_from_auto_backup.checked,
          });
          say("The backup settings are saved.");
        } catch (err) { error.textContent = err.message; }
      });
    });
    document.querySelectorAll('form[data-action="disaster-recovery"]').forEach((form) => {
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const error = form.querySelector('[data-slot="error"]');
        error.textContent = "";
        const dialog = document.getElementById("confirm-dr");
        dialog.returnValue = "";
        dialog.onclose = async () => {
          if (dialog.returnValue !== "yes") return;
          try {
            const body = await call(form.dataset.url, "POST", {
              backup_guid: form.elements.backup_guid.value.trim(),
              encryption_key: form.elements.encryption_key.value,
            });
            form.reset();
            say(`Disaster recovery: restore ${body.restore_id} is queued.`);
            await reload();
          } catch (err) { error.textContent = err.message; }
        };
        dialog.showModal();
      });
    });
    document.querySelectorAll('form[data-action="pitr"]').forEach((form) => {
      // The new-instance command follows the chosen moment.
      form.elements.target_time.addEventListener("input", () => {
        const moment = new Date(`${form.elements.target_time.value}Z`);
        const slot = document.querySelector('[data-slot="pitr-target"]');
        if (slot && !Number.isNaN(moment.getTime())) slot.textContent = moment.toISOString();
      });
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const error = form.querySelector('[data-slot="error"]');
        error.textContent = "";
        // The field holds a UTC time without its zone (and without trailing zeros).
        const moment = new Date(`${form.elements.target_time.value}Z`);
        if (Number.isNaN(moment.getTime())) { error.textContent = "Enter a date and time."; return; }
        const target = moment.toISOString();
        const shown = `${target.slice(0, 23).replace("T", " ")} UTC`;
        const dialog = document.getElementById("confirm-pitr");
        dialog.querySelectorAll('[data-slot="target"]').forEach((slot) => { slot.textContent = shown; });
        dialog.returnValue = "";
        dialog.onclose = async () => {
          if (dialog.returnValue !== "yes") return;
          try {
            const body = await call(form.dataset.url, "POST", { target_time: target });
            say(`Restore ${body.id} to ${shown} is queued.`);
            await reload();
          } catch (err) { error.textContent = err.message; }
        };
        dialog.showModal();
      });
    });
    document.querySelectorAll('[data-action="update"]').forEach(confirmPatch);
    document.querySelectorAll('[data-action="cancel"]').forEach((btn) => {
      btn.addEventListener("click", () => {
        const dialog = document.getElementById("confirm-cancel");
        dialog.querySelector('[data-slot="what"]').textContent = btn.dataset.what;
        dialog.returnValue = "";
        dialog.onclose = async () => {
          if (dialog.returnValue !== "yes") { btn.focus(); return; }
          try {
            const body = await call(btn.dataset.url);
            say(`${body.message.charAt(0).toUpperCase()}${body.message.slice(1)}.`);
            await reload();
          } catch (e) { say(`${btn.dataset.what} could not be cancelled: ${e.message}`, true); }
        };
        dialog.showModal();
      });
    });
    document.querySelectorAll('[data-action="restore"]').forEach((btn) => {
      btn.addEventListener("click", () => {
        const dialog = document.getElementById("confirm-restore");
        dialog.querySelector('[data-slot="backup"]').textContent = btn.dataset.backup;
        dialog.returnValue = "";
        dialog.onclose = async () => {
          if (dialog.returnValue !== "yes") { btn.focus(); return; }
          try {
            const body = await call(btn.dataset.url);
            say(`Restore ${body.id} of backup ${btn.dataset.backup} is queued.`);
            await reload();
          } catch (e) { say(`The restore could not be triggered: ${e.message}`, true); }
        };
        dialog.showModal();
      });
    });
  }

  // A button that opens a Yes/No dialog whose "yes" sends PATCH to the dialog's URL
  // (with the service id for updates).
  function confirmPatch(btn) {
    btn.addEventListener("click", () => {
      const dialog = document.getElementById(btn.dataset.dialog);
      dialog.returnValue = "";
      dialog.onclose = async () => {
        if (dialog.returnValue !== "yes") { btn.focus(); return; }
        try {
          const payload = dialog.dataset.service ? { service_id: dialog.dataset.service } : {};
          await call(dialog.dataset.url, "PATCH", payload);
          say(dialog.dataset.done || "The update is queued.");
          await reload();
        } catch (e) { say(`${btn.textContent.trim()}: ${e.message}`, true); }
      };
      dialog.showModal();
    });
  }
  // Outside <main>: bound once, not at every reload.
  document.querySelectorAll('[data-action="lifecycle"]').forEach(confirmPatch);

  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeMenus(); });
  document.addEventListener("click", (e) => { if (!e.target.closest(".menu")) closeMenus(); });
  document.getElementById("reload")?.addEventListener("click", () => reload().catch((e) => say(`Reload failed: ${e}`, true)));
  const auto = document.getElementById("auto-reload");
  if (auto) {
    auto.checked = localStorage.getItem(AUTO_KEY) === "on";
    auto.addEventListener("change", () => {
      localStorage.setItem(AUTO_KEY, auto.checked ? "on" : "off");
      schedule();
    });
  }
  bind();
  schedule();
})();
