// The API Keys page's script. Every change is a call of the public JSON
// API, with the session cookie and the page's CSRF token; the page then
// reloads from the server. A generated secret lives only in this script's
// memory, for the dialog that shows it: never in the page's HTML, a URL,
// storage or the history.
"use strict";

(function () {
  const app = document.getElementById("app");
  if (!app) {
    return;
  }
  const base = app.dataset.apiBase;
  const csrf = app.dataset.csrf;
  const account = app.dataset.account;
  const STALE =
    "This key was changed by someone else since this page was loaded. Reload the page and try again.";

  function url(path) {
    return new URL(base + path, document.baseURI).toString();
  }

  // One call of the API. Resolves to {ok, status, body, etag}.
  async function call(method, path, body, version) {
    const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (version !== undefined && version !== null) {
      headers["If-Match"] = '"' + version + '"';
    }
    let response;
    try {
      response = await fetch(url(path), {
        method: method,
        headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (e) {
      return { ok: false, status: 0, body: { error: "network", message: "The server could not be reached: try again." } };
    }
    let parsed = null;
    const text = await response.text();
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        parsed = { error: "unreadable", message: "The server's answer could not be read (status " + response.status + ")." };
      }
    }
    const etag = response.headers.get("ETag");
    return { ok: response.ok, status: response.status, body: parsed, etag: etag };
  }

  function versionOf(etag) {
    if (!etag) {
      return null;
    }
    const m = /^(?:W\/)?"([^"]*)"$/.exec(etag);
    return m ? m[1] : null;
  }

  // Error messages are the API's own, placed next to the field they name.
  function clearErrors(prefix) {
    document.querySelectorAll('[id^="' + prefix + '-"].field-error').forEach(function (el) {
      el.textContent = "";
    });
  }

  function showError(prefix, result, fields, codes) {
    let message = (result.body && result.body.message) || "The request failed (status " + result.status + ").";
    if (result.status === 412) {
      message = STALE;
    }
    let target = document.getElementById(prefix + "-error");
    const first = message.split(/[\s:]/)[0].toLowerCase();
    const byCode = {
      identifier_taken: "identifier",
      invalid_channel: "channel",
      channel_already_active: "channel",
      rest_key_limit: "channel",
      invalid_grace: "grace",
      invalid_whitelist: "entries",
      invalid_expiry: "at",
    };
    const code = result.body && result.body.error;
    const field =
      codes && codes[code] ? codes[code] : fields.indexOf(first) >= 0 ? first : byCode[code];
    if (field && fields.indexOf(field) >= 0) {
      const el = document.getElementById(prefix + "-" + field + "-error");
      if (el) {
        target = el;
      }
    }
    target.textContent = message;
    const input = field && document.getElementById(prefix + "-" + field);
    if (input && typeof input.focus === "function" && !input.disabled) {
      input.focus();
    }
  }

  function reload() {
    window.location.reload();
  }

  // Dialogs: focus moves in on open (showModal) and back to the opener.
  let opener = null;
  function openDialog(id, from) {
    const dialog = document.getElementById(id);
    opener = from || document.activeElement;
    dialog.showModal();
    const first = dialog.querySelector("input:not([disabled]):not([type=hidden]), select, textarea, button:not([disabled])");
    if (first) {
      first.focus();
    }
    return dialog;
  }
  document.querySelectorAll("dialog").forEach(function (dialog) {
    dialog.addEventListener("close", function () {
      if (opener && document.contains(opener)) {
        opener.focus();
      }
    });
  });
  document.querySelectorAll("[data-close]").forEach(function (button) {
    button.addEventListener("click", function () {
      button.closest("dialog").close();
    });
  });

  // The "Actions" menus.
  function closeMenus(except) {
    document.querySelectorAll("[data-menu]").forEach(function (button) {
      if (button !== except) {
        button.setAttribute("aria-expanded", "false");
        document.getElementById(button.dataset.menu).hidden = true;
      }
    });
  }
  document.querySelectorAll("[data-menu]").forEach(function (button) {
    const menu = document.getElementById(button.dataset.menu);
    button.addEventListener("click", function () {
      const open = button.getAttribute("aria-expanded") === "true";
      closeMenus(button);
      button.setAttribute("aria-expanded", open ? "false" : "true");
      menu.hidden = open;
      if (!open) {
        menu.querySelector("button").focus();
      }
    });
    menu.addEventListener("keydown", function (event) {
      const items = Array.prototype.slice.call(menu.querySelectorAll("button"));
      const at = items.indexOf(document.activeElement);
      if (event.key === "Escape") {
        closeMenus();
        button.focus();
        event.preventDefault();
      } else if (event.key === "ArrowDown") {
        items[(at + 1) % items.length].focus();
        event.preventDefault();
      } else if (event.key === "ArrowUp") {
        items[(at - 1 + items.length) % items.length].focus();
        event.preventDefault();
      }
    });
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest(".menu")) {
      closeMenus();
    }
  });

  // Radio pairs that enable their text field ("choose one").
  function bindChoice(name, input, chooseValue) {
    document.querySelectorAll('input[name="' + name + '"]').forEach(function (radio) {
      radio.addEventListener("change", function () {
        const el = document.getElementById(input);
        el.disabled = radio.value !== chooseValue || !radio.checked;
        if (!el.disabled) {
          el.focus();
        } else {
          el.value = "";
        }
      });
    });
  }
  function checked(name) {
    const el = document.querySelector('input[name="' + name + '"]:checked');
    return el ? el.value : null;
  }

  // The secret, shown once.
  const CHANNELS = { ftp: "FTP", rest: "REST", http: "HTTP", web_service: "Web Service", email: "Email" };
  function showSecret(key, from) {
    document.getElementById("secret-channel").textContent = CHANNELS[key.channel] || key.channel;
    document.getElementById("secret-identifier").textContent = key.identifier;
    document.getElementById("secret-value").textContent = key.secret;
    document.getElementById("secret-saved").checked = false;
    document.getElementById("secret-close").disabled = true;
    document.getElementById("secret-copied").textContent = "";
    const dialog = openDialog("secret-dialog", from);
    document.getElementById("secret-copy").focus();
    dialog.dataset.open = "1";
  }
  const secretDialog = document.getElementById("secret-dialog");
  document.getElementById("secret-saved").addEventListener("change", function (event) {
    document.getElementById("secret-close").disabled = !event.target.checked;
  });
  document.getElementById("secret-copy").addEventListener("click", async function () {
    const value = document.getElementById("secret-value").textContent;
    const status = document.getElementById("secret-copied");
    try {
      await navigator.clipboard.writeText(value);
      status.textContent = "Copied to the clipboard.";
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById("secret-value"));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      status.textContent = "Copying is not allowed here: the secret is selected, press Ctrl+C.";
    }
  });
  // Escape must not close it before the owner says the secret is saved.
  secretDialog.addEventListener("cancel", function (event) {
    if (!document.getElementById("secret-saved").checked) {
      event.preventDefault();
      document.getElementById("secret-copied").textContent =
        "Tick \u201cI have saved the secret\u201d first: it will not be shown again.";
    }
  });
  // Leaving the page (Back, a link) forgets the secret, so that a page
  // restored from the browser's back-forward cache cannot show it; such a
  // restored page is loaded afresh.
  window.addEventListener("pagehide", function () {
    document.getElementById("secret-value").textContent = "";
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      reload();
    }
  });
  secretDialog.addEventListener("close", function () {
    document.getElementById("secret-value").textContent = "";
    reload();
  });

  // Creating a key.
  const createForm = document.getElementById("create-form");
  bindChoice("identifier-mode", "create-identifier", "choose");
  bindChoice("secret-mode", "create-secret", "choose");
  document.querySelectorAll('[data-opens="create-dialog"]').forEach(function (button) {
    button.addEventListener("click", function () {
      createForm.reset();
      document.getElementById("create-identifier").disabled = true;
      document.getElementById("create-secret").disabled = true;
      clearErrors("create");
      openDialog("create-dialog", button);
    });
  });
  createForm.addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors("create");
    const channel = checked("channel");
    if (!channel) {
      document.getElementById("create-channel-error").textContent = "Choose a channel.";
      return;
    }
    const body = { channel: channel };
    const label = document.getElementById("create-label").value;
    if (label !== "") {
      body.label = label;
    }
    if (checked("identifier-mode") === "choose") {
      body.identifier = document.getElementById("create-identifier").value;
    }
    if (checked("secret-mode") === "choose") {
      body.secret = document.getElementById("create-secret").value;
    }
    const submit = document.getElementById("create-submit");
    submit.disabled = true;
    const result = await call("POST", "/v1/accounts/" + account + "/keys", body);
    submit.disabled = false;
    if (!result.ok) {
      showError("create", result, ["channel", "label", "identifier", "secret"]);
      return;
    }
    document.getElementById("create-secret").value = "";
    document.getElementById("create-dialog").close();
    if (result.body.secret) {
      showSecret(result.body, document.getElementById("create-open"));
    } else {
      reload();
    }
  });

  // The row a menu item belongs to: the key and the version shown.
  let current = null;
  function rowKey(row) {
    return {
      id: row.dataset.key,
      version: row.dataset.version,
      channel: row.dataset.channel,
      identifier: row.dataset.identifier,
      label: row.dataset.label,
      expires: row.dataset.expires,
      row: row,
    };
  }
  function describe(key) {
    return (CHANNELS[key.channel] || key.channel) + " key " + key.identifier;
  }
  document.querySelectorAll("[data-action]").forEach(function (item) {
    item.addEventListener("click", function () {
      const row = item.closest("tr");
      const menuButton = row.querySelector("[data-menu]");
      closeMenus();
      current = rowKey(row);
      const action = item.dataset.action;
      if (action === "credentials") {
        openCredentials(menuButton);
      } else if (action === "label") {
        clearErrors("label");
        document.getElementById("label-input").value = current.label;
        openDialog("label-dialog", menuButton);
      } else if (action === "whitelist") {
        openWhitelist(menuButton);
      } else if (action === "disable" || action === "enable") {
        setEnabled(action === "enable", menuButton);
      } else if (action === "expiry") {
        openExpiry(menuButton);
      } else if (action === "delete") {
        clearErrors("delete");
        document.getElementById("delete-key").textContent = "The " + describe(current) + " will be deleted.";
        openDialog("delete-dialog", menuButton);
      }
    });
  });

  // Changing credentials.
  const credentialsForm = document.getElementById("credentials-form");
  bindChoice("cred-secret", "credentials-secret", "choose");
  function openCredentials(from) {
    credentialsForm.reset();
    document.getElementById("credentials-secret").disabled = true;
    clearErrors("credentials");
    document.getElementById("credentials-key").textContent = describe(current);
    openDialog("credentials-dialog", from);
  }
  credentialsForm.addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors("credentials");
    const body = {};
    const identifier = document.getElementById("credentials-identifier").value;
    if (identifier !== "") {
      body.identifier = identifier;
    }
    const mode = checked("cred-secret");
    if (mode === "generate") {
      body.regenerate_secret = true;
    } else if (mode === "choose") {
      body.secret = document.getElementById("credentials-secret").value;
    }
    const grace = document.getElementById("credentials-grace").value;
    if (grace !== "") {
      body.grace_seconds = parseInt(grace, 10);
    }
    const result = await call("POST", "/v1/keys/" + current.id + "/credentials", body, current.version);
    if (!result.ok) {
      showError("credentials", result, ["identifier", "secret", "grace"]);
      return;
    }
    document.getElementById("credentials-secret").value = "";
    document.getElementById("credentials-dialog").close();
    if (result.body.secret) {
      showSecret(result.body, current.row.querySelector("[data-menu]"));
    } else {
      reload();
    }
  });

  // Editing a label.
  document.getElementById("label-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors("label");
    const value = document.getElementById("label-input").value;
    const result = await call("PATCH", "/v1/keys/" + current.id, { label: value === "" ? null : value }, current.version);
    if (!result.ok) {
      showError("label", result, ["label"]);
      return;
    }
    reload();
  });

  // Disabling and enabling: one change of the key, at the version shown.
  async function setEnabled(enabled, from) {
    const status = document.getElementById("status");
    status.textContent = "";
    const result = await call("PATCH", "/v1/keys/" + current.id, { enabled: enabled }, current.version);
    if (!result.ok) {
      status.textContent =
        result.status === 412
          ? STALE
          : (result.body && result.body.message) || "The request failed (status " + result.status + ").";
      if (from) {
        from.focus();
      }
      return;
    }
    reload();
  }

  // The expiry: a `datetime-local` value read as UTC, or none.
  const expiryForm = document.getElementById("expiry-form");
  function expiryMode() {
    const never = checked("expiry-mode") === "never";
    document.getElementById("expiry-at").disabled = never;
  }
  document.querySelectorAll('input[name="expiry-mode"]').forEach(function (radio) {
    radio.addEventListener("change", expiryMode);
  });
  function openExpiry(from) {
    expiryForm.reset();
    clearErrors("expiry");
    document.getElementById("expiry-key").textContent = describe(current);
    document.getElementById("expiry-at").value = current.expires || "";
    expiryMode();
    openDialog("expiry-dialog", from);
  }
  expiryForm.addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors("expiry");
    let expires = null;
    if (checked("expiry-mode") !== "never") {
      const value = document.getElementById("expiry-at").value;
      if (value === "") {
        document.getElementById("expiry-at-error").textContent =
          "Give a date and time (UTC), or choose \u201cNo expiry\u201d.";
        return;
      }
      // "2030-01-01T12:00" or with seconds: the instant in UTC.
      expires = (value.length === 16 ? value + ":00" : value) + "Z";
    }
    const result = await call("PATCH", "/v1/keys/" + current.id, { expires_at: expires }, current.version);
    if (!result.ok) {
      showError("expiry", result, ["at"], { invalid_body: "at", invalid_expiry: "at" });
      return;
    }
    reload();
  });

  // The policy: the account-wide whitelist, the channels sub-accounts may
  // use, and the longest lifetime of their keys, saved in one change.
  const policyForm = document.getElementById("policy-form");
  if (policyForm) {
    const entries = document.getElementById("policy-entries");
    const noEntries = document.getElementById("policy-no-entries");
    function refreshEmpty() {
      noEntries.hidden = entries.querySelector("[data-entry]") !== null;
    }
    function bindRemove(li) {
      li.querySelector("[data-remove-entry]").addEventListener("click", function () {
        const next = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        refreshEmpty();
        const focus = next ? next.querySelector("button") : document.getElementById("policy-add");
        focus.focus();
      });
    }
    entries.querySelectorAll("[data-entry]").forEach(bindRemove);
    function addEntries() {
      const input = document.getElementById("policy-add");
      document.getElementById("policy-whitelist-error").textContent = "";
      const added = input.value.split(/[\s,]+/).filter(function (e) {
        return e !== "";
      });
      if (added.length === 0) {
        document.getElementById("policy-whitelist-error").textContent =
          "Give an address or a network, e.g. 203.0.113.0/24.";
        return;
      }
      added.forEach(function (entry) {
        const li = document.createElement("li");
        li.dataset.entry = entry;
        const code = document.createElement("code");
        code.textContent = entry;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "secondary";
        remove.dataset.removeEntry = "";
        remove.textContent = "Remove";
        remove.setAttribute("aria-label", "Remove " + entry);
        li.appendChild(code);
        li.appendChild(remove);
        entries.appendChild(li);
        bindRemove(li);
      });
      refreshEmpty();
      input.value = "";
      input.focus();
    }
    document.getElementById("policy-add-button").addEventListener("click", addEntries);
    document.getElementById("policy-add").addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        addEntries();
      }
    });
    policyForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      clearErrors("policy");
      const status = document.getElementById("policy-status");
      status.textContent = "";
      const whitelist = Array.prototype.map.call(entries.querySelectorAll("[data-entry]"), function (li) {
        return li.dataset.entry;
      });
      const channels = Array.prototype.map.call(
        policyForm.querySelectorAll('input[name="policy-channel"]:checked'),
        function (box) {
          return box.value;
        }
      );
      const days = document.getElementById("policy-lifetime").value.trim();
      let lifetime = null;
      if (days !== "") {
        const n = Number(days);
        if (!isFinite(n) || n <= 0) {
          document.getElementById("policy-lifetime-error").textContent =
            "Give a number of days above zero, or leave it empty for no limit.";
          return;
        }
        lifetime = Math.round(n * 86400);
      }
      const body = { whitelist: whitelist, sub_account_channels: channels, max_key_lifetime_seconds: lifetime };
      const save = document.getElementById("policy-save");
      save.disabled = true;
      const result = await call("PUT", "/v1/accounts/" + account + "/policy", body);
      save.disabled = false;
      if (!result.ok) {
        showError("policy", result, ["whitelist", "channels", "lifetime"], {
          invalid_whitelist: "whitelist",
          invalid_channel: "channels",
          invalid_account_policy: "lifetime",
        });
        return;
      }
      reload();
    });
  }

  // Deleting a key.
  document.getElementById("delete-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const result = await call("DELETE", "/v1/keys/" + current.id, undefined, current.version);
    if (!result.ok) {
      showError("delete", result, []);
      return;
    }
    reload();
  });

  // The IP whitelist: list, add, remove, replace, test.
  let whitelistChanged = false;
  const whitelistDialog = document.getElementById("whitelist-dialog");
  function renderEntries(entries) {
    const list = document.getElementById("whitelist-entries");
    list.textContent = "";
    if (entries.length === 0) {
      const li = document.createElement("li");
      li.textContent = "No entry: any address is accepted.";
      li.className = "muted";
      list.appendChild(li);
    }
    entries.forEach(function (entry) {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = entry;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + entry);
      remove.addEventListener("click", function () {
        changeWhitelist({ remove: [entry] }, "whitelist");
      });
      li.appendChild(code);
      li.appendChild(remove);
      list.appendChild(li);
    });
    document.getElementById("whitelist-replace").value = entries.join("\n");
  }
  // The key's version after a change: from the answer's ETag, else read
  // again, so that the next change is checked against it.
  async function track(result) {
    const v = versionOf(result.etag);
    if (v !== null) {
      current.version = v;
      return;
    }
    const key = await call("GET", "/v1/keys/" + current.id);
    if (key.ok) {
      current.version = versionOf(key.etag) || String(key.body.version);
    }
  }
  async function openWhitelist(from) {
    clearErrors("whitelist");
    whitelistChanged = false;
    document.getElementById("whitelist-key").textContent = describe(current);
    document.getElementById("whitelist-test-result").textContent = "";
    document.getElementById("whitelist-add").value = "";
    document.getElementById("whitelist-test").value = "";
    renderEntries([]);
    openDialog("whitelist-dialog", from);
    const result = await call("GET", "/v1/keys/" + current.id + "/whitelist");
    if (!result.ok) {
      showError("whitelist", result, []);
      return;
    }
    const v = versionOf(result.etag);
    if (v !== null) {
      current.version = v;
    }
    renderEntries(result.body.entries);
  }
  async function changeWhitelist(patch, prefix) {
    clearErrors("whitelist");
    const result = await call("PATCH", "/v1/keys/" + current.id + "/whitelist", patch, current.version);
    if (!result.ok) {
      showError(prefix, result, []);
      return false;
    }
    whitelistChanged = true;
    await track(result);
    renderEntries(result.body.entries);
    return true;
  }
  document.getElementById("whitelist-add-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const input = document.getElementById("whitelist-add");
    const entries = input.value.split(/[\s,]+/).filter(function (e) {
      return e !== "";
    });
    if (entries.length === 0) {
      document.getElementById("whitelist-add-error").textContent = "Give an address or a network, e.g. 203.0.113.0/24.";
      return;
    }
    if (await changeWhitelist({ add: entries }, "whitelist-add")) {
      input.value = "";
      input.focus();
    }
  });
  document.getElementById("whitelist-replace-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors("whitelist");
    const entries = document
      .getElementById("whitelist-replace")
      .value.split(/[\s,]+/)
      .filter(function (e) {
        return e !== "";
      });
    const result = await call("PUT", "/v1/keys/" + current.id + "/whitelist", { entries: entries }, current.version);
    if (!result.ok) {
      showError("whitelist-replace", result, []);
      return;
    }
    whitelistChanged = true;
    await track(result);
    renderEntries(result.body.entries);
  });
  document.getElementById("whitelist-test-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors("whitelist");
    const out = document.getElementById("whitelist-test-result");
    out.textContent = "";
    out.className = "";
    const address = document.getElementById("whitelist-test").value.trim();
    const result = await call(
      "GET",
      "/v1/keys/" + current.id + "/whitelist/explain?address=" + encodeURIComponent(address)
    );
    if (!result.ok) {
      showError("whitelist-test", result, []);
      return;
    }
    const b = result.body;
    const verdict = b.allowed ? "Allowed" : "Refused";
    out.className = b.allowed ? "verdict allowed" : "verdict refused";
    out.textContent = b.reason
      ? verdict + ": " + b.reason
      : verdict + ": " + b.address + (b.matched ? " matches " + b.matched : "");
  });
  whitelistDialog.addEventListener("close", function () {
    if (whitelistChanged) {
      reload();
    }
  });

  // A new sub-account, then its page.
  const subForm = document.getElementById("sub-form");
  const subOpen = document.getElementById("sub-open");
  if (subForm && subOpen) {
    subOpen.addEventListener("click", function (event) {
      clearErrors("sub");
      openDialog("sub-dialog", event.currentTarget);
    });
    subForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const result = await call("POST", "/v1/accounts", { kind: "sub", parent_id: account });
      if (!result.ok) {
        showError("sub", result, []);
        return;
      }
      window.location.assign("?account=" + encodeURIComponent(result.body.account.id));
    });
  }
})();
