//! `kiln modules info FILE... [--json]`.

use std::fmt::Write as _;

use kiln_modules::Module;
use kiln_modules::vermagic::Preempt;
use rayon::prelude::*;

use crate::cli::ModulesInfoArgs;
use crate::exit::Exit;

pub(crate) fn run(args: ModulesInfoArgs) -> anyhow::Result<Exit> {
    let modules: Vec<Module> =
        args.files.par_iter().map(|path| Module::read(path)).collect::<Result<_, _>>()?;
    if args.json {
        let values: Vec<serde_json::Value> = modules
            .iter()
            .map(|module| {
                let mut value = serde_json::to_value(module).unwrap_or_default();
                value["vermagic"] = serde_json::to_value(module.vermagic()).unwrap_or_default();
                value
            })
            .collect();
        return super::json(&values).map(|()| Exit::Success);
    }
    let text: Vec<String> = modules.iter().map(render).collect();
    crate::output::text(&text.join("\n"))?;
    Ok(Exit::Success)
}

/// modinfo's layout (`key:` padded to 16 columns), then what modinfo does not show.
fn render(module: &Module) -> String {
    let mut text = String::new();
    let mut line = |key: &str, value: &str| {
        let label = format!("{key}:");
        let _ = writeln!(text, "{label:<16}{}{value}", if label.len() >= 16 { " " } else { "" });
    };
    line("filename", &module.path.display().to_string());
    line("module", &module.name);
    if let Some(compression) = module.compression {
        line("compression", &format!("{compression:?}").to_lowercase());
    }
    for field in &module.modinfo {
        line(&field.key, &field.value);
    }
    if let Some(signature) = &module.signature {
        // modinfo's signature fields, after the .modinfo ones as modinfo prints them.
        for field in &signature.fields {
            line(&field.key, &field.value);
        }
        line(
            "signature size",
            &format!("{} bytes after {} bytes of module", signature.signature_len, signature.module_len),
        );
    }
    if let Some(magic) = module.vermagic() {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let preempt = match magic.preempt {
            Preempt::None => "none",
            Preempt::Preempt => "preempt",
            Preempt::Rt => "preempt_rt",
        };
        let mut parsed = format!(
            "release {}, SMP {}, preempt {preempt}, mod_unload {}, modversions {}",
            magic.release,
            yes(magic.smp),
            yes(magic.mod_unload),
            yes(magic.modversions)
        );
        if let Some(hash) = &magic.randstruct {
            let _ = write!(parsed, ", randstruct {hash}");
        }
        for word in &magic.other {
            let _ = write!(parsed, ", {word}");
        }
        line("vermagic parsed", &parsed);
    }
    let crc = |crc: Option<u64>| crc.map_or_else(|| "-".repeat(10), |c| format!("0x{c:08x}"));
    let _ = writeln!(text, "versions:       {}", module.versions.len());
    for version in &module.versions {
        let _ = writeln!(text, "  {} {}", crc(Some(version.crc)), version.symbol);
    }
    let _ = writeln!(text, "exports:        {}", module.exports.len());
    for export in &module.exports {
        let _ = writeln!(text, "  {} {}", crc(export.crc), export.symbol);
    }
    let _ = writeln!(text, "needs:          {}", module.needed.len());
    for needed in &module.needed {
        let weak = if needed.weak { " (weak)" } else { "" };
        let _ = writeln!(text, "  {} {}{weak}", crc(needed.crc), needed.symbol);
    }
    text
}
