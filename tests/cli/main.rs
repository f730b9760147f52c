//! End-to-end tests of the `kiln` binary against real tools (skopeo, umoci, GNU tar).
//!
//! Tests that need an external tool call [`support::require_tool`]: without the tool they say
//! why and pass on a laptop, and fail when `CI` is set, so CI always runs them.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test on any unexpected error")]

mod bad_input;
mod build;
mod check;
mod diff;
mod gcompat;
mod golden;
mod hostile_layout;
mod hostile_registry;
mod hostile_steps;
mod inspect;
mod interop;
mod kconfig;
mod kconfig_eval;
mod kernel;
mod modules;
mod modules_sign;
mod packages;
mod proxy;
mod registry;
mod remote_cache;
mod reproducibility;
mod sandbox;
mod supply;
mod support;
mod talos;
mod token_server;
mod verify;
