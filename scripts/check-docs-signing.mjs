#!/usr/bin/env node
// Checks the envelope signing of the API page (src/http/api.html) outside a browser: runs the
// page's own "BEGIN envelopes … END envelopes" script section under Node 20 (which has WebCrypto
// as globalThis.crypto), signs envelopes with an identity made by `osn identity` or `osn dev`, and
// either prints them or sends them to a running OSN and checks it accepts them.
//
//   node scripts/check-docs-signing.mjs --identity DIR [--msp-id ID] [--channel devchannel]
//                                       [--osn http://127.0.0.1:7060] [--count 8] [--admin DIR]
//
// DIR is an identity directory (signcerts/cert.pem, keystore/key.pem, mspid). Without --osn it
// prints one signed ENDORSER_TRANSACTION envelope as JSON. With --osn it broadcasts --count
// envelopes (each ECDSA signature has about even odds of needing the low-S conversion), then
// asks deliver for the newest block with a signed seek request, and exits non-zero unless every
// answer is SUCCESS. With --admin (an admin identity directory, such as the `admin` identity of
// `osn dev`, of the same organisation as --identity) it also checks the page's config updates: it
// creates a channel (POST /v1/channels, signed by the admin), then changes its batch timeout with
// an update whose envelope --identity signs and the admin approves with a config signature, and
// exits non-zero unless the OSN answers 201 and 200.

import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    identity: { type: "string" },
    "msp-id": { type: "string" },
    channel: { type: "string", default: "devchannel" },
    osn: { type: "string" },
    count: { type: "string", default: "8" },
    admin: { type: "string" },
  },
});
if (!args.identity) {
  console.error("usage: check-docs-signing.mjs --identity DIR [--msp-id ID] [--channel C] [--osn URL] [--count N]");
  process.exit(2);
}

// The page's envelope and signing code, evaluated as it is in the browser.
const page = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../src/http/api.html"), "utf8");
const begin = page.indexOf("/* BEGIN envelopes");
const end = page.indexOf("/* END envelopes */");
if (begin < 0 || end < begin) throw new Error("api.html has no BEGIN envelopes … END envelopes section");
const names = ["importIdentity", "transactionEnvelope", "seekEnvelope", "readAuthorization", "ecdsaDer", "P256_N", "configUpdateEnvelope"];
const lib = new Function(`"use strict";\n${page.slice(begin, end)}\nreturn { ${names.join(", ")} };`)();

const read = (...parts) => readFileSync(join(args.identity, ...parts), "utf8");
const mspId = args["msp-id"] ?? read("mspid").trim();
const signer = await lib.importIdentity(mspId, read("signcerts", "cert.pem"), read("keystore", "key.pem"));
const readAdmin = (...parts) => readFileSync(join(args.admin, ...parts), "utf8");
const admin = args.admin
  ? await lib.importIdentity(readAdmin("mspid").trim(), readAdmin("signcerts", "cert.pem"), readAdmin("keystore", "key.pem"))
  : null;

// ecdsaDer on a signature whose s is high gives the low-S one: r and n - s.
{
  const raw = new Uint8Array(64);
  raw[31] = 7; // r = 7
  const s = lib.P256_N - 5n; // high
  for (let i = 0; i < 32; i++) raw[63 - i] = Number((s >> BigInt(8 * i)) & 0xffn);
  const der = Array.from(lib.ecdsaDer(raw));
  const want = [0x30, 6, 0x02, 1, 7, 0x02, 1, 5];
  if (JSON.stringify(der) !== JSON.stringify(want)) throw new Error(`ecdsaDer low-S: got ${der}, want ${want}`);
}

if (!args.osn) {
  console.log(JSON.stringify(await lib.transactionEnvelope(args.channel, "signed by check-docs-signing.mjs", signer), null, 2));
  process.exit(0);
}

let failures = 0;
const report = (what, code, body) => {
  const ok = code === 200 && /"status":\s*"SUCCESS"/.test(body);
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}: HTTP ${code} ${body.trim()}`);
};
const post = async (route, body) => {
  const response = await fetch(`${args.osn}/v1/channels/${encodeURIComponent(args.channel)}/${route}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  return [response.status, await response.text()];
};

console.log(`identity: ${signer.mspId}, ${signer.algorithm}`);
for (let i = 1; i <= Number(args.count); i++) {
  const env = await lib.transactionEnvelope(args.channel, `signed by check-docs-signing.mjs #${i}`, signer);
  report(`broadcast #${i} (signature ${Buffer.from(env.signature, "base64").length} bytes)`, ...(await post("broadcast", env)));
}
const seek = await lib.seekEnvelope(args.channel, { start: "newest", stop: "newest" }, signer);
const [code, body] = await post("deliver", seek);
const lines = body.trim().split("\n");
report(`deliver newest (${lines.length} messages; last)`, code, lines[lines.length - 1]);
{
  const response = await fetch(`${args.osn}/v1/channels/${encodeURIComponent(args.channel)}/blocks/newest`, {
    headers: { Accept: "application/json", Authorization: await lib.readAuthorization(args.channel, signer) },
  });
  const text = await response.text();
  const ok = response.status === 200 && /"header"/.test(text);
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} GET blocks/newest with the Authorization header: HTTP ${response.status} ${text.slice(0, 120)}`);
}
if (admin) {
  const postConfig = async (path, body) => {
    const response = await fetch(`${args.osn}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    return [response.status, await response.text()];
  };
  const check = (what, want, [code, body]) => {
    const ok = code === want;
    if (!ok) failures++;
    console.log(`${ok ? "ok  " : "FAIL"} ${what}: HTTP ${code} ${body.trim().slice(0, 160)}`);
  };
  const channel = `docs-check-${Date.now()}`;
  const create = { channelId: channel, setOrganizations: [{ mspId: admin.mspId }] };
  check(`create ${channel} (signed by the admin)`, 201, await postConfig("/v1/channels", await lib.configUpdateEnvelope(create, admin)));
  // A new channel may still be connecting to Kafka: retry the update while it answers 503.
  const update = { channelId: channel, batchTimeout: "750ms" };
  let answer;
  for (let attempt = 0; attempt < 30; attempt++) {
    answer = await postConfig(`/v1/channels/${channel}/config`, await lib.configUpdateEnvelope(update, signer, [admin]));
    if (answer[0] !== 503) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  check(`update ${channel} (signed by --identity, approved by the admin)`, 200, answer);
}
process.exit(failures ? 1 : 0);
