#!/usr/bin/env node
// Checks the envelope signing of the API page (src/http/api.html) outside a browser: runs the
// page's own "BEGIN envelopes … END envelopes" script section under Node 20 (which has WebCrypto
// as globalThis.crypto), signs envelopes with an identity made by `osn identity` or `osn dev`, and
// either prints them or sends them to a running OSN and checks it accepts them.
//
//   node scripts/check-docs-signing.mjs --identity DIR [--msp-id ID] [--channel devchannel]
//                                       [--osn http://127.0.0.1:7060] [--count 8]
//                                       [--admin DIR [--orderer-admin DIR] [--consortium SampleConsortium]]
//
// DIR is an identity directory (signcerts/cert.pem, keystore/key.pem, mspid). First, offline, it
// checks that the page's config update code makes what OSN's CLI makes: its creation update and
// its protobuf encoding of Fabric's common.ConfigUpdate are those of the creation example of
// src/http/openapi.json (made by `osn channel create`), and its batch timeout update computed from
// the read route's example is, byte for byte, the ConfigUpdate of the update example (made by
// `osn channel config update --batch-timeout 1s`). Without --osn it then prints one signed
// ENDORSER_TRANSACTION envelope as JSON. With --osn it broadcasts --count envelopes (each ECDSA
// signature has about even odds of needing the low-S conversion), then asks deliver for the
// newest block with a signed seek request, and exits non-zero unless every answer is SUCCESS.
// With --admin (an admin of a member organisation of the consortium, such as `osn dev`'s
// ~/.osn/dev-crypto/dev-org/identities/admin, of the same organisation as --identity) it also
// checks the page's config updates against the OSN: it creates a channel (POST /v1/channels,
// signed and approved by the admin: 201), reads its configuration as --identity (200), and sets
// its batch timeout with the update the page computes from it, signed by --identity (a writer of
// the channel) and approved by --identity and --orderer-admin (the orderer organisation's admin,
// such as ~/.osn/dev-crypto/orderer-org/identities/admin: 200) or, without --orderer-admin, by
// --identity and --admin, which /Channel/Orderer/Admins refuses (403 naming
// /Channel/Orderer/BatchTimeout: the update decoded, its creator is a writer, its read set and
// versions are right, and its approvals were judged by the element's mod_policy).

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
    "orderer-admin": { type: "string" },
    consortium: { type: "string", default: "SampleConsortium" },
  },
});
if (!args.identity) {
  console.error("usage: check-docs-signing.mjs --identity DIR [--msp-id ID] [--channel C] [--osn URL] [--count N] [--admin DIR [--orderer-admin DIR] [--consortium NAME]]");
  process.exit(2);
}

// The page's envelope and signing code, evaluated as it is in the browser.
const page = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../src/http/api.html"), "utf8");
const begin = page.indexOf("/* BEGIN envelopes");
const end = page.indexOf("/* END envelopes */");
if (begin < 0 || end < begin) throw new Error("api.html has no BEGIN envelopes … END envelopes section");
const names = [
  "importIdentity", "transactionEnvelope", "seekEnvelope", "readAuthorization", "ecdsaDer", "P256_N",
  "configUpdateEnvelope", "creationUpdate", "batchTimeoutUpdate", "encodeMessage",
];
const lib = new Function(`"use strict";\n${page.slice(begin, end)}\nreturn { ${names.join(", ")} };`)();

const identity = async (dir, mspId) => {
  const read = (...parts) => readFileSync(join(dir, ...parts), "utf8");
  return lib.importIdentity(mspId ?? read("mspid").trim(), read("signcerts", "cert.pem"), read("keystore", "key.pem"));
};
const signer = await identity(args.identity, args["msp-id"]);
const admin = args.admin ? await identity(args.admin) : null;
const ordererAdmin = args["orderer-admin"] ? await identity(args["orderer-admin"]) : null;

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

// The page's config updates are what the CLI makes: the document's examples were made by it.
{
  const doc = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../src/http/openapi.json"), "utf8"));
  const schemas = doc.components.schemas;
  const unbase64 = (text) => Uint8Array.from(Buffer.from(text, "base64"));
  const same = (a, b) => Buffer.from(a).equals(Buffer.from(b));
  // The length-delimited fields of a protobuf message, in order: [field number, bytes].
  const fields = (bytes) => {
    const out = [];
    let at = 0;
    const varint = () => {
      let n = 0n;
      for (let shift = 0n; ; shift += 7n) {
        const b = bytes[at++];
        n |= BigInt(b & 127) << shift;
        if (b < 128) return n;
      }
    };
    while (at < bytes.length) {
      const key = Number(varint());
      if ((key & 7) === 0) varint();
      else if ((key & 7) === 2) {
        const length = Number(varint());
        out.push([key >> 3, bytes.subarray(at, at + length)]);
        at += length;
      } else throw new Error(`unexpected wire type ${key & 7}`);
    }
    return out;
  };
  const field = (bytes, number) => {
    const found = fields(bytes).find(([n]) => n === number);
    if (!found) throw new Error(`no field ${number}`);
    return found[1];
  };
  // The marshaled ConfigUpdate of a JSON CONFIG_UPDATE envelope: Envelope.payload → Payload.data →
  // ConfigUpdateEnvelope.config_update.
  const configUpdateOf = (envelope) => field(field(unbase64(envelope.payload), 2), 1);
  const sorted = (v) => JSON.stringify(v, (_, x) =>
    x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x);
  const check = (what, ok) => {
    if (!ok) throw new Error(`the page's config update code: ${what}`);
    console.log(`ok   ${what}`);
  };
  const creation = schemas.ConfigUpdate.example;
  check("its creation update is the ConfigUpdate schema's example (osn channel create's)",
    sorted(lib.creationUpdate("newchannel", "SampleConsortium", ["DevOrgMSP"])) === sorted(creation));
  check("it encodes that ConfigUpdate to the bytes osn channel create signed",
    same(lib.encodeMessage("ConfigUpdate", creation, "ConfigUpdate"), unbase64(schemas.ConfigUpdateEnvelope.example.configUpdate)));
  const config = doc.paths["/v1/channels/{channel}/config"];
  const read = config.get.responses["200"].content["application/json"].example;
  const sent = config.post.requestBody.content["application/json"].example;
  const update = lib.batchTimeoutUpdate("devchannel", read, "1s");
  check("its batch timeout update of the read example is the update example's (osn channel config update's)",
    same(lib.encodeMessage("ConfigUpdate", update, "ConfigUpdate"), configUpdateOf(sent)));
  // Its envelope carries the signer's own ConfigSignature first, then the approvers' (here the
  // signer again), each naming its signer in its signature header.
  const built = await lib.configUpdateEnvelope(update, signer, [signer]);
  const data = field(unbase64(built.payload), 2);
  check("its CONFIG_UPDATE envelope carries that update", same(field(data, 1), configUpdateOf(sent)));
  const signatures = fields(data).filter(([n]) => n === 2).map(([, s]) => s);
  check("and a ConfigSignature by the signer, then one by the approver",
    signatures.length === 2 && signatures.every((s) => same(field(field(s, 1), 1), signer.creator)));
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
  const send = async (method, path, body, headers = {}) => {
    const response = await fetch(`${args.osn}${path}`, {
      method,
      headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    return [response.status, await response.text()];
  };
  const check = (what, want, [code, body], also = () => true) => {
    const ok = code === want && also(body);
    if (!ok) failures++;
    console.log(`${ok ? "ok  " : "FAIL"} ${what}: HTTP ${code} ${body.trim().slice(0, 200)}`);
    return ok;
  };
  // A new channel may still be connecting to Kafka: retry while it answers 503.
  const retry = async (request) => {
    let answer;
    for (let attempt = 0; attempt < 30; attempt++) {
      answer = await request();
      if (answer[0] !== 503) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return answer;
  };
  const channel = `docs-check-${Date.now()}`;
  const create = lib.creationUpdate(channel, args.consortium, [admin.mspId]);
  check(`create ${channel} in ${args.consortium} (signed and approved by the admin)`, 201,
    await send("POST", "/v1/channels", await lib.configUpdateEnvelope(create, admin)));
  const read = await retry(async () =>
    send("GET", `/v1/channels/${channel}/config`, null, { Authorization: await lib.readAuthorization(channel, signer) }));
  if (check(`read the configuration of ${channel} (as --identity)`, 200, read)) {
    const update = lib.batchTimeoutUpdate(channel, JSON.parse(read[1]), "750ms");
    const approver = ordererAdmin ?? admin;
    const answer = await retry(async () =>
      send("POST", `/v1/channels/${channel}/config`, await lib.configUpdateEnvelope(update, signer, [approver])));
    const what = `set the batch timeout of ${channel} (signed by --identity, approved by it and ${ordererAdmin ? "--orderer-admin" : "--admin"})`;
    if (ordererAdmin) {
      check(what, 200, answer, (body) => JSON.parse(body).channel_group.groups.Orderer.values.BatchTimeout.value.timeout === "750ms");
    } else {
      check(`${what}, refused by its mod_policy`, 403, answer, (body) => body.includes("/Channel/Orderer/BatchTimeout"));
    }
  }
}
process.exit(failures ? 1 : 0);
