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
    replay: bool,
}

impl Probes {
    /// Probes that run every command through `/bin/sh`, recording the outputs.
    pub fn live() -> Probes {
        Probes::default()
    }

    /// Probes answered only from `outputs` (a record of an earlier run); a command that is not
    /// recorded is an error.
    pub fn replay(outputs: BTreeMap<String, String>) -> Probes {
        Probes { outputs, replay: true }
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
        if let Some(output) = self.outputs.get(command) {
            return Ok(output.clone());
        }
        if self.replay {
            return Err(ProbeFailure::NotRecorded);
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
        let mut variables: BTreeMap<String, String> = std::env::vars().collect();
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
