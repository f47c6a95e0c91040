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

// A form waiting for the person to confirm it is them (403 reauthentication_required): sent
// again once the re-authentication form succeeds.
let pendingForm = null;

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
    const reauth = document.getElementById("reauth");
    if (data && data.error === "reauthentication_required" && reauth) {
      pendingForm = form;
      reauth.hidden = false;
      reauth.querySelector("input[name=password]").focus();
      showError(form, data.message);
      return;
    }
    if (data && data.error === "mfa_required") {
      const methods = data.methods || ["totp"];
      for (const el of form.querySelectorAll("[data-mfa]")) el.hidden = !methods.includes(el.dataset.mfa);
      const code = form.querySelector("input[name=code]");
      if (code && methods.includes("totp")) { code.required = true; code.focus(); }
    }
    showError(form, (data && data.message) || `The request failed (${res.status}).`);
    return;
  }
  const then = form.dataset.then || "reload";
  if (then === "retry") {
    // The re-authentication succeeded: the form that asked for it goes again.
    form.hidden = true;
    form.reset();
    const again = pendingForm;
    pendingForm = null;
    if (again) submit(again);
    return;
  }
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
    // A form may name its own message (data-done-id); else every [data-done] shows.
    const own = form.dataset.doneId && document.getElementById(form.dataset.doneId);
    for (const el of own ? [own] : document.querySelectorAll("[data-done]")) el.hidden = false;
    form.hidden = true;
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.api) {
    event.preventDefault();
    submit(form);
  } else if (form instanceof HTMLFormElement && form.dataset.passkeyAdd !== undefined) {
    event.preventDefault();
    addPasskey(form);
  }
});

// Passkeys (WebAuthn). The server speaks the JSON forms of the options and credentials
// (base64url for binary fields); the browser API wants ArrayBuffers.
const b64u = {
  decode(s) {
    const b = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
  },
  encode(buf) {
    let s = "";
    for (const c of new Uint8Array(buf)) s += String.fromCharCode(c);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

function creationOptions(pk) {
  return {
    ...pk,
    challenge: b64u.decode(pk.challenge),
    user: { ...pk.user, id: b64u.decode(pk.user.id) },
    excludeCredentials: (pk.excludeCredentials || []).map((c) => ({ ...c, id: b64u.decode(c.id) })),
  };
}

function requestOptions(pk) {
  return {
    ...pk,
    challenge: b64u.decode(pk.challenge),
    allowCredentials: (pk.allowCredentials || []).map((c) => ({ ...c, id: b64u.decode(c.id) })),
  };
}

function credentialJson(cred) {
  const r = cred.response;
  const response = { clientDataJSON: b64u.encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = b64u.encode(r.attestationObject);
    if (r.getTransports) response.transports = r.getTransports();
  } else {
    response.authenticatorData = b64u.encode(r.authenticatorData);
    response.signature = b64u.encode(r.signature);
    if (r.userHandle) response.userHandle = b64u.encode(r.userHandle);
  }
  return {
    id: cred.id,
    rawId: b64u.encode(cred.rawId),
    type: cred.type,
    response,
    clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
  };
}

async function api(path, body) {
  const res = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const e = new Error((data && data.message) || `The request failed (${res.status}).`);
    e.code = data && data.error;
    throw e;
  }
  return data;
}

async function addPasskey(form) {
  const err = form.querySelector("[data-error]");
  if (err) err.hidden = true;
  try {
    const options = await api("/api/v1/me/passkeys/register/start", {});
    const cred = await navigator.credentials.create({ publicKey: creationOptions(options.publicKey) });
    await api("/api/v1/me/passkeys/register/finish", { name: formJson(form).name || "", credential: credentialJson(cred) });
    location.reload();
  } catch (e) {
    const reauth = document.getElementById("reauth");
    if (e.code === "reauthentication_required" && reauth) {
      reauth.hidden = false;
      reauth.querySelector("input[name=password]").focus();
    }
    showError(form, e.message);
  }
}

// Sign-in with a passkey: `second` after the password (the login typed), `discoverable`
// without one; `conditional` from the login field's autofill, where the browser has it.
let conditional = null;

async function passkeyLogin(mode, then, errorEl) {
  if (conditional && mode !== "conditional") conditional.abort();
  const body = {};
  if (mode === "second") body.login = document.getElementById("login").value;
  try {
    const options = await api("/api/v1/login/passkey/start", body);
    const request = { publicKey: requestOptions(options.publicKey) };
    if (mode === "conditional") {
      conditional = new AbortController();
      request.mediation = "conditional";
      request.signal = conditional.signal;
    }
    const cred = await navigator.credentials.get(request);
    await api("/api/v1/login/passkey/finish", { credential: credentialJson(cred) });
    location.assign(then);
  } catch (e) {
    if (mode === "conditional" || e.name === "AbortError") return;
    if (errorEl) {
      errorEl.textContent = e.message;
      errorEl.hidden = false;
    }
  }
}

document.addEventListener("click", (event) => {
  const target = event.target;
  if (target instanceof HTMLElement && target.dataset.passkeyLogin) {
    const errorEl = target.closest("form")?.querySelector("[data-error]") || document.getElementById("passkey-error");
    passkeyLogin(target.dataset.passkeyLogin, target.dataset.then || "/account", errorEl);
  }
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

// Invitation and reset tokens travel in the URL fragment (never sent to servers or logs); they
// move into the form, and out of the address bar. On /reset, a token shows the new-password
// form instead of the request form.
window.addEventListener("DOMContentLoaded", async () => {
  const signIn = document.getElementById("passkey-sign-in");
  if (
    signIn &&
    window.PublicKeyCredential &&
    PublicKeyCredential.isConditionalMediationAvailable &&
    (await PublicKeyCredential.isConditionalMediationAvailable())
  ) {
    passkeyLogin("conditional", signIn.dataset.then || "/account", null);
  }
  const token = document.querySelector("input[name=token]");
  if (token && location.hash.startsWith("#token=")) {
    token.value = decodeURIComponent(location.hash.slice("#token=".length));
    history.replaceState(null, "", location.pathname);
    for (const el of document.querySelectorAll("[data-with-token]")) el.hidden = false;
    for (const el of document.querySelectorAll("[data-without-token]")) el.hidden = true;
  }
});
