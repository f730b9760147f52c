//! The out-of-tree module step: a module's source built in the sandbox against the recipe's
//! kernel build directory, installed under `usr/lib/modules/<release>/extras/`.
//!
//! The kernel's source is at [`kernel::SOURCE`](crate::kernel::SOURCE) (its build directory
//! refers to it), the kernel step's output at [`KERNEL_OUTPUT`], the module's source at
//! [`MODULE_SOURCE`]; the module is built in a writable copy at `/build/module`. The same
//! reproducibility variables as the kernel's build apply. Outside the sandbox, each module is
//! signed with the kernel's key and checked against the kernel (vermagic, symbol CRCs, symbols
//! no one provides): a module that would not load fails the step.

use std::path::Path;

use kiln_modules::Module;
use kiln_modules::check;

use crate::build::StepContext;
use crate::error::{Error, Result};
use crate::recipe::{Kernel, Recipe};
use crate::signing::{self, KeySource};

/// Where the kernel step's output is in a module's sandbox.
pub const KERNEL_OUTPUT: &str = "/kernel";
/// Where the module's source is in its sandbox.
pub const MODULE_SOURCE: &str = "/src/module";
/// Where modules are installed, under the kernel's module directory.
pub const INSTALL_DIR: &str = "extras";

/// Builds the module into the step's `/out`, then signs it with the kernel's key when the
/// kernel checks signatures.
pub(crate) fn build(recipe: &Recipe, kernel: &Kernel, context: &StepContext<'_>) -> Result<()> {
    let make = format!(
        "make -C {KERNEL_OUTPUT}/build M=/build/module KBUILD_BUILD_TIMESTAMP={} \
         KBUILD_BUILD_USER=kiln KBUILD_BUILD_HOST=kiln KBUILD_BUILD_VERSION=1",
        context.epoch.to_rfc3339()
    );
    let script = format!(
        "cp -R {MODULE_SOURCE} /build/module\n\
         {make} -j\"$(nproc)\" modules\n\
         {make} INSTALL_MOD_PATH=/out/usr INSTALL_MOD_DIR={INSTALL_DIR} INSTALL_MOD_STRIP=1 DEPMOD=true \
         modules_install\n\
         find /out -name '*.ko' | grep -q . || {{ echo 'the module source built no .ko' >&2; exit 1; }}\n"
    );
    context.run(&script)?;
    let kernel_output = context
        .spec
        .inputs
        .iter()
        .find(|input| input.path == KERNEL_OUTPUT)
        .map(|input| input.host.clone())
        .ok_or_else(|| Error::Sandbox { reason: "a module step without its kernel".into() })?;
    let config = crate::kernel::Output::at(&kernel_output).config()?;
    if signing::signs_modules(&config) {
        let source = KeySource::of(recipe, kernel).ok_or_else(|| Error::Signing {
            reason: "the kernel checks module signatures, but [kernel] has no signing key".into(),
        })?;
        let scratch = context.spec.build.parent().unwrap_or(&context.spec.build);
        let signed = source.load(scratch)?.sign_tree(&context.spec.out, &config)?;
        context.note(&[format!("signed {signed} module(s)")])?;
    }
    check_fit(&kernel_output, &config, context)
}

/// Checks each built module against the kernel: its vermagic, its symbol CRCs against the
/// kernel's `Module.symvers`, and that the kernel or its modules provide every symbol it needs.
fn check_fit(kernel_output: &Path, config: &str, context: &StepContext<'_>) -> Result<()> {
    let built = crate::kernel::Output::at(kernel_output);
    let release = built.release()?;
    let kernel = check::Kernel {
        release: release.clone(),
        flags: Some(check::KernelFlags::from_config(config)),
        symvers: Some(built.symvers()?),
    };
    let tree = built.modules(&release)?;
    let built = signing::modules_under(&context.spec.out)?;
    for path in &built {
        let module = Module::read(path)?;
        let problems = check::check(std::slice::from_ref(&module), &kernel, &tree);
        if !problems.is_empty() {
            let reason = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            return Err(Error::ModuleMismatch { path: path.clone(), reason });
        }
    }
    context.note(&[format!("{} module(s) fit kernel {release}: vermagic, CRCs, symbols", built.len())])
}
