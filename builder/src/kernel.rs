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
//!    without object files, for out-of-tree modules (which must see the source at [`SOURCE`]).

use std::fs;
use std::path::Path;

use kiln_kconfig::{check, merge};
use kiln_reproducible::Epoch;

use crate::error::{Error, Result};
use crate::recipe::{Kernel, Recipe};
use crate::sandbox::{self, Isolation, Spec};

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
    Ok(serde_json::json!({ "kernel": kernel, "base-config": base_config, "fragments": fragments }))
}

/// Builds the kernel into `spec.out`, logging to `log`.
pub(crate) fn build(
    recipe: &Recipe,
    kernel: &Kernel,
    isolation: &dyn Isolation,
    spec: &Spec,
    epoch: Epoch,
    log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<()> {
    let make = format!(
        "make -C {SOURCE} O={OBJ} KBUILD_BUILD_TIMESTAMP={} KBUILD_BUILD_USER=kiln KBUILD_BUILD_HOST=kiln \
         KBUILD_BUILD_VERSION=1 LOCALVERSION={}",
        epoch.to_rfc3339(),
        kernel.localversion
    );
    let obj = spec.build.join("obj");
    let dot_config = obj.join(".config");
    let (base_name, base_text) = match (&kernel.base_target, &kernel.base_config) {
        (Some(target), _) => {
            sandbox::run_logged(isolation, spec, &format!("{make} {target}"), log, on_line)?;
            (target.clone(), read(&dot_config)?)
        }
        (None, Some(file)) => (file.display().to_string(), read(&recipe.dir.join(file))?),
        (None, None) => return Err(Error::Sandbox { reason: "the kernel has no base configuration".into() }),
    };
    let fragments: Vec<merge::Input> = kernel
        .fragments
        .iter()
        .map(|file| {
            Ok(merge::Input { name: file.display().to_string(), text: read(&recipe.dir.join(file))? })
        })
        .collect::<Result<_>>()?;
    let merged = merge::merge(
        &merge::Input { name: base_name, text: base_text },
        &fragments,
        merge::Options::default(),
    );
    let mut text = String::new();
    for message in &merged.messages {
        on_line(message);
        text.push_str(message);
        text.push('\n');
    }
    let mut file = fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| Error::Write { path: log.to_owned(), source })?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(|source| Error::Write { path: log.to_owned(), source })?;
    fs::create_dir_all(&obj).map_err(|source| Error::Write { path: obj.clone(), source })?;
    fs::write(&dot_config, &merged.text)
        .map_err(|source| Error::Write { path: dot_config.clone(), source })?;
    sandbox::run_logged(isolation, spec, &format!("{make} olddefconfig"), log, on_line)?;
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
    sandbox::run_logged(isolation, spec, &script, log, on_line)
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })
}
