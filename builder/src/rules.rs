//! What Talos v1.10.3 enforces when it boots, checked against a recipe before a node finds it.
//!
//! A node that breaks one of these rules does not come up, or never applies the setting, and
//! says so only on its console. kiln checks them where it builds the UKI (the Talos step) and in
//! `kiln check`, which needs no compile. The rules, from Talos's source (tag v1.10.3):
//!
//! - **KSPP kernel arguments** (`pkg/kernel/kspp/kspp.go`, `EnforceKSPPKernelParameters`, run by
//!   the `EnforceKSPPRequirements` task of `v1alpha1_sequencer.go` before anything else starts):
//!   the *first* `slab_nomerge` on `/proc/cmdline` must have an empty value and the first `pti`
//!   must be `on` (go-procfs `Get(key).First()`), or the boot fails. kiln also refuses a later
//!   `pti=` that differs, and `nopti` or `mitigations=off`: Talos does not look at them, but
//!   the kernel honours the last `pti=` and turns isolation off for either of the others
//!   (`arch/x86/mm/pti.c`, `pti_parse_cmdline`, `pti_check_boottime_disable`).
//! - **Talos's default arguments** (`pkg/machinery/kernel/kernel.go`, `DefaultArgs`): the
//!   installer puts them on every command line it writes; a UKI without them boots a node
//!   unlike one Talos installed.
//! - **KSPP sysctls** (`kspp.go`, `GetKernelParams`): written at boot by
//!   `KernelParamSpecController`; the `EnforceKSPPRequirements` task waits until each has a
//!   status, and one whose `/proc/sys` file the kernel lacks never gets one, so the boot waits
//!   for ever. The options that create each file are in [`SYSCTLS`].
//! - **The machine config's sysctls** (`machine.sysctls`): written by the same controller, which
//!   fails its whole run on a missing file (`kernel_param_spec.go`, `updateKernelParam` → error,
//!   retried with back-off for ever): the setting never applies. Each must be created by the
//!   kernel's options, or by a module `machine.kernel.modules` loads.

use kiln_kconfig::DotConfig;

/// A rule the image breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule, as Talos names the code that enforces it.
    pub rule: &'static str,
    /// What breaks it and why.
    pub reason: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.reason)
    }
}

/// `pkg/kernel/kspp/kspp.go`, `RequiredKSPPKernelParameters`: each key and its required value.
pub const KSPP_ARGUMENTS: &[(&str, &str)] = &[("slab_nomerge", ""), ("pti", "on")];

/// `pkg/machinery/kernel/kernel.go`, `DefaultArgs`, as the installer writes them (`slab_nomerge=`
/// as go-procfs prints it, bare), with `selinux=1`: `quirks.SupportsSELinux` holds from 1.8 on.
pub const DEFAULT_ARGUMENTS: &[&str] = &[
    "init_on_alloc=1",
    "slab_nomerge",
    "pti=on",
    "consoleblank=0",
    "nvme_core.io_timeout=4294967295",
    "printk.devkmsg=on",
    "ima_template=ima-ng",
    "ima_appraise=fix",
    "ima_hash=sha512",
    "selinux=1",
];

/// `pkg/kernel/kspp/kspp.go`, `GetKernelParams`: the sysctls machined writes at boot.
pub const KSPP_SYSCTLS: &[(&str, &str)] = &[
    ("kernel.kptr_restrict", "1"),
    ("kernel.dmesg_restrict", "1"),
    ("kernel.perf_event_paranoid", "3"),
    ("kernel.yama.ptrace_scope", "1"),
    ("user.max_user_namespaces", "0"),
    ("kernel.unprivileged_bpf_disabled", "1"),
    ("net.core.bpf_jit_harden", "2"),
];

/// What creates a sysctl's file in Linux 6.12.
pub struct Sysctl {
    /// The name, dotted; `*` matches one component (an interface name), and a name ending in
    /// `.*` covers everything below it.
    pub pattern: &'static str,
    /// Options that must all be built in (`=y`) for the file to exist.
    pub options: &'static [&'static str],
    /// Where the kernel registers it.
    pub source: &'static str,
}

/// The sysctls kiln knows the options of; a name matches its most specific pattern. Every one
/// also needs `CONFIG_PROC_SYSCTL` (`/proc/sys` itself).
pub const SYSCTLS: &[Sysctl] = &[
    // KSPP.
    Sysctl { pattern: "kernel.kptr_restrict", options: &["PRINTK"], source: "kernel/printk/sysctl.c" },
    Sysctl { pattern: "kernel.dmesg_restrict", options: &["PRINTK"], source: "kernel/printk/sysctl.c" },
    Sysctl { pattern: "kernel.perf_event_paranoid", options: &["PERF_EVENTS"], source: "kernel/sysctl.c" },
    Sysctl { pattern: "kernel.yama.*", options: &["SECURITY_YAMA"], source: "security/yama/yama_lsm.c" },
    Sysctl { pattern: "user.*", options: &[], source: "kernel/ucount.c" },
    Sysctl {
        pattern: "kernel.unprivileged_bpf_disabled",
        options: &["BPF_SYSCALL"],
        source: "kernel/bpf/syscall.c",
    },
    Sysctl {
        pattern: "net.core.bpf_jit_harden",
        options: &["NET", "BPF_JIT"],
        source: "net/core/sysctl_net_core.c",
    },
    Sysctl {
        pattern: "net.core.bpf_jit_enable",
        options: &["NET", "BPF_JIT"],
        source: "net/core/sysctl_net_core.c",
    },
    Sysctl {
        pattern: "net.core.bpf_jit_kallsyms",
        options: &["NET", "BPF_JIT"],
        source: "net/core/sysctl_net_core.c",
    },
    // Scheduling and memory.
    Sysctl { pattern: "kernel.numa_balancing", options: &["NUMA_BALANCING"], source: "kernel/sched/core.c" },
    Sysctl {
        pattern: "kernel.numa_balancing_*",
        options: &["NUMA_BALANCING"],
        source: "kernel/sched/fair.c",
    },
    Sysctl { pattern: "kernel.sched_*", options: &[], source: "kernel/sched/" },
    Sysctl { pattern: "kernel.*", options: &[], source: "kernel/sysctl.c" },
    Sysctl { pattern: "vm.nr_hugepages", options: &["HUGETLB_PAGE"], source: "mm/hugetlb.c" },
    Sysctl {
        pattern: "vm.nr_hugepages_mempolicy",
        options: &["HUGETLB_PAGE", "NUMA"],
        source: "mm/hugetlb.c",
    },
    Sysctl { pattern: "vm.nr_overcommit_hugepages", options: &["HUGETLB_PAGE"], source: "mm/hugetlb.c" },
    Sysctl { pattern: "vm.max_map_count", options: &["MMU"], source: "kernel/sysctl.c" },
    Sysctl { pattern: "vm.*", options: &[], source: "kernel/sysctl.c, mm/" },
    Sysctl {
        pattern: "fs.inotify.*",
        options: &["INOTIFY_USER"],
        source: "fs/notify/inotify/inotify_user.c",
    },
    Sysctl { pattern: "fs.*", options: &[], source: "fs/" },
    // Networking.
    Sysctl { pattern: "net.core.*", options: &["NET"], source: "net/core/sysctl_net_core.c" },
    Sysctl {
        pattern: "net.ipv4.*",
        options: &["INET"],
        source: "net/ipv4/sysctl_net_ipv4.c, net/ipv4/devinet.c",
    },
    Sysctl { pattern: "net.ipv6.*", options: &["IPV6"], source: "net/ipv6/sysctl_net_ipv6.c" },
    Sysctl { pattern: "net.netfilter.*", options: &["NETFILTER", "NF_CONNTRACK"], source: "net/netfilter/" },
    Sysctl {
        pattern: "net.bridge.*",
        options: &["BRIDGE_NETFILTER"],
        source: "net/bridge/br_netfilter_hooks.c",
    },
    Sysctl { pattern: "net.unix.*", options: &["UNIX"], source: "net/unix/sysctl_net_unix.c" },
];

/// Values that need more than the file: the setting is refused unless what it names is built.
const VALUES: &[(&str, &str, &str)] = &[
    ("net.ipv4.tcp_congestion_control", "bbr", "TCP_CONG_BBR"),
    ("net.ipv4.tcp_congestion_control", "htcp", "TCP_CONG_HTCP"),
    ("net.core.default_qdisc", "fq", "NET_SCH_FQ"),
    ("net.core.default_qdisc", "fq_codel", "NET_SCH_FQ_CODEL"),
    ("net.core.default_qdisc", "cake", "NET_SCH_CAKE"),
];

/// The rule the KSPP arguments break, as Talos names its enforcement.
const KSPP_ARGUMENTS_RULE: &str = "KSPP kernel arguments (kspp.go EnforceKSPPKernelParameters)";

/// The command line's violations of the KSPP rule and Talos's defaults.
pub fn cmdline(cmdline: &str) -> Vec<Violation> {
    let arguments: Vec<(&str, &str)> =
        cmdline.split_whitespace().map(|arg| arg.split_once('=').unwrap_or((arg, ""))).collect();
    let mut violations = Vec::new();
    for (key, required) in KSPP_ARGUMENTS {
        let shown = |value: &str| if value.is_empty() { (*key).to_owned() } else { format!("{key}={value}") };
        let mut values = arguments.iter().filter(|(k, _)| k == key).map(|(_, v)| *v);
        match values.next() {
            None => violations.push(Violation {
                rule: KSPP_ARGUMENTS_RULE,
                reason: format!(
                    "{} is missing from the command line: Talos refuses to boot",
                    shown(required)
                ),
            }),
            Some(first) if first != *required => violations.push(Violation {
                rule: KSPP_ARGUMENTS_RULE,
                reason: format!(
                    "{} is on the command line where Talos requires {}",
                    shown(first),
                    shown(required)
                ),
            }),
            // The kernel reads `slab_nomerge` whatever its value (`mm/slab_common.c`,
            // `setup_slab_nomerge`); each `pti=` overwrites the last (`arch/x86/mm/pti.c`,
            // `pti_parse_cmdline`).
            Some(_) if *key == "pti" => {
                if let Some(later) = values.find(|value| value != required) {
                    violations.push(Violation {
                        rule: KSPP_ARGUMENTS_RULE,
                        reason: format!(
                            "a later {} overrides {} for the kernel, which honours the last one",
                            shown(later),
                            shown(required)
                        ),
                    });
                }
            }
            Some(_) => {}
        }
    }
    for (argument, why) in [("nopti", "nopti"), ("mitigations=off", "mitigations=off (cpu_mitigations_off)")]
    {
        if arguments.iter().any(|(k, v)| {
            argument
                .split_once('=')
                .map_or(*k == argument && v.is_empty(), |(key, value)| *k == key && *v == value)
        }) {
            violations.push(Violation {
                rule: KSPP_ARGUMENTS_RULE,
                reason: format!(
                    "{why} turns page-table isolation off in the kernel although pti=on passes Talos's check"
                ),
            });
        }
    }
    for default in DEFAULT_ARGUMENTS {
        let (key, _) = default.split_once('=').unwrap_or((default, ""));
        if KSPP_ARGUMENTS.iter().any(|(k, _)| *k == key) {
            continue;
        }
        if !cmdline.split_whitespace().any(|arg| arg == *default) {
            violations.push(Violation {
                rule: "Talos's default arguments (kernel.go DefaultArgs)",
                reason: format!(
                    "{default} is not on the command line (set [talos] platform, which adds Talos's \
                     defaults, and do not remove it)"
                ),
            });
        }
    }
    violations
}

/// Which module of `machine.kernel.modules` registers a sysctl, by name.
pub type ModuleFinder<'a> = &'a dyn Fn(&str) -> Option<String>;

/// How a sysctl's file comes to exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The kernel's options, all present.
    Kernel {
        /// Where the kernel registers it.
        source: &'static str,
    },
    /// A module that `machine.kernel.modules` loads.
    Module(String),
}

/// Whether `name` exists on the kernel configured by `config`: its origin, or the violation.
/// `module` tells which of the machine config's modules registers a name kiln knows no option
/// of (`None` where the modules are not built yet: such a name is then not checked).
pub fn sysctl(
    name: &str,
    value: &str,
    config: &DotConfig,
    rule: &'static str,
    module: Option<ModuleFinder<'_>>,
) -> Result<Option<Origin>, Violation> {
    let built = |option: &str| config.get(option).is_some_and(|setting| setting.value() == "y");
    let violation = |reason: String| Violation { rule, reason };
    if !built("PROC_SYSCTL") {
        return Err(violation(format!(
            "{name}: the kernel has no /proc/sys (CONFIG_PROC_SYSCTL is not set)"
        )));
    }
    let Some(known) =
        SYSCTLS.iter().filter(|s| matches(s.pattern, name)).max_by_key(|s| specificity(s.pattern))
    else {
        return match module {
            None => Ok(None),
            Some(find) => match find(name) {
                Some(module) => Ok(Some(Origin::Module(module))),
                None => Err(violation(format!(
                    "{name}: no kernel option kiln knows creates it, and no module of machine.kernel.modules \
                     registers it"
                ))),
            },
        };
    };
    let missing: Vec<String> = known
        .options
        .iter()
        .filter(|option| !built(option))
        .map(|option| format!("CONFIG_{option}=y"))
        .collect();
    if !missing.is_empty() {
        return Err(violation(format!(
            "{name}: the kernel lacks {} ({} registers it), so /proc/sys/{} does not exist",
            missing.join(", "),
            known.source,
            name.replace('.', "/")
        )));
    }
    let unbuilt: Vec<&str> = VALUES
        .iter()
        .filter(|(key, wanted, option)| *key == name && *wanted == value && !built(option))
        .map(|(_, _, option)| *option)
        .collect();
    if let Some(option) = unbuilt.first() {
        return Err(violation(format!(
            "{name} = {value:?}: the kernel lacks CONFIG_{option}=y, so the write fails"
        )));
    }
    Ok(Some(Origin::Kernel { source: known.source }))
}

/// Every violation of the sysctl rules: the KSPP sysctls, then the machine config's.
pub fn sysctls<'a>(
    machine_config: impl IntoIterator<Item = (&'a String, &'a String)>,
    config: &DotConfig,
    module: Option<ModuleFinder<'_>>,
) -> (Vec<Violation>, Vec<String>) {
    let mut violations = Vec::new();
    let mut unchecked = Vec::new();
    for (name, value) in KSPP_SYSCTLS {
        if let Err(violation) = sysctl(name, value, config, "KSPP sysctls (kspp.go GetKernelParams)", None) {
            violations.push(violation);
        }
    }
    for (name, value) in machine_config {
        match sysctl(name, value, config, "machine.sysctls (kernel_param_spec.go updateKernelParam)", module)
        {
            Ok(None) => unchecked.push(name.clone()),
            Ok(Some(_)) => {}
            Err(violation) => violations.push(violation),
        }
    }
    (violations, unchecked)
}

/// Whether a module's bytes register `name`: the directory (`a/b`, as `register_sysctl` is
/// given it) and the file name, each a NUL-terminated string in the module.
pub fn module_registers(module: &[u8], name: &str) -> bool {
    let Some((dir, leaf)) = name.rsplit_once('.') else { return false };
    let has = |text: &str| {
        let mut needle = Vec::with_capacity(text.len() + 2);
        needle.push(0);
        needle.extend_from_slice(text.as_bytes());
        needle.push(0);
        module.windows(needle.len()).any(|window| window == needle.as_slice())
    };
    has(&dir.replace('.', "/")) && has(leaf)
}

fn matches(pattern: &str, name: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix(".*") {
        return name.len() > prefix.len()
            && name.starts_with(prefix)
            && name.as_bytes()[prefix.len()] == b'.';
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return name.starts_with(prefix) && !name[prefix.len()..].contains('.');
    }
    let (mut pattern, mut name) = (pattern.split('.'), name.split('.'));
    loop {
        match (pattern.next(), name.next()) {
            (None, None) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(n)) if p == n => {}
            _ => return false,
        }
    }
}

/// More literal characters, more specific; an exact name beats any wildcard.
fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.contains('*'), pattern.len())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(options: &[&str]) -> DotConfig {
        let text: String = options.iter().map(|option| format!("CONFIG_{option}=y\n")).collect();
        DotConfig::parse(&text, Path::new("test")).0
    }

    const TALOS_LIKE: &[&str] = &[
        "PROC_SYSCTL",
        "PRINTK",
        "PERF_EVENTS",
        "SECURITY_YAMA",
        "BPF_SYSCALL",
        "NET",
        "BPF_JIT",
        "INET",
        "MMU",
    ];

    #[test]
    fn kspp_arguments_follow_talos_first_value() {
        assert!(cmdline(&DEFAULT_ARGUMENTS.join(" ")).is_empty());
        let without = cmdline("console=ttyS0 init_on_alloc=1 slab_nomerge");
        assert!(without.iter().any(|v| v.reason.starts_with("pti=on is missing")), "{without:?}");
        let off = cmdline("pti=off slab_nomerge");
        assert!(off.iter().any(|v| v.reason.starts_with("pti=off is on the command line")), "{off:?}");
        let later = cmdline(&format!("{} pti=off", DEFAULT_ARGUMENTS.join(" ")));
        assert_eq!(later.len(), 1, "{later:?}");
        assert!(later[0].reason.contains("later pti=off"));
        let valued =
            cmdline(&format!("{} slab_nomerge=1", DEFAULT_ARGUMENTS.join(" ").replace("slab_nomerge ", "")));
        assert!(valued.iter().any(|v| v.reason.starts_with("slab_nomerge=1 is on")), "{valued:?}");
        for disabling in ["nopti", "mitigations=off"] {
            let found = cmdline(&format!("{} {disabling}", DEFAULT_ARGUMENTS.join(" ")));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].reason.contains("turns page-table isolation off"), "{found:?}");
        }
        assert!(cmdline(&format!("{} mitigations=auto", DEFAULT_ARGUMENTS.join(" "))).is_empty());
        let no_defaults = cmdline("slab_nomerge pti=on");
        assert_eq!(no_defaults.len(), DEFAULT_ARGUMENTS.len() - 2, "{no_defaults:?}");
    }

    #[test]
    fn each_kspp_sysctl_names_the_option_it_needs() {
        let all = config(TALOS_LIKE);
        assert!(sysctls([], &all, None).0.is_empty());
        for (option, sysctl) in [
            ("PRINTK", "kernel.kptr_restrict"),
            ("PERF_EVENTS", "kernel.perf_event_paranoid"),
            ("SECURITY_YAMA", "kernel.yama.ptrace_scope"),
            ("BPF_SYSCALL", "kernel.unprivileged_bpf_disabled"),
            ("BPF_JIT", "net.core.bpf_jit_harden"),
        ] {
            let without: Vec<&str> = TALOS_LIKE.iter().copied().filter(|o| *o != option).collect();
            let (violations, _) = sysctls([], &config(&without), None);
            assert!(
                violations.iter().any(|v| v.reason.starts_with(sysctl) && v.reason.contains(&format!("CONFIG_{option}=y"))),
                "{option}: {violations:?}"
            );
        }
        let (violations, _) = sysctls([], &config(&["PRINTK"]), None);
        assert_eq!(violations.len(), KSPP_SYSCTLS.len());
        assert!(violations[0].reason.contains("CONFIG_PROC_SYSCTL"));
    }

    #[test]
    fn machine_config_sysctls_need_their_options_values_or_a_module() {
        let all = config(TALOS_LIKE);
        let settings: Vec<(String, String)> = vec![
            ("kernel.numa_balancing".into(), "0".into()),
            ("net.ipv4.tcp_congestion_control".into(), "bbr".into()),
            ("net.ipv4.conf.lo.rp_filter".into(), "2".into()),
            ("solana.optimizer.cpu_latency_us".into(), "50".into()),
        ];
        let pairs = settings.iter().map(|(k, v)| (k, v));
        let (violations, unchecked) = sysctls(pairs.clone(), &all, None);
        assert_eq!(unchecked, ["solana.optimizer.cpu_latency_us"]);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].reason.contains("CONFIG_NUMA_BALANCING=y"));
        assert!(violations[1].reason.contains("CONFIG_TCP_CONG_BBR=y"));
        let none = |_: &str| None;
        let (violations, _) = sysctls(pairs.clone(), &all, Some(&none));
        assert!(violations.iter().any(|v| v.reason.contains("no module of machine.kernel.modules")));
        let optimizer =
            |name: &str| (name == "solana.optimizer.cpu_latency_us").then(|| "solana-optimizer".to_owned());
        let more: Vec<&str> = TALOS_LIKE.iter().copied().chain(["NUMA_BALANCING", "TCP_CONG_BBR"]).collect();
        let (violations, unchecked) = sysctls(pairs, &config(&more), Some(&optimizer));
        assert!(violations.is_empty() && unchecked.is_empty(), "{violations:?}");
    }

    #[test]
    fn patterns_match_components() {
        assert!(matches("net.ipv4.*", "net.ipv4.conf.lo.rp_filter"));
        assert!(!matches("net.ipv4.*", "net.ipv4"));
        assert!(!matches("net.ipv4.*", "net.ipv45.x"));
        assert!(matches("kernel.numa_balancing_*", "kernel.numa_balancing_scan_delay_ms"));
        assert!(!matches("kernel.numa_balancing_*", "kernel.numa_balancing_x.y"));
        assert!(matches("kernel.kptr_restrict", "kernel.kptr_restrict"));
        assert!(!matches("kernel.kptr_restrict", "kernel.kptr_restrict.x"));
    }

    #[test]
    fn a_module_registers_its_directory_and_file() {
        let module = b"\x7fELF\0solana/optimizer\0cpu_latency_us\0numa_nodes\0";
        assert!(module_registers(module, "solana.optimizer.cpu_latency_us"));
        assert!(!module_registers(module, "solana.optimizer.latency"));
        assert!(!module_registers(module, "solana.cpu_latency_us"));
        assert!(!module_registers(module, "plain"));
    }
}
