//! Compact targets (`nBits`), proof-of-work checks, block work and retargeting.

use std::fmt;

use ballot_ledger::Hash;
use serde::{Deserialize, Serialize};

use crate::{CompactError, PowError, U256};

/// A target in Bitcoin's compact form (`nBits`): a one-byte base-256 exponent and a
/// three-byte mantissa whose top bit is a sign.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CompactTarget(pub u32);

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

impl fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl CompactTarget {
    /// Decodes exactly as Bitcoin Core's `arith_uint256::SetCompact`: the value (bits
    /// shifted past 256 are lost) and the `negative` and `overflow` flags.
    #[must_use]
    pub fn decode_raw(self) -> (U256, bool, bool) {
        let size = self.0 >> 24;
        let mut word = self.0 & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from_u64(u64::from(word))
        } else {
            U256::from_u64(u64::from(word)) << (8 * (size - 3))
        };
        let negative = word != 0 && (self.0 & 0x0080_0000) != 0;
        let overflow = word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        (value, negative, overflow)
    }

    /// The target, refusing negative and overflowing encodings.
    ///
    /// # Errors
    /// [`CompactError::Negative`] or [`CompactError::Overflow`].
    pub fn to_target(self) -> Result<U256, CompactError> {
        match self.decode_raw() {
            (_, true, _) => Err(CompactError::Negative(self)),
            (_, _, true) => Err(CompactError::Overflow(self)),
            (value, false, false) => Ok(value),
        }
    }

    /// Encodes a target as Bitcoin Core's `arith_uint256::GetCompact` does (never with
    /// the sign bit set; precision below the top three bytes is dropped).
    #[must_use]
    pub fn from_target(target: U256) -> CompactTarget {
        let mut size = target.bits().div_ceil(8);
        let mut compact = if size <= 3 {
            (target.low_u64() << (8 * (3 - size))) as u32
        } else {
            (target >> (8 * (size - 3))).low_u64() as u32
        };
        // The mantissa's top bit is the sign: move a set bit into the exponent instead.
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactTarget(compact | (size << 24))
    }
}

impl From<u32> for CompactTarget {
    fn from(v: u32) -> Self {
        CompactTarget(v)
    }
}

/// The target `bits` stands for, if it is a valid proof-of-work target: not negative,
/// not overflowing, not zero, and not easier than `pow_limit`.
///
/// # Errors
/// [`PowError::BadTarget`].
pub fn pow_target(bits: CompactTarget, pow_limit: &U256) -> Result<U256, PowError> {
    let target = bits.to_target().map_err(PowError::BadTarget)?;
    if target.is_zero() {
        return Err(PowError::BadTarget(CompactError::Zero(bits)));
    }
    if target > *pow_limit {
        return Err(PowError::BadTarget(CompactError::AbovePowLimit(bits)));
    }
    Ok(target)
}

/// Bitcoin Core's `CheckProofOfWork`: `hash`, read as a little-endian number, must not
/// exceed the target of `bits`, which must itself be valid under `pow_limit`.
///
/// # Errors
/// [`PowError::BadTarget`] or [`PowError::HighHash`].
pub fn check_proof_of_work(hash: &Hash, bits: CompactTarget, pow_limit: &U256) -> Result<(), PowError> {
    let target = pow_target(bits, pow_limit)?;
    if U256::from_le_bytes(hash.as_bytes()) > target {
        return Err(PowError::HighHash { hash: *hash, bits });
    }
    Ok(())
}

/// The expected number of hashes to find a block at `bits`: `2^256 / (target + 1)`,
/// computed as Bitcoin Core's `GetBlockProof` does, `~target / (target + 1) + 1`.
/// Invalid encodings are worth 0.
#[must_use]
pub fn block_work(bits: CompactTarget) -> U256 {
    match bits.to_target() {
        Ok(target) if !target.is_zero() => {
            if target == U256::MAX {
                return U256::ONE;
            }
            (!target) / (target + U256::ONE) + U256::ONE
        }
        _ => U256::ZERO,
    }
}

/// Bitcoin Core's `CalculateNextWorkRequired`: scales the last target by the actual
/// time the last window took over the intended `target_timespan`, the factor bounded to
/// `[1/max_adjust, max_adjust]`, and never easier than `pow_limit`.
#[must_use]
pub fn next_target(
    last_bits: CompactTarget,
    actual_timespan: i64,
    target_timespan: u64,
    max_adjust: u64,
    pow_limit: &U256,
) -> CompactTarget {
    let max_adjust = max_adjust.max(1);
    let min_span = target_timespan / max_adjust;
    let max_span = target_timespan.saturating_mul(max_adjust);
    let span = u64::try_from(actual_timespan).unwrap_or(0).clamp(min_span, max_span);
    let last = last_bits.to_target().unwrap_or(*pow_limit);
    let new = last.mul_div_u64(span, target_timespan);
    CompactTarget::from_target(if new > *pow_limit { *pow_limit } else { new })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bitcoin Core's `arith_uint256_tests.cpp` (`bignum_SetCompact`).
    #[test]
    fn bitcoin_core_set_compact_vectors() {
        let zeros = [
            0u32,
            0x0012_3456,
            0x0100_3456,
            0x0200_0056,
            0x0300_0000,
            0x0400_0000,
            0x0092_3456,
            0x0180_3456,
            0x0280_0056,
        ];
        for bits in zeros.into_iter().chain([0x0380_0000, 0x0480_0000]) {
            let (v, neg, ovf) = CompactTarget(bits).decode_raw();
            assert_eq!((v, neg, ovf), (U256::ZERO, false, false), "{bits:#x}");
            assert_eq!(CompactTarget::from_target(v), CompactTarget(0));
        }
        let cases: [(u32, u64, u32); 5] = [
            (0x0112_3456, 0x12, 0x0112_0000),
            (0x0212_3456, 0x1234, 0x0212_3400),
            (0x0312_3456, 0x12_3456, 0x0312_3456),
            (0x0412_3456, 0x1234_5600, 0x0412_3456),
            (0x0500_9234, 0x9234_0000, 0x0500_9234),
        ];
        for (bits, value, back) in cases {
            let (v, neg, ovf) = CompactTarget(bits).decode_raw();
            assert_eq!((v, neg, ovf), (U256::from_u64(value), false, false), "{bits:#x}");
            assert_eq!(CompactTarget::from_target(v), CompactTarget(back));
        }
        // Never generate a compact with the sign bit set.
        assert_eq!(CompactTarget::from_target(U256::from_u64(0x80)), CompactTarget(0x0200_8000));
        // Negative encodings are reported and refused.
        assert_eq!(CompactTarget(0x01fe_dcba).decode_raw(), (U256::from_u64(0x7e), true, false));
        assert_eq!(CompactTarget(0x0492_3456).decode_raw(), (U256::from_u64(0x1234_5600), true, false));
        assert_eq!(CompactTarget(0x0492_3456).to_target(), Err(CompactError::Negative(CompactTarget(0x0492_3456))));
        // 0x20123456: 0x123456 << 8*29.
        let (v, neg, ovf) = CompactTarget(0x2012_3456).decode_raw();
        assert_eq!((v, neg, ovf), (U256::from_u64(0x12_3456) << 232, false, false));
        assert_eq!(CompactTarget::from_target(v), CompactTarget(0x2012_3456));
        // Overflowing encodings are reported and refused.
        let (_, neg, ovf) = CompactTarget(0xff12_3456).decode_raw();
        assert!(!neg && ovf);
        assert_eq!(CompactTarget(0xff12_3456).to_target(), Err(CompactError::Overflow(CompactTarget(0xff12_3456))));
        // The overflow boundaries: 34 bytes with one byte of mantissa fit, two do not.
        assert!(CompactTarget(0x2200_00ff).to_target().is_ok());
        assert!(CompactTarget(0x2200_0100).to_target().is_err());
        assert!(CompactTarget(0x2100_ffff).to_target().is_ok());
        assert!(CompactTarget(0x2101_0000).to_target().is_err());
        assert!(CompactTarget(0x207f_ffff).to_target().is_ok());
        assert!(CompactTarget(0x2300_0001).to_target().is_err());
    }

    #[test]
    fn work_of_known_targets() {
        // Bitcoin's difficulty-1 target: 2^256 / (0xffff * 2^208 + 1) = 0x100010001.
        assert_eq!(block_work(CompactTarget(0x1d00_ffff)), U256::from_u64(0x1_0001_0001));
        // Regtest's limit is about 2^255: two hashes per block.
        assert_eq!(block_work(CompactTarget(0x207f_ffff)), U256::from_u64(2));
        assert_eq!(block_work(CompactTarget(0x0180_0000)), U256::ZERO);
        assert_eq!(block_work(CompactTarget(0)), U256::ZERO);
        assert_eq!(block_work(CompactTarget(0xff12_3456)), U256::ZERO);
        // Harder targets are worth more.
        assert!(block_work(CompactTarget(0x1c00_ffff)) > block_work(CompactTarget(0x1d00_ffff)));
    }

    #[test]
    fn proof_of_work_check() {
        let limit = CompactTarget(0x207f_ffff).to_target().unwrap();
        let low = Hash([0; 32]);
        let mut high = Hash([0; 32]);
        high.0[31] = 0xff;
        assert_eq!(check_proof_of_work(&low, CompactTarget(0x2000_ffff), &limit), Ok(()));
        assert!(matches!(
            check_proof_of_work(&high, CompactTarget(0x2000_ffff), &limit),
            Err(PowError::HighHash { .. })
        ));
        let above = CompactTarget(0x2100_ffff);
        assert_eq!(
            check_proof_of_work(&low, above, &limit),
            Err(PowError::BadTarget(CompactError::AbovePowLimit(above)))
        );
        assert_eq!(
            check_proof_of_work(&low, CompactTarget(0x0100_0000), &limit),
            Err(PowError::BadTarget(CompactError::Zero(CompactTarget(0x0100_0000))))
        );
        assert_eq!(
            check_proof_of_work(&low, CompactTarget(0x0480_0001), &limit),
            Err(PowError::BadTarget(CompactError::Negative(CompactTarget(0x0480_0001))))
        );
    }

    /// Bitcoin Core's `pow_tests.cpp`, mainnet parameters.
    #[test]
    fn bitcoin_core_retarget_vectors() {
        let limit = U256::MAX >> 32;
        let span = 14 * 24 * 60 * 60;
        let next = |bits, first: i64, last: i64| next_target(CompactTarget(bits), last - first, span, 4, &limit);
        assert_eq!(next(0x1d00_ffff, 1_261_130_161, 1_262_152_739), CompactTarget(0x1d00_d86a));
        assert_eq!(next(0x1d00_ffff, 1_231_006_505, 1_233_061_996), CompactTarget(0x1d00_ffff));
        assert_eq!(next(0x1c05_a3f4, 1_279_008_237, 1_279_297_671), CompactTarget(0x1c01_68fd));
        assert_eq!(next(0x1c38_7f6f, 1_263_163_443, 1_269_211_443), CompactTarget(0x1d00_e1fd));
        // A negative span (timestamps going backwards) counts as the shortest.
        assert_eq!(next(0x1c05_a3f4, 1_279_297_671, 1_279_008_237), CompactTarget(0x1c01_68fd));
    }

    proptest! {
        /// Re-encoding a decoded valid target is a fixed point, and decoding loses at
        /// most the bytes below the top three.
        #[test]
        fn compact_round_trips(target in (any::<[u64; 4]>(), 0u32..256).prop_map(|(l, s)| U256(l) >> s)) {
            let bits = CompactTarget::from_target(target);
            let back = bits.to_target().unwrap();
            prop_assert!(back <= target);
            prop_assert_eq!(CompactTarget::from_target(back), bits);
            // Only the bytes below the mantissa's three are dropped.
            let exponent = bits.0 >> 24;
            prop_assert!(target - back < U256::ONE << (8 * exponent.saturating_sub(3)));
        }

        /// The retarget factor stays within [1/4, 4] and under the limit.
        #[test]
        fn retarget_is_bounded(mantissa in 0x8000u32..0x7f_ffff, exp in 4u32..0x1d, span in -10_000_000i64..10_000_000) {
            let limit = U256::MAX >> 32;
            let bits = CompactTarget((exp << 24) | mantissa);
            let old = bits.to_target().unwrap();
            let new = next_target(bits, span, 1_209_600, 4, &limit).to_target().unwrap();
            prop_assert!(new <= limit);
            prop_assert!(new <= old.mul_div_u64(4, 1));
            prop_assert!(new >= CompactTarget::from_target(old.mul_div_u64(1, 4)).to_target().unwrap());
        }
    }
}
