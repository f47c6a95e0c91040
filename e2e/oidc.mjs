// A certified relying party (openid-client 6) against Usher: discovery, the code flow with
// PKCE through the real sign-in page in Chromium (password, then a TOTP code from oathtool),
// userinfo and refresh. Driven by operator/tests/auth/oidc_clients.rs, which passes everything
// through the environment. Prints one JSON line of what the app learnt, then OIDC_OK.

import * as oidc from "openid-client";
import { env, expect, fillSignIn, launch, run, totp } from "./common.mjs";

const ISSUER = env("ISSUER");
const CLIENT_ID = env("CLIENT_ID");
const REDIRECT = env("REDIRECT_URI");
const LOGIN = env("LOGIN");
const PASSWORD = env("PASSWORD");
const TOTP_SECRET = env("TOTP_SECRET");

const browser = await launch();
await run(browser, "OIDC_OK", async (at) => {
  at("discovery");
  const config = await oidc.discovery(new URL(ISSUER), CLIENT_ID, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
  const verifier = oidc.randomPKCECodeVerifier();
  const challenge = await oidc.calculatePKCECodeChallenge(verifier);
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    scope: "openid email profile organisation groups",
    code_challenge: challenge,
    code_challenge_method: "S256",
    state,
    nonce,
  });

  at("the browser signs in on Usher's page and comes back with a code");
  const page = await (await browser.newContext()).newPage();
  let callback;
  await page.route(`${REDIRECT}**`, (route) => {
    callback = route.request().url();
    route.fulfill({ status: 200, contentType: "text/plain", body: "signed in" });
  });
  await page.goto(url.href);
  await page.waitForURL((u) => u.href.startsWith(`${ISSUER}/login?rd=`));
  await fillSignIn(page, LOGIN, PASSWORD);
  await page.getByLabel("Code from your authenticator app").waitFor();
  await page.getByLabel("Code from your authenticator app").fill(totp(TOTP_SECRET, 0));
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByText("signed in").waitFor();
  expect(callback && callback.startsWith(REDIRECT), `a callback, got ${callback}`);

  at("the code grant (the ID token checked by openid-client: signature, iss, aud, nonce)");
  const tokens = await oidc.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
  });
  const claims = tokens.claims();

  at("userinfo");
  const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);

  at("refresh");
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
  expect(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, "a rotated refresh token");
  const again = await oidc.fetchUserInfo(config, refreshed.access_token, claims.sub);

  at("the spent refresh token is refused");
  let reused;
  try {
    await oidc.refreshTokenGrant(config, tokens.refresh_token);
  } catch (e) {
    reused = e.error;
  }
  expect(reused === "invalid_grant", `invalid_grant, got ${reused}`);

  console.log(JSON.stringify({ claims, info, again, reused }));
});
