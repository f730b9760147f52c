//! `kiln machine-config`: the Talos machine-config patch that installs a recipe's images.
//!
//! The patch pins `machine.install.image` to the installer image by digest, as it will be
//! pushed (`kiln push` names `NAME:TAG` of the layout `REGISTRY/PREFIX/NAME:TAG`), and carries
//! the recipe's `[machine-config]` kernel modules and sysctls. Talos 1.10 ignores
//! `machine.install.extensions` (extensions live in the installer image) and, under
//! systemd-boot, `machine.install.extraKernelArgs`: the kernel arguments are baked into the UKI,
//! so the patch lists them only in a comment.

use std::fmt::Write as _;

use kiln_layers::oci::layout::Layout;

use crate::error::{Error, Result};
use crate::recipe::Recipe;

/// What the patch is for.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// The layout the recipe was built into.
    pub layout: &'a std::path::Path,
    /// The installer image's `NAME:TAG` in it.
    pub image: &'a str,
    /// Where it is pushed: `REGISTRY/PREFIX`.
    pub registry: &'a str,
    /// The kernel arguments in the UKI, for the comment.
    pub cmdline: Option<&'a str>,
}

/// The patch as YAML text.
pub fn patch(recipe: &Recipe, options: &Options<'_>) -> Result<String> {
    let layout = Layout::open(options.layout)?;
    let descriptor = layout.find(options.image)?;
    let (name, tag) = options.image.split_once(':').unwrap_or((options.image, "latest"));
    let registry = options.registry.trim_end_matches('/');
    if registry.is_empty() || registry.contains(char::is_whitespace) || registry.contains('@') {
        return Err(Error::MachineConfig {
            reason: format!("{:?} is not REGISTRY/PREFIX", options.registry),
        });
    }
    let reference = format!("{registry}/{name}:{tag}@{}", descriptor.digest);
    let mut text = String::new();
    let _ =
        writeln!(text, "# Talos machine-config patch for recipe {:?}, written by kiln.", recipe.meta.name);
    let _ = writeln!(text, "# Apply: talosctl gen config … --config-patch @this-file, or talosctl patch mc.");
    let _ = writeln!(
        text,
        "# Extensions and kernel arguments are inside the installer image (Talos 1.10 ignores\n\
         # machine.install.extensions, and machine.install.extraKernelArgs under systemd-boot)."
    );
    if let Some(cmdline) = options.cmdline {
        let _ = writeln!(text, "# Kernel arguments in the UKI: {cmdline}");
    }
    text.push_str("machine:\n  install:\n");
    let _ = writeln!(text, "    image: {}", quote(&reference));
    let config = &recipe.machine_config;
    if !config.modules.is_empty() {
        text.push_str("  kernel:\n    modules:\n");
        for module in &config.modules {
            let _ = writeln!(text, "      - name: {}", quote(module));
        }
    }
    if !config.sysctls.is_empty() {
        text.push_str("  sysctls:\n");
        for (key, value) in &config.sysctls {
            let _ = writeln!(text, "    {key}: {}", quote(value));
        }
    }
    Ok(text)
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quote(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}
