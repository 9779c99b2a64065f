//! A small 256-bit unsigned integer: just what targets and chain work need.

// Limb loops index several arrays in step; iterators would hide that.
#![allow(clippy::needless_range_loop)]

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Div, Not, Shl, Shr, Sub};

use serde::{Deserialize, Serialize};

/// A 256-bit unsigned integer, four 64-bit limbs, least significant first.
///
/// Arithmetic wraps like Bitcoin Core's `arith_uint256` unless a method says
/// otherwise; division by zero yields zero instead of panicking.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct U256(pub [u64; 4]);

impl U256 {
    /// 0.
    pub const ZERO: U256 = U256([0; 4]);
    /// 1.
    pub const ONE: U256 = U256([1, 0, 0, 0]);
    /// 2^256 - 1.
    pub const MAX: U256 = U256([u64::MAX; 4]);

    /// `v` as a 256-bit number.
    #[must_use]
    pub const fn from_u64(v: u64) -> Self {
        U256([v, 0, 0, 0])
    }

    /// The number whose little-endian bytes are `bytes` (how Bitcoin reads a hash as a
    /// number).
    #[must_use]
    pub fn from_le_bytes(bytes: &[u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            *limb = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
        U256(limbs)
    }

    /// Little-endian bytes.
    #[must_use]
    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// The low 64 bits.
    #[must_use]
    pub const fn low_u64(&self) -> u64 {
        self.0[0]
    }

    /// Whether the value is 0.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// Number of significant bits (0 for 0).
    #[must_use]
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    /// `self + rhs`, or `None` on overflow.
    #[must_use]
    pub fn checked_add(self, rhs: U256) -> Option<U256> {
        let (sum, carry) = self.overflowing_add(rhs);
        (!carry).then_some(sum)
    }

    /// `self + rhs`, saturating at [`U256::MAX`].
    #[must_use]
    pub fn saturating_add(self, rhs: U256) -> U256 {
        self.checked_add(rhs).unwrap_or(U256::MAX)
    }

    fn overflowing_add(self, rhs: U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut carry = false;
        for i in 0..4 {
            let (s1, c1) = self.0[i].overflowing_add(rhs.0[i]);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            out[i] = s2;
            carry = c1 || c2;
        }
        (U256(out), carry)
    }

    fn overflowing_sub(self, rhs: U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for i in 0..4 {
            let (d1, b1) = self.0[i].overflowing_sub(rhs.0[i]);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            out[i] = d2;
            borrow = b1 || b2;
        }
        (U256(out), borrow)
    }

    /// `self * rhs / div`, computed on 320 bits so the product cannot overflow, and
    /// saturating at [`U256::MAX`] if the quotient does not fit. `div == 0` gives 0.
    #[must_use]
    pub fn mul_div_u64(self, rhs: u64, div: u64) -> U256 {
        if div == 0 {
            return U256::ZERO;
        }
        // Product on five limbs.
        let mut wide = [0u64; 5];
        let mut carry = 0u128;
        for i in 0..4 {
            let p = u128::from(self.0[i]) * u128::from(rhs) + carry;
            wide[i] = p as u64;
            carry = p >> 64;
        }
        wide[4] = carry as u64;
        // Long division by a single limb, most significant first.
        let mut rem = 0u128;
        let mut quotient = [0u64; 5];
        for i in (0..5).rev() {
            let cur = (rem << 64) | u128::from(wide[i]);
            quotient[i] = (cur / u128::from(div)) as u64;
            rem = cur % u128::from(div);
        }
        if quotient[4] != 0 {
            return U256::MAX;
        }
        U256([quotient[0], quotient[1], quotient[2], quotient[3]])
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Add for U256 {
    type Output = U256;
    /// Wrapping addition.
    fn add(self, rhs: U256) -> U256 {
        self.overflowing_add(rhs).0
    }
}

impl Sub for U256 {
    type Output = U256;
    /// Wrapping subtraction.
    fn sub(self, rhs: U256) -> U256 {
        self.overflowing_sub(rhs).0
    }
}

impl Div for U256 {
    type Output = U256;
    /// Binary long division; dividing by 0 gives 0 instead of panicking.
    fn div(self, rhs: U256) -> U256 {
        if rhs.is_zero() || self < rhs {
            return U256::ZERO;
        }
        let shift = self.bits() - rhs.bits();
        let mut divisor = rhs << shift;
        let mut rem = self;
        let mut quotient = U256::ZERO;
        for i in (0..=shift).rev() {
            if rem >= divisor {
                rem = rem - divisor;
                quotient.0[(i / 64) as usize] |= 1 << (i % 64);
            }
            divisor = divisor >> 1;
        }
        quotient
    }
}

impl Not for U256 {
    type Output = U256;
    fn not(self) -> U256 {
        U256(self.0.map(|l| !l))
    }
}

impl Shl<u32> for U256 {
    type Output = U256;
    /// Shifts left; bits shifted past 256 are lost (a shift of 256 or more gives 0).
    fn shl(self, shift: u32) -> U256 {
        let mut out = [0u64; 4];
        let (limbs, bits) = ((shift / 64) as usize, shift % 64);
        for i in limbs..4 {
            out[i] = self.0[i - limbs] << bits;
            if bits > 0 && i > limbs {
                out[i] |= self.0[i - limbs - 1] >> (64 - bits);
            }
        }
        U256(out)
    }
}

impl Shr<u32> for U256 {
    type Output = U256;
    /// Shifts right (a shift of 256 or more gives 0).
    fn shr(self, shift: u32) -> U256 {
        let mut out = [0u64; 4];
        let (limbs, bits) = ((shift / 64) as usize, shift % 64);
        for i in 0..4usize.saturating_sub(limbs) {
            out[i] = self.0[i + limbs] >> bits;
            if bits > 0 && i + limbs + 1 < 4 {
                out[i] |= self.0[i + limbs + 1] << (64 - bits);
            }
        }
        U256(out)
    }
}

impl fmt::Display for U256 {
    /// 64 hex digits, most significant first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for limb in self.0.iter().rev() {
            write!(f, "{limb:016x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{self}")
    }
}

impl From<u64> for U256 {
    fn from(v: u64) -> Self {
        U256::from_u64(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(v: u128) -> U256 {
        U256([v as u64, (v >> 64) as u64, 0, 0])
    }

    fn any_u256() -> impl Strategy<Value = U256> {
        (any::<[u64; 4]>(), 0u32..256).prop_map(|(l, s)| U256(l) >> s)
    }

    #[test]
    fn basics() {
        assert_eq!(U256::ZERO.bits(), 0);
        assert_eq!(U256::ONE.bits(), 1);
        assert_eq!(U256::MAX.bits(), 256);
        assert_eq!((U256::ONE << 255).bits(), 256);
        assert_eq!(U256::ONE << 256, U256::ZERO);
        assert_eq!(U256::MAX >> 300, U256::ZERO);
        assert_eq!(U256::MAX + U256::ONE, U256::ZERO);
        assert_eq!(U256::ZERO - U256::ONE, U256::MAX);
        assert_eq!(U256::MAX.checked_add(U256::ONE), None);
        assert_eq!(U256::MAX.saturating_add(U256::ONE), U256::MAX);
        assert_eq!(U256::MAX / U256::ZERO, U256::ZERO);
        assert_eq!(U256::MAX.mul_div_u64(4, 1), U256::MAX);
        assert_eq!(U256::MAX.mul_div_u64(4, 4), U256::MAX);
        // floor((2^256 - 1) * 3 / 4) = 3 * 2^254 - 1
        assert_eq!(U256::MAX.mul_div_u64(3, 4), (U256::ONE << 255) + (U256::ONE << 254) - U256::ONE);
        assert!(U256::ONE << 200 > U256::MAX >> 100);
        assert_eq!(format!("{}", U256::from_u64(0xab)), format!("{:0>64}", "ab"));
    }

    proptest! {
        #[test]
        fn agrees_with_u128(a in any::<u128>(), b in 1..u128::MAX, s in 0u32..128) {
            prop_assert_eq!(u(a) / u(b), u(a / b));
            prop_assert_eq!(u(a) >> s, u(a >> s));
            prop_assert_eq!((u(a) << s) >> s, u(a));
            prop_assert_eq!(u(a).cmp(&u(b)), a.cmp(&b));
            let (sum, carry) = a.overflowing_add(b);
            prop_assert_eq!(u(a) + u(b), U256([sum as u64, (sum >> 64) as u64, u64::from(carry), 0]));
            prop_assert_eq!(u(a) - u(b) + u(b), u(a));
        }

        #[test]
        fn division_is_exact(a in any_u256(), b in any_u256()) {
            prop_assume!(!b.is_zero());
            let q = a / b;
            // q*b <= a < (q+1)*b, checked through mul_div on small b or via subtraction
            let mut prod = U256::ZERO;
            // b * q by shift-and-add (q has at most 256 bits)
            for i in 0..256u32 {
                if (q >> i).low_u64() & 1 == 1 {
                    prod = prod + (b << i);
                }
            }
            prop_assert!(prod <= a);
            prop_assert!(a - prod < b);
        }

        #[test]
        fn mul_div_matches_u128(a in any::<u64>(), m in any::<u64>(), d in 1..u64::MAX) {
            let expect = u128::from(a) * u128::from(m) / u128::from(d);
            prop_assert_eq!(U256::from_u64(a).mul_div_u64(m, d), u(expect));
        }

        #[test]
        fn bytes_round_trip(a in any_u256()) {
            prop_assert_eq!(U256::from_le_bytes(&a.to_le_bytes()), a);
        }
    }
}
