//! [`kernel_release`]: the release string in an x86 bzImage's setup header.

/// Offset of the setup header's `HdrS` magic.
const MAGIC_AT: usize = 0x202;
/// Offset of `kernel_version`: a pointer into the setup code, relative to 0x200.
const VERSION_POINTER_AT: usize = 0x20e;
/// Longest release string accepted.
const MAX_RELEASE: usize = 256;

/// The kernel release string from an x86 bzImage's setup header (`HdrS` at 0x202;
/// `kernel_version` pointer at 0x20e, + 0x200), up to the first space/NUL; `None` when absent.
pub fn kernel_release(bzimage: &[u8]) -> Option<String> {
    if bzimage.get(MAGIC_AT..MAGIC_AT + 4)? != b"HdrS" {
        return None;
    }
    let pointer = bzimage.get(VERSION_POINTER_AT..VERSION_POINTER_AT + 2)?;
    let pointer = usize::from(u16::from_le_bytes([pointer[0], pointer[1]]));
    if pointer == 0 {
        return None;
    }
    let text = bzimage.get(pointer + 0x200..)?;
    let release: Vec<u8> =
        text.iter().take(MAX_RELEASE).take_while(|&&b| b != 0 && b != b' ').copied().collect();
    if release.is_empty() || !release.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    String::from_utf8(release).ok()
}
