// Usher's pages in a real browser (headless Debian chromium driven by playwright-core), against
// the real stack that operator/tests/pages.rs starts. It passes everything through the
// environment; screenshots go to $OUT. Exits non-zero with the failing step on any failure.

import { mkdirSync } from "node:fs";
import { env, expect, launch, signIn as signInAt, run, totp } from "./common.mjs";

const BASE = env("BASE");
const OUT = env("OUT");
const NINA = env("NINA_LOGIN");
const ADMIN = env("ADMIN_LOGIN");
const PASSWORD = env("PASSWORD");
const ORG1 = env("ORG1_DISPLAY");
const ORG1_NAME = env("ORG1");
const ORG2 = env("ORG2");
const ORG2_DISPLAY = env("ORG2_DISPLAY");
const NEW_LOGIN = env("NEW_LOGIN");
const PROFILE = env("PROFILE");
mkdirSync(OUT, { recursive: true });

const browser = await launch();
const signIn = (page, login, password) => signInAt(page, BASE, login, password);

await run(browser, "OK", async (at) => {
  // --- A newcomer -------------------------------------------------------------------------
  const nina = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone
  const page = await nina.newPage();

  at("unauthenticated pages go to /login");
  await page.goto(`${BASE}/account`);
  expect(page.url() === `${BASE}/login`, `/login, got ${page.url()}`);

  at("invitation: a weak password is explained");
  await page.goto(env("INVITE_LINK"));
  expect(!page.url().includes("token="), "the token to leave the address bar");
  await page.getByLabel("New password").fill("password1234");
  await page.getByRole("button", { name: "Set password" }).click();
  await page.getByRole("alert").filter({ hasText: "easy to guess" }).waitFor();
  await page.screenshot({ path: `${OUT}/invite-weak-password.png`, fullPage: true });

  at("invitation: the password is set");
  await page.getByLabel("New password").fill(PASSWORD);
  await page.getByRole("button", { name: "Set password" }).click();
  await page.getByText("Your password is set.").waitFor();
  await page.getByRole("link", { name: "Sign in" }).click();

  at("sign in with the password");
  await page.waitForURL(`${BASE}/login`);
  await page.screenshot({ path: `${OUT}/login.png`, fullPage: true });
  await signIn(page, NINA, PASSWORD);
  await page.waitForURL(`${BASE}/account`);
  await page.getByText(`Signed in as ${NINA}`).waitFor();
  await page.screenshot({ path: `${OUT}/account.png`, fullPage: true });

  at("enroll TOTP from the page");
  await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
  await page.getByAltText("QR code for your authenticator app").waitFor();
  const secret = (await page.locator("#totp-secret").textContent()).trim();
  expect(/^[A-Z2-7]{32}$/.test(secret), `a base32 secret, got ${secret}`);
  await page.screenshot({ path: `${OUT}/account-totp-enrolment.png`, fullPage: true });
  await page.getByLabel("Code shown by the app").fill("000000");
  await page.getByRole("button", { name: "Confirm" }).click();
  await page.getByRole("alert").filter({ hasText: "not valid" }).waitFor();
  await page.getByLabel("Code shown by the app").fill(totp(secret, 0));
  await page.getByRole("button", { name: "Confirm" }).click();
  await page.getByText("TOTP is on").waitFor();

  at("sign in again with a code");
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.waitForURL(`${BASE}/login`);
  await signIn(page, NINA, PASSWORD);
  await page.getByLabel("Code from your authenticator app").waitFor();
  await page.screenshot({ path: `${OUT}/login-code.png`, fullPage: true });
  await page.getByLabel("Code from your authenticator app").fill(totp(secret, 30));
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL(`${BASE}/account`);

  at("view and renew the API key");
  await page.getByRole("button", { name: "Show key" }).click();
  const key = page.locator("#api-key");
  await key.waitFor();
  const first = (await key.textContent()).trim();
  expect(first.startsWith("usk_") && first.length === 40, `a key, got ${first}`);
  await page.getByRole("button", { name: "Renew key" }).click();
  await page.waitForFunction((old) => document.getElementById("api-key").textContent.trim() !== old, first);
  const renewed = (await key.textContent()).trim();
  expect(renewed.startsWith("usk_") && renewed !== first, "a new key");
  await page.screenshot({ path: `${OUT}/account-api-key.png`, fullPage: true });
  console.log(`RENEWED_KEY=${renewed}`);
  console.log(`FIRST_KEY=${first}`);

  at("a non-admin gets no admin page");
  expect((await page.getByRole("link", { name: "Users" }).count()) === 0, "no Users link");
  const forbidden = await page.goto(`${BASE}/organisation/users`);
  expect(forbidden.status() === 403, `403, got ${forbidden.status()}`);
  await page.getByRole("heading", { name: "Not allowed" }).waitFor();

  at("switch organisation");
  await page.goto(`${BASE}/account`);
  await page.getByLabel("Organisation").selectOption(ORG2);
  await page.getByText(`Organisation: ${ORG2_DISPLAY}`).waitFor();
  await page.screenshot({ path: `${OUT}/account-switched.png`, fullPage: true });
  // And back: the admin below manages the first organisation, where Kill Session acts.
  await page.getByLabel("Organisation").selectOption(ORG1_NAME);
  await page.getByText(`Organisation: ${ORG1}`).waitFor();

  // --- An organisation admin --------------------------------------------------------------
  at("admin signs in and opens the users table");
  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  await signIn(admin, ADMIN, PASSWORD);
  await admin.waitForURL(`${BASE}/account`);
  await admin.getByRole("link", { name: "Users" }).click();
  await admin.waitForURL(`${BASE}/organisation/users`);
  await admin.getByRole("heading", { name: `Users of ${ORG1}` }).waitFor();
  const row = (login) => admin.locator("tr", { has: admin.getByRole("cell", { name: login, exact: true }) });
  await row(NINA).waitFor();

  at("Add User");
  await admin.getByLabel("Login (email address)").fill(NEW_LOGIN);
  await admin.getByLabel("Full name").first().fill("Added Person");
  await admin.locator("#add-profile").selectOption(PROFILE);
  await admin.getByRole("button", { name: "Add User" }).click();
  await row(NEW_LOGIN).waitFor();

  at("edit with the pencil");
  await row(NINA).getByRole("button", { name: `Edit ${NINA}` }).click();
  await row(NINA).getByLabel("Full name").fill("Nina Edited");
  await row(NINA).getByRole("button", { name: "Save" }).click();
  await row(NINA).getByRole("cell", { name: "Nina Edited", exact: true }).waitFor();

  at("lock and unlock");
  await row(NINA).getByRole("button", { name: "Lock", exact: true }).click();
  await row(NINA).getByRole("cell", { name: "Locked", exact: true }).waitFor();
  await row(NINA).getByRole("button", { name: "Unlock" }).click();
  await row(NINA).getByRole("button", { name: "Lock", exact: true }).waitFor();

  at("Kill Session ends the newcomer's session");
  await row(NINA).getByRole("button", { name: "Kill Session" }).click();
  await admin.getByText("Kill Session requested").waitFor();
  let ended = false;
  for (let i = 0; i < 40 && !ended; i++) {
    await page.goto(`${BASE}/account`);
    ended = page.url() === `${BASE}/login`;
    if (!ended) await page.waitForTimeout(250);
  }
  expect(ended, "the killed session to be sent to /login");

  at("Create API Key and Renew");
  // The page reloads itself once the request succeeds: wait for that load before reloading.
  let loaded = admin.waitForEvent("load");
  await row(NEW_LOGIN).getByRole("button", { name: "Create API Key" }).click();
  await loaded;
  await row(NEW_LOGIN).getByRole("button", { name: "Renew" }).waitFor();
  let issued = false;
  for (let i = 0; i < 40 && !issued; i++) {
    await admin.reload();
    issued = (await row(NEW_LOGIN).locator("code").count()) > 0;
    if (!issued) await admin.waitForTimeout(250);
  }
  expect(issued, "the key's fingerprint in the table");
  const fingerprint = await row(NEW_LOGIN).locator("code").textContent();
  await admin.screenshot({ path: `${OUT}/organisation-users.png`, fullPage: true });
  loaded = admin.waitForEvent("load");
  await row(NEW_LOGIN).getByRole("button", { name: "Renew" }).click();
  await loaded;
  let changed = false;
  for (let i = 0; i < 40 && !changed; i++) {
    await admin.reload();
    changed = (await row(NEW_LOGIN).locator("code").textContent()) !== fingerprint;
    if (!changed) await admin.waitForTimeout(250);
  }
  expect(changed, "a new fingerprint after Renew");
});
