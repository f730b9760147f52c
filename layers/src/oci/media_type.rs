//! Media types from the OCI image specification (and the Docker ones kiln can read).

/// `application/vnd.oci.image.index.v1+json`
pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`
pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar`
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// `application/vnd.oci.image.layer.v1.tar+gzip`
pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// `application/vnd.oci.image.layer.v1.tar+zstd`
pub const LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// `application/vnd.oci.empty.v1+json`: the config of an artifact manifest, the bytes `{}`.
pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// `application/spdx+json`: an SPDX 2.3 JSON document (an SBOM), as artifact and layer type.
pub const SPDX_JSON: &str = "application/spdx+json";
/// `application/vnd.in-toto+json`: an in-toto Statement (provenance), as artifact and layer type.
pub const IN_TOTO_JSON: &str = "application/vnd.in-toto+json";
/// Docker's manifest list, read as an index.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest, read as a manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker's gzip layer.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Whether a descriptor of this media type points at an image index.
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, IMAGE_INDEX | DOCKER_MANIFEST_LIST)
}

/// Whether a descriptor of this media type points at an image manifest.
pub fn is_manifest(media_type: &str) -> bool {
    matches!(media_type, IMAGE_MANIFEST | DOCKER_MANIFEST)
}
