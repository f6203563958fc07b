// Reads blocks START..STOP of a channel from an orderer's Deliver, with a gRPC client built from
// the published Fabric protos (@hyperledger/fabric-protos' AtomicBroadcastClient on @grpc/grpc-js),
// the request signed with fabric-common. Two requests on one stream (START..MID, then MID+1..STOP),
// as a client may send. Prints one JSON line:
// {"blocks": [{number, tx_ids: [...]}, ...], "statuses": [..]}
//   node deliver.js HOST:PORT CHANNEL MSPID CERT.pem KEY.pem START STOP
'use strict';
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const { common, orderer } = require('@hyperledger/fabric-protos');
const { Timestamp } = require('google-protobuf/google/protobuf/timestamp_pb');
const { Client, User } = require('fabric-common');

function seekEnvelope(identity, channel, start, stop) {
  const position = (n) => {
    const specified = new orderer.SeekSpecified();
    specified.setNumber(n);
    const p = new orderer.SeekPosition();
    p.setSpecified(specified);
    return p;
  };
  const seek = new orderer.SeekInfo();
  seek.setStart(position(start));
  seek.setStop(position(stop));
  seek.setBehavior(orderer.SeekInfo.SeekBehavior.BLOCK_UNTIL_READY);
  identity.calculateTransactionId();
  const channelHeader = new common.ChannelHeader();
  channelHeader.setType(common.HeaderType.DELIVER_SEEK_INFO);
  channelHeader.setVersion(0);
  channelHeader.setTimestamp(Timestamp.fromDate(new Date()));
  channelHeader.setChannelId(channel);
  channelHeader.setTxId(identity.transactionId);
  const signatureHeader = new common.SignatureHeader();
  signatureHeader.setCreator(identity.serializeIdentity());
  signatureHeader.setNonce(identity.nonce);
  const header = new common.Header();
  header.setChannelHeader(channelHeader.serializeBinary());
  header.setSignatureHeader(signatureHeader.serializeBinary());
  const payload = new common.Payload();
  payload.setHeader(header);
  payload.setData(seek.serializeBinary());
  const payloadBytes = payload.serializeBinary();
  const envelope = new common.Envelope();
  envelope.setPayload(payloadBytes);
  envelope.setSignature(identity.sign(Buffer.from(payloadBytes)));
  return envelope;
}

function txIds(block) {
  return block.getData().getDataList_asU8().map((raw) => {
    const payload = common.Payload.deserializeBinary(common.Envelope.deserializeBinary(raw).getPayload_asU8());
    return common.ChannelHeader.deserializeBinary(payload.getHeader().getChannelHeader_asU8()).getTxId();
  });
}

async function main() {
  const [address, channel, mspid, certFile, keyFile, start, stop] = process.argv.slice(2);
  const user = User.createUser('client', '', mspid, fs.readFileSync(certFile, 'utf8'), fs.readFileSync(keyFile, 'utf8'));
  const identity = Client.newClient('osn-compat').newIdentityContext(user);
  const client = new orderer.AtomicBroadcastClient(address, grpc.credentials.createInsecure());
  const stream = client.deliver();
  const mid = Math.floor((Number(start) + Number(stop)) / 2);
  const requests = [[Number(start), mid], [mid + 1, Number(stop)]];
  const out = { blocks: [], statuses: [] };
  await new Promise((resolve, reject) => {
    stream.on('data', (response) => {
      if (response.hasBlock()) {
        const block = response.getBlock();
        out.blocks.push({ number: block.getHeader().getNumber(), tx_ids: txIds(block) });
      } else {
        out.statuses.push(response.getStatus());
        if (response.getStatus() !== common.Status.SUCCESS || out.statuses.length === requests.length) {
          stream.end();
          resolve();
        } else {
          stream.write(seekEnvelope(identity, channel, ...requests[out.statuses.length]));
        }
      }
    });
    stream.on('error', reject);
    stream.on('end', resolve);
    stream.write(seekEnvelope(identity, channel, ...requests[0]));
  });
  client.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
