//! Block assembly: header and data hashes as Fabric computes them, and the metadata slots.
//!
//! - header hash = SHA-256 of the ASN.1 DER `SEQUENCE { INTEGER number, OCTET STRING
//!   previous_hash, OCTET STRING data_hash }`, the number a minimal two's-complement INTEGER;
//! - data hash = SHA-256 over the concatenated `BlockData.data` entries;
//! - metadata: one marshaled `Metadata` per `BlockMetadataIndex` value. LAST_CONFIG holds
//!   `LastConfig`, SIGNATURES holds `OrdererBlockMetadata{last_config}` and the OSNs' signatures
//!   over it ([`signing_input`], [`add_signature`]; the key and the nonce live in the shell),
//!   ORDERER holds `KafkaMetadata`.

use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::proto::common::{BlockMetadataIndex, MetadataSignature};
use crate::proto::{
    Block, BlockData, BlockHeader, BlockMetadata, KafkaMetadata, LastConfig, Metadata, OrdererBlockMetadata,
};

/// Number of metadata slots in every block (one per `BlockMetadataIndex` value).
pub const METADATA_SLOTS: usize = BlockMetadataIndex::CommitHash as usize + 1;

/// SHA-256 over the concatenation of the block's data entries.
pub fn data_hash(data: &[Bytes]) -> Vec<u8> {
    let mut h = Sha256::new();
    for d in data {
        h.update(d);
    }
    h.finalize().to_vec()
}

/// The ASN.1 DER bytes of a block header, as Fabric hashes (and signs) them.
pub fn header_der(header: &BlockHeader) -> Vec<u8> {
    let mut body = Vec::with_capacity(2 * 34 + 10);
    der_integer(&mut body, header.number as i64);
    der_octet_string(&mut body, &header.previous_hash);
    der_octet_string(&mut body, &header.data_hash);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    der_length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// SHA-256 of [`header_der`]: the value the next block's `previous_hash` holds.
pub fn header_hash(header: &BlockHeader) -> Vec<u8> {
    Sha256::digest(header_der(header)).to_vec()
}

fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der_integer(out: &mut Vec<u8>, n: i64) {
    let bytes = n.to_be_bytes();
    // Drop leading bytes that only repeat the sign of the next byte (minimal encoding).
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    out.push(0x02);
    der_length(out, 8 - start);
    out.extend_from_slice(&bytes[start..]);
}

fn der_octet_string(out: &mut Vec<u8>, data: &[u8]) {
    out.push(0x04);
    der_length(out, data.len());
    out.extend_from_slice(data);
}

/// Builds a complete block (header, data, unsigned metadata) from its parts.
pub fn build_block(
    number: u64,
    previous_hash: Bytes,
    envelopes: Vec<Bytes>,
    last_config: u64,
    kafka: &KafkaMetadata,
) -> Block {
    let header = BlockHeader { number, previous_hash, data_hash: Bytes::from(data_hash(&envelopes)) };
    Block {
        header: Some(header),
        data: Some(BlockData { data: envelopes }),
        metadata: Some(block_metadata(last_config, kafka)),
    }
}

/// The metadata as Fabric 1.4.1+'s Kafka orderer writes it: LAST_CONFIG = `Metadata{LastConfig}`,
/// ORDERER = `Metadata{KafkaMetadata}`, and SIGNATURES' value = `OrdererBlockMetadata{last_config,
/// consenter_metadata = the ORDERER entry's bytes}` (what every OSN signs; the signatures are
/// added by `SigningIdentity::sign_block`).
fn block_metadata(last_config: u64, kafka: &KafkaMetadata) -> BlockMetadata {
    let mut slots = vec![Bytes::new(); METADATA_SLOTS];
    let last = LastConfig { index: last_config };
    let slot = |value: Vec<u8>| Bytes::from(Metadata { value: value.into(), signatures: vec![] }.encode_to_vec());
    let orderer = slot(kafka.encode_to_vec());
    let orderer_meta = OrdererBlockMetadata { last_config: Some(last), consenter_metadata: orderer.clone() };
    slots[BlockMetadataIndex::Signatures as usize] = slot(orderer_meta.encode_to_vec());
    slots[BlockMetadataIndex::LastConfig as usize] = slot(last.encode_to_vec());
    slots[BlockMetadataIndex::Orderer as usize] = orderer;
    BlockMetadata { metadata: slots }
}

/// The Kafka metadata a genesis block carries: nothing of the partition consumed yet.
pub fn genesis_kafka_metadata() -> KafkaMetadata {
    KafkaMetadata { last_offset_persisted: -1, last_original_offset_processed: 0, last_resubmitted_config_offset: 0 }
}

/// The genesis block 0 holding one marshaled CONFIG envelope (a channel created through the
/// system channel: the envelope as ordered there, so every OSN writes the same block). As
/// Fabric's orderer writes it: no previous hash, five empty metadata entries, no signature.
pub fn genesis_block_of(config_envelope: Bytes) -> Block {
    let mut block = build_block(0, Bytes::new(), vec![config_envelope], 0, &genesis_kafka_metadata());
    block.metadata = Some(BlockMetadata { metadata: vec![Bytes::new(); METADATA_SLOTS] });
    block
}

/// Reads one metadata slot's value, if the block has it and it decodes.
pub fn metadata_value(block: &Block, index: BlockMetadataIndex) -> Option<Bytes> {
    let raw = block.metadata.as_ref()?.metadata.get(index as usize)?;
    Metadata::decode(raw.clone()).ok().map(|m| m.value)
}

/// The decoded `Metadata` of a block's SIGNATURES slot (value and signatures).
pub fn signatures_metadata(block: &Block) -> Option<Metadata> {
    let raw = block.metadata.as_ref()?.metadata.get(BlockMetadataIndex::Signatures as usize)?;
    Metadata::decode(raw.clone()).ok()
}

/// The bytes a block signature signs: the SIGNATURES slot's `value`, then the marshaled
/// `SignatureHeader`, then the header's DER ([`header_der`]), concatenated (Fabric's
/// `BlockSignature` input).
pub fn signing_input(value: &[u8], signature_header: &[u8], header: &BlockHeader) -> Vec<u8> {
    let der = header_der(header);
    let mut out = Vec::with_capacity(value.len() + signature_header.len() + der.len());
    out.extend_from_slice(value);
    out.extend_from_slice(signature_header);
    out.extend_from_slice(&der);
    out
}

/// What an OSN signs for `block` with `signature_header`: [`signing_input`] over its SIGNATURES
/// value and header. None if the block has no header or no decodable SIGNATURES slot.
pub fn block_signing_input(block: &Block, signature_header: &[u8]) -> Option<Vec<u8>> {
    let header = block.header.as_ref()?;
    let meta = signatures_metadata(block)?;
    Some(signing_input(&meta.value, signature_header, header))
}

/// Appends one `MetadataSignature` to the block's SIGNATURES slot. Only that slot's `signatures`
/// change: the header, the data and the other slots stay byte-identical.
pub fn add_signature(block: &mut Block, signature_header: Bytes, signature: Bytes) {
    let slots = &mut block.metadata.get_or_insert_with(Default::default).metadata;
    if slots.len() < METADATA_SLOTS {
        slots.resize(METADATA_SLOTS, Bytes::new());
    }
    let slot = &mut slots[BlockMetadataIndex::Signatures as usize];
    let mut meta = Metadata::decode(slot.clone()).unwrap_or_default();
    meta.signatures.push(MetadataSignature { signature_header, signature });
    *slot = meta.encode_to_vec().into();
}

/// The `KafkaMetadata` of a block's ORDERER slot.
pub fn kafka_metadata(block: &Block) -> Option<KafkaMetadata> {
    KafkaMetadata::decode(metadata_value(block, BlockMetadataIndex::Orderer)?).ok()
}

/// The Kafka position a chain resumes from after `block`: its ORDERER metadata, except that a
/// genesis block whose ORDERER slot holds nothing (Fabric writes a genesis block's metadata
/// empty) has consumed nothing of the partition yet ([`genesis_kafka_metadata`]), as Fabric's
/// Kafka chain starts from the oldest offset then.
pub fn resume_metadata(block: &Block) -> Option<KafkaMetadata> {
    let genesis = block.header.as_ref().is_some_and(|h| h.number == 0);
    let empty = metadata_value(block, BlockMetadataIndex::Orderer).is_none_or(|v| v.is_empty());
    if genesis && empty {
        return Some(genesis_kafka_metadata());
    }
    kafka_metadata(block)
}

/// The `LastConfig` index of a block's LAST_CONFIG slot.
pub fn last_config(block: &Block) -> Option<u64> {
    LastConfig::decode(metadata_value(block, BlockMetadataIndex::LastConfig)?).ok().map(|l| l.index)
}

/// Lower-case hex of some bytes (for IDs and logs).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_int(n: i64, want: &[u8]) {
        let mut out = Vec::new();
        der_integer(&mut out, n);
        assert_eq!(out, want, "DER INTEGER {n}");
    }

    #[test]
    fn der_integers_are_minimal() {
        check_int(0, &[0x02, 0x01, 0x00]);
        check_int(1, &[0x02, 0x01, 0x01]);
        check_int(127, &[0x02, 0x01, 0x7f]);
        check_int(128, &[0x02, 0x02, 0x00, 0x80]);
        check_int(256, &[0x02, 0x02, 0x01, 0x00]);
        check_int(-1, &[0x02, 0x01, 0xff]);
        check_int(-129, &[0x02, 0x02, 0xff, 0x7f]);
        check_int(i64::MAX, &[0x02, 0x08, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn header_der_matches_hand_encoding() {
        let header = BlockHeader { number: 1, previous_hash: Bytes::from_static(&[0xaa; 2]), data_hash: Bytes::new() };
        assert_eq!(header_der(&header), vec![0x30, 0x09, 0x02, 0x01, 0x01, 0x04, 0x02, 0xaa, 0xaa, 0x04, 0x00]);
        // Long form length once the body passes 127 bytes.
        let header =
            BlockHeader { number: 0, previous_hash: Bytes::from(vec![1; 100]), data_hash: Bytes::from(vec![2; 32]) };
        let der = header_der(&header);
        assert_eq!(&der[..3], &[0x30, 0x81, 3 + 2 + 100 + 2 + 32]);
        assert_eq!(der.len(), 3 + 139);
    }

    #[test]
    fn known_hashes() {
        // SHA-256 of the empty string, the data hash of an empty block.
        assert_eq!(hex(&data_hash(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        // Data hash is over the concatenation, so the split does not matter.
        assert_eq!(data_hash(&[Bytes::from("ab"), Bytes::from("c")]), data_hash(&[Bytes::from("abc")]));
        assert_eq!(
            hex(&data_hash(&[Bytes::from("abc")])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_created_channels_genesis_block_holds_its_config_envelope() {
        let envelope = Bytes::from_static(b"a CONFIG envelope");
        let a = genesis_block_of(envelope.clone());
        let header = a.header.as_ref().unwrap();
        assert_eq!(header.number, 0);
        assert!(header.previous_hash.is_empty());
        assert_eq!(a.data.as_ref().unwrap().data, vec![envelope]);
        assert_eq!(a.metadata.as_ref().unwrap().metadata, vec![Bytes::new(); METADATA_SLOTS], "as Fabric's");
        assert_eq!(resume_metadata(&a).unwrap().last_offset_persisted, -1);
        assert_eq!(last_config(&a), Some(0));
    }
}
