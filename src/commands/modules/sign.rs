//! `kiln modules sign|verify|keygen`: module signatures and signing keys.

use kiln_modules::signing::keygen::{self, KeygenOptions, Seed};
use kiln_modules::signing::{Certificate, HashAlgorithm, Outcome, SignOptions, Signer, SigningKey, Verifier};
use kiln_reproducible::Epoch;

use crate::cli::{HashArg, ModulesKeygenArgs, ModulesSignArgs, ModulesVerifyArgs};
use crate::exit::Exit;
use crate::output;

pub(crate) fn sign(args: ModulesSignArgs) -> anyhow::Result<Exit> {
    let key = SigningKey::load(&args.key, args.cert.as_deref())?;
    let hash = match args.hash {
        HashArg::Sha256 => HashAlgorithm::Sha256,
        HashArg::Sha384 => HashAlgorithm::Sha384,
        HashArg::Sha512 => HashAlgorithm::Sha512,
    };
    let signer = Signer::new(key, SignOptions { hash, replace: args.replace });
    let mut messages = Vec::new();
    let mut failures = Vec::new();
    let (mut signed, mut unchanged) = (0, 0);
    for (path, result) in args.modules.iter().zip(signer.sign_files(&args.modules)) {
        match result {
            Ok(Outcome::Signed) => signed += 1,
            Ok(Outcome::AlreadySigned) => unchanged += 1,
            Ok(Outcome::Replaced { previous }) => {
                signed += 1;
                messages.push(format!("{}: replaced a signature ({previous})", path.display()));
            }
            Err(error) => failures.push(anyhow::Error::new(error)),
        }
    }
    messages.push(format!("{signed} signed with {hash}, {unchanged} already signed"));
    output::messages(&messages);
    Ok(report_failures(&failures).unwrap_or(Exit::Success))
}

pub(crate) fn verify(args: ModulesVerifyArgs) -> anyhow::Result<Exit> {
    let verifier = Verifier::new(Certificate::load(&args.cert)?);
    let mut report = String::new();
    let mut errors = Vec::new();
    let mut valid = 0;
    for (path, result) in args.modules.iter().zip(verifier.verify_files(&args.modules)) {
        match result {
            Ok(Ok(_)) => valid += 1,
            Ok(Err(reason)) => report.push_str(&format!("{}: {reason}\n", path.display())),
            Err(error) => errors.push(anyhow::Error::new(error)),
        }
    }
    output::text(&report)?;
    output::messages(&[format!("{valid} of {} valid", args.modules.len())]);
    if let Some(exit) = report_failures(&errors) {
        return Ok(exit);
    }
    Ok(if valid == args.modules.len() { Exit::Success } else { Exit::Different })
}

pub(crate) fn keygen(args: ModulesKeygenArgs) -> anyhow::Result<Exit> {
    let seed = args.seed.as_deref().map(Seed::load).transpose()?;
    let options =
        KeygenOptions { bits: args.bits, subject: args.subject, not_before: Epoch::from_env(None)?, seed };
    let generated = keygen::generate(&options)?;
    generated.write(&args.out, args.cert_out.as_deref())?;
    let certificate = Certificate::from_file_bytes(&generated.certificate_der, &args.out)?;
    let serial: Vec<String> = certificate.serial().iter().map(|b| format!("{b:02X}")).collect();
    output::text(&format!(
        "{}: signer {:?}, sig_key {}\n",
        args.out.display(),
        certificate.issuer_common_name(),
        serial.join(":")
    ))?;
    Ok(Exit::Success)
}

/// Prints every failure; the exit status of the first, or `None` when there is none.
fn report_failures(failures: &[anyhow::Error]) -> Option<Exit> {
    failures.iter().for_each(output::error);
    failures.first().map(Exit::classify)
}
