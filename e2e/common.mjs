// What the browser scripts share: their settings from the environment, the headless Debian
// chromium they drive, TOTP codes from oathtool, sign-in, and how a failing step is reported.

import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

/** The environment variable `name`, which must be set. */
export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

/** Throws `expected <what>` unless `cond` holds. */
export const expect = (cond, what) => {
  if (!cond) throw new Error(`expected ${what}`);
};

/** The TOTP code oathtool computes for `secret` (base32) at now + `offset` seconds. */
export const totp = (secret, offset) =>
  execFileSync("oathtool", ["--totp", "-b", secret, "--now", `@${Math.floor(Date.now() / 1000) + offset}`])
    .toString()
    .trim();

/** Headless chromium ($CHROMIUM or Debian's), with `extraArgs`. */
export const launch = (extraArgs = []) =>
  chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-dev-shm-usage",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
  });

/**
 * A CDP virtual authenticator on `page` of `context`, as a phone or laptop's built-in one:
 * ctap2, internal transport, resident keys, user verification that succeeds, presence
 * simulated. Returns the CDP session and the authenticator's id.
 */
export async function virtualAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/** Fills the sign-in form on the page it is on, and submits it. */
export async function fillSignIn(page, login, password) {
  await page.getByLabel("Login (email address)").fill(login);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

/** Opens `${base}/login` and signs in. */
export async function signIn(page, base, login, password) {
  await page.goto(`${base}/login`);
  await fillSignIn(page, login, password);
}

/**
 * Runs `steps(setStep)` with `browser`, printing `ok` at the end; a failure names the step it
 * happened in and makes the process exit non-zero. The browser is closed either way.
 */
export async function run(browser, ok, steps) {
  let step = "start";
  try {
    await steps((s) => {
      step = s;
    });
    console.log(ok);
  } catch (e) {
    console.error(`FAILED at step "${step}": ${e.message}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
