// Forgotten passwords, re-authentication, password changes and sessions in a real browser
// (headless Debian chromium driven by playwright-core), against the real stack that
// operator/tests/pages.rs starts. Two phases, since the reset link arrives by email in between:
//   PHASE=request  asks for a link from "Forgot password?" on the sign-in page;
//   PHASE=reset    opens RESET_LINK, sets a new password, signs in, confirms it is them before
//                  setting up TOTP, changes the password, and is signed out by an admin from
//                  /organisation/sessions.
// Screenshots go to $OUT. Exits non-zero with the failing step on any failure.

import { mkdirSync } from "node:fs";
import { env, expect, launch, signIn as signInAt, run } from "./common.mjs";

const BASE = env("BASE");
const OUT = env("OUT");
const PHASE = env("PHASE");
const LOGIN = env("MEMBER_LOGIN");
mkdirSync(OUT, { recursive: true });

const browser = await launch();
const signIn = (page, login, password) => signInAt(page, BASE, login, password);

await run(browser, "OK", async (at) => {
  const member = await browser.newContext();
  const page = await member.newPage();

  if (PHASE === "request") {
    at("Forgot password? on the sign-in page");
    await page.goto(`${BASE}/login`);
    await page.getByRole("link", { name: "Forgot password?" }).click();
    await page.waitForURL(`${BASE}/reset`);
    await page.getByLabel("Login (email address)").fill(LOGIN);
    await page.getByRole("button", { name: "Send the link" }).click();
    await page.getByRole("status").filter({ hasText: "a link is on its way" }).waitFor();
    await page.screenshot({ path: `${OUT}/reset-requested.png`, fullPage: true });
  } else {
    const NEW = env("NEW_PASSWORD");
    const NEWER = env("NEWER_PASSWORD");
    const ADMIN = env("ADMIN_LOGIN");
    const ADMIN_PASSWORD = env("ADMIN_PASSWORD");

    at("the reset link: a weak password is explained");
    await page.goto(env("RESET_LINK"));
    expect(!page.url().includes("token="), "the token to leave the address bar");
    await page.getByRole("heading", { name: "Choose a new password" }).waitFor();
    await page.getByLabel("New password").fill("password1234");
    await page.getByRole("button", { name: "Set password" }).click();
    await page.getByRole("alert").filter({ hasText: "easy to guess" }).waitFor();
    await page.screenshot({ path: `${OUT}/reset-weak-password.png`, fullPage: true });

    at("the reset link sets the password and leads to sign-in");
    await page.getByLabel("New password").fill(NEW);
    await page.getByRole("button", { name: "Set password" }).click();
    await page.waitForURL(`${BASE}/login`);
    await signIn(page, LOGIN, NEW);
    await page.waitForURL(`${BASE}/account`);

    at("an old sign-in must confirm it is them before setting up TOTP");
    await page.waitForTimeout(2500); // the server's USHER_REAUTH_WINDOW is 2s
    await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
    await page.getByRole("heading", { name: "Confirm it is you" }).waitFor();
    await page.screenshot({ path: `${OUT}/account-reauthenticate.png`, fullPage: true });
    await page.locator("#reauth-password").fill(NEW);
    await page.locator("#reauth").getByRole("button", { name: "Confirm" }).click();
    await page.getByAltText("QR code for your authenticator app").waitFor();

    at("change the password on the account page");
    await page.getByLabel("Current password").fill(NEW);
    await page.locator("#change-password").fill(NEWER);
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByRole("status").filter({ hasText: "Your password is changed" }).waitFor();
    await page.reload();
    await page.getByRole("heading", { name: "Active sessions" }).waitFor();
    await page.getByText("This session").waitFor();
    await page.screenshot({ path: `${OUT}/account-sessions.png`, fullPage: true });

    at("an admin sees the session and ends it");
    const adminContext = await browser.newContext();
    const admin = await adminContext.newPage();
    await signIn(admin, ADMIN, ADMIN_PASSWORD);
    await admin.waitForURL(`${BASE}/account`);
    await admin.getByRole("link", { name: "Sessions" }).click();
    await admin.waitForURL(`${BASE}/organisation/sessions`);
    const row = admin.locator("tr", { has: admin.getByRole("cell", { name: LOGIN, exact: true }) });
    await row.waitFor();
    await admin.screenshot({ path: `${OUT}/organisation-sessions.png`, fullPage: true });
    await row.getByRole("button", { name: "Kill" }).click();
    await row.waitFor({ state: "detached" });
    let ended = false;
    for (let i = 0; i < 40 && !ended; i++) {
      await page.goto(`${BASE}/account`);
      ended = page.url() === `${BASE}/login`;
      if (!ended) await page.waitForTimeout(250);
    }
    expect(ended, "the ended session to be sent to /login");

    at("the changed password signs in");
    await signIn(page, LOGIN, NEWER);
    await page.waitForURL(`${BASE}/account`);
  }
});
