//! OCI image format: media types, documents, `NAME:TAG` references, image layouts, artifact
//! manifests (documents about an image, such as SBOMs, that name it as their subject) and the
//! limits on what kiln reads of them ([`limits`]).

pub mod artifact;
pub mod layout;
pub mod limits;
pub mod media_type;
pub mod reference;
pub mod spec;
