//! The extension step: a Talos system extension assembled from other steps' trees.
//!
//! The step's output is what an extension image holds: `manifest.yaml` (from the recipe's
//! `[extensions.NAME]`) and `rootfs/`, the listed inputs merged in order (a path two inputs give
//! differently is an error naming both). It is then checked the way Talos's extensions
//! validator checks an extension — and stricter: allowed paths with a `/` boundary, no
//! world-writable entries, no special files, service specs, the compatibility constraint against
//! `[talos] version` — and every kernel module in it must sit under the recipe kernel's release,
//! carry a signature the kernel accepts, and fit the kernel (vermagic, CRCs, symbols).

use std::fs;
use std::path::{Path, PathBuf};

use kiln_layers::talos::{self, Manifest, ValidateOptions};
use kiln_modules::Module;
use kiln_modules::check;

use crate::build::StepContext;
use crate::error::{Error, Result};
use crate::recipe::{Extension, KERNEL, Recipe, split_reference};
use crate::signing::{self, KeySource};

/// Assembles, validates and checks the extension into the step's `/out`.
pub(crate) fn build(
    recipe: &Recipe,
    name: &str,
    extension: &Extension,
    context: &StepContext<'_>,
) -> Result<()> {
    let out = &context.spec.out;
    let rootfs = out.join("rootfs");
    fs::create_dir(&rootfs).map_err(|source| Error::Write { path: rootfs.clone(), source })?;
    fs::set_permissions(&rootfs, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|source| Error::Write { path: rootfs.clone(), source })?;
    let mut placed = std::collections::BTreeMap::new();
    for reference in &extension.rootfs {
        let tree = context.input_path(reference)?;
        crate::tree::merge_into(&tree, &rootfs, reference, &mut placed)?;
    }
    let manifest = Manifest {
        name: extension.name.clone().unwrap_or_else(|| name.to_owned()),
        version: extension.version.clone(),
        author: extension.author.clone(),
        description: extension.description.clone(),
        talos_version: extension.talos_version.clone(),
        extra_info: None,
    };
    let manifest_path = out.join("manifest.yaml");
    fs::write(&manifest_path, manifest.to_yaml())
        .map_err(|source| Error::Write { path: manifest_path.clone(), source })?;
    fs::set_permissions(&manifest_path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|source| Error::Write { path: manifest_path, source })?;

    let kernel_output = recipe.kernel.as_ref().map(|_| context.input_path(KERNEL)).transpose()?;
    let release = kernel_output.as_deref().map(|dir| crate::kernel::Output::at(dir).release()).transpose()?;
    let options = ValidateOptions {
        talos_version: recipe.talos.as_ref().map(|t| t.version.as_str()),
        kernel_release: release.as_deref(),
    };
    talos::validate(out, &options)
        .map_err(|e| Error::Extension { name: name.to_owned(), reason: e.to_string() })?;
    let modules = signing::modules_under(&rootfs)?;
    if let (Some(kernel_output), Some(release), false) = (&kernel_output, &release, modules.is_empty()) {
        check_modules(recipe, name, &modules, kernel_output, release, context)?;
    } else if !modules.is_empty() {
        return Err(Error::Extension {
            name: name.to_owned(),
            reason: "it holds kernel modules, but the recipe has no [kernel] to check them against".into(),
        });
    }
    let inputs: Vec<&str> = extension.rootfs.iter().map(|r| split_reference(r).0).collect();
    context.note(&[format!(
        "extension {}: {} path(s) from {}; valid for Talos {}; {} module(s) signed and fitting",
        manifest.name,
        placed.len(),
        inputs.join(", "),
        options.talos_version.unwrap_or("(any)"),
        modules.len()
    )])
}

/// Every module: signed with a key the kernel trusts (when it checks), and fitting it.
fn check_modules(
    recipe: &Recipe,
    name: &str,
    modules: &[PathBuf],
    kernel_output: &Path,
    release: &str,
    context: &StepContext<'_>,
) -> Result<()> {
    let built = crate::kernel::Output::at(kernel_output);
    let config = built.config()?;
    let mut problems = Vec::new();
    if signing::signs_modules(&config) {
        let kernel = recipe.kernel.as_ref().ok_or_else(|| Error::Talos { reason: "no [kernel]".into() })?;
        let source = KeySource::of(recipe, kernel).ok_or_else(|| Error::Signing {
            reason: "the kernel checks module signatures, but [kernel] has no signing key".into(),
        })?;
        let scratch = context.spec.build.parent().unwrap_or(&context.spec.build);
        let verifier = source.load(scratch)?.verifier();
        for path in modules {
            let bytes = fs::read(path).map_err(|source| Error::Read { path: path.clone(), source })?;
            if let Err(reason) = verifier.verify_bytes(&bytes) {
                problems.push(format!("{}: signature: {reason}", shown(path, &context.spec.out)));
            }
        }
    }
    let kernel = check::Kernel {
        release: release.to_owned(),
        flags: Some(check::KernelFlags::from_config(&config)),
        symvers: Some(built.symvers()?),
    };
    let tree = built.modules(release)?;
    for path in modules {
        let module = Module::read(path)?;
        for problem in check::check(std::slice::from_ref(&module), &kernel, &tree) {
            problems.push(format!("{}: {problem}", shown(path, &context.spec.out)));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Extension { name: name.to_owned(), reason: format!("modules:\n{}", problems.join("\n")) })
    }
}

fn shown(path: &Path, out: &Path) -> String {
    path.strip_prefix(out).unwrap_or(path).display().to_string()
}
