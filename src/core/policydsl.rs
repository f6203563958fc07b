//! Fabric's policy language, as configtx.yaml and `peer` write rules: a signature policy
//! (`OR('Org1MSP.admin', AND('Org2MSP.member', 'Org3MSP.peer'))`, `OutOf(2, ...)`) or an implicit
//! meta policy (`MAJORITY Admins`), compiled to the bytes Fabric's compiler makes: every principal
//! in its own identity slot (no de-duplication), numbered as Fabric numbers them — a gate's
//! nested gates first, left to right, then its own principals — `And` of n as n-out-of-n, `Or` as
//! 1-out-of-n, and the gate names in the three spellings Fabric accepts (`And`, `and`, `AND`).

use prost::Message as _;

use crate::proto::common::{
    implicit_meta_policy, policy::PolicyType, signature_policy, ImplicitMetaPolicy, Policy, SignaturePolicy,
    SignaturePolicyEnvelope,
};
use crate::proto::msp::{msp_principal::Classification, msp_role::MspRoleType, MspPrincipal, MspRole};

/// A rule as configtx.yaml gives it: `ANY|ALL|MAJORITY <policy>` is an implicit meta policy,
/// anything else the signature policy language. The `common.Policy` it compiles to.
pub fn policy(rule: &str) -> Result<Policy, String> {
    let words: Vec<&str> = rule.split(' ').collect();
    let meta = match words.first() {
        Some(&"ANY") => Some(implicit_meta_policy::Rule::Any),
        Some(&"ALL") => Some(implicit_meta_policy::Rule::All),
        Some(&"MAJORITY") => Some(implicit_meta_policy::Rule::Majority),
        _ => None,
    };
    if let Some(meta) = meta {
        let [_, sub_policy] = words.as_slice() else {
            return Err(format!("implicit meta rule '{rule}': expected '{} <policy name>'", words[0]));
        };
        let value = ImplicitMetaPolicy { sub_policy: (*sub_policy).to_owned(), rule: meta as i32 };
        return Ok(Policy { r#type: PolicyType::ImplicitMeta as i32, value: value.encode_to_vec().into() });
    }
    let envelope = signature_policy(rule)?;
    Ok(Policy { r#type: PolicyType::Signature as i32, value: envelope.encode_to_vec().into() })
}

/// A signature policy in Fabric's language, compiled as Fabric's `FromString` compiles it.
pub fn signature_policy(text: &str) -> Result<SignaturePolicyEnvelope, String> {
    let mut parser = Parser { text, at: 0 };
    let Arg::Gate(gate) = parser.arg()? else {
        return Err(format!("invalid policy string '{text}': a principal alone is not a policy; write OR('{text}')"));
    };
    parser.skip_space();
    if parser.at != text.len() {
        return Err(format!("policy '{text}': unexpected '{}' at character {}", &text[parser.at..], parser.at + 1));
    }
    let mut identities = Vec::new();
    let rule = gate.compile(&mut identities)?;
    Ok(SignaturePolicyEnvelope { version: 0, rule: Some(rule), identities })
}

enum Arg {
    Principal(String),
    Gate(Gate),
}

struct Gate {
    /// How many of the arguments must be satisfied.
    t: i64,
    args: Vec<Arg>,
}

impl Gate {
    /// Nested gates first (their principals take the lower identity numbers), then this gate's
    /// own principals, in order: the order in which Fabric's compiler evaluates the expression.
    fn compile(self, identities: &mut Vec<MspPrincipal>) -> Result<SignaturePolicy, String> {
        let n = self.args.len() as i64;
        if self.t < 0 || self.t > n + 1 {
            return Err(format!("invalid t-out-of-n predicate, t {}, n {n}", self.t));
        }
        let mut nested: Vec<Option<SignaturePolicy>> = Vec::with_capacity(self.args.len());
        let mut principals = Vec::new();
        for arg in self.args {
            match arg {
                Arg::Gate(g) => nested.push(Some(g.compile(identities)?)),
                Arg::Principal(p) => {
                    nested.push(None);
                    principals.push(p);
                }
            }
        }
        let mut principals = principals.into_iter();
        let rules = nested
            .into_iter()
            .map(|compiled| match compiled {
                Some(rule) => Ok(rule),
                None => {
                    let p = principals.next().expect("one principal per empty slot");
                    identities.push(principal(&p)?);
                    let index = (identities.len() - 1) as i32;
                    Ok(SignaturePolicy { r#type: Some(signature_policy::Type::SignedBy(index)) })
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(SignaturePolicy {
            r#type: Some(signature_policy::Type::NOutOf(signature_policy::NOutOf { n: self.t as i32, rules })),
        })
    }
}

/// `MSPID.role`: an MSP ID of letters, digits, dots and dashes, and one of Fabric's roles.
fn principal(text: &str) -> Result<MspPrincipal, String> {
    let bad = || {
        format!("principal '{text}': expected '<MSP ID>.<role>' with a role of admin, member, client, peer or orderer")
    };
    let (msp_id, role) = text.rsplit_once('.').ok_or_else(bad)?;
    let role = match role {
        "admin" => MspRoleType::Admin,
        "member" => MspRoleType::Member,
        "client" => MspRoleType::Client,
        "peer" => MspRoleType::Peer,
        "orderer" => MspRoleType::Orderer,
        _ => return Err(bad()),
    };
    if msp_id.is_empty() || !msp_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        return Err(bad());
    }
    Ok(MspPrincipal {
        principal_classification: Classification::Role as i32,
        principal: MspRole { msp_identifier: msp_id.to_owned(), role: role as i32 }.encode_to_vec().into(),
    })
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn error(&self, expected: &str) -> String {
        let rest = self.rest();
        let found = if rest.is_empty() { "the end".to_owned() } else { format!("'{rest}'") };
        format!("policy '{}': expected {expected} at character {}, found {found}", self.text, self.at + 1)
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// A quoted principal or a gate.
    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_space();
        let rest = self.rest();
        if let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let end = rest[1..].find(quote).ok_or_else(|| self.error("a closing quote"))?;
            let text = rest[1..1 + end].to_owned();
            self.at += end + 2;
            return Ok(Arg::Principal(text));
        }
        let name_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let name = &rest[..name_len];
        let kind = match name {
            "And" | "and" | "AND" => "and",
            "Or" | "or" | "OR" => "or",
            "OutOf" | "outof" | "OUTOF" => "outof",
            _ => return Err(self.error("a quoted principal, And(...), Or(...) or OutOf(n, ...)")),
        };
        self.at += name_len;
        if !self.eat('(') {
            return Err(self.error("'('"));
        }
        let t = if kind == "outof" {
            self.skip_space();
            let rest = self.rest();
            let len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let t: i64 = rest[..len].parse().map_err(|_| self.error("the number of OutOf"))?;
            self.at += len;
            if !self.eat(',') {
                return Err(self.error("','"));
            }
            Some(t)
        } else {
            None
        };
        let mut args = vec![self.arg()?];
        while self.eat(',') {
            args.push(self.arg()?);
        }
        if !self.eat(')') {
            return Err(self.error("',' or ')'"));
        }
        let t = match kind {
            "and" => args.len() as i64,
            "or" => 1,
            _ => t.unwrap_or_default(),
        };
        Ok(Arg::Gate(Gate { t, args }))
    }
}

#[cfg(test)]
mod tests;
