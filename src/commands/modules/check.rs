//! `kiln modules check FILE... --release KVER [--kconfig F] [--symvers F] [--tree DIR]`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kiln_modules::check::{self, Kernel, KernelFlags};
use kiln_modules::symvers::Symvers;
use kiln_modules::{Module, module};
use rayon::prelude::*;

use crate::cli::ModulesCheckArgs;
use crate::exit::Exit;

pub(crate) fn run(args: ModulesCheckArgs) -> anyhow::Result<Exit> {
    let flags = match &args.kconfig {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(KernelFlags::from_config(&text))
        }
        None => None,
    };
    let symvers = args.symvers.as_deref().map(Symvers::read).transpose()?;
    let kernel = Kernel { release: args.release, flags, symvers };
    let read = |paths: &[PathBuf]| -> anyhow::Result<Vec<Module>> {
        Ok(paths.par_iter().map(|p| Module::read(p)).collect::<Result<_, _>>()?)
    };
    let modules = read(&args.files)?;
    let tree = match &args.tree {
        Some(dir) => read(&module_files(dir)?)?,
        None => Vec::new(),
    };
    let problems = check::check(&modules, &kernel, &tree);
    if args.json {
        super::json(&problems)?;
    } else {
        crate::output::text(&problems.iter().map(|p| format!("{p}\n")).collect::<String>())?;
    }
    Ok(if problems.is_empty() { Exit::Success } else { Exit::Different })
}

/// Every module file under `dir`, sorted.
fn module_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let path = entry.with_context(|| format!("cannot read {}", dir.display()))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if module::has_module_extension(&path.file_name().unwrap_or_default().to_string_lossy()) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
