//! Provenance of built images: an in-toto Statement v1 with a SLSA provenance v1 predicate.
//!
//! ```json
//! { "_type": "https://in-toto.io/Statement/v1",
//!   "subject": [{ "name": "NAME:TAG", "digest": { "sha256": "<manifest>" } }],
//!   "predicateType": "https://slsa.dev/provenance/v1",
//!   "predicate": {
//!     "buildDefinition": {
//!       "buildType": "https://kiln.invalid/build/v1",
//!       "externalParameters": { "recipe": { "name", "file": "kiln.toml", "sha256" },
//!                               "lock": { "file": "kiln.lock", "sha256" } | null, "image": "NAME:TAG" },
//!       "internalParameters": { "SOURCE_DATE_EPOCH", "environment", "hostname", "toolchain", "kiln" },
//!       "resolvedDependencies": [{ "name", "uri", "digest": { "sha256" | "sha512" | "kiln-tree-sha256" },
//!                                  "annotations": { "overridden": "true", "purl": "pkg:deb/…" } }] },
//!     "runDetails": {
//!       "builder": { "id": "https://kiln.invalid/kiln@<version>", "version": { "kiln": "<version>" } },
//!       "metadata": { "invocationId": "<NAME:TAG>@<manifest digest>" },
//!       "byproducts": [{ "name": "step:<name>", "digest": { "sha256": "<output>" }, "annotations": { "key" } }] } } }
//! ```
//!
//! The build type `https://kiln.invalid/build/v1` means: `kiln build` of the recipe (a directory
//! holding `kiln.toml`, identified by the file's SHA-256, and `kiln.lock`) for the image named
//! in `externalParameters.image`; every step ran in kiln's sandbox with `internalParameters`'
//! environment and hostname, on the toolchain whose identity (SHA-256 of its tools' versions, as
//! the steps' cache keys use it) is given. The resolved dependencies are the recipe's sources that
//! flowed into the image, each with the digest the build checked it against (and, for a file a
//! Debian package installs, the package's purl with the version `kiln.lock` pins). Nothing in the
//! statement reads the clock: `runDetails.metadata` has no start or finish time, so the same
//! inputs give the same bytes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attest::{BuildContext, ImageInputs, StepInput, encode};
use crate::error::Result;

/// The build type of kiln's provenance.
pub const BUILD_TYPE: &str = "https://kiln.invalid/build/v1";
/// in-toto's Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// `builder.id`: `https://kiln.invalid/kiln@<version>`.
pub fn builder_id() -> String {
    format!("https://kiln.invalid/kiln@{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "_type")]
    kind: &'static str,
    subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    predicate: Predicate<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predicate<'a> {
    build_definition: BuildDefinition<'a>,
    run_details: RunDetails,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition<'a> {
    build_type: &'static str,
    external_parameters: ExternalParameters<'a>,
    internal_parameters: InternalParameters<'a>,
    resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Serialize)]
struct ExternalParameters<'a> {
    recipe: FileParameter<'a>,
    lock: Option<FileParameter<'a>>,
    image: &'a str,
}

#[derive(Serialize)]
struct FileParameter<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    file: &'static str,
    sha256: &'a str,
}

#[derive(Serialize)]
struct InternalParameters<'a> {
    #[serde(rename = "SOURCE_DATE_EPOCH")]
    source_date_epoch: String,
    environment: &'a BTreeMap<String, String>,
    hostname: &'a str,
    toolchain: Option<&'a str>,
    kiln: &'static str,
}

#[derive(Serialize)]
struct ResourceDescriptor {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    digest: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunDetails {
    builder: Builder,
    metadata: Metadata,
    byproducts: Vec<ResourceDescriptor>,
}

#[derive(Serialize)]
struct Builder {
    id: String,
    version: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    invocation_id: String,
}

/// The provenance statement of one image, canonical JSON.
pub fn statement(image: &ImageInputs, context: &BuildContext) -> Result<Vec<u8>> {
    let digest = &image.manifest.digest;
    let subject = ResourceDescriptor {
        name: image.name.clone(),
        uri: None,
        digest: [(digest.algorithm().name().to_owned(), digest.encoded().to_owned())].into(),
        annotations: BTreeMap::new(),
    };
    let dependencies = image
        .sources
        .iter()
        .map(|source| ResourceDescriptor {
            name: source.name.clone(),
            uri: Some(source.uri.clone()),
            digest: source.digests.clone(),
            annotations: source
                .overridden
                .then(|| ("overridden".to_owned(), "true".to_owned()))
                .into_iter()
                .chain(source.package.as_ref().map(|(purl, _)| ("purl".to_owned(), purl.clone())))
                .collect(),
        })
        .collect();
    let statement = Statement {
        kind: STATEMENT_TYPE,
        subject: vec![subject],
        predicate_type: PREDICATE_TYPE,
        predicate: Predicate {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE,
                external_parameters: ExternalParameters {
                    recipe: FileParameter {
                        name: Some(&context.recipe),
                        file: crate::recipe::FILE_NAME,
                        sha256: &context.recipe_sha256,
                    },
                    lock: context.lock_sha256.as_deref().map(|sha256| FileParameter {
                        name: None,
                        file: crate::lock::FILE_NAME,
                        sha256,
                    }),
                    image: &image.name,
                },
                internal_parameters: InternalParameters {
                    source_date_epoch: context.epoch.to_string(),
                    environment: &context.environment,
                    hostname: &context.hostname,
                    toolchain: context.toolchain.as_deref(),
                    kiln: env!("CARGO_PKG_VERSION"),
                },
                resolved_dependencies: dependencies,
            },
            run_details: RunDetails {
                builder: Builder { id: builder_id(), version: [("kiln", env!("CARGO_PKG_VERSION"))].into() },
                metadata: Metadata { invocation_id: format!("{}@{digest}", image.name) },
                byproducts: image.steps.iter().map(step).collect(),
            },
        },
    };
    encode(&image.name, "provenance", &statement)
}

/// A step as a byproduct: its output digest, and its cache key.
fn step(step: &StepInput) -> ResourceDescriptor {
    ResourceDescriptor {
        name: format!("step:{}", step.name),
        uri: None,
        digest: [("sha256".to_owned(), step.output.clone())].into(),
        annotations: [("key".to_owned(), step.key.clone())].into(),
    }
}
