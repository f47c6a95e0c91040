// A relying party others wrote, in front of a page (Apache's mod_auth_openidc, or oauth2-proxy
// behind nginx), against Usher: open the protected page, sign in on Usher's page, land back on
// the page, which shows what the relying party passed on. Driven by
// operator/tests/auth/oidc_clients.rs through the environment. Prints the page's text, then
// RP_OK.

import { env, expect, fillSignIn, launch, run } from "./common.mjs";

const PAGE = env("PAGE_URL");
const ISSUER = env("ISSUER");
const LOGIN = env("LOGIN");
const PASSWORD = env("PASSWORD");
const EXPECT = env("EXPECT_TEXT");

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
});
