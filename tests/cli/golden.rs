//! Golden digests: the fixture tree packed with a fixed epoch must give these exact bytes for
//! every output format. A change here is a change of kiln's output format (or of a pinned
//! compressor) and must be deliberate; the failure message prints the new values.

use crate::support;

const EPOCH: &str = "1700000000";

/// diff_id: the uncompressed tar stream (the same for every compression).
const TAR: &str = "sha256:6770da05f431b4c949d9f3860492ffecbb9c4d5c48c7e6ace7c42a55a5549bec";
const GZIP_LAYER: &str = "sha256:216ed826e3bd8614b885a5ea87d50f2e1297b435d91d36ec4ffa84c93ea475e6";
const ZSTD_LAYER: &str = "sha256:d641da0fb97ec1854ae3bddb60aaa232f6ac888b905c0c07cc25e7220b17ca3e";
const GZIP_MANIFEST: &str = "sha256:596ca315f78e1a2949d04dc8fd47a32b7af90fe410733fc0f150a6121350af5a";
const ZSTD_MANIFEST: &str = "sha256:0ea6d99422a2ea1424d8df30529e45e3cb5c73edbff6395441b4a6f542623e17";
const NONE_MANIFEST: &str = "sha256:093c4854746049d4f58146e06b42041c6a22b636bff5838e5927699e574ca5c8";
/// `index.json` of a layout holding all three images.
const INDEX: &str = "sha256:d8dae8c4d085aefd5994e4e7385170ab03209523962c088f84a53ecd11572ddb";

#[test]
fn every_format_matches_its_golden_digest() {
    let (work, tree) = support::fixture();
    let out = work.path().join("out");
    let mut actual = Vec::new();
    for (compression, reference) in
        [("gzip", "golden:gzip"), ("zstd", "golden:zstd"), ("none", "golden:none")]
    {
        let stdout = support::ok(
            support::kiln()
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .arg("pack")
                .arg(&tree)
                .args(["--ref", reference, "--compression", compression, "--out"])
                .arg(&out),
        );
        let manifest = support::manifest_digest(&out, reference);
        assert_eq!(stdout.trim(), format!("{reference} {manifest}"));
        let (layer, _, diff_id) = support::layer_of(&out, reference);
        actual.push((compression, manifest, layer, diff_id));
    }
    let index = support::sha256_file(&out.join("index.json"));
    let report = format!("{actual:#?}\nindex.json {index}");

    // The uncompressed layer is its own diff_id, and all three share it.
    let (_, _, none_layer, none_diff_id) = &actual[2];
    assert_eq!(none_layer, none_diff_id, "{report}");
    for (_, _, _, diff_id) in &actual {
        assert_eq!(diff_id, TAR, "{report}");
    }
    assert_eq!((actual[0].1.as_str(), actual[0].2.as_str()), (GZIP_MANIFEST, GZIP_LAYER), "{report}");
    assert_eq!((actual[1].1.as_str(), actual[1].2.as_str()), (ZSTD_MANIFEST, ZSTD_LAYER), "{report}");
    assert_eq!(actual[2].1, NONE_MANIFEST, "{report}");
    assert_eq!(index, INDEX, "{report}");
}
