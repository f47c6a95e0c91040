// Answers Usher's passkey ceremonies in Chromium for operator/examples/record_passkeys.rs, which
// serves them at BASE and writes what was answered to the unit tests' fixture. A CDP virtual
// authenticator (ctap2, internal transport, resident keys, user verification) answers;
// navigator.credentials is called through the pages' own script (creationOptions,
// requestOptions, credentialJson of assets/usher.js); the last ceremony on a page at PHISHING,
// another origin under the same RP ID. Not part of `make test`. Prints RECORDED.

import { env, expect, launch, run, virtualAuthenticator } from "./common.mjs";

const BASE = env("BASE");
const STEPS = env("STEPS").split(",");
const PHISHING = env("PHISHING");

const browser = await launch();
await run(browser, "RECORDED", async (at) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await virtualAuthenticator(context, page);
  const answer = (step) =>
    page.evaluate(async (step) => {
      const post = async (path, body) => {
        const res = await fetch(path, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
        return res.json();
      };
      const { publicKey } = await post(`/start/${step}`, {});
      let cred;
      if (publicKey.user) {
        cred = await navigator.credentials.create({ publicKey: creationOptions(publicKey) });
      } else {
        const request = requestOptions(publicKey);
        // What a client that skips user verification sends (the server must refuse it).
        if (step === "no-user-verification") request.userVerification = "discouraged";
        cred = await navigator.credentials.get({ publicKey: request });
      }
      return post(`/finish/${step}`, credentialJson(cred));
    }, step);
  const record = async (base, step) => {
    at(step);
    if (page.url() !== `${base}/`) await page.goto(`${base}/`);
    const verdict = await answer(step);
    console.log(JSON.stringify(verdict));
    expect(verdict.step === step, `the answer to ${step} recorded`);
  };
  for (const step of STEPS) await record(BASE, step);
  // A page on another origin relaying the real server's options (a live phishing proxy): the
  // browser signs what it sees, its own origin.
  await record(PHISHING, "phished");
});
