// Passkeys in Chromium with a CDP virtual authenticator (ctap2, internal transport, resident
// keys, user verification), against http://localhost:<port> (a secure context for WebAuthn).
// The member's organisation requires MFA: the password alone opens only enrolment; a passkey
// added on /account meets the requirement; then sign-in with the passkey alone, and with the
// password followed by the passkey, and from the login field's autofill; removing the last passkey is refused while the
// organisation requires MFA, and works once it does not (the test changes the Organisation
// between READY_FILE and GO_FILE). Driven by operator/tests/auth/passkeys_browser.rs. Prints
// PASSKEYS_OK.

import { existsSync, writeFileSync } from "node:fs";
import { env, expect, fillSignIn, launch, run, virtualAuthenticator } from "./common.mjs";

const BASE = env("BASE");
const LOGIN = env("LOGIN");
const PASSWORD = env("PASSWORD");
const READY_FILE = env("READY_FILE");
const GO_FILE = env("GO_FILE");

const browser = await launch();
await run(browser, "PASSKEYS_OK", async (at) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const { cdp, authenticatorId } = await virtualAuthenticator(context, page);
  // Chromium's virtual authenticator answers a conditional (autofill) request at once, which
  // would sign in as soon as /login loads: it is hidden from the page until the step that
  // tests it.
  await page.addInitScript(() => {
    if (localStorage.getItem("conditional") !== "1" && window.PublicKeyCredential) {
      PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    }
  });
  const atAccount = () => page.waitForURL((u) => u.pathname === "/account", { timeout: 15000 });
  const signOut = async () => {
    await page.locator("header").getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL((u) => u.pathname === "/login");
  };

  at("the password alone opens only enrolment (the organisation requires MFA)");
  await page.goto(`${BASE}/login`);
  await fillSignIn(page, LOGIN, PASSWORD);
  await atAccount();
  await page.getByText("Set up two-factor authentication to continue").waitFor();

  at("add a passkey on /account");
  await page.getByLabel("Name for a new passkey").fill("Virtual key");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await page.locator("#passkeys tr[data-passkey]").first().waitFor();
  expect((await page.locator("#passkeys").innerText()).includes("Virtual key"), "the passkey listed by name");
  expect(
    (await page.getByText("Set up two-factor authentication to continue").count()) === 0,
    "the organisation's requirement met by the passkey",
  );
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  expect(credentials.length === 1 && credentials[0].isResidentCredential, "one discoverable credential");

  at("sign out, then sign in with the passkey alone");
  await signOut();
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await atAccount();
  expect((await page.getByText("Set up two-factor authentication to continue").count()) === 0, "a full session");

  at("sign out, then the password followed by the passkey");
  await signOut();
  await fillSignIn(page, LOGIN, PASSWORD);
  await page.getByRole("button", { name: "Use your passkey" }).click();
  await atAccount();
  expect((await page.locator("#passkeys").innerText()).match(/Virtual key[\s\S]*UTC[\s\S]*UTC/), "last used shown");

  at("sign out; the login field's autofill (conditional mediation) signs in with the passkey");
  await signOut();
  await page.evaluate(() => localStorage.setItem("conditional", "1"));
  await page.goto(`${BASE}/login`);
  await atAccount();
  await page.evaluate(() => localStorage.removeItem("conditional"));

  at("removing the last passkey is refused while the organisation requires MFA");
  const row = page.locator("#passkeys tr[data-passkey]").first();
  await row.getByRole("button", { name: "Remove" }).click();
  await row.getByText("requires two-factor authentication").waitFor();

  at("once it does not, the passkey is removed");
  writeFileSync(READY_FILE, "refused\n");
  const until = Date.now() + 30000;
  while (!existsSync(GO_FILE)) {
    expect(Date.now() < until, "the test to lift the requirement");
    await new Promise((r) => setTimeout(r, 200));
  }
  await page.reload();
  await page.locator("#passkeys tr[data-passkey]").first().getByRole("button", { name: "Remove" }).click();
  await page.getByText("No passkeys yet.").waitFor();
});
