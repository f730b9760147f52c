//! The last moments of a step's process before its script: kiln's own code, run after the
//! namespaces, mounts and Landlock rules are in place and before `exec`.
//!
//! The process is uid 0 of a user namespace of its own, and with that holds every capability
//! *in that namespace*, enough to remount its read-only mounts writable (`mount -o remount`,
//! `mount_setattr`), to unmount what hides the host, or to chown files of the uid it maps to.
//! So before the script runs it gives all of them up for good:
//!
//! - a new session, without a controlling terminal (no `TIOCSTI` into the terminal kiln runs in);
//! - seccomp filters that refuse the kernel keyrings (`keyctl`, `add_key`, `request_key`: the
//!   session keyring is inherited, and with it the user's keys) and new user namespaces, in
//!   which the step would hold every capability again;
//! - securebits `NOROOT`, `NO_SETUID_FIXUP`, `KEEP_CAPS` and `NO_CAP_AMBIENT_RAISE`, locked, so no
//!   later `exec` or `setuid` gives capabilities back to uid 0;
//! - every capability out of the bounding, ambient, inheritable, permitted and effective sets,
//!   checked afterwards.
//!
//! `no_new_privs` is already set (hakoniwa sets it before Landlock), so setuid binaries and file
//! capabilities grant nothing either.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;

use rustix::thread::{self, CapabilitiesSecureBits, CapabilitySet, CapabilitySets};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// The exit code of a step whose process could not be confined (its script never ran).
pub const FAILED: i32 = 125;

/// The line a step's log gets when confinement fails, before the reason.
pub const FAILURE_PREFIX: &str = "kiln sandbox: the step was not confined, so its script did not run";

/// What the step's process runs: prepared in kiln, before the sandbox's process exists.
#[derive(Debug)]
pub(crate) struct Confined {
    script: String,
    filters: [BpfProgram; 2],
}

impl Confined {
    /// The confinement for `script`, run as `/bin/sh -ec`.
    pub(crate) fn new(script: &str) -> Result<Confined, String> {
        Ok(Confined { script: script.to_owned(), filters: [refused_calls()?, without_clone3()?] })
    }

    /// Confines the calling process and replaces it with the script's shell; returns only when
    /// that fails, with [`FAILED`] after writing why to the step's log (stderr).
    pub(crate) fn exec(&self) -> i32 {
        let error = match confine(&self.filters) {
            Ok(()) => std::process::Command::new("/bin/sh").args(["-ec", &self.script]).exec().to_string(),
            Err(error) => error,
        };
        let _ = writeln!(std::io::stderr(), "{FAILURE_PREFIX}: {error}");
        FAILED
    }
}

/// `EPERM` for the kernel keyrings, and for a new user namespace (`unshare` or `clone` with
/// `CLONE_NEWUSER`): one would give the step every capability again over namespaces of its own,
/// and with them the kernel's least tested code (netfilter, for one). Everything else is allowed.
fn refused_calls() -> Result<BpfProgram, String> {
    let new_user_namespace = || -> Result<Vec<SeccompRule>, String> {
        let flags = libc::CLONE_NEWUSER as u64;
        let condition =
            SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flags), flags)
                .map_err(|e| format!("seccomp: {e}"))?;
        Ok(vec![SeccompRule::new(vec![condition]).map_err(|e| format!("seccomp: {e}"))?])
    };
    let rules = [
        (libc::SYS_keyctl, Vec::new()),
        (libc::SYS_add_key, Vec::new()),
        (libc::SYS_request_key, Vec::new()),
        (libc::SYS_unshare, new_user_namespace()?),
        (libc::SYS_clone, new_user_namespace()?),
    ];
    filter(rules.into_iter().collect(), libc::EPERM)
}

/// `ENOSYS` for `clone3`, whose flags a filter cannot read: the C libraries then use `clone`,
/// which [`refused_calls`] reads.
fn without_clone3() -> Result<BpfProgram, String> {
    filter([(libc::SYS_clone3, Vec::new())].into_iter().collect(), libc::ENOSYS)
}

fn filter(
    rules: std::collections::BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
) -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH.try_into().map_err(|e| format!("seccomp: {e}"))?;
    let errno = u32::try_from(errno).map_err(|e| format!("seccomp: {e}"))?;
    SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno), arch)
        .and_then(TryInto::try_into)
        .map_err(|e| format!("seccomp: {e}"))
}

fn confine(filters: &[BpfProgram]) -> Result<(), String> {
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    for filter in filters {
        seccompiler::apply_filter(filter).map_err(|e| format!("seccomp: {e}"))?;
    }
    drop_capabilities()
}

/// Gives up every capability, for good, and checks that none is left.
fn drop_capabilities() -> Result<(), String> {
    let locked = CapabilitiesSecureBits::NO_ROOT
        | CapabilitiesSecureBits::NO_ROOT_LOCKED
        | CapabilitiesSecureBits::NO_SETUID_FIXUP
        | CapabilitiesSecureBits::NO_SETUID_FIXUP_LOCKED
        | CapabilitiesSecureBits::KEEP_CAPS_LOCKED
        | CapabilitiesSecureBits::NO_CAP_AMBIENT_RAISE
        | CapabilitiesSecureBits::NO_CAP_AMBIENT_RAISE_LOCKED;
    thread::set_capabilities_secure_bits(locked).map_err(|e| format!("securebits: {e}"))?;
    // Every capability this kernel knows: the first one it does not know ends the list.
    for bit in 0..u64::BITS {
        match thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << bit)) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => return Err(format!("capability {bit} out of the bounding set: {e}")),
        }
    }
    thread::clear_ambient_capability_set().map_err(|e| format!("ambient capabilities: {e}"))?;
    let none = CapabilitySet::empty();
    thread::set_capabilities(None, CapabilitySets { effective: none, permitted: none, inheritable: none })
        .map_err(|e| format!("capset: {e}"))?;
    let left = thread::capabilities(None).map_err(|e| format!("capget: {e}"))?;
    if !(left.effective | left.permitted | left.inheritable).is_empty()
        || thread::capability_is_in_bounding_set(CapabilitySet::SYS_ADMIN).map_err(|e| format!("{e}"))?
    {
        return Err(format!("capabilities are left: {left:?}"));
    }
    Ok(())
}
