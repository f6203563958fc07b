//! ECDSA P-256 signature encoding: DER `SEQUENCE { INTEGER r, INTEGER s }` and the low-S rule,
//! for the verifier ([`super::msp`]) and for signing identities alike.
//!
//! Fabric rejects an ECDSA signature whose `s` is above half the group order (the other of the two
//! valid signatures for the same message), so every signature we produce is normalised to low-S.
//! Self-contained: no big-integer library, only 32-byte big-endian arithmetic.

/// The order `n` of the P-256 group, big-endian.
pub const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n / 2` (rounded down): the largest `s` a low-S signature may carry.
pub const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0x73, 0x7d,
    0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;

/// Whether the 32-byte big-endian scalar `s` is at most `n / 2`.
pub fn scalar_is_low(s: &[u8; 32]) -> bool {
    s <= &P256_HALF_ORDER
}

/// `n - s` for a scalar `s < n` (big-endian, borrow propagated byte by byte).
pub fn negate_scalar(s: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let minuend = u16::from(P256_ORDER[i]);
        let subtrahend = u16::from(s[i]) + borrow;
        if minuend >= subtrahend {
            out[i] = (minuend - subtrahend) as u8;
            borrow = 0;
        } else {
            out[i] = (minuend + 0x100 - subtrahend) as u8;
            borrow = 1;
        }
    }
    out
}

/// `s` itself if it is low, else `n - s`.
pub fn low_s(s: &[u8; 32]) -> [u8; 32] {
    if scalar_is_low(s) {
        *s
    } else {
        negate_scalar(s)
    }
}

/// DER-encodes `SEQUENCE { INTEGER r, INTEGER s }` with minimal, non-negative INTEGERs.
pub fn encode_der(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(70);
    push_integer(&mut body, r);
    push_integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(TAG_SEQUENCE);
    out.push(body.len() as u8); // at most 2 × 35 = 70 bytes: always the short length form
    out.extend_from_slice(&body);
    out
}

fn push_integer(out: &mut Vec<u8>, value: &[u8; 32]) {
    let first = value.iter().position(|&b| b != 0).unwrap_or(31);
    let digits = &value[first..];
    let pad = digits[0] & 0x80 != 0;
    out.push(TAG_INTEGER);
    out.push((digits.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

/// Parses a strict DER ECDSA P-256 signature into `(r, s)`, each 32 bytes big-endian.
///
/// `None` for anything that is not exactly one SEQUENCE of two minimal, positive INTEGERs that fit
/// in 32 bytes, with nothing after it.
pub fn decode_der(sig: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    let (&tag, rest) = sig.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != TAG_SEQUENCE || len & 0x80 != 0 || usize::from(len) != body.len() {
        return None;
    }
    let (r, body) = read_integer(body)?;
    let (s, body) = read_integer(body)?;
    body.is_empty().then_some((r, s))
}

fn read_integer(input: &[u8]) -> Option<([u8; 32], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if tag != TAG_INTEGER || len == 0 || len > 33 || rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    if content[0] & 0x80 != 0 {
        return None; // negative
    }
    if content.len() > 1 && content[0] == 0 && content[1] & 0x80 == 0 {
        return None; // non-minimal leading zero
    }
    let digits = if content[0] == 0 && content.len() > 1 { &content[1..] } else { content };
    if digits.len() > 32 {
        return None;
    }
    let mut out = [0u8; 32];
    out[32 - digits.len()..].copy_from_slice(digits);
    Some((out, rest))
}

/// Whether a DER ECDSA P-256 signature is low-S; `None` when it is not valid DER.
pub fn is_low_s(der_sig: &[u8]) -> Option<bool> {
    decode_der(der_sig).map(|(_, s)| scalar_is_low(&s))
}

/// The low-S form of a DER ECDSA P-256 signature (unchanged if already low); `None` when it is
/// not valid DER.
pub fn normalize_der(der_sig: &[u8]) -> Option<Vec<u8>> {
    decode_der(der_sig).map(|(r, s)| encode_der(&r, &low_s(&s)))
}

/// DER, low-S encoding of a fixed-width `r ‖ s` signature (64 bytes, as ring's `*_FIXED_SIGNING`
/// produces); `None` if the input is not 64 bytes.
pub fn fixed_to_low_s_der(fixed: &[u8]) -> Option<Vec<u8>> {
    let r: [u8; 32] = fixed.get(..32)?.try_into().ok()?;
    let s: [u8; 32] = fixed.get(32..)?.try_into().ok()?;
    Some(encode_der(&r, &low_s(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(last: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[32 - last.len()..].copy_from_slice(last);
        out
    }

    #[test]
    fn half_order_is_order_shifted_right() {
        let mut shifted = [0u8; 32];
        let mut carry = 0u8;
        for (i, b) in P256_ORDER.iter().enumerate() {
            shifted[i] = (b >> 1) | (carry << 7);
            carry = b & 1;
        }
        assert_eq!(shifted, P256_HALF_ORDER);
    }

    #[test]
    fn negation_is_an_involution_and_flips_the_half() {
        let s = scalar(&[0x12, 0x34]);
        let neg = negate_scalar(&s);
        assert!(!scalar_is_low(&neg));
        assert_eq!(negate_scalar(&neg), s);
        assert!(scalar_is_low(&P256_HALF_ORDER));
        let just_above = negate_scalar(&P256_HALF_ORDER); // n - floor(n/2) = floor(n/2) + 1
        assert!(!scalar_is_low(&just_above));
        assert_eq!(low_s(&just_above), P256_HALF_ORDER);
    }

    #[test]
    fn der_integers_are_minimal() {
        fn check(r: [u8; 32], s: [u8; 32], expected: &[u8]) {
            let der = encode_der(&r, &s);
            assert_eq!(der, expected);
            assert_eq!(decode_der(&der), Some((r, s)));
        }
        check(scalar(&[1]), scalar(&[0x7f]), &[0x30, 6, 2, 1, 1, 2, 1, 0x7f]);
        check(scalar(&[0x80]), scalar(&[0]), &[0x30, 7, 2, 2, 0, 0x80, 2, 1, 0]);
        let big = [0xffu8; 32];
        let der = encode_der(&big, &big);
        assert_eq!(der.len(), 2 + 2 * 35);
        assert_eq!(decode_der(&der), Some((big, big)));
    }

    #[test]
    fn malformed_der_is_rejected() {
        fn check(input: &[u8]) {
            assert_eq!(decode_der(input), None, "{input:02x?}");
            assert_eq!(is_low_s(input), None);
        }
        check(&[]);
        check(&[0x30, 6, 2, 1, 1, 2, 1]); // truncated
        check(&[0x30, 6, 2, 1, 1, 2, 1, 1, 0]); // trailing byte
        check(&[0x30, 7, 2, 2, 0, 1, 2, 1, 1]); // non-minimal zero
        check(&[0x30, 6, 2, 1, 0x81, 2, 1, 1]); // negative
        check(&[0x31, 6, 2, 1, 1, 2, 1, 1]); // not a SEQUENCE
        check(&[0x30, 4, 2, 0, 2, 0]); // empty INTEGERs
    }

    #[test]
    fn high_s_is_detected_and_normalised() {
        let r = scalar(&[7]);
        let high = negate_scalar(&scalar(&[5]));
        let der = encode_der(&r, &high);
        assert_eq!(is_low_s(&der), Some(false));
        let fixed = normalize_der(&der).unwrap();
        assert_eq!(is_low_s(&fixed), Some(true));
        assert_eq!(decode_der(&fixed), Some((r, scalar(&[5]))));
    }
}
