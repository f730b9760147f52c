//! Module signing in the kernel and module steps, with the key the recipe owns.
//!
//! The key is `[kernel] signing-key` (a PEM file with the private key and its certificate) or
//! derived from `[kernel] signing-seed` (a file of at least 32 secret bytes) the way
//! `kiln modules keygen --seed` derives it, so the same seed gives the same key and certificate
//! on every machine and modules can be signed for a kernel long after it was built. Only the
//! certificate enters the sandbox (the kernel embeds it as its module signing key); modules are
//! signed outside it, in Rust, after the kernel's or module's build.
//!
//! What a step's key says of the signing key is a digest of the key or seed file, so a new key
//! rebuilds the kernel; the secret itself is never stored.

use std::fs;
use std::path::{Path, PathBuf};

use kiln_modules::signing::{self, HashAlgorithm, SignOptions, Signer, SigningKey, keygen};
use kiln_reproducible::Epoch;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::recipe::{Kernel, Recipe};

/// Where the signing certificate is in the kernel's sandbox (`CONFIG_MODULE_SIG_KEY`).
pub(crate) const CERTIFICATE_IN_SANDBOX: &str = "/build/kiln-signing-cert.pem";

/// The recipe's signing key file and how to read it.
#[derive(Debug, Clone)]
pub(crate) enum KeySource {
    /// A PEM file with the key and certificate.
    Pem(PathBuf),
    /// A seed the key is derived from.
    Seed(PathBuf),
}

impl KeySource {
    /// The recipe's key, if it has one.
    pub(crate) fn of(recipe: &Recipe, kernel: &Kernel) -> Option<KeySource> {
        match (&kernel.signing_key, &kernel.signing_seed) {
            (Some(key), _) => Some(KeySource::Pem(recipe.dir.join(key))),
            (None, Some(seed)) => Some(KeySource::Seed(recipe.dir.join(seed))),
            (None, None) => None,
        }
    }

    /// What a step's key records of it: the kind and a digest of the file.
    pub(crate) fn identity(&self) -> Result<String> {
        let (kind, path) = match self {
            KeySource::Pem(path) => ("key", path),
            KeySource::Seed(path) => ("seed", path),
        };
        let bytes = fs::read(path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let mut hasher = Sha256::new();
        hasher.update(b"kiln signing identity\0");
        hasher.update(&bytes);
        Ok(format!("{kind}:sha256:{}", hex::encode(hasher.finalize())))
    }

    /// Reads (or derives) the key; `scratch` is a private directory for a derived key's file.
    pub(crate) fn load(&self, scratch: &Path) -> Result<Key> {
        let (pem_path, pem) = match self {
            KeySource::Pem(path) => {
                let text =
                    fs::read_to_string(path).map_err(|source| Error::Read { path: path.clone(), source })?;
                (path.clone(), text)
            }
            KeySource::Seed(path) => {
                let seed = keygen::Seed::load(path).map_err(signing_error)?;
                let options = keygen::KeygenOptions {
                    bits: keygen::DEFAULT_BITS,
                    subject: keygen::DEFAULT_SUBJECT.to_owned(),
                    // The key is a function of the seed alone, whatever the build's epoch.
                    not_before: Epoch::from_secs(0),
                    seed: Some(seed),
                };
                let generated = keygen::generate(&options).map_err(signing_error)?;
                let file = scratch.join("signing-key.pem");
                generated.write(&file, None).map_err(signing_error)?;
                (file, generated.pem.to_string())
            }
        };
        let key = SigningKey::load(&pem_path, None).map_err(signing_error);
        if let KeySource::Seed(_) = self {
            // The derived key lives on only in memory.
            fs::remove_file(&pem_path).map_err(|source| Error::Write { path: pem_path.clone(), source })?;
        }
        let key = key?;
        let certificate_pem = certificate_pem(&pem).ok_or_else(|| Error::Signing {
            reason: format!("{} holds no PEM certificate after its key", pem_path.display()),
        })?;
        Ok(Key { key, certificate_pem: certificate_pem.to_owned() })
    }
}

/// A loaded signing key.
pub(crate) struct Key {
    key: SigningKey,
    certificate_pem: String,
}

impl Key {
    /// Writes the certificate where the kernel's configuration points (`build` is the sandbox's
    /// `/build` on the host).
    pub(crate) fn place_certificate(&self, build: &Path) -> Result<()> {
        let relative = Path::new(CERTIFICATE_IN_SANDBOX.trim_start_matches("/build/"));
        Ok(crate::beneath::write(build, relative, self.certificate_pem.as_bytes())?)
    }

    /// A verifier for signatures made with this key.
    pub(crate) fn verifier(&self) -> signing::Verifier {
        signing::Verifier::new(self.key.certificate().clone())
    }

    /// Signs every `.ko` under `dir` with the digest `CONFIG_MODULE_SIG_HASH` names in `config`
    /// (a final `.config`); returns how many. `dir` must be a directory reached through no link
    /// ([`crate::beneath::path`]); below it no link is followed.
    pub(crate) fn sign_tree(&self, dir: &Path, config: &str) -> Result<usize> {
        let hash = module_sig_hash(config)?;
        let signer = Signer::new(self.key.clone(), SignOptions { hash, replace: false });
        let modules = modules_under(dir)?;
        for result in signer.sign_files(&modules) {
            result.map_err(signing_error)?;
        }
        Ok(modules.len())
    }
}

/// The configuration lines that point the kernel at the recipe's certificate and leave signing
/// to kiln (`make modules_install` would otherwise run `sign-file` with the private key).
pub(crate) fn config_fragment() -> String {
    format!("CONFIG_MODULE_SIG_KEY=\"{CERTIFICATE_IN_SANDBOX}\"\n# CONFIG_MODULE_SIG_ALL is not set\n")
}

/// Whether a `.config` turns module signatures on.
pub(crate) fn signs_modules(config: &str) -> bool {
    config.lines().any(|line| line == "CONFIG_MODULE_SIG=y")
}

fn module_sig_hash(config: &str) -> Result<HashAlgorithm> {
    let value = config
        .lines()
        .find_map(|line| line.strip_prefix("CONFIG_MODULE_SIG_HASH="))
        .map(|value| value.trim_matches('"'))
        .ok_or_else(|| Error::Signing {
            reason: "the kernel's .config has no CONFIG_MODULE_SIG_HASH".into(),
        })?;
    value.parse().map_err(|e: signing::UnknownHash| Error::Signing { reason: e.to_string() })
}

/// The first PEM certificate block of a PEM file and everything after it.
fn certificate_pem(pem: &str) -> Option<&str> {
    pem.find("-----BEGIN CERTIFICATE-----").map(|start| &pem[start..])
}

/// Every `.ko` file under `dir`, sorted.
pub(crate) fn modules_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| Error::Read { path: dir.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read { path: dir.clone(), source })?;
            let kind = entry.file_type().map_err(|source| Error::Read { path: entry.path(), source })?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_string_lossy().ends_with(".ko") {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

fn signing_error(error: signing::Error) -> Error {
    Error::Signing { reason: error.to_string() }
}
