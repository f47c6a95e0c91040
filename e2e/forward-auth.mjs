// Forward-auth across hosts in a real browser: an app on app.usher.test behind a real nginx
// (auth_request to Usher), Usher on login.usher.test behind the same nginx, both on loopback
// through Chromium's host-resolver rules. Driven by operator/tests/ingress/forward_auth.rs,
// which passes everything through the environment. Exits non-zero with the failing step.

import { mkdirSync } from "node:fs";
import { env, expect, fillSignIn, launch, run, totp as codeAt } from "./common.mjs";

const APP = env("APP_URL"); // http://app.usher.test:PORT
const LOGIN_BASE = env("LOGIN_URL"); // http://login.usher.test:PORT
const LOGIN = env("LOGIN");
const PASSWORD = env("PASSWORD");
const TOTP_SECRET = env("TOTP_SECRET");
const OUT = env("OUT");
mkdirSync(OUT, { recursive: true });

const totp = (offset) => codeAt(TOTP_SECRET, offset);
const browser = await launch(["--host-resolver-rules=MAP *.usher.test 127.0.0.1"]);

async function signIn(page, code) {
  await fillSignIn(page, LOGIN, PASSWORD);
  await page.getByLabel("Code from your authenticator app").waitFor();
  await page.getByLabel("Code from your authenticator app").fill(code);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

await run(browser, "FORWARD_AUTH_OK", async (at) => {
  const context = await browser.newContext();
  // A cookie of the app's own, which must still reach it.
  await context.addCookies([{ name: "app_pref", value: "compact", url: APP }]);
  const page = await context.newPage();

  at("open the app: forward-auth sends the browser to Usher's sign-in");
  await page.goto(`${APP}/cases?id=7`);
  await page.waitForURL((url) => url.href.startsWith(`${LOGIN_BASE}/login?rd=`));
  await page.screenshot({ path: `${OUT}/forward-auth-login.png`, fullPage: true });

  at("sign in with password and TOTP, and land back on the app");
  await signIn(page, totp(0));
  await page.waitForURL(`${APP}/cases?id=7`);
  const seen = JSON.parse(await page.locator("body").innerText());
  expect(seen["x-usher-login"] === LOGIN, `the app to see X-Usher-Login ${LOGIN}, got ${JSON.stringify(seen)}`);
  expect(/^[0-9a-f]{20}$/.test(seen["x-usher-account"] || ""), `an X-Usher-Account, got ${JSON.stringify(seen)}`);
  expect((seen["x-usher-permissions"] || "").includes("manageCase"), "the permissions");
  expect(!(seen.cookie || "").includes("usher_"), `Usher's cookie stripped, got ${seen.cookie}`);
  const onApp = (await context.cookies(APP)).map((c) => c.name);
  expect(!onApp.includes("usher_session"), `the session cookie stays on Usher's host, the app's has ${onApp}`);
  expect(onApp.includes("usher_forward"), `the app's host has the forward-auth cookie, got ${onApp}`);
  expect((seen.cookie || "").includes("app_pref=compact"), `the app's own cookie kept, got ${seen.cookie}`);
  await page.screenshot({ path: `${OUT}/forward-auth-app.png`, fullPage: true });
  console.log(`APP_SAW=${JSON.stringify(seen)}`);

  at("a foreign rd is ignored");
  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  await other.goto(`${LOGIN_BASE}/login?rd=${encodeURIComponent("http://evil.test/steal")}`);
  // The next code step: the previous one was used, and a code is accepted once.
  await signIn(other, totp(30));
  await other.waitForURL(`${LOGIN_BASE}/account`);
  expect(!other.url().includes("evil"), `stay on Usher, got ${other.url()}`);

});
