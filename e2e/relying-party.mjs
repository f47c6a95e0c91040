// A relying party others wrote, in front of a page (Apache's mod_auth_openidc, or oauth2-proxy
// behind nginx), against Usher: open the protected page, sign in on Usher's page, land back on
// the page, which shows what the relying party passed on. Driven by
// operator/tests/auth/oidc_clients.rs through the environment. Prints the page's text, then
// RP_OK.
//
// With READY_FILE (mod_auth_openidc's logout, issue 26): once signed in, it creates that file
// (the test then ends the person's session in Usher) and reloads the page until the relying
// party's own session is gone and the browser is back at Usher's sign-in; then it signs in
// again and uses the relying party's RP-initiated logout, which must land on LOGGED_OUT_URL
// showing LOGGED_OUT_TEXT with the Usher session ended too.

import { env, expect, fillSignIn, launch, run } from "./common.mjs";

const PAGE = env("PAGE_URL");
const ISSUER = env("ISSUER");
const LOGIN = env("LOGIN");
const PASSWORD = env("PASSWORD");
const EXPECT = env("EXPECT_TEXT");
const READY_FILE = process.env.READY_FILE;

const browser = await launch();
await run(browser, "RP_OK", async (at) => {
  // The relying party serves https with the tests' own CA.
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  at("the protected page sends the browser to Usher's sign-in");
  await page.goto(PAGE);
  await page
    .waitForURL((u) => u.href.startsWith(`${ISSUER}/login?rd=`), { timeout: 15000 })
    .catch(async (e) => {
      throw new Error(`${e.message}\nthe browser is at ${page.url()}:\n${(await page.content()).slice(0, 2000)}`);
    });
  at("sign in and land back on the page");
  await fillSignIn(page, LOGIN, PASSWORD);
  await page.getByText(EXPECT).first().waitFor();
  expect(page.url().startsWith(new URL(PAGE).origin), `back on the relying party, got ${page.url()}`);
  at("the page again: the relying party's own session");
  await page.goto(PAGE);
  await page.getByText(EXPECT).first().waitFor();
  console.log(await page.locator("body").innerText());
  if (!READY_FILE) return;
  const { writeFileSync } = await import("node:fs");
  const atSignIn = () => page.url().startsWith(`${ISSUER}/login`);
  at("the session ended in Usher ends the relying party's (back-channel logout)");
  writeFileSync(READY_FILE, "signed in\n");
  const until = Date.now() + 40000;
  while (!atSignIn()) {
    expect(Date.now() < until, `the relying party's session outlived Usher's: still at ${page.url()}`);
    await new Promise((r) => setTimeout(r, 500));
    await page.goto(PAGE);
    await page.waitForLoadState();
  }
  at("sign in again, then the relying party's RP-initiated logout");
  await fillSignIn(page, LOGIN, PASSWORD);
  await page.getByText(EXPECT).first().waitFor();
  const origin = new URL(PAGE).origin;
  const loggedOut = env("LOGGED_OUT_URL");
  await page.goto(`${origin}/protected/redirect_uri?logout=${encodeURIComponent(loggedOut)}`);
  await page.waitForURL((u) => u.href.startsWith(loggedOut), { timeout: 15000 });
  await page.getByText(env("LOGGED_OUT_TEXT")).first().waitFor();
  at("Usher's session ended with it");
  await page.goto(`${ISSUER}/account`);
  await page.waitForURL((u) => u.href.startsWith(`${ISSUER}/login`), { timeout: 15000 });
  console.log("RP_LOGGED_OUT");
});
