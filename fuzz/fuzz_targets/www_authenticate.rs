//! `WWW-Authenticate` headers as a registry sends them: parsed into a challenge or refused,
//! never a panic. (Where kiln answers a challenge — the credential rule — is checked by the
//! registry crate's property tests against an oracle.)

#![no_main]

use kiln_registry::auth::Challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data)
        && let Some(Challenge::Bearer { realm, .. }) = Challenge::parse(header)
    {
        assert!(header.len() >= realm.len(), "a realm longer than its header");
    }
});
