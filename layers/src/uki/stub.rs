//! Which systemd-stub a stub image is, from the `.sdmagic` section systemd's EFI programs carry:
//! `#### LoaderInfo: systemd-stub 257.13-1~deb13u1 ####` (systemd's `src/boot/stub.c`,
//! `DECLARE_NOALLOC_SECTION(".sdmagic", "#### LoaderInfo: systemd-stub " GIT_VERSION " ####")`).

use super::{Error, section};

/// The first systemd-stub release that reads `.profile` sections (systemd v257, the UAPI
/// multi-profile UKI): an older stub knows nothing of them and would find several `.cmdline`s.
pub const PROFILES_SINCE: u32 = 257;

/// A systemd-stub release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubVersion {
    /// The major version (`257`).
    pub major: u32,
    /// The whole version string (`257.13-1~deb13u1`).
    pub full: String,
}

impl StubVersion {
    /// Whether this stub reads UKI profiles.
    pub fn reads_profiles(&self) -> bool {
        self.major >= PROFILES_SINCE
    }
}

/// The systemd-stub release of `image`; `None` when it has no `.sdmagic` section naming
/// systemd-stub (another EFI stub, or systemd-boot itself).
pub fn stub_version(image: &[u8]) -> Result<Option<StubVersion>, Error> {
    let Some(magic) = section(image, ".sdmagic")? else { return Ok(None) };
    let text = String::from_utf8_lossy(magic);
    let Some(rest) = text.trim_end_matches('\0').trim().strip_prefix("#### LoaderInfo: systemd-stub ") else {
        return Ok(None);
    };
    let Some(full) = rest.strip_suffix("####").map(str::trim) else { return Ok(None) };
    let digits: String = full.chars().take_while(char::is_ascii_digit).collect();
    Ok(digits.parse().ok().map(|major| StubVersion { major, full: full.to_owned() }))
}
