//! What a registry or a layout names, parsed: references, targets, repository names, tags,
//! digests, and documents (manifests, indexes, configs) as a registry serves them. Each must be
//! accepted or refused, never panic; a name the distribution grammar accepts never holds what
//! would change a URL (`..`, `/` at an end, `%`, `?`, `#`).

#![no_main]

use kiln_layers::digest::Digest;
use kiln_layers::oci::reference::{self, Reference};
use kiln_layers::oci::spec::{ImageConfig, Index, Manifest};
use kiln_registry::reference::{ImageRef, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Index>(data);
    let _ = serde_json::from_slice::<Manifest>(data);
    let _ = serde_json::from_slice::<ImageConfig>(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = text.parse::<Digest>();
    let _ = text.parse::<Reference>();
    let _ = text.parse::<Target>();
    if let Ok(image) = text.parse::<ImageRef>() {
        assert!(reference::check_name(&image.repository).is_ok());
    }
    if reference::check_name(text).is_ok() {
        let leaves = text.split('/').any(|c| c == ".." || c == "." || c.is_empty());
        assert!(!leaves && !text.contains(['%', '?', '#', ':', '@']), "{text:?} passed the name grammar");
    }
    if reference::check_tag(text).is_ok() {
        assert!(
            !text.contains(['/', '%', '?', '#']) && !text.starts_with('.'),
            "{text:?} passed the tag grammar"
        );
    }
});
