//! kiln's exit codes — the one place they are defined. Scripts rely on them; they are stable.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; for `diff`, the inputs are identical |
//! | 1 | the command worked and found differences (`diff`, `kconfig diff`), values that did not stick (`kconfig check`), a recipe a build would refuse (`check`), incompatible modules (`modules check`) or modules without a valid signature (`modules verify`); the script failed (`sandbox`) |
//! | 2 | the command line is wrong (unknown flag, missing argument, bad value) |
//! | 3 | the input is wrong: a tree, layout, reference or value kiln was given |
//! | 4 | the environment failed: I/O on kiln's own output, permissions, a missing tool |

use std::process::ExitCode;

/// A process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Success = 0,
    Different = 1,
    Usage = 2,
    Input = 3,
    Environment = 4,
}

impl Exit {
    /// The exit status for a failed command: the first library error in the chain decides.
    pub(crate) fn classify(error: &anyhow::Error) -> Exit {
        for cause in error.chain() {
            if let Some(error) = cause.downcast_ref::<kiln_layers::Error>() {
                return if error.is_input_error() { Exit::Input } else { Exit::Environment };
            }
            if let Some(error) = cause.downcast_ref::<kiln_registry::Error>() {
                return if error.is_input_error() { Exit::Input } else { Exit::Environment };
            }
            if let Some(error) = cause.downcast_ref::<kiln_builder::Error>() {
                return if error.is_input_error() { Exit::Input } else { Exit::Environment };
            }
            if let Some(error) = cause.downcast_ref::<kiln_modules::Error>() {
                return if error.is_input_error() { Exit::Input } else { Exit::Environment };
            }
            if let Some(error) = cause.downcast_ref::<kiln_modules::signing::Error>() {
                return if error.is_input_error() { Exit::Input } else { Exit::Environment };
            }
            if let Some(error) = cause.downcast_ref::<kiln_kconfig::LoadError>() {
                return if error.is_input_error() { Exit::Input } else { Exit::Environment };
            }
            if cause.is::<kiln_reproducible::EpochError>()
                || cause.is::<kiln_kconfig::Error>()
                || cause.is::<kiln_kconfig::merge::StrictViolation>()
            {
                return Exit::Input;
            }
        }
        Exit::Environment
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn codes_are_stable() {
        let codes =
            [Exit::Success, Exit::Different, Exit::Usage, Exit::Input, Exit::Environment].map(|e| e as u8);
        assert_eq!(codes, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn classifies_by_library_error() {
        let input = anyhow::Error::new(kiln_layers::Error::NotADirectory { path: PathBuf::from("x") });
        assert_eq!(Exit::classify(&input.context("packing")), Exit::Input);
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let environment =
            anyhow::Error::new(kiln_layers::Error::Write { action: "write", path: "x".into(), source: io });
        assert_eq!(Exit::classify(&environment), Exit::Environment);
        let epoch = anyhow::Error::new(kiln_reproducible::Epoch::parse("soon").unwrap_err());
        assert_eq!(Exit::classify(&epoch), Exit::Input);
        let mismatch = kiln_modules::signing::Error::KeyMismatch { key: "k".into(), certificate: "c".into() };
        assert_eq!(Exit::classify(&anyhow::Error::new(mismatch)), Exit::Input);
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let unwritable = kiln_modules::signing::Error::Write { path: "m.ko".into(), source: io };
        assert_eq!(Exit::classify(&anyhow::Error::new(unwritable)), Exit::Environment);
        assert_eq!(Exit::classify(&anyhow::anyhow!("other")), Exit::Environment);
    }

    #[test]
    fn hostile_layouts_are_input_and_hostile_registries_the_environment() {
        let digest = kiln_layers::digest::Digest::sha256_of(b"x");
        let missing = kiln_layers::Error::MissingBlob { layout: "out".into(), digest: digest.clone() };
        let link = kiln_layers::Error::UnsafeFile { path: "out/index.json".into(), reason: "a link".into() };
        let deep = kiln_layers::oci::limits::LimitError::TooDeep { digest, depth: 9 };
        for error in [missing, link, kiln_layers::Error::Limit(deep.clone())] {
            let pushed = kiln_registry::Error::Layout(error);
            assert_eq!(Exit::classify(&anyhow::Error::new(pushed).context("cannot push")), Exit::Input);
        }
        let realm = kiln_registry::Error::UntrustedRealm {
            registry: "r".into(),
            realm: "http://x/token".into(),
            reason: "plain HTTP".into(),
        };
        assert_eq!(Exit::classify(&anyhow::Error::new(realm)), Exit::Environment);
        let served = kiln_registry::Error::Limit(deep);
        assert_eq!(Exit::classify(&anyhow::Error::new(served)), Exit::Environment);
    }
}
