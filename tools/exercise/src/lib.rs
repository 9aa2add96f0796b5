//! Rivulet's exercises, generated from the stages' own code so that they
//! cannot drift from it.
//!
//! A stage marks the bodies a learner should write (`// EXERCISE: name` ...
//! `// EXERCISE_END`, see [`markers`]) and grades them with the tests in its
//! `tests/exercises.rs`, each named `exercise_<name>_...` ([`stages`]).
//! `scripts/exercise N` makes a copy of stage N with those bodies replaced by
//! a panic naming the exercise, with its hint ([`copy`]), builds it, runs the exercise tests and
//! says which exercises pass ([`libtest`] reads the results);
//! `scripts/exercise --check` proves, for every stage, that the copy builds,
//! that every exercise test fails on it, and that they all pass on the real
//! code.
//!
//! Why a workspace member (`tools/exercise`, package `rivulet-exercise`) and
//! not a `cargo xtask` alias: it is the same thing without the alias, and as a
//! member it is formatted, linted and unit-tested by `scripts/test` like the
//! rest, built with the workspace's lock file, and run by `scripts/exercise`
//! (`cargo run -p rivulet-exercise`), the way every other project command
//! is a script under `scripts/`. It depends on `toml` alone (already in the
//! workspace's build), so it costs a few seconds to build the first time.

pub mod copy;
pub mod libtest;
pub mod markers;
pub mod stages;
