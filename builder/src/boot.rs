//! `kiln boot`: a built image booted under QEMU, its serial console streamed, for a smoke check.
//!
//! An image holding `usr/install/amd64/vmlinuz.efi` (an installer) boots the way an installed
//! Talos node does: OVMF (UEFI) starts systemd-boot from an EFI system partition — a directory
//! QEMU presents as a FAT drive — which starts the UKI from `EFI/Linux/`. An image holding
//! `boot/vmlinuz` (a kernel image) boots directly, with an initramfs and command line given.
//!
//! The machine is q35 (PCI Express) with TCG (KVM on request), the memory split
//! evenly across NUMA nodes, optionally an igb network adapter behind a PCIe root port (its
//! SR-IOV virtual functions can be enabled from the guest), no network backend, and
//! `-no-reboot`: the guest powering off or rebooting ends the boot.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::talos::INSTALL_DIR;

/// OVMF firmware images tried when none is given (Debian's `ovmf` package).
const FIRMWARE: &[(&str, &str)] = &[
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
];

/// What to boot, and on what machine.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The OCI image layout.
    pub layout: PathBuf,
    /// The image's `NAME:TAG`; when `None`, the layout's only installer (or kernel) image.
    pub image: Option<String>,
    /// For a kernel image: the initramfs, a file or the `NAME:TAG` of an image holding one file.
    pub initrd: Option<String>,
    /// For a kernel image: the command line (a UKI carries its own).
    pub cmdline: String,
    /// For an installer image: the systemd-boot entry to start (`default` of loader.conf),
    /// e.g. `kiln.efi@reset-maintenance` for a profile of the UKI; the first entry when `None`.
    pub entry: Option<String>,
    /// Memory in MiB, split across the NUMA nodes.
    pub memory_mib: u32,
    /// CPUs, spread over the NUMA nodes.
    pub cpus: u32,
    /// NUMA nodes (1 for none).
    pub numa_nodes: u32,
    /// Add an igb adapter (SR-IOV capable) behind a PCIe root port.
    pub igb: bool,
    /// Use KVM instead of TCG (emulation works everywhere; KVM needs a usable /dev/kvm).
    pub kvm: bool,
    /// The boot is stopped after this long.
    pub timeout: Duration,
    /// The QEMU program.
    pub qemu: PathBuf,
    /// OVMF code and variables images; found in Debian's paths when `None`.
    pub firmware: Option<(PathBuf, PathBuf)>,
    /// A scratch directory (the extracted image, the EFI partition, the firmware variables).
    pub scratch: PathBuf,
}

/// What a console line asks of the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Stop the machine: what was waited for has been seen.
    Stop,
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The guest powered off or rebooted (QEMU exited by itself).
    PoweredOff,
    /// The console callback asked to stop.
    Stopped,
    /// The timeout passed.
    TimedOut,
}

/// What was booted and how it ended.
#[derive(Debug, Clone)]
pub struct Booted {
    /// The image booted.
    pub image: String,
    /// `uki` or `kernel`.
    pub mode: &'static str,
    /// How it ended.
    pub ended: Ended,
    /// Seconds from start to end.
    pub seconds: f64,
}

/// Boots the image and hands every console line to `on_line`.
pub fn boot(options: &BootOptions, on_line: &mut dyn FnMut(&str) -> Control) -> Result<Booted> {
    let (image, tree) = extract(options)?;
    let uki = tree.join(INSTALL_DIR).join("vmlinuz.efi");
    let mut command = Command::new(&options.qemu);
    machine(&mut command, options);
    let mode = if uki.is_file() {
        let esp = options.scratch.join("esp");
        let linux = esp.join("EFI/Linux");
        let boot = esp.join("EFI/BOOT");
        for dir in [&linux, &boot, &esp.join("loader")] {
            std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
        }
        copy(&uki, &linux.join("kiln.efi"))?;
        let systemd_boot = tree.join(INSTALL_DIR).join("systemd-boot.efi");
        if systemd_boot.is_file() {
            // As the Talos installer lays out an installed disk: systemd-boot, the UKI found in
            // EFI/Linux; no menu wait.
            copy(&systemd_boot, &boot.join("BOOTX64.EFI"))?;
            let default =
                options.entry.as_ref().map(|entry| format!("default {entry}\n")).unwrap_or_default();
            write(&esp.join("loader/loader.conf"), &format!("timeout 0\n{default}"))?;
        } else if let Some(entry) = &options.entry {
            return Err(boot_error(format!(
                "--entry {entry}: the image has no systemd-boot ({INSTALL_DIR}/systemd-boot.efi) to choose it"
            )));
        } else {
            copy(&uki, &boot.join("BOOTX64.EFI"))?;
        }
        let (code, vars) = firmware(options)?;
        let vars_copy = options.scratch.join("OVMF_VARS.fd");
        copy(&vars, &vars_copy)?;
        command
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,readonly=on,file={}", code.display()))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,file={}", vars_copy.display()))
            .arg("-drive")
            .arg(format!("format=raw,file=fat:rw:{}", esp.display()));
        "uki"
    } else if tree.join("boot/vmlinuz").is_file() {
        let initrd = match &options.initrd {
            Some(initrd) => initramfs(options, initrd)?,
            None => return Err(boot_error(format!("{image} is a kernel image: give --initrd"))),
        };
        command
            .arg("-kernel")
            .arg(tree.join("boot/vmlinuz"))
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(&options.cmdline);
        "kernel"
    } else {
        return Err(boot_error(format!(
            "{image} holds neither {INSTALL_DIR}/vmlinuz.efi (an installer) nor boot/vmlinuz (a kernel)"
        )));
    };
    let started = Instant::now();
    let ended = run(command, options, on_line)?;
    Ok(Booted { image, mode, ended, seconds: started.elapsed().as_secs_f64() })
}

fn machine(command: &mut Command, options: &BootOptions) {
    command
        .args(["-machine", "q35", "-accel", if options.kvm { "kvm" } else { "tcg" }, "-cpu", "max"])
        .args(["-smp", &options.cpus.to_string(), "-m", &format!("{}M", options.memory_mib)])
        .args(["-nographic", "-no-reboot", "-nic", "none"]);
    let nodes = options.numa_nodes.max(1);
    if nodes > 1 {
        let per_node = options.memory_mib / nodes;
        for node in 0..nodes {
            let cpus: Vec<String> =
                (0..options.cpus).filter(|cpu| cpu % nodes == node).map(|cpu| cpu.to_string()).collect();
            command.arg("-object").arg(format!("memory-backend-ram,id=mem{node},size={per_node}M"));
            let mut spec = format!("node,nodeid={node},memdev=mem{node}");
            if !cpus.is_empty() {
                spec.push_str(&format!(",cpus={}", cpus.join(",cpus=")));
            }
            command.arg("-numa").arg(spec);
        }
    }
    if options.igb {
        command.args(["-device", "pcie-root-port,id=kiln-rp0,chassis=1", "-device", "igb,bus=kiln-rp0"]);
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
}

fn run(
    mut command: Command,
    options: &BootOptions,
    on_line: &mut dyn FnMut(&str) -> Control,
) -> Result<Ended> {
    let program = options.qemu.display().to_string();
    let mut child = command.spawn().map_err(|source| Error::Qemu { program: program.clone(), source })?;
    let (sender, receiver) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let sender = sender.clone();
        readers.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                // The console's carriage returns and escape sequences are noise in a log.
                let text: String = text.trim_end().chars().filter(|c| !c.is_control()).collect();
                if sender.send(text).is_err() {
                    break;
                }
                line.clear();
            }
        }));
    }
    drop(sender);
    let deadline = Instant::now() + options.timeout;
    let ended = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => {
                if on_line(&line) == Control::Stop {
                    break Ended::Stopped;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break Ended::TimedOut,
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ended::PoweredOff,
        }
    };
    if ended != Ended::PoweredOff {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|source| Error::Qemu { program: program.clone(), source })?;
    for reader in readers {
        let _ = reader.join();
    }
    if ended == Ended::PoweredOff && !status.success() {
        return Err(boot_error(format!("{program} exited with {status}")));
    }
    Ok(ended)
}

/// The image's files, extracted into the scratch directory.
fn extract(options: &BootOptions) -> Result<(String, PathBuf)> {
    let layout = kiln_layers::oci::layout::Layout::open(&options.layout)?;
    let names: Vec<String> =
        layout.index().manifests.iter().filter_map(|d| d.ref_name().map(str::to_owned)).collect();
    let image = match &options.image {
        Some(image) => image.clone(),
        None => {
            let installers: Vec<&String> = names.iter().filter(|n| n.starts_with("installer:")).collect();
            match installers.as_slice() {
                [one] => (*one).clone(),
                _ => {
                    return Err(boot_error(format!(
                        "name the image to boot with --image (the layout has {})",
                        names.join(", ")
                    )));
                }
            }
        }
    };
    let tree = options.scratch.join("image");
    crate::extract::extract_image(&options.layout, &image, &tree)?;
    Ok((image, tree))
}

/// The initramfs: a file, or an image of the layout holding exactly one file.
fn initramfs(options: &BootOptions, initrd: &str) -> Result<PathBuf> {
    let path = PathBuf::from(initrd);
    if path.is_file() {
        return Ok(path);
    }
    let tree = options.scratch.join("initrd");
    crate::extract::extract_image(&options.layout, initrd, &tree)?;
    let files: Vec<PathBuf> = std::fs::read_dir(&tree)
        .map_err(|source| Error::Read { path: tree.clone(), source })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    match files.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(boot_error(format!("--initrd {initrd}: neither a file nor an image holding one file"))),
    }
}

fn firmware(options: &BootOptions) -> Result<(PathBuf, PathBuf)> {
    if let Some(pair) = &options.firmware {
        return Ok(pair.clone());
    }
    FIRMWARE
        .iter()
        .map(|(code, vars)| (PathBuf::from(code), PathBuf::from(vars)))
        .find(|(code, vars)| code.is_file() && vars.is_file())
        .ok_or_else(|| {
            boot_error("no OVMF firmware in /usr/share/OVMF (Debian package ovmf); give --firmware".into())
        })
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map(|_| ()).map_err(|source| Error::Write { path: to.to_owned(), source })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Write { path: path.to_owned(), source })
}

fn boot_error(reason: String) -> Error {
    Error::Boot { reason }
}
