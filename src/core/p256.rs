//! ECDSA P-256 verification for repeat signers, with a table of multiples per public key.
//!
//! A verification computes `u1·G + u2·Q` and compares its x coordinate with `r`. ring does
//! both multiplications in constant time, with 256 doublings for `Q`. A client signs many
//! transactions with one key, and verification handles public data only, so here each key gets
//! a table once: for every window of [`KEY_WINDOW`] bits of the scalar, the multiples
//! `1 … 2^(w-1)` of `2^(w·i)·Q` in affine coordinates. `u2·Q` is then 43 mixed additions and no
//! doubling, and `u1·G` the same from a table of `G` built once per process. The x coordinate is
//! compared without an inversion (`X == r·Z²`, or `(r + n)·Z²`). Not constant time: nothing
//! here is secret.
//!
//! The field and scalar arithmetic is fiat-crypto's, generated from a proof of its correctness;
//! the point formulas, the tables and the scalar inversion (binary extended Euclid) are here. BENCHMARKS.md ("ECDSA verification") has the
//! figures; the tests check every Wycheproof vector for ECDSA P-256 with SHA-256 and agreement
//! with ring on random and corrupted signatures.
//!
//! Pure: no I/O, no clock.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::msp::SignatureError;
use fiat_crypto::p256_64 as fp;
use fiat_crypto::p256_scalar_64 as fs;

/// A field element mod p, in Montgomery form, fully reduced.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Fe([u64; 4]);

const P: [u64; 4] = [0xffff_ffff_ffff_ffff, 0x0000_0000_ffff_ffff, 0, 0xffff_ffff_0000_0001];
const N: [u64; 4] = [0xf3b9_cac2_fc63_2551, 0xbce6_faad_a717_9e84, 0xffff_ffff_ffff_ffff, 0xffff_ffff_0000_0000];
const B: [u8; 32] = hex32("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b");
const GX: [u8; 32] = hex32("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
const GY: [u8; 32] = hex32("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not hex"),
    }
}

/// Big-endian bytes to little-endian limbs.
fn limbs(be: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let at = 32 - 8 * (i + 1);
        *limb = u64::from_be_bytes(be[at..at + 8].try_into().unwrap());
    }
    out
}

fn less(a: &[u64; 4], m: &[u64; 4]) -> bool {
    for i in (0..4).rev() {
        if a[i] != m[i] {
            return a[i] < m[i];
        }
    }
    false
}

fn is_zero(a: &[u64; 4]) -> bool {
    a.iter().all(|&l| l == 0)
}

/// `a + b` over 256 bits, and whether it carried out.
fn add_wide(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], bool) {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(carry as u64);
        out[i] = s2;
        carry = c1 | c2;
    }
    (out, carry)
}

fn sub_wide(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d1, b1) = a[i].overflowing_sub(b[i]);
        let (d2, b2) = d1.overflowing_sub(borrow as u64);
        out[i] = d2;
        borrow = b1 | b2;
    }
    out
}

/// A method of [`Fe`] over fiat-crypto's function `$f` of one or two elements (`$other`).
macro_rules! fe_op {
    ($name:ident, $f:path, $other:ident) => {
        #[inline(always)]
        fn $name(&self, $other: &Fe) -> Fe {
            let mut out = FeM([0; 4]);
            $f(&mut out, &FeM(self.0), &FeM($other.0));
            Fe(out.0)
        }
    };
    ($name:ident, $f:path) => {
        #[inline(always)]
        fn $name(&self) -> Fe {
            let mut out = FeM([0; 4]);
            $f(&mut out, &FeM(self.0));
            Fe(out.0)
        }
    };
}

use fp::fiat_p256_montgomery_domain_field_element as FeM;

impl Fe {
    const ZERO: Fe = Fe([0; 4]);

    fn one() -> Fe {
        let mut out = FeM([0; 4]);
        fp::fiat_p256_set_one(&mut out);
        Fe(out.0)
    }

    /// From an integer below p (little-endian limbs).
    fn from_int(a: &[u64; 4]) -> Fe {
        debug_assert!(less(a, &P));
        let mut out = FeM([0; 4]);
        fp::fiat_p256_to_montgomery(&mut out, &fp::fiat_p256_non_montgomery_domain_field_element(*a));
        Fe(out.0)
    }

    fe_op!(mul, fp::fiat_p256_mul, o);
    fe_op!(add, fp::fiat_p256_add, o);
    fe_op!(sub, fp::fiat_p256_sub, o);
    fe_op!(sq, fp::fiat_p256_square);
    fe_op!(neg, fp::fiat_p256_opp);

    fn is_zero(&self) -> bool {
        is_zero(&self.0)
    }

    /// `self^(p-2)`: the inverse of a non-zero element (only in precomputation).
    fn invert(&self) -> Fe {
        let e = sub_wide(&P, &[2, 0, 0, 0]);
        let mut acc = Fe::one();
        for bit in (0..256).rev() {
            acc = acc.sq();
            if (e[bit / 64] >> (bit % 64)) & 1 == 1 {
                acc = acc.mul(self);
            }
        }
        acc
    }
}

/// A scalar mod n in Montgomery form.
#[derive(Clone, Copy)]
struct Sc([u64; 4]);

impl Sc {
    fn one() -> Sc {
        let mut out = fs::fiat_p256_scalar_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_set_one(&mut out);
        Sc(out.0)
    }

    fn from_int(a: &[u64; 4]) -> Sc {
        let mut out = fs::fiat_p256_scalar_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_to_montgomery(&mut out, &fs::fiat_p256_scalar_non_montgomery_domain_field_element(*a));
        Sc(out.0)
    }

    fn to_int(self) -> [u64; 4] {
        let mut out = fs::fiat_p256_scalar_non_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_from_montgomery(&mut out, &fs::fiat_p256_scalar_montgomery_domain_field_element(self.0));
        out.0
    }

    #[inline(always)]
    fn mul(&self, o: &Sc) -> Sc {
        let mut out = fs::fiat_p256_scalar_montgomery_domain_field_element([0; 4]);
        fs::fiat_p256_scalar_mul(
            &mut out,
            &fs::fiat_p256_scalar_montgomery_domain_field_element(self.0),
            &fs::fiat_p256_scalar_montgomery_domain_field_element(o.0),
        );
        Sc(out.0)
    }
}

/// `a⁻¹ mod n` for `a` in `[1, n)`, by the binary extended Euclidean algorithm: twice as fast
/// as Fermat's `a^(n-2)` here, and variable-time, which is fine: `s` is public.
fn invert_scalar(a: &[u64; 4]) -> [u64; 4] {
    const ONE: [u64; 4] = [1, 0, 0, 0];
    // Invariants: x1·a ≡ u and x2·a ≡ v (mod n); gcd(u, v) = gcd(a, n) = 1 throughout.
    let (mut u, mut v) = (*a, N);
    let (mut x1, mut x2) = (ONE, [0u64; 4]);
    loop {
        while u[0] & 1 == 0 {
            u = shr1(&u, false);
            x1 = half_mod_n(&x1);
        }
        while v[0] & 1 == 0 {
            v = shr1(&v, false);
            x2 = half_mod_n(&x2);
        }
        if u == ONE {
            return x1;
        }
        if v == ONE {
            return x2;
        }
        if less(&u, &v) {
            v = sub_wide(&v, &u);
            x2 = sub_mod_n(&x2, &x1);
        } else {
            u = sub_wide(&u, &v);
            x1 = sub_mod_n(&x1, &x2);
        }
    }
}

/// `a / 2` over 257 bits, `top` being bit 256.
fn shr1(a: &[u64; 4], top: bool) -> [u64; 4] {
    [
        (a[0] >> 1) | (a[1] << 63),
        (a[1] >> 1) | (a[2] << 63),
        (a[2] >> 1) | (a[3] << 63),
        (a[3] >> 1) | (u64::from(top) << 63),
    ]
}

/// `x / 2 mod n` for `x` in `[0, n)`.
fn half_mod_n(x: &[u64; 4]) -> [u64; 4] {
    if x[0] & 1 == 0 {
        shr1(x, false)
    } else {
        let (sum, carry) = add_wide(x, &N);
        shr1(&sum, carry)
    }
}

/// `a - b mod n` for `a`, `b` in `[0, n)`.
fn sub_mod_n(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let difference = sub_wide(a, b);
    if less(a, b) {
        add_wide(&difference, &N).0
    } else {
        difference
    }
}

/// An affine point (never infinity).
#[derive(Clone, Copy, Debug)]
struct Affine {
    x: Fe,
    y: Fe,
}

/// A Jacobian point: (X/Z², Y/Z³); Z = 0 is infinity.
#[derive(Clone, Copy, Debug)]
struct Jac {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Jac {
    fn infinity() -> Jac {
        Jac { x: Fe::one(), y: Fe::one(), z: Fe::ZERO }
    }

    fn from_affine(a: &Affine) -> Jac {
        Jac { x: a.x, y: a.y, z: Fe::one() }
    }

    /// dbl-2001-b (a = -3).
    fn double(&self) -> Jac {
        if self.z.is_zero() || self.y.is_zero() {
            return Jac::infinity();
        }
        let delta = self.z.sq();
        let gamma = self.y.sq();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.add(&t).add(&t);
        let beta2 = beta.add(&beta);
        let beta4 = beta2.add(&beta2);
        let beta8 = beta4.add(&beta4);
        let x3 = alpha.sq().sub(&beta8);
        let z3 = self.y.add(&self.z).sq().sub(&gamma).sub(&delta);
        let g2 = gamma.sq();
        let g2_2 = g2.add(&g2);
        let g2_4 = g2_2.add(&g2_2);
        let g2_8 = g2_4.add(&g2_4);
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&g2_8);
        Jac { x: x3, y: y3, z: z3 }
    }

    /// `self + (x2, y2)`, for an affine point: 8M + 3S.
    #[inline]
    fn add_affine(&self, x2: &Fe, y2: &Fe) -> Jac {
        if self.z.is_zero() {
            return Jac { x: *x2, y: *y2, z: Fe::one() };
        }
        let z1z1 = self.z.sq();
        let u2 = x2.mul(&z1z1);
        let s2 = y2.mul(&self.z.mul(&z1z1));
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.is_zero() {
            return if r.is_zero() { self.double() } else { Jac::infinity() };
        }
        let hh = h.sq();
        let hhh = h.mul(&hh);
        let v = self.x.mul(&hh);
        let x3 = r.sq().sub(&hhh).sub(&v).sub(&v);
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&hhh));
        let z3 = self.z.mul(&h);
        Jac { x: x3, y: y3, z: z3 }
    }

    /// General addition (precomputation only).
    fn add(&self, o: &Jac) -> Jac {
        if self.z.is_zero() {
            return *o;
        }
        if o.z.is_zero() {
            return *self;
        }
        let z1z1 = self.z.sq();
        let z2z2 = o.z.sq();
        let u1 = self.x.mul(&z2z2);
        let u2 = o.x.mul(&z1z1);
        let s1 = self.y.mul(&o.z).mul(&z2z2);
        let s2 = o.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1);
        if h.is_zero() {
            return if r.is_zero() { self.double() } else { Jac::infinity() };
        }
        let hh = h.sq();
        let hhh = h.mul(&hh);
        let v = u1.mul(&hh);
        let x3 = r.sq().sub(&hhh).sub(&v).sub(&v);
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&hhh));
        let z3 = self.z.mul(&o.z).mul(&h);
        Jac { x: x3, y: y3, z: z3 }
    }
}

/// Jacobian points (none infinity) to affine, with one inversion.
fn normalize(points: &[Jac]) -> Vec<Affine> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::one();
    for p in points {
        prefix.push(acc);
        acc = acc.mul(&p.z);
    }
    let mut inv = acc.invert();
    let mut out = vec![Affine { x: Fe::ZERO, y: Fe::ZERO }; points.len()];
    for i in (0..points.len()).rev() {
        let zinv = inv.mul(&prefix[i]);
        inv = inv.mul(&points[i].z);
        let zinv2 = zinv.sq();
        out[i] = Affine { x: points[i].x.mul(&zinv2), y: points[i].y.mul(&zinv2.mul(&zinv)) };
    }
    out
}

/// Signed-digit multiples of a point, one table per window of `w` bits: entry `[i][j]` is
/// `(j + 1) · 2^(w·i) · P`. A scalar multiplication is then additions only.
struct Comb {
    w: u32,
    windows: usize,
    points: Vec<Affine>,
}

impl Comb {
    fn new(p: &Affine, w: u32) -> Comb {
        // Enough windows that the top one absorbs the last carry: w · windows ≥ 257.
        let windows = 257_usize.div_ceil(w as usize);
        let half = 1usize << (w - 1);
        let mut jac = Vec::with_capacity(windows * half);
        let mut base = Jac::from_affine(p);
        for _ in 0..windows {
            let mut m = base;
            jac.push(m);
            for _ in 1..half {
                m = m.add(&base);
                jac.push(m);
            }
            base = m.double();
        }
        Comb { w, windows, points: normalize(&jac) }
    }

    /// Adds `k · P` into `acc`.
    #[inline]
    fn mul_add(&self, k: &[u64; 4], acc: &mut Jac) {
        let w = self.w;
        let half = 1i64 << (w - 1);
        let mask = (1u64 << w) - 1;
        let mut carry = 0i64;
        for i in 0..self.windows {
            let bit = i * w as usize;
            let limb = bit / 64;
            let off = bit % 64;
            let mut v = if limb < 4 { k[limb] >> off } else { 0 };
            if off + w as usize > 64 && limb + 1 < 4 {
                v |= k[limb + 1] << (64 - off);
            }
            let mut d = (v & mask) as i64 + carry;
            if d > half {
                d -= 1 << w;
                carry = 1;
            } else {
                carry = 0;
            }
            if d != 0 {
                let entry = &self.points[i * half as usize + (d.unsigned_abs() as usize - 1)];
                if d > 0 {
                    *acc = acc.add_affine(&entry.x, &entry.y);
                } else {
                    *acc = acc.add_affine(&entry.x, &entry.y.neg());
                }
            }
        }
        debug_assert_eq!(carry, 0);
    }
}

/// Bits per window of `G`'s table (33 windows of 128 points: 264 KiB, built once).
const G_WINDOW: u32 = 8;
/// Bits per window of a key's table (43 windows of 32 points: 86 KiB per key, about 0.8 ms to
/// build). Wider windows save a few additions and double the table (BENCHMARKS.md).
pub const KEY_WINDOW: u32 = 6;
/// Verifications of one creator with ring before its table is built: a key seen once or twice
/// does not pay 0.8 ms for it.
pub const PREPARE_AFTER: u32 = 4;
/// Tables alive at once, across every channel and configuration (86 KiB each: 43 MiB; a key has
/// one table, shared by every creator cache that holds it). Past it, keys are verified with
/// ring until tables are freed.
pub const MAX_TABLES: usize = 512;

static TABLES: AtomicUsize = AtomicUsize::new(0);

fn g_comb() -> &'static Comb {
    static G: OnceLock<Comb> = OnceLock::new();
    G.get_or_init(|| Comb::new(&Affine { x: Fe::from_int(&limbs(&GX)), y: Fe::from_int(&limbs(&GY)) }, G_WINDOW))
}

/// A P-256 public key with its table.
pub struct PreparedKey {
    comb: Comb,
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedKey").field("points", &self.comb.points.len()).finish()
    }
}

impl PreparedKey {
    /// From an uncompressed SEC1 point, `04 ‖ X ‖ Y`; None unless it is a point on the curve
    /// (P-256's cofactor is 1: every point on it but infinity is in the group).
    pub fn new(sec1: &[u8]) -> Option<PreparedKey> {
        PreparedKey::with_window(sec1, KEY_WINDOW)
    }

    fn with_window(sec1: &[u8], window: u32) -> Option<PreparedKey> {
        if sec1.len() != 65 || sec1[0] != 4 {
            return None;
        }
        let x = limbs(sec1[1..33].try_into().ok()?);
        let y = limbs(sec1[33..65].try_into().ok()?);
        if !less(&x, &P) || !less(&y, &P) {
            return None;
        }
        let (x, y) = (Fe::from_int(&x), Fe::from_int(&y));
        // y² = x³ − 3x + b
        let b = Fe::from_int(&limbs(&B));
        if y.sq() != x.sq().mul(&x).sub(&x.add(&x).add(&x)).add(&b) {
            return None;
        }
        Some(PreparedKey { comb: Comb::new(&Affine { x, y }, window) })
    }

    /// Whether `(r, s)` (32 bytes each, big-endian) signs `message` (hashed with SHA-256).
    pub fn verify(&self, message: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
        let digest: [u8; 32] = {
            use sha2::{Digest as _, Sha256};
            Sha256::digest(message).into()
        };
        self.verify_digest(&digest, r, s)
    }

    /// Whether `(r, s)` signs the SHA-256 digest `e`.
    pub fn verify_digest(&self, e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
        let Some((r, s)) = in_range(r, s) else { return false };
        self.verify_with_inverse(e, &r, &Sc::from_int(&invert_scalar(&s)))
    }

    /// The check, given `w = s⁻¹ mod n` (Montgomery form) and `r` in range.
    fn verify_with_inverse(&self, e: &[u8; 32], r: &[u64; 4], w: &Sc) -> bool {
        // The digest as an integer (256 bits: no truncation), reduced mod n (it is below 2n).
        let mut e = limbs(e);
        if !less(&e, &N) {
            e = sub_wide(&e, &N);
        }
        let u1 = Sc::from_int(&e).mul(w).to_int();
        let u2 = Sc::from_int(r).mul(w).to_int();
        let mut acc = Jac::infinity();
        g_comb().mul_add(&u1, &mut acc);
        self.comb.mul_add(&u2, &mut acc);
        if acc.z.is_zero() {
            return false;
        }
        // x(R) = X / Z², below p; its residue mod n is r when it is r, or r + n if that is below p.
        let zz = acc.z.sq();
        if Fe::from_int(r).mul(&zz) == acc.x {
            return true;
        }
        let (rn, carry) = add_wide(r, &N);
        !carry && less(&rn, &P) && Fe::from_int(&rn).mul(&zz) == acc.x
    }

    /// Fabric's envelope signature check over a prepared key: DER `(r, s)`, low-S, then the
    /// signature. Answers as [`super::msp::PublicKey::verify`] does.
    pub fn verify_der(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let item = self.item(message, signature)?;
        if self.verify_digest(&item.digest, &item.r, &item.s) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }

    /// The first half of [`PreparedKey::verify_der`]: the signature's encoding and low-S rule,
    /// and the message's digest, for [`verify_batch`].
    pub fn item(&self, message: &[u8], signature: &[u8]) -> Result<Item<'_>, SignatureError> {
        if signature.is_empty() {
            return Err(SignatureError::Missing);
        }
        let (r, s) = super::ecdsa::decode_der(signature).ok_or(SignatureError::Malformed)?;
        if !super::ecdsa::scalar_is_low(&s) {
            return Err(SignatureError::HighS);
        }
        let digest = {
            use sha2::{Digest as _, Sha256};
            Sha256::digest(message).into()
        };
        Ok(Item { key: self, digest, r, s })
    }
}

/// `r` and `s` as integers, if both are in `[1, n)`.
fn in_range(r: &[u8; 32], s: &[u8; 32]) -> Option<([u64; 4], [u64; 4])> {
    let (r, s) = (limbs(r), limbs(s));
    (!is_zero(&r) && !is_zero(&s) && less(&r, &N) && less(&s, &N)).then_some((r, s))
}

/// One signature of a batch: its key's table, the SHA-256 digest of what it signs, `r`, `s`.
pub struct Item<'a> {
    pub key: &'a PreparedKey,
    pub digest: [u8; 32],
    pub r: [u8; 32],
    pub s: [u8; 32],
}

/// Checks many signatures, each as [`PreparedKey::verify_digest`] would, with one scalar
/// inversion for all of them (Montgomery's trick: a fifth of a single check's time goes to
/// inverting `s`). The answers are in order.
pub fn verify_batch(items: &[Item<'_>]) -> Vec<bool> {
    let parsed: Vec<Option<([u64; 4], Sc)>> =
        items.iter().map(|i| in_range(&i.r, &i.s).map(|(r, s)| (r, Sc::from_int(&s)))).collect();
    // prefix[k] = the product of the s before item k (skipping those out of range).
    let mut prefix = Vec::with_capacity(items.len());
    let mut product = Sc::one();
    for p in &parsed {
        prefix.push(product);
        if let Some((_, s)) = p {
            product = product.mul(s);
        }
    }
    let mut inverse = Sc::from_int(&invert_scalar(&product.to_int()));
    let mut answers = vec![false; items.len()];
    for k in (0..items.len()).rev() {
        if let Some((r, s)) = &parsed[k] {
            let w = inverse.mul(&prefix[k]);
            inverse = inverse.mul(s);
            answers[k] = items[k].key.verify_with_inverse(&items[k].digest, r, &w);
        }
    }
    answers
}

/// A table counted against [`MAX_TABLES`] while it lives.
#[derive(Debug)]
struct Counted(PreparedKey);

impl Drop for Counted {
    fn drop(&mut self) {
        TABLES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The tables alive now (the `osn_verify_ecdsa_key_tables` gauge).
pub fn tables() -> usize {
    TABLES.load(Ordering::Relaxed)
}

/// One signer's key, as a creator cache holds it: verified with ring for its first
/// [`PREPARE_AFTER`] signatures, then with its table, if [`MAX_TABLES`] allows one.
#[derive(Debug, Default)]
pub struct RepeatKey {
    uses: AtomicU32,
    table: OnceLock<Option<Arc<Counted>>>,
}

impl RepeatKey {
    /// `key`'s signature over `message`, as [`super::msp::PublicKey::verify`] answers: with the
    /// table once this key has one (see [`RepeatKey::table`]), else with ring.
    pub fn verify(
        &self,
        key: &super::msp::PublicKey,
        eligible: bool,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let table = match key {
            super::msp::PublicKey::EcdsaP256(point) => self.table(point, eligible),
            super::msp::PublicKey::Ed25519(_) => None,
        };
        match table {
            Some(table) => table.verify_der(message, signature),
            None => key.verify(message, signature),
        }
    }

    /// The table to verify this signature with, or None (verify with ring). `sec1` is the key;
    /// `eligible` says whether it may get a table at all (the creator is a member of the
    /// channel's organisations: strangers never cost a table).
    pub fn table(&self, sec1: &[u8], eligible: bool) -> Option<&PreparedKey> {
        if let Some(table) = self.table.get() {
            return table.as_deref().map(|c| &c.0);
        }
        if !eligible || self.uses.fetch_add(1, Ordering::Relaxed) + 1 < PREPARE_AFTER {
            return None;
        }
        self.table.get_or_init(|| shared_table(sec1)).as_deref().map(|c| &c.0)
    }
}

/// The tables alive, by key: a key that signs on many channels, or across a configuration change
/// (a new creator cache), shares one table. Weak: a table lives while a creator holds it.
fn shared() -> &'static std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::sync::Weak<Counted>>> {
    static SHARED: OnceLock<std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::sync::Weak<Counted>>>> =
        OnceLock::new();
    SHARED.get_or_init(Default::default)
}

/// `sec1`'s table: the one alive if any, else a new one if [`MAX_TABLES`] allows it.
fn shared_table(sec1: &[u8]) -> Option<Arc<Counted>> {
    if let Some(table) = shared().lock().unwrap_or_else(|e| e.into_inner()).get(sec1).and_then(|w| w.upgrade()) {
        return Some(table);
    }
    if TABLES.fetch_add(1, Ordering::Relaxed) >= MAX_TABLES {
        TABLES.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    // Built outside the lock (under a millisecond); two threads building the same key's table
    // at once keep the first one registered, and the other is dropped with its creator.
    let Some(key) = PreparedKey::new(sec1) else {
        TABLES.fetch_sub(1, Ordering::Relaxed);
        return None;
    };
    let table = Arc::new(Counted(key));
    let mut map = shared().lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= 2 * MAX_TABLES {
        map.retain(|_, w| w.strong_count() > 0);
    }
    match map.get(sec1).and_then(|w| w.upgrade()) {
        Some(alive) => Some(alive),
        None => {
            map.insert(sec1.to_vec(), Arc::downgrade(&table));
            Some(table)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::msp::PublicKey;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};

    /// Every Wycheproof test of ECDSA P-256 with SHA-256 (DER signatures): valid ones verify,
    /// invalid ones do not (BER encodings, r or s out of range, points at infinity, the r + n
    /// case, edge-case keys, …). "Acceptable" ones must get ring's verdict.
    #[test]
    fn every_wycheproof_p256_sha256_vector_gets_its_verdict() {
        use wycheproof::ecdsa::{TestName, TestSet};
        use wycheproof::TestResult;
        let set = TestSet::load(TestName::EcdsaSecp256r1Sha256).unwrap();
        let (mut valid, mut invalid) = (0, 0);
        for group in &set.test_groups {
            let point: &[u8] = &group.key.key;
            let key = PreparedKey::new(point);
            for test in &group.tests {
                let (msg, sig): (&[u8], &[u8]) = (&test.msg, &test.sig);
                // The same check as PublicKey::verify makes, less its low-S rule (Wycheproof's
                // valid signatures have either S).
                let ours = key
                    .as_ref()
                    .is_some_and(|k| crate::core::ecdsa::decode_der(sig).is_some_and(|(r, s)| k.verify(msg, &r, &s)));
                let ring = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
                    .verify(msg, sig)
                    .is_ok();
                match test.result {
                    TestResult::Valid => {
                        assert!(ours, "tc {} ({}) must verify", test.tc_id, test.comment);
                        valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(!ours, "tc {} ({}) must not verify", test.tc_id, test.comment);
                        invalid += 1;
                    }
                    TestResult::Acceptable => assert_eq!(ours, ring, "tc {} ({})", test.tc_id, test.comment),
                }
            }
        }
        assert!(valid > 100 && invalid > 200, "{valid} valid and {invalid} invalid vectors");
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// The prepared check answers exactly as ring's behind `PublicKey::verify` (the same error
    /// too), on good signatures of either S and on corrupted signatures and messages, for
    /// every window width.
    #[test]
    fn prepared_keys_agree_with_ring_on_good_and_corrupted_signatures() {
        let rng = SystemRandom::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut seen = std::collections::HashMap::<&'static str, usize>::new();
        for k in 0..10u32 {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
            let point = pair.public_key().as_ref().to_vec();
            let public = PublicKey::EcdsaP256(point.clone().into());
            let key = PreparedKey::with_window(&point, 4 + k % 5).unwrap();
            for m in 0..24u32 {
                let message = format!("transaction {k}.{m}").repeat(1 + m as usize).into_bytes();
                let mut signature = pair.sign(&rng, &message).unwrap().as_ref().to_vec();
                let mut message = message;
                let what = match m % 6 {
                    0 => "as signed",
                    1 => {
                        let bit = xorshift(&mut state) as usize % (signature.len() * 8);
                        signature[bit / 8] ^= 1 << (bit % 8);
                        "a signature bit flipped"
                    }
                    2 => {
                        let at = xorshift(&mut state) as usize % message.len();
                        message[at] ^= 0x20;
                        "a message byte changed"
                    }
                    3 => {
                        let (r, s) = crate::core::ecdsa::decode_der(&signature).unwrap();
                        signature = crate::core::ecdsa::encode_der(&r, &crate::core::ecdsa::negate_scalar(&s));
                        "the other S"
                    }
                    4 => {
                        let (r, s) = crate::core::ecdsa::decode_der(&signature).unwrap();
                        signature = crate::core::ecdsa::encode_der(&s, &r);
                        "r and s swapped"
                    }
                    _ => {
                        signature.truncate(signature.len() - 1);
                        "truncated"
                    }
                };
                let expected = public.verify(&message, &signature);
                assert_eq!(key.verify_der(&message, &signature), expected, "key {k}, {what}");
                if expected.is_ok() {
                    *seen.entry(what).or_default() += 1;
                }
            }
        }
        // Half of the as-signed and other-S signatures are low-S, and verify.
        assert!(seen.get("as signed").copied().unwrap_or(0) + seen.get("the other S").copied().unwrap_or(0) >= 30);
    }

    /// A batch answers as its items one by one would, whatever mix of keys, good signatures,
    /// wrong ones and out-of-range scalars it holds.
    #[test]
    fn a_batch_answers_as_single_checks_do() {
        let rng = SystemRandom::new();
        let pairs: Vec<_> = (0..3)
            .map(|_| {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
            })
            .collect();
        let keys: Vec<_> = pairs.iter().map(|p| PreparedKey::new(p.public_key().as_ref()).unwrap()).collect();
        let mut items = Vec::new();
        for n in 0..30usize {
            let message = format!("message {n}").into_bytes();
            let signer = n % 3;
            let signature = pairs[signer].sign(&rng, &message).unwrap();
            let (mut r, mut s) = crate::core::ecdsa::decode_der(signature.as_ref()).unwrap();
            let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &message).as_ref().try_into().unwrap();
            let key = match n % 5 {
                1 => &keys[(signer + 1) % 3], // another key's
                _ => &keys[signer],
            };
            match n % 7 {
                2 => r = [0; 32],
                4 => s = crate::core::ecdsa::P256_ORDER,
                6 => s = crate::core::ecdsa::negate_scalar(&s), // the other S: valid too
                _ => {}
            }
            items.push(Item { key, digest, r, s });
        }
        let singly: Vec<bool> = items.iter().map(|i| i.key.verify_digest(&i.digest, &i.r, &i.s)).collect();
        assert_eq!(verify_batch(&items), singly);
        assert!(singly.iter().filter(|&&b| b).count() >= 10, "{singly:?}");
        assert!(singly.iter().filter(|&&b| !b).count() >= 10, "{singly:?}");
        assert!(verify_batch(&[]).is_empty());
    }

    /// The inverse mod n is one: `a · a⁻¹ ≡ 1`, at the ends of the range and for random `a`.
    #[test]
    fn scalars_invert() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut cases = vec![[1u64, 0, 0, 0], [2, 0, 0, 0], sub_wide(&N, &[1, 0, 0, 0]), sub_wide(&N, &[2, 0, 0, 0])];
        for _ in 0..500 {
            let mut a = [0u64; 4];
            for limb in a.iter_mut() {
                *limb = xorshift(&mut state);
            }
            if !less(&a, &N) {
                a = sub_wide(&a, &N);
            }
            if !is_zero(&a) {
                cases.push(a);
            }
        }
        for a in cases {
            let inverse = invert_scalar(&a);
            assert!(less(&inverse, &N));
            assert_eq!(Sc::from_int(&a).mul(&Sc::from_int(&inverse)).to_int(), [1, 0, 0, 0], "{a:x?}");
        }
    }

    #[test]
    fn keys_off_the_curve_or_out_of_range_get_no_table() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert!(PreparedKey::new(&point).is_some());
        let mut off = point.clone();
        off[64] ^= 1;
        assert!(PreparedKey::new(&off).is_none(), "y changed: not on the curve");
        let mut compressed = point[..33].to_vec();
        compressed[0] = 2;
        assert!(PreparedKey::new(&compressed).is_none());
        let mut prefix = point.clone();
        prefix[0] = 6;
        assert!(PreparedKey::new(&prefix).is_none());
        let mut big = vec![4u8];
        big.extend_from_slice(&[0xff; 64]);
        assert!(PreparedKey::new(&big).is_none(), "coordinates above p");
        assert!(PreparedKey::new(&[0u8; 65]).is_none());
    }

    #[test]
    fn a_repeat_key_gets_its_table_after_a_few_signatures_and_only_if_eligible() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();

        let stranger = RepeatKey::default();
        for _ in 0..2 * PREPARE_AFTER {
            assert!(stranger.table(&point, false).is_none());
        }

        let member = RepeatKey::default();
        for _ in 1..PREPARE_AFTER {
            assert!(member.table(&point, true).is_none(), "verified with ring at first");
        }
        let table = member.table(&point, true).expect("the table, from the PREPARE_AFTER-th signature on");
        let message = b"a transaction";
        let signature = pair.sign(&rng, message).unwrap();
        let (r, s) = crate::core::ecdsa::decode_der(signature.as_ref()).unwrap();
        assert!(table.verify(message, &r, &s));
        assert!(tables() >= 1);
        assert!(member.table(&point, true).is_some());

        // Another creator cache (another channel, or the next configuration) with the same key
        // shares the table instead of building one.
        let elsewhere = RepeatKey::default();
        for _ in 1..PREPARE_AFTER {
            assert!(elsewhere.table(&point, true).is_none());
        }
        let shared = elsewhere.table(&point, true).expect("the shared table");
        assert!(std::ptr::eq(shared, table), "one table per key");

        let bad = RepeatKey::default();
        for _ in 0..PREPARE_AFTER + 1 {
            assert!(bad.table(&[4u8; 65], true).is_none(), "no table for a key off the curve");
        }
    }
}
