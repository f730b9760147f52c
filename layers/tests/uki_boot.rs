//! Boot proof: a UKI assembled from systemd-stub 254, the smoke kernel and the smoke initramfs
//! boots under QEMU + OVMF (TCG) and the initramfs's `/init` runs.
//!
//! Slow (a TCG boot), so it runs only when `KILN_UKI_BOOT=1` or `CI` is set; then QEMU, OVMF,
//! the stub and the fixtures must all be present.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kiln_layers::uki::{self, Section};

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const KERNEL: &str = "/work/fixtures/smoke-vmlinuz";
const INITRD: &str = "/work/fixtures/smoke-initramfs.zst";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const QEMU: &str = "qemu-system-x86_64";
const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn uki_boots_under_ovmf() {
    if std::env::var_os("KILN_UKI_BOOT").is_none_or(|v| v != "1") && std::env::var_os("CI").is_none() {
        eprintln!("skipped: set KILN_UKI_BOOT=1 to boot the UKI under QEMU (about a minute)");
        return;
    }
    for path in [STUB, KERNEL, INITRD, OVMF_CODE, OVMF_VARS] {
        assert!(
            Path::new(path).exists(),
            "{path} is required to boot the UKI (install systemd-boot-efi, ovmf)"
        );
    }
    assert!(
        Command::new(QEMU).arg("--version").output().is_ok_and(|o| o.status.success()),
        "{QEMU} is required to boot the UKI (install qemu-system-x86)"
    );

    let kernel = std::fs::read(KERNEL).unwrap();
    let release = uki::kernel_release(&kernel).unwrap();
    let initrd = std::fs::read(INITRD).unwrap();
    let sections = [
        Section { name: ".osrel", data: b"NAME=\"Talos\"\nID=talos\n" },
        Section { name: ".cmdline", data: b"console=ttyS0 panic=-1" },
        Section { name: ".uname", data: release.as_bytes() },
        Section { name: ".linux", data: &kernel },
        Section { name: ".initrd", data: &initrd },
    ];
    let image = uki::assemble(&std::fs::read(STUB).unwrap(), &sections, 1_700_000_000).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let esp = dir.path().join("esp");
    std::fs::create_dir_all(esp.join("EFI/BOOT")).unwrap();
    std::fs::write(esp.join("EFI/BOOT/BOOTX64.EFI"), &image).unwrap();
    let vars = dir.path().join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();

    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(["-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512"])
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,file={}", vars.display()))
        .arg("-drive")
        .arg(format!("format=raw,file=fat:rw:{}", esp.display()))
        .args(["-nographic", "-serial", "mon:stdio", "-no-reboot"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Console bytes arrive on a channel so that the wait can time out.
    let mut stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut console = Vec::new();
    let mut done = None;
    while start.elapsed() < TIMEOUT {
        match receiver.recv_timeout(Duration::from_millis(200)) {
            Ok(bytes) => console.extend(bytes),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if String::from_utf8_lossy(&console).lines().any(|l| l.contains("kiln-smoke: done")) {
            done = Some(start.elapsed());
            break;
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    let _ = reader.join();
    let console = String::from_utf8_lossy(&console).into_owned();
    let smoke: Vec<&str> = console.lines().filter(|l| l.contains("kiln-smoke:")).collect();
    let Some(elapsed) = done else {
        let tail: Vec<&str> = console.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        panic!(
            "no \"kiln-smoke: done\" within {TIMEOUT:?} (qemu {status}); kiln-smoke lines: {smoke:?}; console tail:\n{}",
            tail.join("\n")
        );
    };
    assert!(
        smoke.contains(&"kiln-smoke: booted: 6.12.117-kiln-smoke"),
        "the kernel from .linux booted: {smoke:?}"
    );
    assert!(
        smoke.contains(&"kiln-smoke: cmdline: console=ttyS0 panic=-1"),
        "the stub passed .cmdline: {smoke:?}"
    );
    eprintln!("UKI booted to \"kiln-smoke: done\" in {:.1} s:\n{}", elapsed.as_secs_f64(), smoke.join("\n"));
}
