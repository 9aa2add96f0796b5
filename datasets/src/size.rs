//! Message sizes: one fixed size, or a capped log-normal distribution.
//!
//! Invariants:
//! - [`MessageSize::size_of`] is a pure function of the size spec, the message
//!   index and the seed: the same message has the same size on every machine
//!   and in every run (see `math` for why even the floating point is ours);
//! - every size is within `min()..=max()`; a fixed size is always itself;
//! - a distribution is validated when its workload loads, so `size_of` never
//!   meets `min > max` or a NaN sigma.
//!
//! Why log-normal: real message sizes are skewed, most small and a few large,
//! which a mean alone hides; the cap stands in for a broker's frame limit.
//! A recorded size trace was rejected: it would pin the project to one
//! application's traffic, where two numbers (median, sigma) are easy to vary.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::math::{exp, ln};
use crate::rng::{SIZE_STREAM, SplitMix64};

/// How large each message of a workload is.
///
/// In a workload file, either a number of bytes (`message_size = 1024`) or a
/// table (`message_size = { distribution = "log-normal", median = 1024,
/// sigma = 1.0, min = 16, max = 65536 }`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MessageSize {
    /// Every message has this many payload bytes.
    Fixed(u32),
    /// Sizes drawn from a log-normal distribution, rounded, then clamped to
    /// `min..=max`: half the messages are below `median`, and `sigma` (the
    /// standard deviation of the size's natural logarithm) sets the spread.
    LogNormal {
        /// The median size, bytes.
        median: u32,
        /// Spread: 0 makes every size the median; 1 puts about two thirds of
        /// the sizes between median / e and median * e.
        sigma: f64,
        /// The smallest size (default 1): draws below are raised to it.
        min: u32,
        /// The cap: draws above are lowered to it.
        max: u32,
    },
}

/// Why a size spec cannot be used.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum SizeError {
    /// `min`, `median` and `max` are out of order, or `min` is 0.
    #[error(
        "log-normal sizes need 1 <= min <= median <= max, got min {min}, median {median}, max {max}"
    )]
    OutOfOrder {
        /// The minimum given.
        min: u32,
        /// The median given.
        median: u32,
        /// The maximum given.
        max: u32,
    },
    /// `sigma` is negative, infinite or NaN.
    #[error("log-normal sigma must be a finite number of at least 0, got {0}")]
    BadSigma(f64),
}

impl MessageSize {
    /// The size of message `n` of a workload seeded `seed`.
    pub fn size_of(&self, n: u64, seed: u64) -> u32 {
        match *self {
            MessageSize::Fixed(size) => size,
            MessageSize::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                let z = standard_normal(&mut SplitMix64::for_message(seed, n, SIZE_STREAM));
                let size = (f64::from(median) * exp(sigma * z) + 0.5).floor();
                // Clamped as a float, so a huge draw (or infinity) cannot wrap.
                size.clamp(f64::from(min), f64::from(max)) as u32
            }
        }
    }

    /// The fixed size, or `None` for a distribution.
    pub fn fixed(&self) -> Option<u32> {
        match *self {
            MessageSize::Fixed(size) => Some(size),
            MessageSize::LogNormal { .. } => None,
        }
    }

    /// The smallest size any message can have.
    pub fn min(&self) -> u32 {
        match *self {
            MessageSize::Fixed(size) => size,
            MessageSize::LogNormal { min, .. } => min,
        }
    }

    /// The largest size any message can have: what a buffer must hold.
    pub fn max(&self) -> u32 {
        match *self {
            MessageSize::Fixed(size) => size,
            MessageSize::LogNormal { max, .. } => max,
        }
    }

    /// The expected size of a message, bytes: exact for a fixed size; for a
    /// distribution, the mean of the clamped distribution by numerical
    /// integration (Simpson's rule over eight standard deviations each side),
    /// which ignores the rounding to whole bytes. Any one workload's actual
    /// mean differs from it by sampling noise.
    pub fn mean_estimate(&self) -> f64 {
        match *self {
            MessageSize::Fixed(size) => f64::from(size),
            MessageSize::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                const STEPS: u32 = 1600; // even, as Simpson's rule needs
                const SPAN: f64 = 8.0;
                let h = 2.0 * SPAN / f64::from(STEPS);
                let sqrt_2pi = (2.0 * std::f64::consts::PI).sqrt();
                let f = |z: f64| {
                    let size =
                        (f64::from(median) * exp(sigma * z)).clamp(f64::from(min), f64::from(max));
                    size * exp(-z * z / 2.0) / sqrt_2pi
                };
                let mut sum = f(-SPAN) + f(SPAN);
                for i in 1..STEPS {
                    let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
                    sum += weight * f(-SPAN + f64::from(i) * h);
                }
                sum * h / 3.0
            }
        }
    }

    /// Checks what a workload file cannot express in types.
    pub fn validate(&self) -> Result<(), SizeError> {
        match *self {
            MessageSize::Fixed(_) => Ok(()),
            MessageSize::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                if min == 0 || min > median || median > max {
                    return Err(SizeError::OutOfOrder { min, median, max });
                }
                if !sigma.is_finite() || sigma < 0.0 {
                    return Err(SizeError::BadSigma(sigma));
                }
                Ok(())
            }
        }
    }
}

/// One standard normal draw, by Marsaglia's polar method: two uniforms in the
/// unit disc give a normal deviate with one `ln` and one `sqrt`. Box-Muller's
/// `cos` was rejected only because it would need a third hand-written
/// function (see `math`); the distribution is the same.
fn standard_normal(rng: &mut SplitMix64) -> f64 {
    loop {
        let u = 2.0 * rng.unit() - 1.0;
        let v = 2.0 * rng.unit() - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * ln(s) / s).sqrt();
        }
    }
}

impl fmt::Display for MessageSize {
    /// `1024 bytes`, or `log-normal sizes (median 1024, sigma 1, 16 to 65536 bytes)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MessageSize::Fixed(size) => write!(f, "{size} bytes"),
            MessageSize::LogNormal {
                median,
                sigma,
                min,
                max,
            } => write!(
                f,
                "log-normal sizes (median {median}, sigma {sigma}, {min} to {max} bytes)"
            ),
        }
    }
}

/// The table form, as written in files. Internally tagged by `distribution`,
/// so a second distribution is one more variant with its own fields.
#[derive(Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "kebab-case", deny_unknown_fields)]
enum Table {
    LogNormal {
        median: u32,
        sigma: f64,
        #[serde(default = "one")]
        min: u32,
        max: u32,
    },
}

fn one() -> u32 {
    1
}

impl Serialize for MessageSize {
    /// A fixed size as a plain number (as every results file written before
    /// distributions existed has it), a distribution as its table.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            MessageSize::Fixed(size) => serializer.serialize_u32(size),
            MessageSize::LogNormal {
                median,
                sigma,
                min,
                max,
            } => Table::LogNormal {
                median,
                sigma,
                min,
                max,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MessageSize {
    /// A number or a table. Hand-written rather than `#[serde(untagged)]`,
    /// whose only error is "data did not match any variant": this way a
    /// misspelled key inside the table is reported by name.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MessageSize, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl<'de> Visitor<'de> for SizeVisitor {
    type Value = MessageSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a size in bytes (1024) or a table such as \
             { distribution = \"log-normal\", median = 1024, sigma = 1.0, max = 65536 }",
        )
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<MessageSize, E> {
        u32::try_from(value)
            .map(MessageSize::Fixed)
            .map_err(|_| E::custom(format!("message size {value} is above 4294967295 bytes")))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<MessageSize, E> {
        u64::try_from(value)
            .map_err(|_| E::custom(format!("message size {value} is negative")))
            .and_then(|value| self.visit_u64(value))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MessageSize, A::Error> {
        let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(match table {
            Table::LogNormal {
                median,
                sigma,
                min,
                max,
            } => MessageSize::LogNormal {
                median,
                sigma,
                min,
                max,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: MessageSize = MessageSize::LogNormal {
        median: 1024,
        sigma: 1.0,
        min: 16,
        max: 65536,
    };

    #[test]
    fn a_fixed_size_is_always_itself() {
        let size = MessageSize::Fixed(100);
        assert!((0..1000).all(|n| size.size_of(n, 7) == 100));
        assert_eq!(size.fixed(), Some(100));
        assert_eq!(size.mean_estimate(), 100.0);
        assert_eq!((size.min(), size.max()), (100, 100));
    }

    #[test]
    fn distribution_sizes_stay_within_min_and_max_and_are_deterministic() {
        let capped = MessageSize::LogNormal {
            median: 1000,
            sigma: 2.5, // wide, so both clamps are hit often
            min: 100,
            max: 5000,
        };
        let sizes: Vec<u32> = (0..20_000).map(|n| capped.size_of(n, 42)).collect();
        assert!(sizes.iter().all(|&s| (100..=5000).contains(&s)));
        assert!(
            sizes.contains(&100) && sizes.contains(&5000),
            "clamps never hit"
        );
        let again: Vec<u32> = (0..20_000).map(|n| capped.size_of(n, 42)).collect();
        assert_eq!(sizes, again);
        let other_seed: Vec<u32> = (0..20_000).map(|n| capped.size_of(n, 43)).collect();
        assert_ne!(sizes, other_seed);
        // Any order gives the same sizes: a size depends on its index only.
        assert_eq!(capped.size_of(12_345, 42), sizes[12_345]);
    }

    #[test]
    fn distribution_sizes_are_pinned_forever() {
        // If this changes, every published result on a distribution changed with it.
        let sizes: Vec<u32> = (0..6).map(|n| MIXED.size_of(n, 42)).collect();
        assert_eq!(sizes, [438, 1588, 2045, 983, 8141, 1136]);
    }

    #[test]
    fn half_the_sizes_are_below_the_median_and_the_mean_matches_the_estimate() {
        let n = 100_000;
        let sizes: Vec<u32> = (0..n).map(|i| MIXED.size_of(i, 1)).collect();
        let below = sizes.iter().filter(|&&s| s < 1024).count() as f64 / n as f64;
        assert!((below - 0.5).abs() < 0.01, "{below}");
        let mean = sizes.iter().map(|&s| f64::from(s)).sum::<f64>() / n as f64;
        let estimate = MIXED.mean_estimate();
        assert!((mean / estimate - 1.0).abs() < 0.02, "{mean} vs {estimate}");
        // Unclamped, the mean would be median * e^(sigma^2 / 2).
        let unclamped = 1024.0 * (0.5f64).exp();
        assert!(
            estimate < unclamped && estimate > 0.9 * unclamped,
            "{estimate}"
        );
    }

    #[test]
    fn sigma_zero_gives_the_median() {
        let flat = MessageSize::LogNormal {
            median: 500,
            sigma: 0.0,
            min: 1,
            max: 1000,
        };
        assert!((0..100).all(|n| flat.size_of(n, 3) == 500));
    }

    #[test]
    fn bad_distributions_are_refused() {
        let out_of_order = MessageSize::LogNormal {
            median: 10,
            sigma: 1.0,
            min: 20,
            max: 30,
        };
        assert!(matches!(
            out_of_order.validate(),
            Err(SizeError::OutOfOrder { .. })
        ));
        let nan = MessageSize::LogNormal {
            median: 10,
            sigma: f64::NAN,
            min: 1,
            max: 30,
        };
        assert!(matches!(nan.validate(), Err(SizeError::BadSigma(_))));
        assert_eq!(MIXED.validate(), Ok(()));
    }
}
