//! The one owner of kiln's reproducibility policy.
//!
//! Every byte kiln writes that could depend on *when*, *where* or *by whom* a build ran goes
//! through this crate:
//!
//! - [`Epoch`]: the only source of time. `SOURCE_DATE_EPOCH` from the environment overrides the
//!   recipe's default, which overrides 0. No other crate reads the clock for an artefact.
//! - [`Policy`]: what ownership, permission bits and modification times archive entries get,
//!   whatever the host file system says.
//! - [`order`]: entry ordering by raw bytes, independent of locale and directory order.
//! - [`json`]: canonical JSON (sorted keys, compact), so a manifest is the same bytes in every
//!   process.
//!
//! This crate must not touch the file system, the network or global state besides reading
//! `SOURCE_DATE_EPOCH` in [`Epoch::from_env`]; it never prints.

mod epoch;
pub mod json;
pub mod order;
mod policy;

pub use epoch::{Epoch, EpochError, SOURCE_DATE_EPOCH};
pub use policy::{EntryKind, ModePolicy, MtimePolicy, Owner, Policy, XATTR_ALLOWLIST};
