//! `kiln inspect` shows every image of a layout; packing a name again replaces that image.

use serde_json::Value;

use crate::support;

#[test]
fn lists_images_layers_and_replaces_by_name() {
    let (work, tree) = support::fixture();
    let out = work.path().join("out");
    support::pack(&tree, &out, "b:zstd", &["--compression", "zstd"]);
    let first_gzip = support::pack(&tree, &out, "a:gzip", &[]);
    std::fs::write(tree.join("etc/hostname"), "changed\n").unwrap();
    let gzip = support::pack(&tree, &out, "a:gzip", &[]);
    assert_ne!(gzip, first_gzip);

    let json: Value =
        serde_json::from_str(&support::ok(support::kiln().args(["inspect", "--json"]).arg(&out))).unwrap();
    let images = json["images"].as_array().unwrap();
    let names: Vec<&str> = images.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a:gzip", "b:zstd"], "sorted by name, the replaced image gone");
    for image in images {
        let name = image["name"].as_str().unwrap();
        assert_eq!(image["digest"], support::manifest_digest(&out, name).as_str());
        assert_eq!(image["kind"], "image");
        assert_eq!(image["platform"], "linux/amd64");
        let (layer, media_type, diff_id) = support::layer_of(&out, name);
        assert_eq!(image["layers"][0]["digest"], layer.as_str());
        assert_eq!(image["layers"][0]["media_type"], media_type.as_str());
        assert_eq!(image["layers"][0]["diff_id"], diff_id.as_str());
        let size = std::fs::metadata(support::blob_path(&out, &layer)).unwrap().len();
        assert_eq!(image["layers"][0]["size"], size);
    }

    let text = support::ok(support::kiln().arg("inspect").arg(&out));
    assert!(text.starts_with(&format!("{} (2 entries)\n", out.display())), "{text}");
    assert!(text.contains(&format!("a:gzip  {gzip}  linux/amd64")), "{text}");
    assert!(text.contains("tar+zstd"), "{text}");
}
