//! A channel's access control: who may write (broadcast) and read (deliver), checked in Fabric's
//! order after the structural checks of [`super::envelope`]:
//!
//! creator certificate expired or not yet valid (403) → signature invalid or ECDSA high-S (403)
//! → creator not issued by a CA of an organisation of the channel (403) → policy not satisfied
//! (403) → ChannelHeader timestamp outside the time window (400).
//!
//! Parsing a creator and validating its chain is done once per distinct creator and cached;
//! the signature is verified per request, Ed25519 ones in batches. Pure: `now` is passed in.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::fabric_policy::Policies;
use super::msp::{ChainError, Identity, PublicKey, Role, SignatureError, Window};
use super::p256::RepeatKey;
use super::policy::PolicyName;
use crate::proto::Status;

/// Distinct creators remembered per channel; the cache is emptied when it reaches this.
const CACHE_CAPACITY: usize = 16_384;
/// Bytes of creators remembered per channel; the cache is emptied when it would exceed this.
const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Largest creator (a SerializedIdentity holding one PEM certificate) looked at. Real ones are
/// about 1 KB; a larger one is refused before it is parsed or remembered.
pub const MAX_CREATOR_BYTES: usize = 16 * 1024;

/// Why a request was refused, with the Fabric status it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the creator is not a valid identity: {0}")]
    BadCreator(String),
    #[error("the creator certificate ({subject}) has expired: it was valid until {until} (unix time {now})")]
    Expired { subject: String, until: String, now: i64 },
    #[error("the creator certificate ({subject}) is not yet valid: it is valid from {from} (unix time {now})")]
    NotYetValid { subject: String, from: String, now: i64 },
    #[error("signature check failed: {0}")]
    Signature(SignatureError),
    #[error("the creator (MSP '{msp_id}') is not issued by a CA of an organisation of this channel: {reason}")]
    NotChained { msp_id: String, reason: ChainError },
    #[error("the creator ({role} of '{msp_id}') does not satisfy the channel's {policy} policy ({rule})")]
    Policy { msp_id: String, role: &'static str, policy: PolicyName, rule: String },
    #[error("the channel header has no timestamp")]
    NoTimestamp,
    #[error("the channel header timestamp (unix time {timestamp}) is more than {window}s away from the OSN's time (unix time {now})")]
    Timestamp { timestamp: i64, now: i64, window: i64 },
    #[error("the request could not be verified: {0}")]
    Unverified(String),
}

impl Denied {
    pub fn status(&self) -> Status {
        match self {
            Denied::NoTimestamp | Denied::Timestamp { .. } => Status::BadRequest,
            Denied::Unverified(_) => Status::InternalServerError,
            _ => Status::Forbidden,
        }
    }
}

/// The parts of a signed request (a broadcast or deliver envelope) the checks read.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub payload: &'a [u8],
    pub signature: &'a [u8],
    /// The SignatureHeader's creator: a marshaled `msp.SerializedIdentity`.
    pub creator: &'a Bytes,
    /// The ChannelHeader's timestamp, in seconds since the Unix epoch.
    pub timestamp: Option<i64>,
}

/// A creator that passed the checks: enough to re-check it later (for example when a live
/// deliver stream's channel changes its configuration).
#[derive(Debug, Clone)]
pub struct Verified {
    pub creator: Bytes,
    pub msp_id: String,
    pub role: Role,
    /// When the creator's certificate (or a CA on its chain) stops being valid.
    pub valid_until: i64,
}

/// A deserialized creator and what this channel's organisations make of it.
struct Creator {
    /// The marshaled SerializedIdentity, copied out of the request that first named it.
    raw: Bytes,
    identity: Identity,
    /// A parsed Ed25519 key, for batch verification (single signatures are verified with ring,
    /// which measured faster here).
    ed25519: Option<ed25519_dalek::VerifyingKey>,
    /// An ECDSA key, verified with its own table once it has signed a few requests
    /// ([`crate::core::p256`]).
    ecdsa: Option<RepeatKey>,
    chain: Result<Window, ChainError>,
    /// Whether it satisfies Writers, Readers and Admins: evaluated once per configuration.
    verdicts: [OnceLock<bool>; 3],
}

/// The access control of one channel configuration: its policies (`/Channel/Writers`,
/// `/Channel/Readers`, `/Channel/Admins`) over its MSPs, as Fabric evaluates them.
pub struct Access {
    policies: Arc<Policies>,
    /// Allowed distance between a request's timestamp and the OSN's clock, in seconds.
    time_window: i64,
    /// The configuration's sequence number: broadcasts checked by this are enqueued with it.
    sequence: u64,
    cache: Mutex<CreatorCache>,
}

/// Parsed creators by their bytes, bounded in entries and bytes. Only creators that parse are
/// remembered (whatever their chain): junk costs a parse each time, not memory.
#[derive(Default)]
struct CreatorCache {
    creators: HashMap<Bytes, Arc<Result<Creator, Denied>>>,
    bytes: usize,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("organizations", &self.organizations())
            .field("sequence", &self.sequence)
            .field("time_window", &self.time_window)
            .finish()
    }
}

fn slot(policy: PolicyName) -> usize {
    match policy {
        PolicyName::Writers => 0,
        PolicyName::Readers => 1,
        PolicyName::Admins => 2,
    }
}

impl Access {
    /// The access control of a configuration's policies (sequence `sequence`), for requests
    /// whose timestamps may be `time_window_secs` away from the OSN's clock.
    pub fn new(policies: Arc<Policies>, sequence: u64, time_window_secs: i64) -> Self {
        Access { policies, time_window: time_window_secs, sequence, cache: Mutex::new(CreatorCache::default()) }
    }

    /// Access control that refuses everyone (a configuration with no policies).
    pub fn deny_all() -> Self {
        Access::new(Arc::new(Policies::default()), 0, 0)
    }

    /// Checks a request's timestamp against the OSN's clock (`now`), within the time window.
    pub fn check_timestamp(&self, timestamp: Option<i64>, now: i64) -> Result<(), Denied> {
        let timestamp = timestamp.ok_or(Denied::NoTimestamp)?;
        if timestamp.abs_diff(now) > self.time_window.unsigned_abs() {
            return Err(Denied::Timestamp { timestamp, now, window: self.time_window });
        }
        Ok(())
    }

    /// The sequence number of the configuration this checks by.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The policies and MSPs this checks by.
    pub fn policies(&self) -> &Arc<Policies> {
        &self.policies
    }

    /// The MSP IDs of the configuration's organisations.
    pub fn organizations(&self) -> BTreeSet<&str> {
        self.policies.msps.keys().map(String::as_str).collect()
    }

    /// The signers of a config update whose signatures verify (Fabric's policy evaluation over
    /// signed data: an identity that does not deserialize or a signature that does not verify is
    /// not counted; the MSPs judge chains and roles when the policy is evaluated, with no clock,
    /// as Fabric's MSP validates identities at their certificate's start). Returns the signers,
    /// and why each other signature was not counted.
    pub fn config_signers(&self, signed: &[super::configtx::SignedData]) -> (Vec<(Identity, Bytes)>, Vec<String>) {
        let (mut signers, mut dropped) = (Vec::new(), Vec::new());
        for (i, s) in signed.iter().enumerate() {
            let creator = self.creator(&s.identity);
            let verdict = creator.as_ref().as_ref().map_err(|e| e.to_string()).and_then(|c| {
                if c.ed25519.is_some() {
                    // Fabric's peers recompute every config block and cannot verify Ed25519: an
                    // approval they could not count would make them refuse the block.
                    return Err(format!(
                        "{} signs with Ed25519, which Fabric's peers cannot verify (an OSN extension for transactions only)",
                        c.identity.cert.subject
                    ));
                }
                c.identity.cert.public_key.verify(&s.data, &s.signature).map_err(|e| e.to_string())?;
                Ok(c.identity.clone())
            });
            match verdict {
                Ok(identity) => signers.push((identity, s.identity.clone())),
                Err(e) => dropped.push(format!("signature {i}: {e}")),
            }
        }
        (signers, dropped)
    }

    /// Re-validates a request accepted under an older configuration, as every OSN does when it
    /// consumes it: signature, chain and Writers under this configuration, with the certificate
    /// validity judged at the request's own timestamp, so that the verdict depends on nothing but
    /// the record and the configuration (every OSN reaches the same one).
    pub fn revalidate(&self, request: &Request<'_>) -> Result<(), Denied> {
        let timestamp = request.timestamp.ok_or(Denied::NoTimestamp)?;
        self.check(request, PolicyName::Writers, timestamp).map(|_| ())
    }

    /// The policy a name checks, in words.
    pub fn describe(&self, name: PolicyName) -> String {
        format!("{}: {}", name.path(), self.policies.describe(name.path()))
    }

    /// Checks one signed request against a policy at `now`.
    pub fn check(&self, request: &Request<'_>, policy: PolicyName, now: i64) -> Result<Verified, Denied> {
        let creator = self.creator(request.creator);
        let creator = prelude(&creator, now)?;
        creator.verify(request.payload, request.signature).map_err(Denied::Signature)?;
        self.conclude(request, creator, policy, now)
    }

    /// Checks many signed requests, verifying the Ed25519 signatures among them as one batch
    /// (falling back to one by one only if the batch fails), and the ECDSA ones whose keys have
    /// tables with one shared inversion. The answers are in request order.
    pub fn check_all(&self, requests: &[Request<'_>], policy: PolicyName, now: i64) -> Vec<Result<Verified, Denied>> {
        let creators: Vec<_> = requests.iter().map(|r| self.creator(r.creator)).collect();
        let mut results: Vec<Result<(), Denied>> = creators.iter().map(|c| prelude(c, now).map(|_| ())).collect();
        let mut batch = Vec::new();
        let (mut ecdsa, mut ecdsa_at) = (Vec::new(), Vec::new());
        for (i, (request, creator)) in requests.iter().zip(&creators).enumerate() {
            let Ok(creator) = creator.as_ref() else { continue };
            if results[i].is_err() {
                continue;
            }
            match &creator.ed25519 {
                Some(_) if request.signature.is_empty() => results[i] = Err(Denied::Signature(SignatureError::Missing)),
                Some(key) => match ed25519_dalek::Signature::from_slice(request.signature) {
                    Ok(sig) => batch.push((i, *key, sig)),
                    Err(_) => results[i] = Err(Denied::Signature(SignatureError::Invalid)),
                },
                None => match creator.table() {
                    // ECDSA with the key's table: checked below, all with one inversion.
                    Some(table) => match table.item(request.payload, request.signature) {
                        Ok(item) => {
                            ecdsa_at.push(i);
                            ecdsa.push(item);
                        }
                        Err(e) => results[i] = Err(Denied::Signature(e)),
                    },
                    // No table (yet): ring, without asking for the table a second time.
                    None => {
                        if let Err(e) = creator.identity.cert.public_key.verify(request.payload, request.signature) {
                            results[i] = Err(Denied::Signature(e));
                        }
                    }
                },
            }
        }
        for (i, good) in ecdsa_at.into_iter().zip(crate::core::p256::verify_batch(&ecdsa)) {
            if !good {
                results[i] = Err(Denied::Signature(SignatureError::Invalid));
            }
        }
        if !batch.is_empty() {
            let messages: Vec<&[u8]> = batch.iter().map(|(i, ..)| requests[*i].payload).collect();
            let signatures: Vec<_> = batch.iter().map(|(_, _, s)| *s).collect();
            let keys: Vec<_> = batch.iter().map(|(_, k, _)| *k).collect();
            if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_err() {
                for (i, ..) in &batch {
                    let (request, creator) = (&requests[*i], creators[*i].as_ref().as_ref());
                    if let Some(Err(e)) = creator.ok().map(|c| c.verify(request.payload, request.signature)) {
                        results[*i] = Err(Denied::Signature(e));
                    }
                }
            }
        }
        results
            .into_iter()
            .zip(requests.iter().zip(&creators))
            .map(|(result, (request, creator))| {
                result?;
                let creator = creator.as_ref().as_ref().map_err(Clone::clone)?;
                self.conclude(request, creator, policy, now)
            })
            .collect()
    }

    /// [`Access::check_all`] without verifying the signatures: the creator's certificate, chain,
    /// policy and timestamp only. For benchmark runs that measure the OSN without its crypto
    /// (`osn dev --skip-signature-verification`); nothing else calls it.
    pub fn check_all_unsigned(
        &self,
        requests: &[Request<'_>],
        policy: PolicyName,
        now: i64,
    ) -> Vec<Result<Verified, Denied>> {
        requests
            .iter()
            .map(|request| {
                let creator = self.creator(request.creator);
                let creator = prelude(&creator, now)?;
                // Not verified, but there must be one: a peer refuses a block holding an
                // envelope without a signature.
                if request.signature.is_empty() {
                    return Err(Denied::Signature(SignatureError::Missing));
                }
                self.conclude(request, creator, policy, now)
            })
            .collect()
    }

    /// Re-checks a creator that passed earlier (its signature is not checked again) against
    /// this configuration's organisations and policy at `now`.
    pub fn recheck(&self, verified: &Verified, policy: PolicyName, now: i64) -> Result<Verified, Denied> {
        let creator = self.creator(&verified.creator);
        let creator = prelude(&creator, now)?;
        self.authorise(creator, policy, now)
    }

    /// Chain, policy, then timestamp.
    fn conclude(
        &self,
        request: &Request<'_>,
        creator: &Creator,
        policy: PolicyName,
        now: i64,
    ) -> Result<Verified, Denied> {
        let verified = self.authorise(creator, policy, now)?;
        let timestamp = request.timestamp.ok_or(Denied::NoTimestamp)?;
        if timestamp.abs_diff(now) > self.time_window.unsigned_abs() {
            return Err(Denied::Timestamp { timestamp, now, window: self.time_window });
        }
        Ok(verified)
    }

    /// Chain and policy.
    fn authorise(&self, creator: &Creator, policy: PolicyName, now: i64) -> Result<Verified, Denied> {
        let verified = self.member(creator, now)?;
        let satisfied = *creator.verdicts[slot(policy)]
            .get_or_init(|| self.policies.evaluate(policy.path(), &[(creator.identity.clone(), creator.raw.clone())]));
        if !satisfied {
            let (msp_id, role) = (verified.msp_id, verified.role.as_str());
            return Err(Denied::Policy { msp_id, role, policy, rule: self.describe(policy) });
        }
        Ok(verified)
    }

    /// The chain to an organisation of the channel, valid at `now`.
    fn member(&self, creator: &Creator, now: i64) -> Result<Verified, Denied> {
        let msp_id = &creator.identity.msp_id;
        let window = match &creator.chain {
            Ok(w) if w.contains(now) => *w,
            Ok(_) => {
                let subject = self.policies.msps.get(msp_id).and_then(|o| o.invalid_ca(now)).unwrap_or_default();
                let reason = ChainError::CaNotValid { msp_id: msp_id.clone(), subject };
                return Err(Denied::NotChained { msp_id: msp_id.clone(), reason });
            }
            Err(reason) => return Err(Denied::NotChained { msp_id: msp_id.clone(), reason: reason.clone() }),
        };
        Ok(Verified {
            creator: creator.raw.clone(),
            msp_id: msp_id.clone(),
            role: creator.identity.role(),
            valid_until: window.not_after.min(creator.identity.cert.not_after),
        })
    }

    #[cfg(test)]
    fn cached(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap();
        (cache.creators.len(), cache.bytes)
    }

    /// The creator, from the cache or parsed and validated now.
    fn creator(&self, raw: &Bytes) -> Arc<Result<Creator, Denied>> {
        if raw.len() > MAX_CREATOR_BYTES {
            let reason = format!("the creator is {} bytes, over the {MAX_CREATOR_BYTES} accepted", raw.len());
            return Arc::new(Err(Denied::BadCreator(reason)));
        }
        if let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).creators.get(raw) {
            return hit.clone();
        }
        // A copy, so the cache does not pin the buffer of the request that named the creator.
        let raw = Bytes::copy_from_slice(raw);
        let parsed = Arc::new(self.parse_creator(&raw));
        if parsed.is_ok() {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.creators.len() >= CACHE_CAPACITY || cache.bytes + raw.len() > CACHE_BYTES {
                cache.creators.clear();
                cache.bytes = 0;
            }
            cache.bytes += raw.len();
            cache.creators.insert(raw, parsed.clone());
        }
        parsed
    }

    fn parse_creator(&self, raw: &Bytes) -> Result<Creator, Denied> {
        let identity = Identity::deserialize(raw).map_err(Denied::BadCreator)?;
        let ed25519 = match &identity.cert.public_key {
            PublicKey::Ed25519(key) => {
                let bytes: [u8; 32] =
                    key.as_ref().try_into().map_err(|_| Denied::BadCreator("bad Ed25519 key".into()))?;
                Some(
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                        .map_err(|e| Denied::BadCreator(format!("bad Ed25519 key: {e}")))?,
                )
            }
            PublicKey::EcdsaP256(_) => None,
        };
        let ecdsa = matches!(identity.cert.public_key, PublicKey::EcdsaP256(_)).then(RepeatKey::default);
        let chain = match self.policies.msps.get(&identity.msp_id) {
            Some(msp) => msp.validate(&identity.cert),
            None => Err(ChainError::UnknownOrganization(identity.msp_id.clone())),
        };
        Ok(Creator { raw: raw.clone(), identity, ed25519, ecdsa, chain, verdicts: Default::default() })
    }
}

impl Creator {
    /// Its signature over `message`: with the key's table once it has one, else with ring.
    /// Both answer alike (the tests of `core::p256` hold them to it).
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match &self.ecdsa {
            Some(repeat) => repeat.verify(&self.identity.cert.public_key, self.chain.is_ok(), message, signature),
            None => self.identity.cert.public_key.verify(message, signature),
        }
    }

    /// Its ECDSA key's table, if it has (or now gets) one: only a member of the channel's
    /// organisations gets one, after a few signatures.
    fn table(&self) -> Option<&crate::core::p256::PreparedKey> {
        match (&self.ecdsa, &self.identity.cert.public_key) {
            (Some(repeat), PublicKey::EcdsaP256(point)) => repeat.table(point, self.chain.is_ok()),
            _ => None,
        }
    }
}

/// The creator if it deserialized and its certificate is valid at `now`.
fn prelude(creator: &Result<Creator, Denied>, now: i64) -> Result<&Creator, Denied> {
    let creator = creator.as_ref().map_err(Clone::clone)?;
    let cert = &creator.identity.cert;
    if now > cert.not_after {
        return Err(Denied::Expired { subject: cert.subject.clone(), until: rfc3339(cert.not_after), now });
    }
    if now < cert.not_before {
        return Err(Denied::NotYetValid { subject: cert.subject.clone(), from: rfc3339(cert.not_before), now });
    }
    Ok(creator)
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::{sign, transaction};
    use crate::core::fabric_policy::Policies;
    use crate::core::testkit::{batch, channel, system, Org};
    use crate::identity::{issue, KeyType, Role, SigningIdentity, Validity};
    use crate::proto::{ChannelHeader, Envelope};
    use prost::Message as _;

    /// The access control of channel `ch` with `members`, ordered by `orderer`.
    fn access_of(orderer: &Org, members: &[&Org]) -> Access {
        let system = system(&[orderer], members, batch(10, 1 << 20, 1 << 19), "1s");
        let config = channel(&system, "ch", members);
        let policies = Policies::of(config.channel_group.as_ref().unwrap()).unwrap();
        Access::new(Arc::new(policies), config.sequence, 900)
    }

    /// The parts of an envelope `check` reads, and the current time.
    fn parts(env: &Envelope) -> (Bytes, Option<i64>) {
        let payload = crate::proto::Payload::decode(env.payload.clone()).unwrap();
        let header = payload.header.unwrap();
        let ch = ChannelHeader::decode(header.channel_header).unwrap();
        let sh = crate::proto::SignatureHeader::decode(header.signature_header).unwrap();
        (sh.creator, ch.timestamp.map(|t| t.seconds))
    }

    fn now() -> i64 {
        crate::verify::unix_now()
    }

    /// The requests of envelopes and their parts ([`parts`]), for `check_all`.
    fn requests<'a>(owned: &'a [(&'a Envelope, (Bytes, Option<i64>))]) -> Vec<Request<'a>> {
        owned
            .iter()
            .map(|(e, (c, t))| Request { payload: &e.payload, signature: &e.signature, creator: c, timestamp: *t })
            .collect()
    }

    fn check(access: &Access, env: &Envelope, policy: PolicyName) -> Result<Verified, Denied> {
        let (creator, timestamp) = parts(env);
        let req = Request { payload: &env.payload, signature: &env.signature, creator: &creator, timestamp };
        access.check(&req, policy, now())
    }

    #[test]
    fn identities_issued_by_an_intermediate_are_members_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let b = Org::new(dir.path(), "B", KeyType::Ed25519);
        let access = access_of(&orderer, &[&a]);

        let via_ica = a.identity("c1", Role::Client, KeyType::Ed25519, Some("ica"));
        let v = check(&access, &transaction(&via_ica, "ch", 300), PolicyName::Writers).unwrap();
        assert_eq!((v.msp_id.as_str(), v.role), ("A", super::Role::Client));

        let of_b = b.identity("c2", Role::Client, KeyType::EcdsaP256, None);
        // B (an Ed25519 CA issuing an ECDSA identity) is a fine organisation of another channel.
        let v = check(&access_of(&orderer, &[&b]), &transaction(&of_b, "ch", 300), PolicyName::Writers);
        assert_eq!(v.unwrap().msp_id, "B");
        let err = check(&access, &transaction(&of_b, "ch", 300), PolicyName::Writers).unwrap_err();
        assert!(matches!(err, Denied::NotChained { reason: ChainError::UnknownOrganization(_), .. }), "{err}");
        // B's certificate presented as A's.
        let b_dir = b.dir.join("identities").join("c2");
        let forged = SigningIdentity::from_pem(
            "A",
            &std::fs::read(b_dir.join("signcerts/cert.pem")).unwrap(),
            &std::fs::read(b_dir.join("keystore/key.pem")).unwrap(),
        )
        .unwrap();
        let err = check(&access, &transaction(&forged, "ch", 300), PolicyName::Writers).unwrap_err();
        assert!(matches!(err, Denied::NotChained { reason: ChainError::NotIssued(_), .. }), "{err}");
        assert_eq!(err.status(), Status::Forbidden);
    }

    #[test]
    fn the_channel_policies_judge_roles_as_fabric_does() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let access = access_of(&orderer, &[&a]);
        // /Channel/Writers = ANY Writers of Application and Orderer: A's admins and clients, and
        // the orderer organisation's members; /Channel/Readers adds A's peers.
        let cases = [
            (a.identity("c", Role::Client, KeyType::EcdsaP256, None), true, true),
            (a.identity("a2", Role::Admin, KeyType::EcdsaP256, None), true, true),
            (a.identity("p", Role::Peer, KeyType::EcdsaP256, None), false, true),
            (orderer.identity("o", Role::Orderer, KeyType::EcdsaP256, None), true, true),
        ];
        for (id, writes, reads) in cases {
            let env = transaction(&id, "ch", 300);
            assert_eq!(check(&access, &env, PolicyName::Writers).is_ok(), writes, "{} writes", id.msp_id());
            assert_eq!(check(&access, &env, PolicyName::Readers).is_ok(), reads, "{} reads", id.msp_id());
        }
        let peer = a.identity("p2", Role::Peer, KeyType::EcdsaP256, None);
        let err = check(&access, &transaction(&peer, "ch", 300), PolicyName::Writers).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("peer of 'A'") && text.contains("/Channel/Writers: ANY Writers of"), "{text}");
        // /Channel/Admins = MAJORITY Admins of two groups: one organisation's admin is not enough.
        assert!(check(&access, &transaction(&a.admin, "ch", 300), PolicyName::Admins).is_err());
    }

    #[test]
    fn an_unsigned_envelope_is_refused_even_when_signatures_are_not_verified() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let e = Org::new(dir.path(), "E", KeyType::Ed25519);
        let access = access_of(&orderer, &[&a, &e]);
        for id in [
            a.identity("c", Role::Client, KeyType::EcdsaP256, None),
            e.identity("c", Role::Client, KeyType::Ed25519, None),
        ] {
            let mut env = transaction(&id, "ch", 300);
            env.signature = Bytes::new();
            let (creator, timestamp) = parts(&env);
            let req = Request { payload: &env.payload, signature: &env.signature, creator: &creator, timestamp };
            for result in [
                access.check(&req, PolicyName::Writers, now()),
                access.check_all(std::slice::from_ref(&req), PolicyName::Writers, now()).remove(0),
                access.check_all_unsigned(std::slice::from_ref(&req), PolicyName::Writers, now()).remove(0),
            ] {
                let err = result.unwrap_err();
                assert_eq!(err, Denied::Signature(SignatureError::Missing), "{}", id.msp_id());
                assert_eq!(err.status(), Status::Forbidden);
                assert!(err.to_string().contains("not signed"), "{err}");
            }
        }
    }

    #[test]
    fn check_all_agrees_with_check_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let access = access_of(&orderer, &[&a]);
        let ed = a.identity("ed", Role::Client, KeyType::Ed25519, None);
        let ec = a.identity("ec", Role::Peer, KeyType::EcdsaP256, None);
        let mut envs: Vec<Envelope> =
            (0..40).map(|i| transaction(if i % 3 == 0 { &ec } else { &ed }, "ch", 300)).collect();
        // A bad Ed25519 signature in the middle makes the batch fail and fall back.
        envs[10].signature = transaction(&ed, "ch", 300).signature;
        // An old timestamp.
        let mut p = crate::cli::client::payload(&ed, "ch", crate::proto::HeaderType::Message, Bytes::new());
        let h = p.header.as_mut().unwrap();
        let mut ch = ChannelHeader::decode(h.channel_header.clone()).unwrap();
        ch.timestamp.as_mut().unwrap().seconds -= 10_000;
        h.channel_header = ch.encode_to_vec().into();
        envs[20] = sign(&ed, &p);

        let owned: Vec<_> = envs.iter().map(|e| (e, parts(e))).collect();
        let reqs = requests(&owned);
        // One clock reading for both, so a second ticking over between them changes no verdict.
        let at = now();
        let all = access.check_all(&reqs, PolicyName::Readers, at);
        for (i, (got, req)) in all.iter().zip(&reqs).enumerate() {
            let one = access.check(req, PolicyName::Readers, at);
            assert_eq!(got.as_ref().map(|v| v.role), one.as_ref().map(|v| v.role), "envelope {i}");
        }
        assert_eq!(all[10].as_ref().unwrap_err(), &Denied::Signature(SignatureError::Invalid));
        assert!(matches!(all[20], Err(Denied::Timestamp { .. })));
        assert_eq!(all.iter().filter(|r| r.is_ok()).count(), 38);
        // Writers: the peer's 14 envelopes are refused.
        let writers = access.check_all(&reqs, PolicyName::Writers, now());
        assert_eq!(writers.iter().filter(|r| r.is_ok()).count(), 24);
    }

    /// A member's ECDSA key moves to its own table after a few requests (`core::p256`); the
    /// verdicts stay the same before and after: good ones pass, a wrong signature, a high-S one
    /// and a malformed one are refused for what they are. A stranger never gets a table.
    #[test]
    fn a_repeat_ecdsa_signer_is_verified_alike_before_and_after_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let access = access_of(&orderer, &[&a]);
        let ec = a.identity("ec", Role::Client, KeyType::EcdsaP256, None);
        for round in 0..3 * crate::core::p256::PREPARE_AFTER {
            let good = transaction(&ec, "ch", 300);
            assert!(check(&access, &good, PolicyName::Writers).is_ok(), "round {round}");
            let mut wrong = transaction(&ec, "ch", 300);
            wrong.signature = good.signature.clone();
            assert_eq!(
                check(&access, &wrong, PolicyName::Writers).unwrap_err(),
                Denied::Signature(SignatureError::Invalid),
                "round {round}"
            );
            let mut high = good.clone();
            let (r, s) = crate::core::ecdsa::decode_der(&good.signature).unwrap();
            high.signature = crate::core::ecdsa::encode_der(&r, &crate::core::ecdsa::negate_scalar(&s)).into();
            assert_eq!(
                check(&access, &high, PolicyName::Writers).unwrap_err(),
                Denied::Signature(SignatureError::HighS)
            );
            let mut malformed = good.clone();
            malformed.signature = good.signature.slice(1..);
            assert_eq!(
                check(&access, &malformed, PolicyName::Writers).unwrap_err(),
                Denied::Signature(SignatureError::Malformed)
            );
        }
        let creator = access.creator(&parts(&transaction(&ec, "ch", 300)).0);
        let repeat = creator.as_ref().as_ref().unwrap().ecdsa.as_ref().unwrap();
        assert!(repeat.table(&[], true).is_some(), "the member's key has its table");
        // In a batch: the good ones pass, each bad one is refused, with one shared inversion.
        let mut envs: Vec<Envelope> = (0..12).map(|_| transaction(&ec, "ch", 300)).collect();
        envs[3].signature = envs[4].signature.clone();
        envs[7].signature = Bytes::new();
        envs[9].signature = envs[9].signature.slice(..envs[9].signature.len() - 1);
        let owned: Vec<_> = envs.iter().map(|e| (e, parts(e))).collect();
        let reqs = requests(&owned);
        let all = access.check_all(&reqs, PolicyName::Writers, now());
        for (i, got) in all.iter().enumerate() {
            match i {
                3 => assert_eq!(got.as_ref().unwrap_err(), &Denied::Signature(SignatureError::Invalid)),
                7 => assert_eq!(got.as_ref().unwrap_err(), &Denied::Signature(SignatureError::Missing)),
                9 => assert_eq!(got.as_ref().unwrap_err(), &Denied::Signature(SignatureError::Malformed)),
                _ => assert!(got.is_ok(), "envelope {i}: {got:?}"),
            }
        }

        let stranger_org = Org::new(dir.path(), "Z", KeyType::EcdsaP256);
        let stranger = stranger_org.identity("z", Role::Client, KeyType::EcdsaP256, None);
        for _ in 0..3 * crate::core::p256::PREPARE_AFTER {
            let err = check(&access, &transaction(&stranger, "ch", 300), PolicyName::Writers).unwrap_err();
            assert!(matches!(err, Denied::NotChained { .. }), "{err}");
        }
        let creator = access.creator(&parts(&transaction(&stranger, "ch", 300)).0);
        let repeat = creator.as_ref().as_ref().unwrap().ecdsa.as_ref().unwrap();
        assert!(repeat.table(&[], false).is_none(), "no table for a stranger");
    }

    #[test]
    fn recheck_follows_the_new_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let b = Org::new(dir.path(), "B", KeyType::EcdsaP256);
        let reader = b.identity("r", Role::Client, KeyType::EcdsaP256, None);
        let env = transaction(&reader, "ch", 300);
        let verified = check(&access_of(&orderer, &[&a, &b]), &env, PolicyName::Readers).unwrap();

        let err = access_of(&orderer, &[&a]).recheck(&verified, PolicyName::Readers, now()).unwrap_err();
        assert!(matches!(err, Denied::NotChained { .. }), "{err}");
        assert!(access_of(&orderer, &[&a, &b]).recheck(&verified, PolicyName::Readers, now()).is_ok());
    }

    #[test]
    fn junk_and_oversized_creators_are_refused_and_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let access = access_of(&orderer, &[&a]);
        let junk = Bytes::from(vec![0xffu8; 500]);
        let big = Bytes::from(vec![b'x'; MAX_CREATOR_BYTES + 1]);
        for creator in [&junk, &big] {
            let req = Request { payload: b"p", signature: b"s", creator, timestamp: Some(now()) };
            let err = access.check(&req, PolicyName::Writers, now()).unwrap_err();
            assert!(matches!(err, Denied::BadCreator(_)), "{err}");
        }
        assert_eq!(access.cached(), (0, 0));
        let client = a.identity("c", Role::Client, KeyType::EcdsaP256, None);
        check(&access, &transaction(&client, "ch", 300), PolicyName::Writers).unwrap();
        check(&access, &transaction(&client, "ch", 300), PolicyName::Writers).unwrap();
        assert_eq!(access.cached(), (1, client.serialized().len()));
    }

    #[test]
    fn config_signatures_count_only_when_they_verify() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let access = access_of(&orderer, &[&a]);
        let data = b"signature header || config update".to_vec();
        let good = crate::core::configtx::SignedData {
            identity: a.admin.serialized(),
            data: data.clone(),
            signature: a.admin.sign(&data).into(),
        };
        let forged = crate::core::configtx::SignedData { signature: a.admin.sign(b"other").into(), ..good.clone() };
        let junk = crate::core::configtx::SignedData { identity: Bytes::from_static(b"junk"), ..good.clone() };
        // An Ed25519 admin's approval, valid as a signature, is not counted (peers could not).
        let ed = a.identity("ed-admin", Role::Admin, KeyType::Ed25519, None);
        let ed = crate::core::configtx::SignedData {
            identity: ed.serialized(),
            data: data.clone(),
            signature: ed.sign(&data).into(),
        };
        let (signers, dropped) = access.config_signers(&[good, forged, junk, ed]);
        assert_eq!(signers.len(), 1);
        assert_eq!(dropped.len(), 3, "{dropped:?}");
        assert!(dropped[0].starts_with("signature 1:") && dropped[1].starts_with("signature 2:"), "{dropped:?}");
        assert!(dropped[2].contains("Ed25519, which Fabric's peers cannot verify"), "{dropped:?}");
    }

    #[test]
    fn a_revoked_identity_is_refused_and_a_forged_crl_does_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
        let mut a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let kept = a.identity("kept", Role::Client, KeyType::EcdsaP256, None);
        let gone = a.identity("gone", Role::Client, KeyType::EcdsaP256, None);
        let via_ica = a.identity("gone-ica", Role::Client, KeyType::EcdsaP256, Some("ica"));
        crate::identity::revoke(&a.dir, &a.dir.join("identities/gone"), None).unwrap();
        crate::identity::revoke(&a.dir, &a.dir.join("identities/gone-ica"), Some("ica")).unwrap();
        // The MSP value as configtxgen would make it from the directory now: with the CRLs.
        a.msp = crate::identity::fabric_msp::verifying_config(&a.dir.join("msp"), "A").unwrap();
        assert_eq!(a.msp.revocation_list.len(), 2);
        let access = access_of(&orderer, &[&a]);
        assert!(check(&access, &transaction(&kept, "ch", 300), PolicyName::Writers).is_ok());
        for revoked in [&gone, &via_ica] {
            let err = check(&access, &transaction(revoked, "ch", 300), PolicyName::Writers).unwrap_err();
            assert!(matches!(err, Denied::NotChained { reason: ChainError::Revoked(_), .. }), "{err}");
        }
        // A CRL naming A's root CA but signed by another key is refused with the MSP.
        let other = Org::new(dir.path(), "B", KeyType::EcdsaP256);
        std::fs::copy(a.dir.join("ca/cert.pem"), other.dir.join("ca/cert.pem")).unwrap();
        crate::identity::revoke(&other.dir, &a.dir.join("identities/kept"), None).unwrap();
        let mut forged = a.msp.clone();
        forged.revocation_list.push(std::fs::read(other.dir.join("msp/crls/ca.pem")).unwrap().into());
        let err = crate::core::fabric_policy::FabricMsp::from_config(&forged).unwrap_err();
        assert!(err.contains("does not carry its signature"), "{err}");
    }

    #[test]
    fn an_msp_whose_root_is_not_a_ca_does_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let a = Org::new(dir.path(), "A", KeyType::EcdsaP256);
        let mut msp = a.msp.clone();
        msp.root_certs = vec![std::fs::read(
            issue(&a.dir, "x", Role::Client, KeyType::EcdsaP256, Validity::leaf_default())
                .unwrap()
                .join("signcerts/cert.pem"),
        )
        .unwrap()
        .into()];
        let err = crate::core::fabric_policy::FabricMsp::from_config(&msp).unwrap_err();
        assert!(err.contains("not a self-signed CA"), "{err}");
    }
}
