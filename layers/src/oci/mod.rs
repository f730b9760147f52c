//! OCI image format: media types, documents, `NAME:TAG` references, image layouts and artifact
//! manifests (documents about an image, such as SBOMs, that name it as their subject).

pub mod artifact;
pub mod layout;
pub mod media_type;
pub mod reference;
pub mod spec;
