//! `kiln kconfig merge|check|diff`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kiln_kconfig::{DotConfig, Environment, Probes, Tree, check, diff, dotconfig, merge};

use crate::cli::{
    KconfigCheckArgs, KconfigCommand, KconfigDiffArgs, KconfigExplainArgs, KconfigMergeArgs,
    KconfigOlddefconfigArgs, KconfigTreeArgs,
};
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(command: KconfigCommand) -> anyhow::Result<Exit> {
    match command {
        KconfigCommand::Merge(args) => run_merge(args),
        KconfigCommand::Check(args) => run_check(args),
        KconfigCommand::Diff(args) => run_diff(args),
        KconfigCommand::Olddefconfig(args) => run_olddefconfig(args),
        KconfigCommand::Explain(args) => run_explain(args),
    }
}

/// Loads the Kconfig tree as `args` say, recording its probes when asked to.
fn load_tree(args: &KconfigTreeArgs) -> anyhow::Result<Tree> {
    let probes = match &args.probes {
        Some(path) => Probes::from_json(&dotconfig::read_text(path)?, path)?,
        None => Probes::live(),
    };
    let environment = Environment::kbuild(&args.srctree, &args.arch, probes)?;
    let tree = Tree::load(&args.srctree, &environment)?;
    output::messages(tree.messages());
    if let Some(path) = &args.record_probes {
        write_atomic(path, tree.probes().to_json().as_bytes())?;
    }
    Ok(tree)
}

fn read_config(path: &Path) -> anyhow::Result<DotConfig> {
    let (config, warnings) = DotConfig::read(path)?;
    output::warnings(&warnings);
    Ok(config)
}

fn run_olddefconfig(args: KconfigOlddefconfigArgs) -> anyhow::Result<Exit> {
    let config = read_config(&args.config)?;
    let tree = load_tree(&args.tree)?;
    let evaluated = tree.olddefconfig(&config);
    output::messages(&evaluated.warnings().iter().map(|w| format!("warning: {w}")).collect::<Vec<_>>());
    let text = evaluated.to_config();
    write_atomic(args.out.as_ref().unwrap_or(&args.config), text.as_bytes())?;
    drop(evaluated);
    // The process ends here: the tree's memory goes with it instead of being freed node by
    // node, which takes a twentieth of the whole run.
    std::mem::forget(tree);
    Ok(Exit::Success)
}

fn run_explain(args: KconfigExplainArgs) -> anyhow::Result<Exit> {
    let config = read_config(&args.config)?;
    let tree = load_tree(&args.tree)?;
    let evaluated = tree.olddefconfig(&config);
    let mut report = String::new();
    for symbol in &args.symbols {
        let symbol = symbol.strip_prefix(dotconfig::PREFIX).unwrap_or(symbol);
        report += &evaluated.explain(symbol, config.get(symbol)).to_string();
    }
    output::text(&report)?;
    Ok(Exit::Success)
}

/// Reads the inputs, named as given on the command line (as the script names them).
fn inputs(paths: &[&PathBuf]) -> anyhow::Result<Vec<merge::Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        let text = dotconfig::read_text(path)?;
        let (_, warnings) = DotConfig::parse(&text, path);
        output::warnings(&warnings);
        inputs.push(merge::Input { name: path.display().to_string(), text });
    }
    Ok(inputs)
}

fn merged(base: &Path, fragments: &[PathBuf], options: merge::Options) -> anyhow::Result<merge::Merged> {
    let paths: Vec<&PathBuf> = fragments.iter().collect();
    let base = inputs(&[&base.to_path_buf()])?.remove(0);
    Ok(merge::merge(&base, &inputs(&paths)?, options))
}

fn run_merge(args: KconfigMergeArgs) -> anyhow::Result<Exit> {
    let options = merge::Options {
        builtin_wins: args.builtin_wins,
        strict: args.strict,
        report_redundant: args.redundant,
        quiet: args.quiet,
    };
    let merged = merged(&args.base, &args.fragments, options)?;
    output::messages(&merged.messages);
    if merged.strict_violation {
        bail!(kiln_kconfig::merge::StrictViolation);
    }
    match &args.out {
        Some(path) => write_atomic(path, merged.text.as_bytes())?,
        None => output::text(&merged.text)?,
    }
    Ok(Exit::Success)
}

fn run_check(args: KconfigCheckArgs) -> anyhow::Result<Exit> {
    let merged = merged(&args.base, &args.fragments, merge::Options { quiet: true, ..Default::default() })?;
    let final_config = dotconfig::read_text(&args.final_config)?;
    let mismatches = check::check(&merged.text, &final_config);
    let report: String = mismatches.iter().map(|m| format!("{m}\n")).collect();
    output::text(&report)?;
    Ok(if mismatches.is_empty() { Exit::Success } else { Exit::Different })
}

fn run_diff(args: KconfigDiffArgs) -> anyhow::Result<Exit> {
    let (old, old_warnings) = DotConfig::read(&args.old)?;
    let (new, new_warnings) = DotConfig::read(&args.new)?;
    output::warnings(&old_warnings);
    output::warnings(&new_warnings);
    let changes = diff::diff(&old, &new);
    output::text(&changes.iter().map(|c| format!("{c}\n")).collect::<String>())?;
    Ok(if changes.is_empty() { Exit::Success } else { Exit::Different })
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write {}", path.display()))?;
    temp.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
