//! `kiln sandbox`.

use anyhow::Context;
use kiln_builder::sandbox::{self, Input, Namespaces, Spec};
use kiln_reproducible::Epoch;

use crate::cli::SandboxArgs;
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(args: SandboxArgs) -> anyhow::Result<Exit> {
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let dir = |given: &Option<std::path::PathBuf>, name: &str| -> anyhow::Result<std::path::PathBuf> {
        match given {
            Some(dir) => Ok(dir.clone()),
            None => {
                let dir = scratch.path().join(name);
                std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
                Ok(dir)
            }
        }
    };
    let mut spec = Spec::new(dir(&args.build, "build")?, dir(&args.out, "out")?, Epoch::from_env(None)?);
    spec.inputs = args.inputs.into_iter().map(|(host, path)| Input { host, path }).collect();
    spec.env = args.env.into_iter().collect();
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).with_context(|| format!("cannot create {}", root.display()))?;
    spec.root = Some(root);
    let log = args.log.clone().unwrap_or_else(|| scratch.path().join("sandbox.log"));
    let mut print = |line: &str| {
        let _ = output::text(&format!("{line}\n"));
    };
    match sandbox::run_logged(&Namespaces, &spec, &args.script, &log, &mut print) {
        Ok(()) => Ok(Exit::Success),
        Err(kiln_builder::Error::StepFailed { exit, .. }) => {
            output::messages(&[format!("kiln: the script failed ({exit})")]);
            Ok(Exit::Different)
        }
        Err(error) => Err(error.into()),
    }
}
