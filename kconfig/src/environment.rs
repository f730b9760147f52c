//! What the Kconfig tree is evaluated against: the environment kbuild exports to `conf`, and the
//! output of the `$(shell,…)` probes, run through `/bin/sh` or replayed from a record.
//!
//! `make olddefconfig` runs `scripts/kconfig/conf` with the variables the top Makefile exports
//! (`ARCH`, `SRCARCH`, `srctree`, `KERNELVERSION`, `CC`, `LD`, `CC_VERSION_TEXT`, …); Kconfig
//! reads them with `$(NAME)` and the probes see them in their environment. A run records every
//! probe's command and output ([`Probes`]), so the same evaluation can be replayed offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::LoadError;

/// The commands kbuild names its tools by (`CROSS_COMPILE` empty, GCC and binutils).
const KBUILD_TOOLS: [(&str, &str); 16] = [
    ("CC", "gcc"),
    ("LD", "ld"),
    ("AR", "ar"),
    ("NM", "nm"),
    ("OBJCOPY", "objcopy"),
    ("OBJDUMP", "objdump"),
    ("READELF", "readelf"),
    ("STRIP", "strip"),
    ("PAHOLE", "pahole"),
    ("RUSTC", "rustc"),
    ("BINDGEN", "bindgen"),
    ("PYTHON3", "python3"),
    ("PERL", "perl"),
    ("HOSTCC", "gcc"),
    ("HOSTCXX", "g++"),
    ("HOSTRUSTC", "rustc"),
];

/// `$(shell,…)` commands and their processed output (at most 4095 bytes, trailing newlines
/// dropped, inner newlines turned into spaces, as `preprocess.c` `do_shell` does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probes {
    outputs: BTreeMap<String, String>,
    mode: Mode,
    /// The commands asked for (the record of a run keeps only these).
    asked: std::collections::BTreeSet<String>,
}

/// How a command that is not recorded yet is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Mode {
    /// Run it.
    #[default]
    Live,
    /// Fail: only recorded commands are answered.
    Replay,
    /// Note it for [`Probes::prefetch`] and answer `n` for now (a first pass over the tree).
    Collect,
}

/// The placeholder output of a collected command: a word every use of a probe accepts.
const PLACEHOLDER: &str = "n";

impl Probes {
    /// Probes that run every command through `/bin/sh`, recording the outputs.
    pub fn live() -> Probes {
        Probes::default()
    }

    /// Probes answered only from `outputs` (a record of an earlier run); a command that is not
    /// recorded is an error.
    pub fn replay(outputs: BTreeMap<String, String>) -> Probes {
        Probes { outputs, mode: Mode::Replay, asked: Default::default() }
    }

    /// Only the commands that were asked for, with their outputs: the record of this run.
    pub(crate) fn asked_only(&self) -> Probes {
        let outputs =
            self.outputs.iter().filter(|(c, _)| self.asked.contains(*c)).map(|(c, o)| (c.clone(), o.clone()));
        Probes { outputs: outputs.collect(), mode: self.mode, asked: self.asked.clone() }
    }

    /// Whether commands not recorded are run.
    pub(crate) fn is_live(&self) -> bool {
        self.mode == Mode::Live
    }

    /// A copy that notes the commands it is asked for instead of running them.
    pub(crate) fn collecting(&self) -> Probes {
        Probes { outputs: self.outputs.clone(), mode: Mode::Collect, asked: Default::default() }
    }

    /// Runs the commands a collecting copy noted (those not recorded yet), several at a time,
    /// and records their outputs. Each runs exactly as [`Probes::run`] would run it alone.
    pub(crate) fn prefetch(
        &mut self,
        collected: &Probes,
        variables: &BTreeMap<String, String>,
        dir: &Path,
    ) -> Result<(), LoadError> {
        let pending: Vec<&String> = collected
            .outputs
            .iter()
            .filter(|(command, output)| *output == PLACEHOLDER && !self.outputs.contains_key(*command))
            .map(|(command, _)| command)
            .collect();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Vec<(String, Result<String, ProbeFailure>)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.min(pending.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(command) = pending.get(index) else { break };
                            done.push(((*command).clone(), Probes::live().run(command, variables, dir)));
                        }
                        done
                    })
                })
                .collect();
            workers.into_iter().map(|worker| worker.join().unwrap_or_default()).collect()
        });
        for (command, result) in results.into_iter().flatten() {
            match result {
                Ok(output) => {
                    self.outputs.insert(command, output);
                }
                Err(ProbeFailure::Spawn(source)) => return Err(LoadError::Shell { command, source }),
                Err(ProbeFailure::NotRecorded) => {}
            }
        }
        Ok(())
    }

    /// Every command run or replayed so far, with its output.
    pub fn outputs(&self) -> &BTreeMap<String, String> {
        &self.outputs
    }

    /// The outputs as a record: one JSON object from command to output.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.outputs).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a record written by [`Probes::to_json`] for replay.
    pub fn from_json(text: &str, path: &Path) -> Result<Probes, LoadError> {
        let outputs = serde_json::from_str(text)
            .map_err(|e| LoadError::ProbeRecord { path: path.to_owned(), message: e.to_string() })?;
        Ok(Probes::replay(outputs))
    }

    /// The output of `command`, run in `dir` with exactly `variables` as its environment.
    pub(crate) fn run(
        &mut self,
        command: &str,
        variables: &BTreeMap<String, String>,
        dir: &Path,
    ) -> Result<String, ProbeFailure> {
        self.asked.insert(command.to_owned());
        if let Some(output) = self.outputs.get(command) {
            return Ok(output.clone());
        }
        match self.mode {
            Mode::Live => {}
            Mode::Replay => return Err(ProbeFailure::NotRecorded),
            Mode::Collect => {
                self.outputs.insert(command.to_owned(), PLACEHOLDER.to_owned());
                return Ok(PLACEHOLDER.to_owned());
            }
        }
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .env_clear()
            .envs(variables)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(ProbeFailure::Spawn)?;
        let mut bytes = output.stdout;
        if bytes.len() >= 4096 {
            bytes.truncate(4095);
        }
        while bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        let text = String::from_utf8_lossy(&bytes).replace('\n', " ");
        self.outputs.insert(command.to_owned(), text.clone());
        Ok(text)
    }
}

/// Why a probe gave no output.
#[derive(Debug)]
pub(crate) enum ProbeFailure {
    /// Replaying, and the command is not in the record.
    NotRecorded,
    /// `/bin/sh` could not be started.
    Spawn(std::io::Error),
}

/// The variables Kconfig and its probes see, and how probes are answered.
#[derive(Debug, Clone)]
pub struct Environment {
    variables: BTreeMap<String, String>,
    probes: Probes,
}

impl Environment {
    /// Exactly `variables`, with `probes`.
    pub fn new(variables: BTreeMap<String, String>, probes: Probes) -> Environment {
        Environment { variables, probes }
    }

    /// What `make ARCH=<arch> olddefconfig` exports to `conf` for the tree at `srctree`: this
    /// process's environment, the kbuild tool names (GCC and binutils), `ARCH`, `SRCARCH`,
    /// `srctree`, `KERNELVERSION` from the top Makefile, and `CC_VERSION_TEXT` and
    /// `RUSTC_VERSION_TEXT` from the tools themselves (through `probes`, so a replay needs no
    /// compiler). `arch` is what `ARCH` would be (`x86` when make derives it on an x86_64 host).
    pub fn kbuild(srctree: &Path, arch: &str, mut probes: Probes) -> Result<Environment, LoadError> {
        let srctree = std::path::absolute(srctree)
            .map_err(|source| LoadError::Read { path: srctree.to_owned(), source })?;
        // Variables that are not UTF-8 cannot be named in Kconfig; they are left out.
        let mut variables: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        for (name, value) in KBUILD_TOOLS {
            variables.insert(name.to_owned(), value.to_owned());
        }
        let srcarch = match arch {
            "x86_64" | "i386" => "x86",
            "sparc32" | "sparc64" => "sparc",
            "parisc64" => "parisc",
            other => other,
        };
        variables.insert("ARCH".into(), arch.into());
        variables.insert("SRCARCH".into(), srcarch.into());
        variables.insert("srctree".into(), srctree.display().to_string());
        variables.insert("KERNELVERSION".into(), kernel_version(&srctree)?);
        let scratch = tempfile::tempdir().map_err(|source| LoadError::Scratch { source })?;
        for (name, command) in [
            ("CC_VERSION_TEXT", "LC_ALL=C gcc --version 2>/dev/null | head -n 1"),
            ("RUSTC_VERSION_TEXT", "rustc --version 2>/dev/null"),
        ] {
            let text =
                run_probe(&mut probes, command, &variables, scratch.path(), &srctree.join("Makefile"), 0)?;
            variables.insert(name.into(), text.replace('#', ""));
        }
        Ok(Environment { variables, probes })
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// All variables.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// The probes run or replayed so far.
    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    pub(crate) fn probes_mut(&mut self) -> &mut Probes {
        &mut self.probes
    }

    /// The same variables with other probes.
    pub(crate) fn with_probes(&self, probes: Probes) -> Environment {
        Environment { variables: self.variables.clone(), probes }
    }
}

/// Runs one probe, naming `file:line` when it fails.
pub(crate) fn run_probe(
    probes: &mut Probes,
    command: &str,
    variables: &BTreeMap<String, String>,
    dir: &Path,
    file: &Path,
    line: usize,
) -> Result<String, LoadError> {
    probes.run(command, variables, dir).map_err(|failure| match failure {
        ProbeFailure::NotRecorded => {
            LoadError::NotRecorded { file: file.to_owned(), line, command: command.to_owned() }
        }
        ProbeFailure::Spawn(source) => LoadError::Shell { command: command.to_owned(), source },
    })
}

/// `KERNELVERSION` as the top Makefile computes it from `VERSION`, `PATCHLEVEL`, `SUBLEVEL` and
/// `EXTRAVERSION`.
fn kernel_version(srctree: &Path) -> Result<String, LoadError> {
    let path: PathBuf = srctree.join("Makefile");
    let text =
        std::fs::read_to_string(&path).map_err(|source| LoadError::Read { path: path.clone(), source })?;
    let field = |name: &str| -> String {
        text.lines()
            .take(20)
            .find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let (version, patchlevel, sublevel) = (field("VERSION"), field("PATCHLEVEL"), field("SUBLEVEL"));
    if version.is_empty() {
        return Err(LoadError::KernelVersion { path });
    }
    let mut kernel = version;
    if !patchlevel.is_empty() {
        kernel += &format!(".{patchlevel}");
        if !sublevel.is_empty() {
            kernel += &format!(".{sublevel}");
        }
    }
    Ok(kernel + &field("EXTRAVERSION"))
}
