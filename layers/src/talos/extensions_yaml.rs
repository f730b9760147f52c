//! `/extensions.yaml`: the list of extension squashfs layers Talos's init mounts, in overlay
//! order (the last layer is the topmost).

use std::path::Path;

use serde::Deserialize;

use super::manifest::Metadata;
use super::{Error, Manifest, yaml};

/// One extension layer of the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The squashfs file name in the initramfs root, such as `0.sqsh` or `modules.dep.sqsh`.
    pub image: String,
    /// The extension's manifest metadata.
    pub metadata: Manifest,
}

/// /extensions.yaml as Talos's init reads it (§2.4): layers: [{image, metadata: {...}}].
///
/// Every metadata carries `compatibility.talos.version` (empty when the manifest has none), as
/// Talos's own writer does. No layers give `layers: []`.
pub fn extensions_yaml(layers: &[Layer]) -> String {
    if layers.is_empty() {
        return "layers: []\n".to_owned();
    }
    let mut out = String::new();
    yaml::key(&mut out, 0, "layers");
    for layer in layers {
        out.push_str("  - ");
        // The first key shares the line with the item marker; the rest align with it.
        out.push_str("image: ");
        out.push_str(&yaml::scalar(&layer.image));
        out.push('\n');
        yaml::key(&mut out, 4, "metadata");
        layer.metadata.write_metadata(&mut out, 6, true);
    }
    out
}

/// Parses an `/extensions.yaml`; errors name `path` and the line.
pub fn parse_extensions_yaml(text: &str, path: &Path) -> Result<Vec<Layer>, Error> {
    let config: Config = yaml::parse(text, path)?;
    config
        .layers
        .into_iter()
        .map(|layer| Ok(Layer { image: layer.image, metadata: layer.metadata.into_manifest(path)? }))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    layers: Vec<ConfigLayer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigLayer {
    image: String,
    metadata: Metadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<Layer> {
        vec![
            Layer {
                image: "0.sqsh".into(),
                metadata: Manifest {
                    name: "hello-world".into(),
                    version: "1.10".into(),
                    author: "kiln".into(),
                    description: "Says: hello".into(),
                    talos_version: Some(">= v1.10.0".into()),
                    extra_info: None,
                },
            },
            Layer {
                image: "modules.dep.sqsh".into(),
                metadata: Manifest {
                    name: "modules.dep".into(),
                    version: "6.12.63-talos".into(),
                    author: "Talos Machinery".into(),
                    description: "Combined modules.dep for all extensions".into(),
                    talos_version: None,
                    extra_info: Some("customization:\n  extraKernelArgs: [a]\n".into()),
                },
            },
        ]
    }

    const GOLDEN: &str = "layers:
  - image: 0.sqsh
    metadata:
      name: hello-world
      version: \"1.10\"
      author: kiln
      description: \"Says: hello\"
      compatibility:
        talos:
          version: \">= v1.10.0\"
  - image: modules.dep.sqsh
    metadata:
      name: modules.dep
      version: 6.12.63-talos
      author: Talos Machinery
      description: Combined modules.dep for all extensions
      compatibility:
        talos:
          version: \"\"
      extraInfo: \"customization:\\n  extraKernelArgs: [a]\\n\"
";

    #[test]
    fn golden() {
        assert_eq!(extensions_yaml(&layers()), GOLDEN);
    }

    #[test]
    fn parses_back() {
        let path = Path::new("/extensions.yaml");
        assert_eq!(parse_extensions_yaml(&extensions_yaml(&layers()), path).unwrap(), layers());
        assert_eq!(extensions_yaml(&[]), "layers: []\n");
        assert_eq!(parse_extensions_yaml(&extensions_yaml(&[]), path).unwrap(), []);
    }

    #[test]
    fn malformed_gives_a_line() {
        let error = parse_extensions_yaml(
            "layers:\n  - image: 0.sqsh\n    metadata: {name: a\n",
            Path::new("e.yaml"),
        )
        .unwrap_err();
        assert!(matches!(error, Error::Parse { line: Some(l), .. } if l >= 3), "{error}");
    }
}
