//! The kernel step: configure and build Linux in the sandbox, make sure the configuration the
//! recipe asks for stuck, and lay out what the kernel image and out-of-tree modules need.
//!
//! The source tree is read-only at [`SOURCE`]; the build is out of tree in [`OBJ`]. Steps, in
//! one sandbox after another over the same `/build`:
//!
//! 1. the base: `make BASE-TARGET`, or the recipe's base file as `.config`;
//! 2. the fragments merged onto it with `merge_config.sh`'s rules (kiln's `kconfig` crate);
//! 3. `make olddefconfig`;
//! 4. every value the fragments request checked against the final `.config` — a value that did
//!    not stick fails the build before the long compile, naming each one;
//! 5. `make bzImage modules` with the reproducibility variables (`KBUILD_BUILD_TIMESTAMP` from
//!    the build's epoch, fixed user, host and version), then the output tree:
//!    `image/boot/vmlinuz`, `image/boot/config`, `image/usr/lib/modules/<release>/` (stripped,
//!    without the `build`/`source` links), `kernelrelease`, and `build/` — the build directory
//!    without object files, for out-of-tree modules (which must see the source at [`SOURCE`]);
//! 6. outside the sandbox: every module signed with the recipe's key when the kernel checks
//!    signatures (the `signing` module), and the module indexes (`modules.dep`, the
//!    `.bin` files kmod reads, …) written by kiln's depmod.
//!
//! With module signatures on, the kernel's configuration gets two more lines: the recipe's
//! certificate as `CONFIG_MODULE_SIG_KEY` and no `CONFIG_MODULE_SIG_ALL`, so the private key
//! never enters the sandbox. Kbuild's compile lines are counted for the progress report; the
//! count is kept in the cache as the next build's expected total for the same `.config`.

use std::fs;
use std::path::{Path, PathBuf};

use kiln_kconfig::{DotConfig, Environment, Probes, Tree, check, merge};
use kiln_modules::depmod;
use sha2::{Digest as _, Sha256};

use crate::build::StepContext;
use crate::error::{Error, Result};
use crate::recipe::{Kernel, Recipe};
use crate::signing::{self, KeySource};

/// Where the kernel source tree is in the sandbox.
pub const SOURCE: &str = "/src/linux";
/// Where the kernel is built.
pub const OBJ: &str = "/build/obj";

/// What the kernel step's key covers of the recipe: its section and its files' contents.
pub(crate) fn definition(recipe: &Recipe, kernel: &Kernel) -> Result<serde_json::Value> {
    let read = |file: &Path| {
        let path = recipe.dir.join(file);
        fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
    };
    let base_config = kernel.base_config.as_deref().map(read).transpose()?;
    let fragments: Vec<String> = kernel.fragments.iter().map(|f| read(f)).collect::<Result<_>>()?;
    let signing = KeySource::of(recipe, kernel).map(|source| source.identity()).transpose()?;
    // The command line is the boot's business, not the build's.
    let kernel = serde_json::json!({
        "source": kernel.source,
        "base-target": kernel.base_target,
        "base-config": kernel.base_config,
        "fragments": kernel.fragments,
        "localversion": kernel.localversion,
    });
    Ok(serde_json::json!({
        "kernel": kernel,
        "base-config": base_config,
        "fragments": fragments,
        "signing": signing,
    }))
}

/// Builds the kernel into the step's `/out`.
pub(crate) fn build(recipe: &Recipe, kernel: &Kernel, context: &StepContext<'_>) -> Result<()> {
    let make = format!(
        "make -C {SOURCE} O={OBJ} KBUILD_BUILD_TIMESTAMP={} KBUILD_BUILD_USER=kiln KBUILD_BUILD_HOST=kiln \
         KBUILD_BUILD_VERSION=1 LOCALVERSION={}",
        context.epoch.to_rfc3339(),
        kernel.localversion
    );
    let obj = context.spec.build.join("obj");
    let dot_config = obj.join(".config");
    let (base_name, base_text) = match (&kernel.base_target, &kernel.base_config) {
        (Some(target), _) => {
            context.run(&format!("{make} {target}"))?;
            (target.clone(), read(&dot_config)?)
        }
        (None, Some(file)) => (file.display().to_string(), read(&recipe.dir.join(file))?),
        (None, None) => return Err(Error::Sandbox { reason: "the kernel has no base configuration".into() }),
    };
    let mut fragments: Vec<merge::Input> = kernel
        .fragments
        .iter()
        .map(|file| {
            Ok(merge::Input { name: file.display().to_string(), text: read(&recipe.dir.join(file))? })
        })
        .collect::<Result<_>>()?;
    let base = merge::Input { name: base_name, text: base_text };
    // Signed modules: the kernel embeds the recipe's certificate, and kiln signs.
    let requested = merge::merge(&base, &fragments, merge::Options { quiet: true, ..Default::default() });
    let key = match KeySource::of(recipe, kernel) {
        Some(source) if signing::signs_modules(&requested.text) => {
            let scratch = context.spec.build.parent().unwrap_or(&context.spec.build);
            let key = source.load(scratch)?;
            key.place_certificate(&context.spec.build)?;
            fragments.push(merge::Input {
                name: "kiln (module signing)".into(),
                text: signing::config_fragment(),
            });
            Some(key)
        }
        _ => None,
    };
    let merged = merge::merge(&base, &fragments, merge::Options::default());
    context.note(&merged.messages)?;
    fs::create_dir_all(&obj).map_err(|source| Error::Write { path: obj.clone(), source })?;
    fs::write(&dot_config, &merged.text)
        .map_err(|source| Error::Write { path: dot_config.clone(), source })?;
    context.run(&format!("{make} olddefconfig"))?;
    let final_config = read(&dot_config)?;
    // What the recipe asked for is what its fragments say (the base is a starting point, and
    // a generated one changes wholesale with, say, 64BIT).
    let quiet = merge::Options { quiet: true, ..merge::Options::default() };
    let requested =
        merge::merge(&merge::Input { name: String::new(), text: String::new() }, &fragments, quiet);
    let dropped = check::check(&requested.text, &final_config);
    if !dropped.is_empty() {
        return Err(Error::KernelConfig {
            dropped: dropped.iter().map(|m| m.to_string().trim_end().to_owned()).collect(),
            explanations: explain(context, &merged.text, &dropped),
        });
    }
    if key.is_none() && signing::signs_modules(&final_config) {
        return Err(Error::Signing {
            reason: "the kernel's configuration sets CONFIG_MODULE_SIG: give [kernel] signing-key or \
                     signing-seed (the kernel's build would otherwise make a new random key each time)"
                .into(),
        });
    }
    let modules = final_config.lines().any(|line| line == "CONFIG_MODULES=y");
    let install_modules = if modules {
        format!(
            "{make} INSTALL_MOD_PATH=/out/image/usr INSTALL_MOD_STRIP=1 DEPMOD=true modules_install\n\
             rm -f \"/out/image/usr/lib/modules/$release/build\" \"/out/image/usr/lib/modules/$release/source\""
        )
    } else {
        String::new()
    };
    let script = format!(
        "{make} -j\"$(nproc)\" bzImage{targets}\n\
         release=$({make} -s kernelrelease)\n\
         mkdir -p /out/image/boot /out/build\n\
         cp {OBJ}/arch/x86/boot/bzImage /out/image/boot/vmlinuz\n\
         cp {OBJ}/.config /out/image/boot/config\n\
         {install_modules}\n\
         printf '%s\\n' \"$release\" >/out/kernelrelease\n\
         cd {OBJ}\n\
         tar -cf - --exclude='*.o' --exclude='.*.cmd' --exclude='*.ko' --exclude='*.a' --exclude='vmlinux*' \
         --exclude='./arch/x86/boot' --exclude='./source' . | tar -xf - -C /out/build\n",
        targets = if modules { " modules" } else { "" },
    );
    // How many objects this configuration compiles, as the last build of it counted.
    let hint = context
        .cache
        .root()
        .join("hints/kernel-objects")
        .join(hex::encode(Sha256::digest(final_config.as_bytes())));
    let expected = fs::read_to_string(&hint).ok().and_then(|text| text.trim().parse().ok());
    let mut compiled = 0;
    context.run_with(&script, &mut |line| {
        if is_compile_line(line) {
            compiled += 1;
            context.reporter.step_progress(context.name, compiled, expected);
        }
    })?;
    // A hint only: losing it costs the next build its total.
    let _ = fs::create_dir_all(hint.parent().unwrap_or(&hint))
        .and_then(|()| fs::write(&hint, format!("{compiled}\n")));
    if !modules {
        return Ok(());
    }
    let out = &context.spec.out;
    let release = crate::extension::kernel_release(out)?;
    let module_dir = out.join("image/usr/lib/modules").join(&release);
    if let Some(key) = &key {
        let signed = key.sign_tree(&module_dir, &final_config)?;
        context.note(&[format!("signed {signed} modules")])?;
    }
    // The indexes kmod (and busybox) read, from kiln's depmod, checked against the kernel's
    // exported symbols.
    let indexed = depmod::depmod(&depmod::Options {
        basedir: out.join("image"),
        release,
        moduledir: Some(PathBuf::from("/usr/lib/modules")),
        config: Vec::new(),
        symvers: Some(out.join("build/Module.symvers")),
    })?;
    let mut notes = vec![format!("depmod: indexed {} modules", indexed.modules.len())];
    notes.extend(indexed.warnings.iter().map(|warning| format!("depmod: {warning}")));
    context.note(&notes)?;
    Ok(())
}

/// Why each dropped value did not stick, from kiln's own Kconfig evaluation of the merged
/// request (the same answer `make olddefconfig` gave, which the kconfig tests hold it to).
fn explain(context: &StepContext<'_>, merged: &str, dropped: &[check::Mismatch]) -> Vec<String> {
    let Some(source) = context.spec.inputs.iter().find(|input| input.path == SOURCE) else {
        return Vec::new();
    };
    // No ARCH, as the build passes none: make derives x86 on an x86_64 host.
    let tree = Environment::kbuild(&source.host, "x86", Probes::live())
        .and_then(|environment| Tree::load(&source.host, &environment));
    let tree = match tree {
        Ok(tree) => tree,
        Err(error) => return vec![format!("(kiln could not read the kernel's Kconfig: {error})")],
    };
    let (request, _) = DotConfig::parse(merged, Path::new("request"));
    let evaluated = tree.olddefconfig(&request);
    dropped
        .iter()
        .map(|mismatch| {
            let symbol = mismatch.symbol.trim_start_matches("CONFIG_");
            evaluated.explain(symbol, request.get(symbol)).to_string().trim_end().to_owned()
        })
        .collect()
}

/// Whether a line of kbuild's output reports compiling an object (`CC`, `CC [M]`, `AS`).
fn is_compile_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    matches!(words.next(), Some("CC" | "AS")) && line.trim_end().ends_with(".o")
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::is_compile_line;

    #[test]
    fn compile_lines_are_objects_compiled() {
        assert!(is_compile_line("  CC      init/main.o"));
        assert!(is_compile_line("  CC [M]  lib/crc-ccitt.o"));
        assert!(is_compile_line("  AS      arch/x86/entry/entry_64.o"));
        assert!(!is_compile_line("  HOSTCC  scripts/basic/fixdep"));
        assert!(is_compile_line("  CC [M]  lib/crc-ccitt.mod.o"));
        assert!(!is_compile_line("  LD [M]  lib/crc-ccitt.ko"));
        assert!(!is_compile_line("  CC      scripts/mod/empty.s"));
    }
}
