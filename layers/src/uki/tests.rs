use sha2::{Digest, Sha256};

use super::*;

/// A minimal PE32+ EFI application: `.text` and `.data`, headers of one file-alignment unit
/// (0x200), so that appending sections must move the stub's data.
fn synthetic_stub() -> Vec<u8> {
    let mut image = vec![0u8; 0x600];
    image[..2].copy_from_slice(b"MZ");
    image[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    image[0x40..0x44].copy_from_slice(b"PE\0\0");
    let put16 = |image: &mut Vec<u8>, at: usize, v: u16| image[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |image: &mut Vec<u8>, at: usize, v: u32| image[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let file = 0x44;
    put16(&mut image, file, 0x8664);
    put16(&mut image, file + 2, 2);
    put32(&mut image, file + 4, 0x1234_5678);
    put16(&mut image, file + 16, 240);
    put16(&mut image, file + 18, 0x22e);
    let opt = file + 20;
    put16(&mut image, opt, 0x20b);
    image[opt + 2] = 2; // linker version, zeroed by assemble
    put32(&mut image, opt + 4, 0x10); // SizeOfCode
    put32(&mut image, opt + 8, 0x20); // SizeOfInitializedData
    put32(&mut image, opt + 16, 0x1000); // AddressOfEntryPoint
    put32(&mut image, opt + 20, 0x1000); // BaseOfCode
    image[opt + 24..opt + 32].copy_from_slice(&0x1_4000_0000u64.to_le_bytes());
    put32(&mut image, opt + 32, 0x1000);
    put32(&mut image, opt + 36, 0x200);
    put32(&mut image, opt + 56, 0x3000); // SizeOfImage
    put32(&mut image, opt + 60, 0x200); // SizeOfHeaders
    put32(&mut image, opt + 64, 0xdead); // CheckSum, zeroed by assemble
    put16(&mut image, opt + 68, 10);
    put32(&mut image, opt + 108, 16);
    let table = opt + 240;
    for (i, (name, va, size, raw, flags)) in
        [(b".text", 0x1000, 0x10, 0x200, 0x6000_0020u32), (b".data", 0x2000, 0x20, 0x400, 0xc000_0040)]
            .into_iter()
            .enumerate()
    {
        let at = table + 40 * i;
        image[at..at + 5].copy_from_slice(name);
        put32(&mut image, at + 8, size);
        put32(&mut image, at + 12, va);
        put32(&mut image, at + 16, 0x200);
        put32(&mut image, at + 20, raw);
        put32(&mut image, at + 36, flags);
        image[raw as usize..raw as usize + size as usize].fill(0xc3 + i as u8);
    }
    image
}

const LINUX: &[u8] = b"MZ kernel bytes";

fn assembled() -> Vec<u8> {
    let sections = [
        Section { name: ".osrel", data: b"ID=talos\n" },
        Section { name: ".cmdline", data: b"console=ttyS0" },
        Section { name: ".linux", data: LINUX },
    ];
    assemble(&synthetic_stub(), &sections, 1_700_000_000).unwrap()
}

#[test]
fn golden_image_from_a_synthetic_stub() {
    let image = assembled();
    assert_eq!(image.len(), 0x400 + 5 * 0x200);
    assert_eq!(
        hex::encode(Sha256::digest(&image)),
        "9aecf767ea1ab9edc8a412786db04edef150c237f71a4e293971fb9325d6b0cc"
    );
}

#[test]
fn headers_follow_the_native_layout() {
    let stub = synthetic_stub();
    let image = assembled();
    assert_eq!(image[..0x3c], stub[..0x3c]);
    assert_eq!(pe::le32(&image, 0x3c), 0x80);
    assert!(image[0x40..0x80].iter().all(|&b| b == 0));
    assert_eq!(&image[0x80..0x84], b"PE\0\0");
    let file = 0x84;
    assert_eq!(pe::le16(&image, file + 2), 5);
    assert_eq!(pe::le32(&image, file + 4), 1_700_000_000);
    let opt = file + 20;
    assert_eq!(image[opt + 2..opt + 4], [0, 0], "linker version");
    assert_eq!(pe::le32(&image, opt + 4), 0x10, "SizeOfCode");
    assert_eq!(pe::le32(&image, opt + 8), 0x20 + 9 + 13 + LINUX.len() as u32, "SizeOfInitializedData");
    assert_eq!(pe::le32(&image, opt + 56), 0x6000, "SizeOfImage");
    assert_eq!(pe::le32(&image, opt + 60), 0x400, "SizeOfHeaders grew from 0x200");
    assert_eq!(pe::le32(&image, opt + 64), 0, "CheckSum");
    assert_eq!(image[opt + 16..opt + 56], stub[0x58 + 16..0x58 + 56], "the rest is the stub's");
}

#[test]
fn sections_read_back() {
    let image = assembled();
    let table = sections(&image).unwrap();
    let summary: Vec<(&str, u32, u32, u32, u32)> = table
        .iter()
        .map(|s| (s.name.as_str(), s.virtual_address, s.virtual_size, s.raw_offset, s.raw_size))
        .collect();
    assert_eq!(
        summary,
        [
            (".text", 0x1000, 0x10, 0x400, 0x200),
            (".data", 0x2000, 0x20, 0x600, 0x200),
            (".osrel", 0x3000, 9, 0x800, 0x200),
            (".cmdline", 0x4000, 13, 0xa00, 0x200),
            (".linux", 0x5000, LINUX.len() as u32, 0xc00, 0x200),
        ]
    );
    assert_eq!(section(&image, ".linux").unwrap(), Some(LINUX));
    assert_eq!(section(&image, ".cmdline").unwrap(), Some(&b"console=ttyS0"[..]));
    assert_eq!(section(&image, ".text").unwrap(), Some(&[0xc3; 0x10][..]), "stub data moved intact");
    assert_eq!(section(&image, ".initrd").unwrap(), None);
}

#[test]
fn no_sections_keeps_the_stubs_sizes() {
    let stub = synthetic_stub();
    let image = assemble(&stub, &[], 0).unwrap();
    assert_eq!(image[0x98 + 4..0x98 + 12], stub[0x58 + 4..0x58 + 12], "SizeOfCode, SizeOfInitializedData");
    assert_eq!(pe::le32(&image, 0x98 + 56), 0x3000);
}

#[test]
fn empty_sections_get_an_address_of_their_own() {
    let sections = [Section { name: ".cmdline", data: b"" }, Section { name: ".uname", data: b"6.12" }];
    let image = assemble(&synthetic_stub(), &sections, 0).unwrap();
    let table = super::sections(&image).unwrap();
    assert_eq!((table[2].virtual_address, table[2].raw_size, table[2].raw_offset), (0x3000, 0, 0));
    assert_eq!(table[3].virtual_address, 0x4000);
    assert_eq!(section(&image, ".cmdline").unwrap(), Some(&b""[..]));
}

fn unsupported(stub: &[u8]) -> String {
    match assemble(stub, &[], 0) {
        Err(Error::UnsupportedStub { reason }) => reason,
        other => panic!("expected an unsupported-stub error, got {other:?}"),
    }
}

#[test]
fn stubs_that_cannot_be_extended() {
    let stub = synthetic_stub();
    assert!(
        matches!(assemble(&stub[..0x160], &[], 0), Err(Error::Truncated { ref what, .. }) if what == "section table")
    );
    assert!(
        matches!(assemble(&stub[..0x500], &[], 0), Err(Error::Truncated { ref what, .. }) if what == "section .data")
    );
    assert!(matches!(assemble(b"#!/bin/sh\n", &[], 0), Err(Error::Truncated { .. })));
    assert!(matches!(assemble(&[0; 0x80], &[], 0), Err(Error::NotPe { .. })));

    let mut signed = stub.clone();
    signed[0x58 + 112 + 8 * 4 + 4] = 0x10;
    assert!(unsupported(&signed).contains("signed"));
    let mut symbols = stub.clone();
    symbols[0x44 + 12] = 1;
    assert!(unsupported(&symbols).contains("symbol table"));
    let mut arm = stub.clone();
    arm[0x44..0x46].copy_from_slice(&0xaa64u16.to_le_bytes());
    assert!(unsupported(&arm).contains("not x86-64"));
    let mut pe32 = stub.clone();
    pe32[0x58] = 0x0b;
    pe32[0x59] = 0x01;
    assert!(unsupported(&pe32).contains("not PE32+"));
    let mut driver = stub;
    driver[0x58 + 68] = 11;
    assert!(unsupported(&driver).contains("not an EFI application"));
}

#[test]
fn section_names_must_fit() {
    let long = [Section { name: ".initrd.zst", data: b"x" }];
    let error = assemble(&synthetic_stub(), &long, 0).unwrap_err();
    assert!(matches!(error, Error::InvalidSectionName { .. }), "{error:?}");
    assert!(error.to_string().contains(".initrd.zst"));
    let empty = [Section { name: "", data: b"x" }];
    assert!(matches!(assemble(&synthetic_stub(), &empty, 0), Err(Error::InvalidSectionName { .. })));
}

#[test]
fn too_many_sections_for_the_header_space() {
    let names: Vec<String> = (0..100).map(|i| format!(".s{i}")).collect();
    let sections: Vec<Section<'_>> = names.iter().map(|name| Section { name, data: b"x" }).collect();
    let error = assemble(&synthetic_stub(), &sections, 0).unwrap_err();
    assert!(error.to_string().contains("overlap the first section"), "{error}");
}

#[test]
fn kernel_release_from_the_setup_header() {
    let mut bzimage = vec![0u8; 0x400];
    bzimage[0x202..0x206].copy_from_slice(b"HdrS");
    bzimage[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    bzimage[0x300..0x31f].copy_from_slice(b"6.12.63-talos (builder@kiln) #1");
    assert_eq!(kernel_release(&bzimage).as_deref(), Some("6.12.63-talos"));
    bzimage[0x20e] = 0xff;
    assert_eq!(kernel_release(&bzimage), None, "pointer past the end");
    bzimage[0x202] = b'X';
    assert_eq!(kernel_release(&bzimage), None, "no HdrS");
    assert_eq!(kernel_release(b"MZ"), None);
}

mod mutations {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn corrupt_images_never_panic(flips in proptest::collection::vec((0usize..0x1000, any::<u8>()), 1..8), cut in 0usize..0x1000) {
            let mut image = assembled();
            for (at, value) in flips {
                image[at % 0x800] = value;
            }
            image.truncate(cut.max(1));
            let _ = sections(&image);
            let _ = section(&image, ".linux");
            let _ = assemble(&image, &[Section { name: ".initrd", data: b"x" }], 0);
            let _ = kernel_release(&image);
        }
    }
}
