//! `kiln verify`.

use anyhow::Context;
use kiln_builder::verify::{self, Digests, VerifyOptions};

use crate::cli::VerifyArgs;
use crate::exit::Exit;
use crate::output;

struct Progress;

impl verify::Reporter for Progress {
    fn build_started(&self, label: &str, perturbations: &[String]) {
        output::messages(&[format!("kiln verify: {label} build: {}", perturbations.join(", "))]);
    }

    fn build_finished(&self, label: &str, digests: &Digests, seconds: f64) {
        output::messages(&[format!(
            "kiln verify: {label} build: {} digest(s) in {seconds:.1} s",
            digests.len()
        )]);
    }
}

pub(crate) fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let expect = match &args.expect {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(verify::parse_digests(&text, path)?)
        }
        None => None,
    };
    let temp = match &args.work {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("kiln-verify-")
                .tempdir()
                .context("cannot create a temporary directory")?,
        ),
    };
    let work = args
        .work
        .clone()
        .or_else(|| temp.as_ref().map(|temp| temp.path().to_owned()))
        .context("no work directory")?;
    let options = VerifyOptions {
        program: std::env::current_exe().context("cannot find the kiln program")?,
        recipe: args.recipe.clone(),
        rebuilds: args.rebuilds,
        expect,
        work,
    };
    let verified = verify::verify(&options, &Progress)
        .with_context(|| format!("cannot verify {}", args.recipe.display()))?;
    let mut lines = Vec::new();
    for (name, digest) in &verified.expected {
        lines.push(format!("{name} {digest}"));
    }
    if verified.mismatches.is_empty() {
        lines.push(format!(
            "kiln verify: {} rebuild(s) reproduced all {} digest(s)",
            args.rebuilds,
            verified.expected.len()
        ));
        output::text(&(lines.join("\n") + "\n"))?;
        return Ok(Exit::Success);
    }
    for mismatch in &verified.mismatches {
        lines.push(format!("kiln verify: the {} build differs:", mismatch.label));
        lines.extend(mismatch.explanation.iter().map(|line| format!("  {line}")));
        lines.push("  in full:".into());
        lines.extend(mismatch.diffoscope.iter().map(|line| format!("    {line}")));
    }
    if let Some(temp) = temp {
        lines.push(format!("kiln verify: the builds are kept in {}", temp.keep().display()));
    }
    output::text(&(lines.join("\n") + "\n"))?;
    Ok(Exit::Different)
}
