// Usher's pages: forms carrying data-api are sent as JSON to the auth server's API, and the
// answer is shown next to the form. No other script, no external assets.
"use strict";

function formJson(form) {
  const body = {};
  for (const [k, v] of new FormData(form)) {
    if (typeof v === "string" && v !== "") body[k] = v;
  }
  return body;
}

function showError(form, message) {
  const out = form.querySelector("[data-error]");
  if (out) {
    out.textContent = message;
    out.hidden = false;
  }
}

async function submit(form) {
  const method = form.dataset.method || "POST";
  const init = { method, credentials: "same-origin", headers: { "content-type": "application/json" } };
  if (method !== "GET") init.body = JSON.stringify(formJson(form));
  const err = form.querySelector("[data-error]");
  if (err) err.hidden = true;
  let res, data = null;
  try {
    res = await fetch(form.dataset.api, init);
    const text = await res.text();
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    showError(form, "The server could not be reached. Try again.");
    return;
  }
  if (!res.ok) {
    if (data && data.error === "mfa_required") {
      for (const el of form.querySelectorAll("[data-mfa]")) el.hidden = false;
      const code = form.querySelector("input[name=code]");
      if (code) { code.required = true; code.focus(); }
    }
    showError(form, (data && data.message) || `The request failed (${res.status}).`);
    return;
  }
  const then = form.dataset.then || "reload";
  if (then === "reload") {
    location.reload();
  } else if (then.startsWith("/") || then.startsWith("https://") || then.startsWith("http://")) {
    // The server chose this place (a path here, or an app behind forward-auth it allows).
    location.assign(then);
  } else if (then === "totp") {
    document.getElementById("totp-qr").src = "data:image/png;base64," + data.qrPng;
    document.getElementById("totp-secret").textContent = data.secret;
    document.getElementById("totp-confirm").hidden = false;
    form.hidden = true;
  } else if (then === "key") {
    const out = document.getElementById("api-key");
    out.textContent = data.key;
    out.hidden = false;
    document.getElementById("api-key-copy").hidden = false;
  } else if (then === "done") {
    for (const el of document.querySelectorAll("[data-done]")) el.hidden = false;
    form.hidden = true;
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.api) {
    event.preventDefault();
    submit(form);
  }
});

document.addEventListener("click", (event) => {
  const target = event.target;
  if (target instanceof HTMLElement && target.id === "api-key-copy") {
    navigator.clipboard.writeText(document.getElementById("api-key").textContent);
    target.textContent = "Copied";
  }
  if (target instanceof HTMLElement && target.dataset.toggle) {
    const el = document.getElementById(target.dataset.toggle);
    if (el) el.hidden = !el.hidden;
  }
});

document.addEventListener("change", (event) => {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.dataset.autosubmit !== undefined) {
    target.form.requestSubmit();
  }
});

// The invitation token travels in the URL fragment (never sent to servers or logs); it moves
// into the form, and out of the address bar.
window.addEventListener("DOMContentLoaded", () => {
  const token = document.querySelector("input[name=token]");
  if (token && location.hash.startsWith("#token=")) {
    token.value = decodeURIComponent(location.hash.slice("#token=".length));
    history.replaceState(null, "", location.pathname);
  }
});
