// Broadcasts COUNT envelopes to an orderer with fabric-common's Committer (Hyperledger Fabric's
// Node SDK, 2.2): one Broadcast stream per envelope, as the SDK sends them. Prints one JSON line:
// [{status, info, tx_id}, ...] in the order sent.
//   node committer.js HOST:PORT CHANNEL MSPID CERT.pem KEY.pem COUNT
'use strict';
const fs = require('fs');
const { Client, User } = require('fabric-common');
const fabproto6 = require('fabric-protos');

async function main() {
  const [address, channel, mspid, certFile, keyFile, count] = process.argv.slice(2);
  const user = User.createUser('client', '', mspid, fs.readFileSync(certFile, 'utf8'), fs.readFileSync(keyFile, 'utf8'));
  const client = Client.newClient('osn-compat');
  const identity = client.newIdentityContext(user);
  const committer = client.newCommitter('osn', mspid);
  await committer.connect(client.newEndpoint({ url: `grpc://${address}` }));
  const results = [];
  for (let i = 0; i < Number(count); i++) {
    identity.calculateTransactionId();
    const channelHeader = fabproto6.common.ChannelHeader.encode({
      type: fabproto6.common.HeaderType.ENDORSER_TRANSACTION,
      version: 1,
      timestamp: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
      channel_id: channel,
      tx_id: identity.transactionId,
      epoch: 0,
    }).finish();
    const signatureHeader = fabproto6.common.SignatureHeader.encode({
      creator: identity.serializeIdentity(),
      nonce: identity.nonce,
    }).finish();
    const payload = fabproto6.common.Payload.encode({
      header: { channel_header: channelHeader, signature_header: signatureHeader },
      data: Buffer.from(`fabric-common transaction ${i}`),
    }).finish();
    // The SDK's own envelope form (what its Commit sends): the payload bytes and their signature.
    const response = await committer.sendBroadcast({ payload, signature: identity.sign(payload) }, 30000);
    results.push({ status: response.status, info: response.info, tx_id: identity.transactionId });
  }
  committer.disconnect();
  console.log(JSON.stringify(results));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
