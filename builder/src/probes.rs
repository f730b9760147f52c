//! The `$(shell,…)` commands a kernel's Kconfig runs, run in the sandbox.
//!
//! kiln evaluates the kernel's Kconfig itself to explain a requested value that did not stick.
//! The Kconfig is the kernel source's, which is untrusted: its commands run where the kernel's
//! own `make` ran them, in a sandbox over the source, one sandbox per command, with the
//! sandbox's environment — never on the host, and never with kiln's environment.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::mpsc;

use kiln_kconfig::{Probes, Runner};

use crate::sandbox::{Isolation, Spec};

/// What a command may print that is read (Kconfig keeps 4095 bytes of it).
const OUTPUT_LIMIT: u64 = 64 * 1024;

struct Request {
    command: String,
    variables: BTreeMap<String, String>,
    reply: mpsc::SyncSender<std::io::Result<Vec<u8>>>,
}

/// Calls `work` with probes whose commands run in sandboxes like `base` (its inputs; its
/// `/build` and `/out` are fresh directories below `scratch` for each command).
pub(crate) fn in_sandbox<T>(
    isolation: &dyn Isolation,
    base: &Spec,
    scratch: &Path,
    work: impl FnOnce(Probes) -> T,
) -> T {
    let (requests, incoming) = mpsc::channel::<Request>();
    std::thread::scope(|scope| {
        // The sandboxes run on a scoped thread, which may borrow the isolation; the probes'
        // runner, which may not, only sends it commands. It ends with the runner's last copy.
        scope.spawn(move || {
            for (number, request) in incoming.into_iter().enumerate() {
                let result = run(isolation, base, &scratch.join(format!("probe-{number}")), &request);
                let _ = request.reply.send(result);
            }
        });
        let runner = Runner::new(move |command, variables| {
            let (reply, answer) = mpsc::sync_channel(1);
            let request = Request { command: command.to_owned(), variables: variables.clone(), reply };
            requests.send(request).map_err(|_| std::io::Error::other("the probe sandbox is gone"))?;
            answer.recv().map_err(|_| std::io::Error::other("the probe sandbox is gone"))?
        });
        work(Probes::delegated(runner))
    })
}

/// One command in its own sandbox: `/bin/sh -c COMMAND` with exactly the variables given, its
/// standard output read (up to [`OUTPUT_LIMIT`]), its exit status ignored, as Kconfig's
/// `do_shell` ignores it.
fn run(isolation: &dyn Isolation, base: &Spec, dir: &Path, request: &Request) -> std::io::Result<Vec<u8>> {
    let (build, out) = (dir.join("build"), dir.join("out"));
    std::fs::create_dir_all(&build)?;
    std::fs::create_dir_all(&out)?;
    std::fs::write(build.join(".probe"), &request.command)?;
    let spec = Spec { build, out, env: request.variables.clone(), ..base.clone() };
    let script = "exec /bin/sh -c \"$(cat /build/.probe)\" </dev/null 2>/dev/null";
    let (mut reader, writer) = std::io::pipe()?;
    let output = std::thread::scope(|scope| {
        let running = scope.spawn(|| isolation.run(&spec, script, writer));
        let mut bytes = Vec::new();
        let read = (&mut reader).take(OUTPUT_LIMIT).read_to_end(&mut bytes);
        // The rest is not kept, but read, so the command is not stopped by a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
        let ran = running.join().map_err(|_| std::io::Error::other("the probe sandbox panicked"))?;
        ran.map_err(|e| std::io::Error::other(e.to_string()))?;
        read.map(|_| bytes)
    });
    let _ = std::fs::remove_dir_all(dir);
    output
}
