//! An envelope's bytes as Fabric's Kafka orderer puts them in a block: it parses the record's
//! payload into a `common.Envelope` with Go's protobuf library and marshals it again, so a block
//! holds that re-marshal, not the bytes a client sent.
//!
//! Go's rules (golang/protobuf 1.3, which Fabric 1.4 vendors), for `Envelope{payload = 1,
//! signature = 2}`: the last occurrence of a field wins; an empty field is omitted; fields are
//! written in number order; every other field is kept as it came, in order, and appended after the
//! known ones, including a known field with another wire type than its own. Bytes that
//! already are what Go would write are returned as they are (no copy), which is every envelope a
//! Fabric SDK, `peer` or OSN's own clients make.
//!
//! Since Fabric 2.2.14 / 2.5.5 a peer refuses a block whose transactions do not re-marshal to
//! their own bytes; the re-marshal is what keeps OSN's blocks acceptable whatever a client sent.

use bytes::{Bytes, BytesMut};

/// One field as it came: its number, wire type and the whole of its bytes (tag included).
struct Field {
    number: u64,
    wire_type: u8,
    /// The field's bytes, tag included.
    raw: std::ops::Range<usize>,
    /// For a length-delimited field, its contents.
    contents: std::ops::Range<usize>,
}

fn varint(raw: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *raw.get(*at).ok_or("a varint runs past the end")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint is longer than ten bytes".into())
}

/// Skips a value of wire type 0, 1, 2 or 5 at `at`; the contents of a length-delimited one.
fn skip_value(raw: &[u8], at: &mut usize, number: u64, wire_type: u8) -> Result<std::ops::Range<usize>, String> {
    let mut contents = *at..*at;
    match wire_type {
        0 => {
            varint(raw, at)?;
        }
        1 => *at += 8,
        2 => {
            let len = usize::try_from(varint(raw, at)?).map_err(|_| "a length too large")?;
            let end = at.checked_add(len).ok_or("a length too large")?;
            contents = *at..end;
            *at = end;
        }
        5 => *at += 4,
        t => return Err(format!("field {number} has wire type {t}")),
    }
    if *at > raw.len() {
        return Err(format!("field {number} runs past the end"));
    }
    Ok(contents)
}

/// Reads one field at `at`: its number, wire type and contents (for a length-delimited one). As
/// Go's reader: any field number, a group skipped to the end-group tag that closes it (nested
/// groups counted, without recursion), an end-group tag answered as such (the caller decides).
fn field(raw: &[u8], at: &mut usize) -> Result<(u64, u8, std::ops::Range<usize>), String> {
    let tag = varint(raw, at)?;
    let (number, wire_type) = (tag >> 3, (tag & 7) as u8);
    match wire_type {
        3 => {
            let mut depth = 1usize;
            while depth > 0 {
                if *at >= raw.len() {
                    return Err(format!("group {number} does not end"));
                }
                let tag = varint(raw, at)?;
                match (tag & 7) as u8 {
                    3 => depth += 1,
                    4 => depth -= 1,
                    t => {
                        skip_value(raw, at, tag >> 3, t)?;
                    }
                }
            }
            Ok((number, wire_type, *at..*at))
        }
        4 => Ok((number, wire_type, *at..*at)),
        t => Ok((number, t, skip_value(raw, at, number, t)?)),
    }
}

fn fields(raw: &[u8]) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let start = at;
        let (number, wire_type, contents) = field(raw, &mut at)?;
        if wire_type == 4 {
            return Err(format!("an end of group {number} outside any group"));
        }
        out.push(Field { number, wire_type, raw: start..at, contents });
    }
    Ok(out)
}

/// Whether `raw` is a non-empty payload then a non-empty signature, each with a one-byte tag and
/// the shortest length, and nothing else: what nearly every client sends, checked without
/// allocating.
pub fn is_plain(raw: &[u8]) -> bool {
    let mut at = 0;
    for tag in [0x0a, 0x12] {
        if raw.get(at) != Some(&tag) {
            return false;
        }
        at += 1;
        let start = at;
        let Ok(len) = varint(raw, &mut at) else { return false };
        if len == 0 || at - start != varint_len(len) {
            return false;
        }
        match usize::try_from(len).ok().and_then(|l| at.checked_add(l)) {
            Some(end) if end <= raw.len() => at = end,
            _ => return false,
        }
    }
    at == raw.len()
}

/// How many bytes a varint of `v` takes at the least.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.extend_from_slice(&[(v as u8) | 0x80]);
        v >>= 7;
    }
    out.extend_from_slice(&[v as u8]);
}

/// The envelope as Go would marshal it after parsing `raw`; `raw` itself when that is the same.
/// An error for bytes Go cannot parse as an Envelope (Fabric's orderer skips such a record).
pub fn envelope(raw: &Bytes) -> Result<Bytes, String> {
    if is_plain(raw) {
        return Ok(raw.clone());
    }
    let fields = fields(raw).map_err(|e| format!("the envelope does not parse: {e}"))?;
    let known = |f: &Field| (f.number == 1 || f.number == 2) && f.wire_type == 2;
    let last = |number: u64| fields.iter().rev().find(|f| f.number == number && known(f));
    let (payload, signature) = (last(1), last(2));
    let mut canonical: Vec<&Field> = Vec::with_capacity(fields.len());
    canonical.extend(payload.filter(|f| !f.contents.is_empty()));
    canonical.extend(signature.filter(|f| !f.contents.is_empty()));
    canonical.extend(fields.iter().filter(|f| !known(f)));
    // The same bytes: the same fields in the same order, the known ones with a one-byte tag and
    // the shortest length (what Go writes).
    let shortest = |f: &Field| !known(f) || f.raw.len() == 1 + varint_len(f.contents.len() as u64) + f.contents.len();
    let same = canonical.len() == fields.len()
        && canonical.iter().zip(&fields).all(|(a, b)| a.raw == b.raw)
        && fields.iter().all(shortest);
    if same {
        return Ok(raw.clone());
    }
    let mut out = BytesMut::with_capacity(raw.len());
    for f in canonical {
        if known(f) {
            // Go writes the tag and length afresh (a client may have padded its varints).
            put_varint(&mut out, f.number << 3 | 2);
            put_varint(&mut out, f.contents.len() as u64);
            out.extend_from_slice(&raw[f.contents.clone()]);
        } else {
            out.extend_from_slice(&raw[f.raw.clone()]);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests;
