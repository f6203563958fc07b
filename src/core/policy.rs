//! Channel policies (Writers, Readers, Admins), each of one of two forms: "any member of these
//! organisations" and "admins of at least N of these organisations". A policy is evaluated over
//! the verified signers of a request.

use std::collections::BTreeSet;
use std::fmt;

use super::msp::Role;
use crate::proto::osn::{policy::Rule, AdminsOf, MemberOf, Policy as PolicyProto};

/// Which of a channel's policies a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyName {
    Writers,
    Readers,
    Admins,
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyName::Writers => "Writers",
            PolicyName::Readers => "Readers",
            PolicyName::Admins => "Admins",
        })
    }
}

/// A policy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// A signature of any member (any role) of one of these organisations.
    AnyMember(BTreeSet<String>),
    /// Admin signatures of at least `at_least` distinct organisations among `orgs`.
    Admins { orgs: BTreeSet<String>, at_least: usize },
}

/// A verified signer: its organisation and role.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    pub msp_id: &'a str,
    pub role: Role,
}

impl Policy {
    /// Whether the signers satisfy the policy.
    pub fn satisfied_by(&self, signers: &[Signer<'_>]) -> bool {
        match self {
            Policy::AnyMember(orgs) => signers.iter().any(|s| orgs.contains(s.msp_id)),
            Policy::Admins { orgs, at_least } => {
                let admins: BTreeSet<&str> = signers
                    .iter()
                    .filter(|s| s.role == Role::Admin && orgs.contains(s.msp_id))
                    .map(|s| s.msp_id)
                    .collect();
                *at_least > 0 && admins.len() >= *at_least
            }
        }
    }

    /// Every organisation the policy names.
    pub fn organizations(&self) -> &BTreeSet<String> {
        match self {
            Policy::AnyMember(orgs) | Policy::Admins { orgs, .. } => orgs,
        }
    }

    pub fn from_proto(p: &PolicyProto) -> Result<Self, String> {
        match &p.rule {
            Some(Rule::AnyMember(m)) => Ok(Policy::AnyMember(m.msp_ids.iter().cloned().collect())),
            Some(Rule::Admins(a)) => {
                Ok(Policy::Admins { orgs: a.msp_ids.iter().cloned().collect(), at_least: a.at_least as usize })
            }
            None => Err("policy has no rule".into()),
        }
    }

    pub fn to_proto(&self) -> PolicyProto {
        let rule = match self {
            Policy::AnyMember(orgs) => Rule::AnyMember(MemberOf { msp_ids: orgs.iter().cloned().collect() }),
            Policy::Admins { orgs, at_least } => {
                Rule::Admins(AdminsOf { msp_ids: orgs.iter().cloned().collect(), at_least: *at_least as u32 })
            }
        };
        PolicyProto { rule: Some(rule) }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |orgs: &BTreeSet<String>| orgs.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        match self {
            Policy::AnyMember(orgs) => write!(f, "a member of one of [{}]", list(orgs)),
            Policy::Admins { orgs, at_least } => {
                write!(f, "admins of at least {at_least} of [{}]", list(orgs))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orgs(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn signer(msp_id: &str, role: Role) -> Signer<'_> {
        Signer { msp_id, role }
    }

    #[test]
    fn any_member() {
        let p = Policy::AnyMember(orgs(&["A", "B"]));
        assert!(p.satisfied_by(&[signer("A", Role::Client)]));
        assert!(p.satisfied_by(&[signer("B", Role::Member)]));
        assert!(p.satisfied_by(&[signer("C", Role::Admin), signer("B", Role::Peer)]));
        assert!(!p.satisfied_by(&[signer("C", Role::Admin)]));
        assert!(!p.satisfied_by(&[]));
    }

    #[test]
    fn admins_of_n_orgs() {
        let p = Policy::Admins { orgs: orgs(&["A", "B", "C"]), at_least: 2 };
        assert!(!p.satisfied_by(&[signer("A", Role::Admin)]));
        assert!(!p.satisfied_by(&[signer("A", Role::Admin), signer("A", Role::Admin)]), "two admins of one org");
        assert!(!p.satisfied_by(&[signer("A", Role::Admin), signer("B", Role::Client)]), "a client is no admin");
        assert!(!p.satisfied_by(&[signer("A", Role::Admin), signer("D", Role::Admin)]), "D is not named");
        assert!(p.satisfied_by(&[signer("A", Role::Admin), signer("C", Role::Admin)]));
        let none = Policy::Admins { orgs: orgs(&["A"]), at_least: 0 };
        assert!(!none.satisfied_by(&[signer("A", Role::Admin)]), "at least 0 is never satisfied");
    }

    #[test]
    fn proto_round_trip() {
        for p in [Policy::AnyMember(orgs(&["A"])), Policy::Admins { orgs: orgs(&["A", "B"]), at_least: 2 }] {
            assert_eq!(Policy::from_proto(&p.to_proto()).unwrap(), p);
        }
        assert!(Policy::from_proto(&PolicyProto::default()).is_err());
    }
}
