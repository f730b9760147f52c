//! The `vermagic=` string (`include/linux/vermagic.h`):
//! `UTS_RELEASE " " ["SMP "] ["preempt " | "preempt_rt "] ["mod_unload "] ["modversions "]
//! MODULE_ARCH_VERMAGIC ["RANDSTRUCT_<hash>"]`.

use serde::Serialize;

/// The preemption model a module was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preempt {
    /// Neither `preempt` nor `preempt_rt` (PREEMPT_NONE or PREEMPT_VOLUNTARY, not dynamic).
    None,
    /// `preempt`: CONFIG_PREEMPT_BUILD (PREEMPT or PREEMPT_DYNAMIC).
    Preempt,
    /// `preempt_rt`: CONFIG_PREEMPT_RT.
    Rt,
}

/// A parsed vermagic string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vermagic {
    /// The kernel release (`uname -r`), everything before the first space.
    pub release: String,
    /// `SMP`.
    pub smp: bool,
    /// `preempt` / `preempt_rt`.
    pub preempt: Preempt,
    /// `mod_unload`: modules can be unloaded.
    pub mod_unload: bool,
    /// `modversions`: symbol CRCs are checked at load.
    pub modversions: bool,
    /// `RANDSTRUCT_<hash>`: the structure-layout randomisation seed hash.
    pub randstruct: Option<String>,
    /// Any other word (an architecture's `MODULE_ARCH_VERMAGIC`, e.g. `aarch64` or `686`).
    pub other: Vec<String>,
}

impl Vermagic {
    /// Parses a vermagic string; every word after the release lands in a field or in `other`.
    pub fn parse(text: &str) -> Vermagic {
        let mut words = text.split(' ').filter(|w| !w.is_empty());
        let release = words.next().unwrap_or_default().to_owned();
        let mut magic = Vermagic {
            release,
            smp: false,
            preempt: Preempt::None,
            mod_unload: false,
            modversions: false,
            randstruct: None,
            other: Vec::new(),
        };
        for word in words {
            match word {
                "SMP" => magic.smp = true,
                "preempt" => magic.preempt = Preempt::Preempt,
                "preempt_rt" => magic.preempt = Preempt::Rt,
                "mod_unload" => magic.mod_unload = true,
                "modversions" => magic.modversions = true,
                _ => match word.strip_prefix("RANDSTRUCT_") {
                    Some(hash) => magic.randstruct = Some(hash.to_owned()),
                    None => magic.other.push(word.to_owned()),
                },
            }
        }
        magic
    }

    /// The words after the release, as the kernel compares them.
    pub fn flags(&self) -> String {
        let mut text = String::new();
        if self.smp {
            text.push_str("SMP ");
        }
        match self.preempt {
            Preempt::None => {}
            Preempt::Preempt => text.push_str("preempt "),
            Preempt::Rt => text.push_str("preempt_rt "),
        }
        if self.mod_unload {
            text.push_str("mod_unload ");
        }
        if self.modversions {
            text.push_str("modversions ");
        }
        for word in &self.other {
            text.push_str(word);
            text.push(' ');
        }
        if let Some(hash) = &self.randstruct {
            text.push_str("RANDSTRUCT_");
            text.push_str(hash);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_vermagic() {
        let magic = Vermagic::parse("6.12.117+deb12-amd64 SMP preempt mod_unload modversions ");
        assert_eq!(magic.release, "6.12.117+deb12-amd64");
        assert!(magic.smp && magic.mod_unload && magic.modversions);
        assert_eq!(magic.preempt, Preempt::Preempt);
        assert_eq!(magic.randstruct, None);
        assert_eq!(magic.flags(), "SMP preempt mod_unload modversions ");
    }

    #[test]
    fn parses_rt_arch_and_randstruct() {
        let magic = Vermagic::parse("6.12.0-rt SMP preempt_rt mod_unload aarch64 RANDSTRUCT_abc123");
        assert_eq!(magic.preempt, Preempt::Rt);
        assert!(!magic.modversions);
        assert_eq!(magic.other, ["aarch64"]);
        assert_eq!(magic.randstruct.as_deref(), Some("abc123"));
        assert_eq!(Vermagic::parse("").release, "");
    }
}
