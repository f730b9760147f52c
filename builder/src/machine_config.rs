//! `kiln machine-config`: the Talos machine-config patch that installs a recipe's images.
//!
//! The patch pins `machine.install.image` to the installer image by digest, as it will be
//! pushed (`kiln push` names `NAME:TAG` of the layout `REGISTRY/PREFIX/NAME:TAG`), and carries
//! the recipe's `[machine-config]` kernel modules, sysctls and kubelet settings
//! (`machine.kubelet.extraConfig`). Talos 1.10 ignores
//! `machine.install.extensions` (extensions live in the installer image).
//!
//! Kernel arguments take two paths on a node (Talos v1.10.3, `cmd/installer/pkg/install`
//! `Install`): under systemd-boot (UEFI installs from 1.10 on) the UKI's `.cmdline` is the
//! command line and `machine.install.extraKernelArgs` is ignored; under GRUB (a BIOS node, or one
//! first installed with GRUB) the installer writes the command line from the platform's
//! arguments, Talos's defaults and `extraKernelArgs`. So the patch lists the recipe's own
//! arguments (`[talos] cmdline`, else `[kernel] cmdline`) as `extraKernelArgs` too: a GRUB node
//! boots with the same huge pages and tuning as a systemd-boot one.

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
    /// `machine.install.disk`, when the user gives it.
    pub install_disk: Option<&'a str>,
    /// `machine.type` (`controlplane` or `worker`), when the user gives it.
    pub machine_type: Option<&'a str>,
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
    if let Some(disk) = options.install_disk
        && (!disk.starts_with("/dev/") || disk.contains(char::is_whitespace))
    {
        return Err(Error::MachineConfig { reason: format!("install disk {disk:?} is not a /dev/… path") });
    }
    if let Some(kind) = options.machine_type
        && !matches!(kind, "controlplane" | "worker")
    {
        return Err(Error::MachineConfig {
            reason: format!("machine type {kind:?} is neither controlplane nor worker"),
        });
    }
    let extra = recipe
        .talos
        .as_ref()
        .and_then(|talos| talos.cmdline.as_deref())
        .or(recipe.kernel.as_ref().and_then(|kernel| kernel.cmdline.as_deref()))
        .unwrap_or_default();
    let mut text = String::new();
    let _ =
        writeln!(text, "# Talos machine-config patch for recipe {:?}, written by kiln.", recipe.meta.name);
    let _ = writeln!(text, "# Apply: talosctl gen config … --config-patch @this-file, or talosctl patch mc.");
    let _ = writeln!(
        text,
        "# Extensions are inside the installer image (Talos 1.10 ignores machine.install.extensions)."
    );
    if let Some(talos) = &recipe.talos {
        let _ = writeln!(
            text,
            "# Kernel arguments: systemd-boot boots the UKI's, {:?};\n\
             # GRUB (BIOS, or a node first installed with GRUB) builds its own from the platform,\n\
             # Talos's defaults and extraKernelArgs below.",
            crate::talos::cmdline(talos.platform.as_deref(), extra)
        );
    }
    text.push_str("machine:\n");
    if let Some(kind) = options.machine_type {
        let _ = writeln!(text, "  type: {kind}");
    }
    text.push_str("  install:\n");
    if let Some(disk) = options.install_disk {
        let _ = writeln!(text, "    disk: {}", quote(disk));
    }
    let _ = writeln!(text, "    image: {}", quote(&reference));
    let arguments: Vec<&str> = extra.split_whitespace().collect();
    if !arguments.is_empty() {
        text.push_str("    extraKernelArgs:\n");
        for argument in arguments {
            let _ = writeln!(text, "      - {}", quote(argument));
        }
    }
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
    let kubelet = config.kubelet.extra_config();
    if !kubelet.is_empty() {
        text.push_str("  kubelet:\n    extraConfig:\n");
        for (key, value) in kubelet {
            let _ = writeln!(text, "      {key}: {}", quote(value));
        }
    }
    Ok(text)
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quote(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}
