//! A UKI assembled from Debian's systemd-stub 254 is a PE image binutils reads as we wrote it.
//! The kernel and initramfs are stand-ins the test makes (a setup header naming a release, and
//! incompressible bytes); the smoke recipe's test boots a real one.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test on any unexpected error")]

use std::path::Path;
use std::process::Command;

use kiln_layers::uki::{self, Section};

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const RELEASE: &str = "6.12.117-kiln-smoke";

/// A stand-in bzImage: an x86 setup header ("HdrS") whose kernel_version pointer names a
/// release, padded to 3 MiB and a few bytes, so `.linux` spans several pages unevenly.
fn kernel() -> Vec<u8> {
    let mut image = vec![0u8; 3 * 1024 * 1024 + 123];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    let version_at = 0x400usize;
    let pointer = u16::try_from(version_at - 0x200).unwrap();
    image[0x20e..0x210].copy_from_slice(&pointer.to_le_bytes());
    let text = format!("{RELEASE} (kiln@kiln) #1 SMP\0");
    image[version_at..version_at + text.len()].copy_from_slice(text.as_bytes());
    image
}

/// The stub, kernel and initramfs; `None` (a skip) when the stub is missing outside CI.
#[expect(clippy::print_stderr, reason = "a skipped test must say why")]
fn inputs() -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    if !Path::new(STUB).exists() {
        assert!(std::env::var_os("CI").is_none(), "{STUB} is required for this test under CI");
        eprintln!("skipped: {STUB} is missing (Debian package systemd-boot-efi)");
        return None;
    }
    let initrd: Vec<u8> = (0..1_000_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    Some((std::fs::read(STUB).unwrap(), kernel(), initrd))
}

const OSREL: &[u8] = b"NAME=\"Talos\"\nID=talos\nVERSION_ID=v1.10.0\n";
const CMDLINE: &[u8] = b"console=ttyS0 panic=-1";

fn assemble(stub: &[u8], kernel: &[u8], initrd: &[u8]) -> Vec<u8> {
    let release = uki::kernel_release(kernel).unwrap();
    let sections = [
        Section { name: ".osrel", data: OSREL },
        Section { name: ".cmdline", data: CMDLINE },
        Section { name: ".uname", data: release.as_bytes() },
        Section { name: ".linux", data: kernel },
        Section { name: ".initrd", data: initrd },
    ];
    uki::assemble(stub, &sections, 1_700_000_000).unwrap()
}

#[test]
fn the_release_is_read_from_the_setup_header() {
    assert_eq!(uki::kernel_release(&kernel()).as_deref(), Some(RELEASE));
}

#[test]
fn sections_read_back_byte_identical() {
    let Some((stub, kernel, initrd)) = inputs() else { return };
    let image = assemble(&stub, &kernel, &initrd);
    let names: Vec<String> = uki::sections(&image).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            ".text", ".rodata", ".data", ".sdmagic", ".sbat", ".reloc", ".osrel", ".cmdline", ".uname",
            ".linux", ".initrd"
        ]
    );
    for (name, data) in
        [(".osrel", OSREL), (".cmdline", CMDLINE), (".linux", &kernel[..]), (".initrd", &initrd[..])]
    {
        assert!(uki::section(&image, name).unwrap() == Some(data), "{name} differs");
    }
    assert_eq!(uki::section(&image, ".uname").unwrap(), Some(&b"6.12.117-kiln-smoke"[..]));
    // The stub's own sections are carried over unchanged.
    for name in [".text", ".rodata", ".data", ".sdmagic", ".sbat", ".reloc"] {
        assert_eq!(uki::section(&image, name).unwrap(), uki::section(&stub, name).unwrap(), "{name}");
    }
    assert_eq!(assemble(&stub, &kernel, &initrd), image, "same inputs, same bytes");
}

#[test]
fn stub_alone_keeps_its_header_values() {
    let Some((stub, _, _)) = inputs() else { return };
    let image = uki::assemble(&stub, &[], 0).unwrap();
    let optional = |bytes: &[u8], offset: usize| {
        let at = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize + 24;
        bytes[at + offset..at + offset + 4].to_vec()
    };
    for (field, offset) in
        [("SizeOfCode", 4), ("SizeOfInitializedData", 8), ("SizeOfImage", 56), ("SizeOfHeaders", 60)]
    {
        assert_eq!(optional(&image, offset), optional(&stub, offset), "{field}");
    }
}

#[test]
fn objdump_lists_the_sections_in_order() {
    let Some((stub, kernel, initrd)) = inputs() else { return };
    if Command::new("objdump").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "objdump (binutils) is required for this test under CI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uki.efi");
    let image = assemble(&stub, &kernel, &initrd);
    std::fs::write(&path, &image).unwrap();
    let output = Command::new("objdump").arg("-h").arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("file format pei-x86-64"), "{text}");
    // "  6 .osrel        00000029  000000014dfa4000  000000014dfa4000  0000e800  2**2"
    let listed: Vec<(String, u64, u64, u64)> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let index_ok = fields.first().is_some_and(|f| f.parse::<u32>().is_ok());
            (index_ok && fields.len() >= 6).then(|| {
                let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
                (fields[1].to_owned(), hex(fields[2]), hex(fields[3]), hex(fields[5]))
            })
        })
        .collect();
    let image_base = {
        let at = u32::from_le_bytes(stub[0x3c..0x40].try_into().unwrap()) as usize + 24 + 24;
        u64::from_le_bytes(stub[at..at + 8].try_into().unwrap())
    };
    let expected: Vec<(String, u64, u64, u64)> = uki::sections(&image)
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.name,
                u64::from(s.virtual_size),
                image_base + u64::from(s.virtual_address),
                u64::from(s.raw_offset),
            )
        })
        .collect();
    assert_eq!(listed, expected);
    let linux = &listed[9];
    assert_eq!((linux.0.as_str(), linux.1), (".linux", kernel.len() as u64));
    assert_eq!(linux.2 % 4096, 0, ".linux is page aligned");
    assert_eq!(listed[6].2, image_base + 0x14000, "new sections start after the stub's image");
}

/// The stub's release, from its `.sdmagic`, is the version dpkg has for Debian's package, and
/// 254 does not read profiles; systemd-boot, not a stub, has none.
#[test]
fn the_stub_release_is_read_from_sdmagic() {
    let Some((stub, _, _)) = inputs() else { return };
    let version = uki::stub_version(&stub).unwrap().unwrap();
    let installed =
        Command::new("dpkg-query").args(["-W", "-f", "${Version}", "systemd-boot-efi"]).output().unwrap();
    assert_eq!(version.full, String::from_utf8(installed.stdout).unwrap());
    assert_eq!(version.major.to_string(), version.full.split('.').next().unwrap());
    assert_eq!(version.reads_profiles(), version.major >= uki::PROFILES_SINCE);
    let boot = std::fs::read("/usr/lib/systemd/boot/efi/systemd-bootx64.efi").unwrap();
    assert_eq!(uki::stub_version(&boot).unwrap(), None);
    // Assembled with no sections, the stub keeps its own .sdmagic.
    let bare = uki::assemble(&stub, &[], 0).unwrap();
    assert!(uki::stub_version(&bare).unwrap().is_some(), "assembling keeps the stub's own sections");
}
