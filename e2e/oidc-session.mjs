// A certified relying party (openid-client 6) as a confidential client, for the end of a
// session (issue 26): the code flow through Usher's sign-in page in Chromium, introspection
// (RFC 7662) and revocation (RFC 7009) with its secret, then RP-initiated logout through the
// end-session URL openid-client builds. Driven by operator/tests/auth/oidc_clients.rs through
// the environment. Prints one JSON line of what the app learnt, then OIDC_SESSION_OK.

import * as oidc from "openid-client";
import { env, expect, fillSignIn, launch, run } from "./common.mjs";

const ISSUER = env("ISSUER");
const CLIENT_ID = env("CLIENT_ID");
const CLIENT_SECRET = env("CLIENT_SECRET");
const REDIRECT = env("REDIRECT_URI");
const BYE = env("POST_LOGOUT_URI");
const LOGIN = env("LOGIN");
const PASSWORD = env("PASSWORD");

const browser = await launch();
await run(browser, "OIDC_SESSION_OK", async (at) => {
  at("discovery names the end-session, revocation and introspection endpoints");
  const config = await oidc.discovery(new URL(ISSUER), CLIENT_ID, CLIENT_SECRET, oidc.ClientSecretBasic(CLIENT_SECRET), {
    execute: [oidc.allowInsecureRequests],
  });
  const meta = config.serverMetadata();
  expect(meta.end_session_endpoint === `${ISSUER}/oauth2/logout`, `end_session_endpoint: ${meta.end_session_endpoint}`);
  expect(meta.backchannel_logout_supported === true, "backchannel_logout_supported");

  at("the code flow through Usher's sign-in page");
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    scope: "openid email",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
  });
  const page = await (await browser.newContext()).newPage();
  let callback;
  await page.route(`${REDIRECT}**`, (route) => {
    callback = route.request().url();
    route.fulfill({ status: 200, contentType: "text/plain", body: "signed in" });
  });
  let bye;
  await page.goto(url.href);
  await fillSignIn(page, LOGIN, PASSWORD);
  await page.getByText("signed in").waitFor();
  const tokens = await oidc.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: state,
  });

  at("introspection of the access and refresh tokens");
  const access = await oidc.tokenIntrospection(config, tokens.access_token);
  const refresh = await oidc.tokenIntrospection(config, tokens.refresh_token, { token_type_hint: "refresh_token" });

  at("revocation of the refresh token; introspection says inactive");
  await oidc.tokenRevocation(config, tokens.refresh_token, { token_type_hint: "refresh_token" });
  const revoked = await oidc.tokenIntrospection(config, tokens.refresh_token);
  const revokedAccess = await oidc.tokenIntrospection(config, tokens.access_token);

  at("sign in to the app again, then its end-session URL signs out of Usher and comes back");
  // The browser's own requests (its cookies), without following the redirect back to the
  // app: the Location is what the app would receive.
  const location = async (href) => {
    const res = await page.request.get(href, { maxRedirects: 0 });
    expect(res.status() === 302, `a redirect from ${href}, got ${res.status()}: ${(await res.text()).slice(0, 500)}`);
    return res.headers()["location"];
  };
  const v2 = oidc.randomPKCECodeVerifier();
  const s2 = oidc.randomState();
  callback = await location(
    oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: "openid email",
      code_challenge: await oidc.calculatePKCECodeChallenge(v2),
      code_challenge_method: "S256",
      state: s2,
    }).href,
  );
  const second = await oidc.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: v2, expectedState: s2 });
  const end = oidc.buildEndSessionUrl(config, {
    id_token_hint: second.id_token,
    post_logout_redirect_uri: BYE,
    state: "bye-state",
  });
  bye = await location(end.href);
  const afterLogout = await oidc.tokenIntrospection(config, second.access_token);
  await page.goto(`${ISSUER}/account`);
  await page.waitForURL((u) => u.href.startsWith(`${ISSUER}/login`));

  console.log(JSON.stringify({ access, refresh, revoked, revokedAccess, bye, afterLogout }));
});
