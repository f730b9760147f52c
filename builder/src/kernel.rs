//! The kernel step: configure and build Linux in the sandbox, make sure the configuration the
//! recipe asks for stuck, and lay out what the kernel image and out-of-tree modules need.
//!
//! The source tree is read-only at [`SOURCE`]; the build is out of tree in [`OBJ`]. Steps, in
//! one sandbox after another over the same `/build`:
//!
//! 1. the base: `make BASE-TARGET`, or the recipe's base file, or a source's (`base-source`:
//!    a distribution's configuration, pinned like any source), as `.config`;
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

use kiln_kconfig::{DotConfig, Environment, Tree, check, merge};
use kiln_modules::depmod;
use sha2::{Digest as _, Sha256};

use crate::build::StepContext;
use crate::error::{Error, Result};
use crate::recipe::{Kernel, Recipe};
use crate::sandbox::Spec;
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
    let mut section = serde_json::json!({
        "source": kernel.source,
        "base-target": kernel.base_target,
        "base-config": kernel.base_config,
        "fragments": kernel.fragments,
        "localversion": kernel.localversion,
    });
    // Named only where given, so the keys of kernels without it stay what they were; the
    // source's content is in the step's inputs.
    if let Some(reference) = &kernel.base_source {
        section["base-source"] = serde_json::Value::from(reference.as_str());
    }
    let kernel = section;
    Ok(serde_json::json!({
        "kernel": kernel,
        "base-config": base_config,
        "fragments": fragments,
        "signing": signing,
    }))
}

/// How the configuration phase treats the module signing key.
pub(crate) enum Signing {
    /// Load the recipe's key and place its certificate for the compile.
    Load,
    /// Configure as the build would, without the key (which `kiln check` need not have).
    ConfigOnly,
}

/// A configured kernel: its final `.config`, and the signing key when one was loaded.
pub(crate) struct Configured {
    pub(crate) final_config: String,
    pub(crate) key: Option<signing::Key>,
}

/// The `make` command line every phase runs, with the reproducibility variables.
fn make_command(kernel: &Kernel, context: &StepContext<'_>) -> String {
    format!(
        "make -C {SOURCE} O={OBJ} KBUILD_BUILD_TIMESTAMP={} KBUILD_BUILD_USER=kiln KBUILD_BUILD_HOST=kiln \
         KBUILD_BUILD_VERSION=1 LOCALVERSION={}",
        context.epoch.to_rfc3339(),
        kernel.localversion
    )
}

/// Steps 1–4: the base, the fragments merged onto it, `make olddefconfig`, and every requested
/// value checked against the result (a value that did not stick is [`Error::KernelConfig`],
/// each explained).
pub(crate) fn configure(
    recipe: &Recipe,
    kernel: &Kernel,
    context: &StepContext<'_>,
    signing_key: Signing,
) -> Result<Configured> {
    let make = make_command(kernel, context);
    // /build is the step's: what the kernel's make left there is read and written beneath it,
    // never through a link it made.
    let build = &context.spec.build;
    let dot_config = Path::new("obj/.config");
    let (base_name, base_text) = match (&kernel.base_target, &kernel.base_config) {
        (Some(target), _) => {
            context.run(&format!("{make} {target}"))?;
            (target.clone(), crate::beneath::read_to_string(build, dot_config)?)
        }
        (None, Some(file)) => (file.display().to_string(), read(&recipe.dir.join(file))?),
        (None, None) => match &kernel.base_source {
            Some(reference) => (reference.clone(), read(&context.input_path(reference)?)?),
            None => return Err(Error::Sandbox { reason: "the kernel has no base configuration".into() }),
        },
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
    let mut key = None;
    if let Some(source) = KeySource::of(recipe, kernel)
        && signing::signs_modules(&requested.text)
    {
        if let Signing::Load = signing_key {
            let scratch = context.spec.build.parent().unwrap_or(&context.spec.build);
            let loaded = source.load(scratch)?;
            loaded.place_certificate(&context.spec.build)?;
            key = Some(loaded);
        }
        fragments
            .push(merge::Input { name: "kiln (module signing)".into(), text: signing::config_fragment() });
    }
    let merged = merge::merge(&base, &fragments, merge::Options::default());
    context.note(&merged.messages)?;
    crate::beneath::write(build, dot_config, merged.text.as_bytes())?;
    context.run(&format!("{make} olddefconfig"))?;
    let final_config = crate::beneath::read_to_string(build, dot_config)?;
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
    Ok(Configured { final_config, key })
}

/// Builds the kernel into the step's `/out`.
pub(crate) fn build(recipe: &Recipe, kernel: &Kernel, context: &StepContext<'_>) -> Result<()> {
    let make = make_command(kernel, context);
    let Configured { final_config, key } = configure(recipe, kernel, context, Signing::Load)?;
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
    let built = Output::at(out);
    let release = built.release()?;
    // kiln signs and indexes the modules in place: their directory is one reached through no
    // link, and nothing below it is followed.
    let module_dir = built.module_dir(&release)?.ok_or_else(|| Error::Read {
        path: out.join("image/usr/lib/modules").join(&release),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "the kernel installed no modules"),
    })?;
    if let Some(key) = &key {
        let signed = key.sign_tree(&module_dir, &final_config)?;
        context.note(&[format!("signed {signed} modules")])?;
    }
    // The indexes kmod (and busybox) read, from kiln's depmod, checked against the kernel's
    // exported symbols.
    let indexed = depmod::depmod(&depmod::Options {
        basedir: crate::beneath::path(out, Path::new("image"))?,
        release,
        moduledir: Some(PathBuf::from("/usr/lib/modules")),
        config: Vec::new(),
        symvers: Some(crate::beneath::path(out, Path::new("build/Module.symvers"))?),
        follow_links: false,
    })?;
    let mut notes = vec![format!("depmod: indexed {} modules", indexed.modules.len())];
    notes.extend(indexed.warnings.iter().map(|warning| format!("depmod: {warning}")));
    context.note(&notes)?;
    Ok(())
}

/// What the kernel step left in its output, read beneath it: the kernel's own make wrote it,
/// so no path into it is taken through a link, and a link in it is never followed.
pub(crate) struct Output<'a> {
    dir: &'a Path,
}

impl<'a> Output<'a> {
    /// The kernel step's output at `dir` (a directory kiln made).
    pub(crate) fn at(dir: &'a Path) -> Output<'a> {
        Output { dir }
    }

    /// The release (`kernelrelease`). It names paths kiln writes, so it must be one plain file
    /// name (what `make kernelrelease` prints), whoever made the output.
    pub(crate) fn release(&self) -> Result<String> {
        let text = crate::beneath::read_to_string(self.dir, Path::new("kernelrelease"))?;
        let release = text.trim();
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '~');
        if release.is_empty() || release.len() > 64 || release.starts_with('.') || !release.chars().all(plain)
        {
            let shown: String = release.chars().take(64).collect();
            let reason =
                format!("{shown:?} is not a kernel release (one name of [A-Za-z0-9._+~-], at most 64)");
            return Err(Error::Read {
                path: self.dir.join("kernelrelease"),
                source: std::io::Error::other(reason),
            });
        }
        Ok(release.to_owned())
    }

    /// The final configuration (`image/boot/config`).
    pub(crate) fn config(&self) -> Result<String> {
        Ok(crate::beneath::read_to_string(self.dir, Path::new("image/boot/config"))?)
    }

    /// The kernel's exported symbols (`build/Module.symvers`).
    pub(crate) fn symvers(&self) -> Result<kiln_modules::symvers::Symvers> {
        let relative = Path::new("build/Module.symvers");
        let text = crate::beneath::read_to_string(self.dir, relative)?;
        Ok(kiln_modules::symvers::Symvers::parse(&text, &self.dir.join(relative))?)
    }

    /// The kernel image (`image/boot/vmlinuz`).
    pub(crate) fn image(&self) -> Result<Vec<u8>> {
        Ok(crate::beneath::read(self.dir, Path::new("image/boot/vmlinuz"))?)
    }

    /// The module directory (`image/usr/lib/modules/<release>`), if the kernel has modules.
    pub(crate) fn module_dir(&self, release: &str) -> Result<Option<PathBuf>> {
        match crate::beneath::path(self.dir, &Path::new("image/usr/lib/modules").join(release)) {
            Ok(dir) => Ok(Some(dir)),
            Err(crate::beneath::Error::Open { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Every module of the kernel, read.
    pub(crate) fn modules(&self, release: &str) -> Result<Vec<kiln_modules::module::Module>> {
        let Some(dir) = self.module_dir(release)? else { return Ok(Vec::new()) };
        signing::modules_under(&dir)?
            .iter()
            .map(|path| Ok(kiln_modules::module::Module::read(path)?))
            .collect()
    }
}

/// Why each dropped value did not stick, from kiln's own Kconfig evaluation of the merged
/// request (the same answer `make olddefconfig` gave, which the kconfig tests hold it to). The
/// source's Kconfig is untrusted: its `$(shell,…)` commands run in the step's sandbox with the
/// step's environment, as its `make` ran them, and `source` reaches no file outside the tree.
fn explain(context: &StepContext<'_>, merged: &str, dropped: &[check::Mismatch]) -> Vec<String> {
    let Some(source) = context.spec.inputs.iter().find(|input| input.path == SOURCE) else {
        return Vec::new();
    };
    let scratch = context.spec.build.parent().unwrap_or(&context.spec.build).join("probes");
    let probe_spec = Spec { inputs: vec![source.clone()], ..context.spec.clone() };
    crate::probes::in_sandbox(context.isolation, &probe_spec, &scratch, |probes| {
        // No ARCH, as the build passes none: make derives x86 on an x86_64 host.
        let tree = Environment::kbuild_in(
            &source.host,
            Path::new(SOURCE),
            context.spec.environment(),
            "x86",
            probes,
        )
        .and_then(|environment| Tree::load(&source.host, &environment.confined()));
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
    })
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
