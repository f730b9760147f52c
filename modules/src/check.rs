//! Compatibility of modules with a kernel: vermagic against the kernel release (and its
//! `.config`), `__versions` CRCs against the kernel's `Module.symvers`, and needed symbols
//! that neither the kernel nor any module of a tree provides.
//!
//! The rules are the kernel's load-time checks (`kernel/module/version.c`): with MODVERSIONS
//! CRCs present, the release part of vermagic is not compared, only the flags after it; without
//! them the whole string must match. Every problem names the module and, where there is one,
//! the symbol.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::module::Module;
use crate::symvers::Symvers;
use crate::vermagic::{Preempt, Vermagic};

/// The kernel options that go into vermagic, from a `.config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KernelFlags {
    /// CONFIG_SMP.
    pub smp: bool,
    /// CONFIG_PREEMPT_BUILD / CONFIG_PREEMPT_RT.
    pub preempt: Option<Preempt>,
    /// CONFIG_MODULE_UNLOAD.
    pub mod_unload: bool,
    /// CONFIG_MODVERSIONS.
    pub modversions: bool,
}

impl KernelFlags {
    /// Reads the flags from `.config` text (`CONFIG_X=y` lines; anything else is "not set").
    pub fn from_config(text: &str) -> KernelFlags {
        let set: HashSet<&str> = text
            .lines()
            .filter_map(|line| line.strip_suffix("=y").and_then(|l| l.strip_prefix("CONFIG_")))
            .collect();
        let preempt = if set.contains("PREEMPT_BUILD") {
            Preempt::Preempt
        } else if set.contains("PREEMPT_RT") {
            Preempt::Rt
        } else {
            Preempt::None
        };
        KernelFlags {
            smp: set.contains("SMP"),
            preempt: Some(preempt),
            mod_unload: set.contains("MODULE_UNLOAD"),
            modversions: set.contains("MODVERSIONS"),
        }
    }
}

/// The kernel modules are checked against.
#[derive(Debug, Clone, Default)]
pub struct Kernel {
    /// `uname -r` of the kernel.
    pub release: String,
    /// Its vermagic options, when its `.config` is known.
    pub flags: Option<KernelFlags>,
    /// Its `Module.symvers`, when known.
    pub symvers: Option<Symvers>,
}

/// One incompatibility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The module has no `vermagic=` entry: the kernel refuses it.
    NoVermagic {
        /// Module name.
        module: String,
    },
    /// The module was built for another kernel release (and has no CRCs, so it counts).
    Release {
        /// Module name.
        module: String,
        /// Its release.
        found: String,
        /// The kernel's.
        expected: String,
    },
    /// A vermagic flag differs from the kernel configuration.
    Flag {
        /// Module name.
        module: String,
        /// `SMP`, `preempt`, `mod_unload`, `modversions`.
        flag: &'static str,
        /// The module's value.
        found: String,
        /// The kernel's.
        expected: String,
    },
    /// A `__versions` CRC differs from the kernel's `Module.symvers`.
    Crc {
        /// Module name.
        module: String,
        /// The symbol.
        symbol: String,
        /// The CRC the module was built against.
        found: u64,
        /// The kernel's CRC.
        expected: u64,
    },
    /// A needed symbol no one provides: not the kernel, not any module of the tree.
    MissingSymbol {
        /// Module name.
        module: String,
        /// The symbol.
        symbol: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoVermagic { module } => write!(f, "{module}: no vermagic"),
            Problem::Release { module, found, expected } => {
                write!(f, "{module}: built for kernel {found}, not {expected}")
            }
            Problem::Flag { module, flag, found, expected } => {
                write!(f, "{module}: vermagic {flag} is {found}, the kernel has {expected}")
            }
            Problem::Crc { module, symbol, found, expected } => {
                write!(f, "{module}: symbol {symbol} has CRC 0x{found:08x}, the kernel has 0x{expected:08x}")
            }
            Problem::MissingSymbol { module, symbol } => {
                write!(f, "{module}: needs symbol {symbol}, which neither the kernel nor any module provides")
            }
        }
    }
}

/// Checks a module's vermagic against the kernel release and, if known, its flags.
pub fn check_vermagic(module: &Module, kernel: &Kernel) -> Vec<Problem> {
    let name = module.name.clone();
    let Some(magic) = module.vermagic() else {
        return vec![Problem::NoVermagic { module: name }];
    };
    let mut problems = Vec::new();
    // With CRCs the kernel skips the release (same_magic with has_crcs).
    if module.versions.is_empty() && magic.release != kernel.release {
        problems.push(Problem::Release {
            module: name.clone(),
            found: magic.release.clone(),
            expected: kernel.release.clone(),
        });
    }
    if let Some(flags) = &kernel.flags {
        let yes_no = |b: bool| if b { "set" } else { "not set" }.to_owned();
        let mut flag = |flag: &'static str, found: bool, expected: bool| {
            if found != expected {
                problems.push(Problem::Flag {
                    module: name.clone(),
                    flag,
                    found: yes_no(found),
                    expected: yes_no(expected),
                });
            }
        };
        flag("SMP", magic.smp, flags.smp);
        flag("mod_unload", magic.mod_unload, flags.mod_unload);
        flag("modversions", magic.modversions, flags.modversions);
        if let Some(preempt) = flags.preempt
            && preempt != magic.preempt
        {
            let word = |p: Preempt| match p {
                Preempt::None => "none".to_owned(),
                Preempt::Preempt => "preempt".to_owned(),
                Preempt::Rt => "preempt_rt".to_owned(),
            };
            problems.push(Problem::Flag {
                module: name.clone(),
                flag: "preempt",
                found: word(magic.preempt),
                expected: word(preempt),
            });
        }
    }
    problems
}

/// Checks `__versions` CRCs against the kernel's Module.symvers and the exports of `tree`.
/// A symbol found in neither is reported by [`check_missing`], not here.
pub fn check_crcs(module: &Module, symvers: &Symvers, tree: &[Module]) -> Vec<Problem> {
    let kernel = symvers.kernel();
    let exported: HashMap<&str, Option<u64>> =
        tree.iter().flat_map(|m| &m.exports).map(|e| (e.symbol.as_str(), e.crc)).collect();
    let mut problems = Vec::new();
    for version in &module.versions {
        let expected = match kernel.get(version.symbol.as_str()) {
            Some(symbol) => Some(symbol.crc),
            None if version.symbol == "module_layout" => None,
            None => exported.get(version.symbol.as_str()).copied().flatten(),
        };
        if let Some(expected) = expected
            && expected as u32 != version.crc as u32
        {
            problems.push(Problem::Crc {
                module: module.name.clone(),
                symbol: version.symbol.clone(),
                found: version.crc,
                expected,
            });
        }
    }
    problems
}

/// Needed (non-weak) symbols that neither the kernel nor any module of `tree` exports.
/// Without a symvers the kernel's exports are unknown and only module exports count, so pass
/// one for a meaningful answer.
pub fn check_missing(module: &Module, symvers: Option<&Symvers>, tree: &[Module]) -> Vec<Problem> {
    let mut provided: HashSet<&str> =
        tree.iter().flat_map(|m| &m.exports).map(|e| e.symbol.as_str()).collect();
    provided.extend(module.exports.iter().map(|e| e.symbol.as_str()));
    if let Some(symvers) = symvers {
        provided.extend(symvers.kernel().into_keys());
    }
    // Provided by the module loader itself, not exported by anyone.
    provided.extend(["__this_module", "_GLOBAL_OFFSET_TABLE_", "TOC."]);
    let mut seen = HashSet::new();
    module
        .needed
        .iter()
        .filter(|n| !n.weak && n.symbol != "module_layout")
        .filter(|n| !provided.contains(n.symbol.strip_prefix('.').unwrap_or(&n.symbol)))
        .filter(|n| seen.insert(n.symbol.as_str()))
        .map(|n| Problem::MissingSymbol { module: module.name.clone(), symbol: n.symbol.clone() })
        .collect()
}

/// Every check for every module of `modules`, against the kernel and the union of `modules`
/// and `tree` as the providers of symbols. CRCs and missing symbols are checked only when the
/// kernel's `Module.symvers` is known: without it, what the kernel exports is unknown.
pub fn check(modules: &[Module], kernel: &Kernel, tree: &[Module]) -> Vec<Problem> {
    let all: Vec<Module> = tree.iter().chain(modules).cloned().collect();
    let mut problems = Vec::new();
    for module in modules {
        problems.extend(check_vermagic(module, kernel));
        if let Some(symvers) = &kernel.symvers {
            problems.extend(check_crcs(module, symvers, &all));
            problems.extend(check_missing(module, Some(symvers), &all));
        }
    }
    problems
}

/// A vermagic as the kernel would expect for `kernel` (for messages and tests).
pub fn expected_vermagic(kernel: &Kernel) -> Option<String> {
    let flags = kernel.flags.as_ref()?;
    let magic = Vermagic {
        release: kernel.release.clone(),
        smp: flags.smp,
        preempt: flags.preempt.unwrap_or(Preempt::None),
        mod_unload: flags.mod_unload,
        modversions: flags.modversions,
        randstruct: None,
        other: Vec::new(),
    };
    Some(format!("{} {}", magic.release, magic.flags()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::module::{Export, Field, Needed, Version};
    use std::path::PathBuf;

    fn module(
        name: &str,
        vermagic: &str,
        versions: &[(&str, u64)],
        needed: &[&str],
        exports: &[&str],
    ) -> Module {
        Module {
            path: PathBuf::from(format!("{name}.ko")),
            name: name.to_owned(),
            compression: None,
            modinfo: vec![Field { key: "vermagic".into(), value: vermagic.into() }],
            versions: versions.iter().map(|(s, c)| Version { symbol: (*s).into(), crc: *c }).collect(),
            exports: exports.iter().map(|s| Export { symbol: (*s).into(), crc: Some(1) }).collect(),
            needed: needed.iter().map(|s| Needed { symbol: (*s).into(), crc: None, weak: false }).collect(),
            signature: None,
        }
    }

    #[test]
    fn every_problem_names_module_and_symbol() {
        let symvers = Symvers::parse(
            "0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000002\tkfree\tvmlinux\tEXPORT_SYMBOL\t\n",
            std::path::Path::new("Module.symvers"),
        )
        .unwrap();
        let kernel = Kernel { release: "6.12.0".into(), flags: None, symvers: Some(symvers) };
        let provider = module("prov", "6.12.0 SMP ", &[], &[], &["prov_fn"]);
        let user = module(
            "user",
            "6.12.0 SMP mod_unload ",
            &[("printk", 1), ("kfree", 3), ("prov_fn", 1)],
            &["printk", "kfree", "prov_fn", "gone_fn", "__this_module"],
            &[],
        );
        let problems = check(std::slice::from_ref(&user), &kernel, &[provider]);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "user: symbol kfree has CRC 0x00000003, the kernel has 0x00000002",
                "user: needs symbol gone_fn, which neither the kernel nor any module provides",
            ]
        );
        // Without the provider, its symbol is missing too.
        let problems = check(&[user], &kernel, &[]);
        assert!(
            problems.contains(&Problem::MissingSymbol { module: "user".into(), symbol: "prov_fn".into() })
        );
    }

    #[test]
    fn release_counts_only_without_crcs() {
        let kernel = Kernel { release: "6.12.1".into(), ..Kernel::default() };
        let with_crcs = module("a", "6.12.0 SMP ", &[("printk", 1)], &[], &[]);
        assert!(check_vermagic(&with_crcs, &kernel).is_empty());
        let without = module("b", "6.12.0 SMP ", &[], &[], &[]);
        assert_eq!(
            check_vermagic(&without, &kernel),
            [Problem::Release { module: "b".into(), found: "6.12.0".into(), expected: "6.12.1".into() }]
        );
        let mut none = without.clone();
        none.modinfo.clear();
        assert_eq!(check_vermagic(&none, &kernel), [Problem::NoVermagic { module: "b".into() }]);
    }

    #[test]
    fn flags_from_config() {
        let flags = KernelFlags::from_config(
            "CONFIG_SMP=y\nCONFIG_PREEMPT_BUILD=y\n# CONFIG_MODVERSIONS is not set\nCONFIG_MODULE_UNLOAD=y\n",
        );
        assert!(flags.smp && flags.mod_unload && !flags.modversions);
        assert_eq!(flags.preempt, Some(Preempt::Preempt));
        let kernel = Kernel { release: "6.12.0".into(), flags: Some(flags), symvers: None };
        assert_eq!(expected_vermagic(&kernel).unwrap(), "6.12.0 SMP preempt mod_unload ");
    }
}
