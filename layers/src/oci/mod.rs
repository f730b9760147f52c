//! OCI image format: media types, documents, `NAME:TAG` references and image layouts.

pub mod layout;
pub mod media_type;
pub mod reference;
pub mod spec;
