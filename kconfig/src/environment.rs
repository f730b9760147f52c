//! What the Kconfig tree is evaluated against: the environment kbuild exports to `conf`, and the
//! output of the `$(shell,…)` probes, run through `/bin/sh` or replayed from a record.
//!
//! `make olddefconfig` runs `scripts/kconfig/conf` with the variables the top Makefile exports
//! (`ARCH`, `SRCARCH`, `srctree`, `KERNELVERSION`, `CC`, `LD`, `CC_VERSION_TEXT`, …); Kconfig
//! reads them with `$(NAME)` and the probes see them in their environment. A run records every
//! probe's command and output ([`Probes`]), so the same evaluation can be replayed offline.
//!
//! Probes run several at a time, each once, in one scratch directory: kiln takes them to be
//! independent of one another's side effects, as the kernel's are (compiler, assembler, linker
//! and tool checks that write only temporary files of their own).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

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
    asked: BTreeSet<String>,
}

/// How a command that is not recorded yet is answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Mode {
    /// Run it.
    #[default]
    Live,
    /// Fail: only recorded commands are answered.
    Replay,
    /// Start it in the background and answer [`ProbeFailure::Pending`] until it has finished
    /// (a first pass over the tree).
    Collect(Background),
    /// Run it, unless a collecting pass started it: then take its output once it has run (the
    /// pass after a collecting one, which so need not wait for every background command).
    Follow(Background),
    /// Hand it to the caller's runner (a sandbox), one command at a time.
    Delegated(Runner),
}

/// Runs one `$(shell,…)` command elsewhere than in this process — in a sandbox, say — with
/// exactly the variables given as its environment, and returns its raw standard output.
#[derive(Clone)]
pub struct Runner(Arc<RunCommand>);

/// Runs a command with exactly these variables; gives its standard output.
type RunCommand = dyn Fn(&str, &BTreeMap<String, String>) -> std::io::Result<Vec<u8>> + Send + Sync;

impl Runner {
    /// A runner that calls `run`.
    pub fn new(
        run: impl Fn(&str, &BTreeMap<String, String>) -> std::io::Result<Vec<u8>> + Send + Sync + 'static,
    ) -> Runner {
        Runner(Arc::new(run))
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

impl PartialEq for Runner {
    fn eq(&self, other: &Runner) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Runner {}

impl Probes {
    /// Probes that run every command through `/bin/sh`, recording the outputs.
    pub fn live() -> Probes {
        Probes::default()
    }

    /// Probes whose commands `runner` runs, one at a time and never in this process: for a
    /// tree whose Kconfig is not trusted to run commands on this host.
    pub fn delegated(runner: Runner) -> Probes {
        Probes { outputs: BTreeMap::new(), mode: Mode::Delegated(runner), asked: BTreeSet::new() }
    }

    /// Probes answered only from `outputs` (a record of an earlier run); a command that is not
    /// recorded is an error.
    pub fn replay(outputs: BTreeMap<String, String>) -> Probes {
        Probes { outputs, mode: Mode::Replay, asked: BTreeSet::new() }
    }

    /// Only the commands that were asked for, with their outputs: the record of this run.
    pub(crate) fn asked_only(&self) -> Probes {
        let outputs =
            self.outputs.iter().filter(|(c, _)| self.asked.contains(*c)).map(|(c, o)| (c.clone(), o.clone()));
        Probes { outputs: outputs.collect(), mode: self.mode.clone(), asked: self.asked.clone() }
    }

    /// Whether commands are being started in the background (a first pass).
    pub(crate) fn is_collecting(&self) -> bool {
        matches!(self.mode, Mode::Collect(_))
    }

    /// Whether commands not recorded are run.
    pub(crate) fn is_live(&self) -> bool {
        self.mode == Mode::Live
    }

    /// A copy that starts the commands it is asked for in the background, several at a time,
    /// each run in a scratch directory with exactly `variables` as its environment.
    pub(crate) fn collecting(&self, variables: &BTreeMap<String, String>) -> Result<Probes, LoadError> {
        let background = Background::start(variables.clone())?;
        Ok(Probes { outputs: self.outputs.clone(), mode: Mode::Collect(background), asked: BTreeSet::new() })
    }

    /// Waits until the background commands of a collecting copy have finished and records the
    /// outputs of those that could be run. Each ran exactly as [`Probes::run`] would run it.
    pub(crate) fn adopt(&mut self, collected: &Probes) {
        if let Mode::Collect(background) = &collected.mode {
            self.outputs.extend(background.finish());
        }
    }

    /// Runs the commands a collecting copy started as this one's own, taking each output when it
    /// is asked for (and waiting only for that command), until [`Probes::settle`].
    pub(crate) fn follow(&mut self, collected: &Probes) {
        if let (Mode::Live, Mode::Collect(background)) = (&self.mode, &collected.mode) {
            self.mode = Mode::Follow(background.clone());
        }
    }

    /// Ends [`Probes::follow`]: commands not recorded yet are run again.
    pub(crate) fn settle(&mut self) {
        if let Mode::Follow(_) = self.mode {
            self.mode = Mode::Live;
        }
    }

    /// Runs `commands` that are not recorded yet at once, in a scratch directory with exactly
    /// `variables` as their environment, and records the outputs of those that could be run.
    fn prefetch(
        &mut self,
        commands: [&str; 2],
        variables: &BTreeMap<String, String>,
    ) -> Result<(), LoadError> {
        let mut collecting = self.collecting(variables)?;
        for command in commands {
            // Every answer is pending or an error that running the command again reports.
            let _ = collecting.run(command, variables, Path::new(""));
        }
        self.adopt(&collecting);
        Ok(())
    }

    /// While collecting: whether each of `commands` started in the background has finished.
    pub(crate) fn finished(&self, commands: &[String]) -> bool {
        match &self.mode {
            Mode::Collect(background) => background.finished(commands),
            _ => true,
        }
    }

    /// While collecting: waits until each of `commands` started in the background has finished.
    pub(crate) fn wait(&self, commands: &[String]) {
        if let Mode::Collect(background) = &self.mode {
            background.wait(commands);
        }
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
        let output = match &self.mode {
            Mode::Live => execute(command, variables, dir).map_err(ProbeFailure::Spawn)?,
            Mode::Delegated(runner) => {
                shell_output((runner.0)(command, variables).map_err(ProbeFailure::Spawn)?)
            }
            Mode::Replay => return Err(ProbeFailure::NotRecorded),
            Mode::Collect(background) => return background.answer(command),
            // In the same directory as the background commands; one that failed to start there
            // (too many processes at once) is run again.
            Mode::Follow(background) => match background.take(command) {
                Some(Ok(output)) => output,
                Some(Err(_)) | None => {
                    execute(command, variables, background.dir()).map_err(ProbeFailure::Spawn)?
                }
            },
        };
        self.outputs.insert(command.to_owned(), output.clone());
        Ok(output)
    }
}

/// Runs `command` through `/bin/sh -c` in `dir` with exactly `variables` as its environment,
/// and returns its standard output as `do_shell` keeps it.
fn execute(command: &str, variables: &BTreeMap<String, String>, dir: &Path) -> std::io::Result<String> {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .envs(variables)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    Ok(shell_output(output.stdout))
}

/// A command's standard output as `do_shell` keeps it: at most 4095 bytes, trailing newlines
/// dropped, inner newlines turned into spaces.
fn shell_output(mut bytes: Vec<u8>) -> String {
    if bytes.len() >= 4096 {
        bytes.truncate(4095);
    }
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    String::from_utf8_lossy(&bytes).replace('\n', " ")
}

/// Why a probe gave no output.
#[derive(Debug)]
pub(crate) enum ProbeFailure {
    /// Replaying, and the command is not in the record.
    NotRecorded,
    /// Collecting, and the command is still running in the background.
    Pending,
    /// `/bin/sh` could not be started.
    Spawn(std::io::Error),
}

/// How many commands run at once in the background, per core: the probes are mostly short
/// compiler runs that spend part of their time starting up and waiting on files.
const WORKERS_PER_CORE: usize = 4;

/// Commands running in the background while a collecting pass reads on: a queue in the order
/// they were asked for and a few worker threads taking from it. Dropping the last handle drops
/// what is still queued and waits for the running commands.
#[derive(Debug, Clone)]
struct Background(Arc<Workers>);

impl PartialEq for Background {
    fn eq(&self, other: &Background) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Background {}

#[derive(Debug)]
struct Workers {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Where the commands run; removed after the threads have stopped.
    _scratch: tempfile::TempDir,
}

/// What the worker threads and the collecting pass share.
#[derive(Debug)]
struct Shared {
    state: Mutex<Queue>,
    /// Signalled when a command is queued or finishes, and when the queue closes.
    changed: Condvar,
    variables: BTreeMap<String, String>,
    dir: PathBuf,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<String>,
    /// Every command asked for: `None` until it has run.
    results: BTreeMap<String, Option<std::io::Result<String>>>,
    closed: bool,
}

impl Background {
    /// Starts the worker threads (at least one, or an error).
    fn start(variables: BTreeMap<String, String>) -> Result<Background, LoadError> {
        let scratch = tempfile::tempdir().map_err(|source| LoadError::Scratch { source })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            variables,
            dir: scratch.path().to_owned(),
        });
        let count = std::thread::available_parallelism().map_or(2, |n| n.get() * WORKERS_PER_CORE);
        let mut threads = Vec::with_capacity(count);
        for _ in 0..count {
            let shared = Arc::clone(&shared);
            match std::thread::Builder::new().name("kconfig-probe".into()).spawn(move || shared.work()) {
                Ok(thread) => threads.push(thread),
                Err(source) if threads.is_empty() => return Err(LoadError::Threads { source }),
                Err(_) => break,
            }
        }
        Ok(Background(Arc::new(Workers { shared, threads, _scratch: scratch })))
    }

    /// The output of `command` if it has run; otherwise queues it (once) and answers
    /// [`ProbeFailure::Pending`].
    fn answer(&self, command: &str) -> Result<String, ProbeFailure> {
        let shared = &self.0.shared;
        let mut queue = shared.lock();
        match queue.results.get(command) {
            Some(Some(result)) => copy(result).map_err(ProbeFailure::Spawn),
            Some(None) => Err(ProbeFailure::Pending),
            None => {
                queue.results.insert(command.to_owned(), None);
                queue.waiting.push_back(command.to_owned());
                shared.changed.notify_all();
                Err(ProbeFailure::Pending)
            }
        }
    }

    /// Where the commands run.
    fn dir(&self) -> &Path {
        &self.0.shared.dir
    }

    /// The output of `command` if it was queued: at once if it has run, after it has if it is
    /// running; one not started yet is taken from the queue and run here. `None` for a command
    /// never queued.
    fn take(&self, command: &str) -> Option<std::io::Result<String>> {
        let shared = &self.0.shared;
        let mut queue = shared.lock();
        loop {
            match queue.results.get(command) {
                None => return None,
                Some(Some(result)) => return Some(copy(result)),
                Some(None) => {}
            }
            if let Some(position) = queue.waiting.iter().position(|c| c == command) {
                queue.waiting.remove(position);
                drop(queue);
                let result = execute(command, &shared.variables, &shared.dir);
                let mut queue = shared.lock();
                queue.results.insert(command.to_owned(), Some(copy(&result)));
                shared.changed.notify_all();
                return Some(result);
            }
            queue = shared.changed.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether each of `commands` that was queued has run.
    fn finished(&self, commands: &[String]) -> bool {
        let queue = self.0.shared.lock();
        commands.iter().all(|command| !matches!(queue.results.get(command), Some(None)))
    }

    /// Waits until each of `commands` that was queued has run, moving those not started yet to
    /// the front of the queue.
    fn wait(&self, commands: &[String]) {
        let shared = &self.0.shared;
        let mut queue = shared.lock();
        let (urgent, rest): (VecDeque<String>, VecDeque<String>) =
            std::mem::take(&mut queue.waiting).into_iter().partition(|command| commands.contains(command));
        queue.waiting = urgent.into_iter().chain(rest).collect();
        while commands.iter().any(|command| matches!(queue.results.get(command), Some(None))) {
            queue = shared.changed.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits until every queued command has run; the outputs of those that could be run.
    fn finish(&self) -> BTreeMap<String, String> {
        let shared = &self.0.shared;
        let mut queue = shared.lock();
        while queue.results.values().any(Option::is_none) {
            queue = shared.changed.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
        let outputs = queue.results.iter().filter_map(|(command, result)| match result {
            Some(Ok(output)) => Some((command.clone(), output.clone())),
            _ => None,
        });
        outputs.collect()
    }
}

/// A copy of a command's result (an I/O error is not `Clone`).
fn copy(result: &std::io::Result<String>) -> std::io::Result<String> {
    match result {
        Ok(output) => Ok(output.clone()),
        Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker thread: runs queued commands until the queue closes.
    fn work(&self) {
        let mut queue = self.lock();
        loop {
            if let Some(command) = queue.waiting.pop_front() {
                drop(queue);
                let result = execute(&command, &self.variables, &self.dir);
                queue = self.lock();
                queue.results.insert(command, Some(result));
                self.changed.notify_all();
            } else if queue.closed {
                return;
            } else {
                queue = self.changed.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        {
            let mut queue = self.shared.lock();
            queue.waiting.clear();
            queue.closed = true;
        }
        self.shared.changed.notify_all();
        for thread in self.threads.drain(..) {
            // A worker only ends by returning; there is nothing to report if it panicked.
            let _ = thread.join();
        }
    }
}

/// The variables Kconfig and its probes see, and how probes are answered.
#[derive(Debug, Clone)]
pub struct Environment {
    variables: BTreeMap<String, String>,
    probes: Probes,
    /// Whether `source` may only name files below the source tree.
    confined: bool,
}

impl Environment {
    /// Exactly `variables`, with `probes`.
    pub fn new(variables: BTreeMap<String, String>, probes: Probes) -> Environment {
        Environment { variables, probes, confined: false }
    }

    /// The same, for a tree that is not trusted: `source` may only name files below the source
    /// tree (no absolute path, nothing reached through a link that leaves it).
    pub fn confined(self) -> Environment {
        Environment { confined: true, ..self }
    }

    /// Whether [`Environment::confined`].
    pub(crate) fn is_confined(&self) -> bool {
        self.confined
    }

    /// What `make ARCH=<arch> olddefconfig` exports to `conf` for the tree at `srctree`: this
    /// process's environment, the kbuild tool names (GCC and binutils), `ARCH`, `SRCARCH`,
    /// `srctree`, `KERNELVERSION` from the top Makefile, and `CC_VERSION_TEXT` and
    /// `RUSTC_VERSION_TEXT` from the tools themselves (through `probes`, so a replay needs no
    /// compiler). `arch` is what `ARCH` would be (`x86` when make derives it on an x86_64 host).
    pub fn kbuild(srctree: &Path, arch: &str, probes: Probes) -> Result<Environment, LoadError> {
        // Variables that are not UTF-8 cannot be named in Kconfig; they are left out.
        let variables: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let seen = std::path::absolute(srctree)
            .map_err(|source| LoadError::Read { path: srctree.to_owned(), source })?;
        Environment::kbuild_in(srctree, &seen, variables, arch, probes)
    }

    /// [`Environment::kbuild`] for a `make` that ran elsewhere (a sandbox): its environment is
    /// `variables`, not this process's, and it saw the tree at `srctree` as `seen`, which is
    /// what `$(srctree)` expands to (the files are read at `srctree`).
    pub fn kbuild_in(
        srctree: &Path,
        seen: &Path,
        mut variables: BTreeMap<String, String>,
        arch: &str,
        mut probes: Probes,
    ) -> Result<Environment, LoadError> {
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
        variables.insert("srctree".into(), seen.display().to_string());
        variables.insert("KERNELVERSION".into(), kernel_version(srctree)?);
        let versions = [
            ("CC_VERSION_TEXT", "LC_ALL=C gcc --version 2>/dev/null | head -n 1"),
            ("RUSTC_VERSION_TEXT", "rustc --version 2>/dev/null"),
        ];
        if probes.is_live() {
            probes.prefetch(versions.map(|(_, command)| command), &variables)?;
        }
        let scratch = tempfile::tempdir().map_err(|source| LoadError::Scratch { source })?;
        for (name, command) in versions {
            // Never pending: `probes` are live or replayed.
            let text =
                run_probe(&mut probes, command, &variables, scratch.path(), &srctree.join("Makefile"), 0)?
                    .unwrap_or_default();
            variables.insert(name.into(), text.replace('#', ""));
        }
        Ok(Environment { variables, probes, confined: false })
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
        Environment { variables: self.variables.clone(), probes, confined: self.confined }
    }
}

/// Runs one probe, naming `file:line` when it fails. `None` while collecting: the command is
/// still running in the background.
pub(crate) fn run_probe(
    probes: &mut Probes,
    command: &str,
    variables: &BTreeMap<String, String>,
    dir: &Path,
    file: &Path,
    line: usize,
) -> Result<Option<String>, LoadError> {
    match probes.run(command, variables, dir) {
        Ok(output) => Ok(Some(output)),
        Err(ProbeFailure::Pending) => Ok(None),
        Err(ProbeFailure::NotRecorded) => {
            Err(LoadError::NotRecorded { file: file.to_owned(), line, command: command.to_owned() })
        }
        Err(ProbeFailure::Spawn(source)) => Err(LoadError::Shell { command: command.to_owned(), source }),
    }
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
