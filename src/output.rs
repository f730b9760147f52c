//! Everything kiln writes to stdout and stderr goes through here.

use std::fmt::Write as _;
use std::io::{self, Write};

use kiln_layers::diff::{Change, Report, Status};
use kiln_layers::inspect::{Content, Image, Summary};
use kiln_layers::pack::Packed;

/// `text` as it may reach a terminal: every control character but newline and tab escaped
/// (`\u{1b}`), so names, documents, errors and step output from untrusted sources cannot move
/// the cursor, retitle the window or write the clipboard.
pub(crate) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_hidden_control) {
        return text.into();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hidden_control(c) {
            let _ = write!(escaped, "{}", c.escape_unicode());
        } else {
            escaped.push(c);
        }
    }
    escaped.into()
}

fn is_hidden_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Writes to stdout; a closed pipe (`kiln inspect out | head`) is not an error.
fn emit(text: &str) -> io::Result<()> {
    match io::stdout().lock().write_all(shown(text).as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn emit_json<T: serde::Serialize>(value: &T) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    emit(&text)
}

/// Plain text on stdout.
pub(crate) fn text(text: &str) -> io::Result<()> {
    emit(text)
}

/// Progress messages (one per line) on stderr.
pub(crate) fn messages(lines: &[String]) {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let _ = io::stderr().lock().write_all(shown(&text).as_bytes());
}

/// What `kiln lock --update` changed, a line per source, on stderr:
/// `NAME: PACKAGE VERSION → VERSION (sha256 …→ …)`, or that it was already the one locked.
pub(crate) fn lock_updates(path: &std::path::Path, updates: &[kiln_builder::lock::Update]) {
    let describe = |entry: &kiln_builder::lock::LockedSource| match (&entry.package, &entry.version) {
        (Some(package), Some(version)) => format!("{package} {version} (sha256 {})", short(&entry.sha256)),
        _ => format!("sha256 {}", short(&entry.sha256)),
    };
    let mut lines = Vec::new();
    for update in updates {
        let line = match &update.before {
            Some(before) if *before == update.after => {
                format!("{}: unchanged, {}", update.name, describe(&update.after))
            }
            Some(before) => format!("{}: {} → {}", update.name, describe(before), describe(&update.after)),
            None => format!("{}: locked, {}", update.name, describe(&update.after)),
        };
        lines.push(line);
    }
    lines.push(format!("wrote {}", path.display()));
    messages(&lines);
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// `file:line: warning: …` on stderr.
pub(crate) fn warnings(warnings: &[kiln_kconfig::Warning]) {
    let text: String = warnings.iter().map(|w| format!("{w}\n")).collect();
    let _ = io::stderr().lock().write_all(shown(&text).as_bytes());
}

/// `error: …`, its causes, and a `hint:` where a library error has one.
pub(crate) fn error(error: &anyhow::Error) {
    let mut text = format!("error: {error}\n");
    for cause in error.chain().skip(1) {
        let _ = writeln!(text, "  caused by: {cause}");
    }
    let hint = error.chain().find_map(|c| {
        c.downcast_ref::<kiln_layers::Error>()
            .and_then(kiln_layers::Error::hint)
            .or_else(|| c.downcast_ref::<kiln_registry::Error>().and_then(kiln_registry::Error::hint))
            .or_else(|| c.downcast_ref::<kiln_builder::Error>().and_then(kiln_builder::Error::hint))
            .or_else(|| {
                c.downcast_ref::<kiln_modules::Error>().and_then(kiln_modules::Error::hint).map(str::to_owned)
            })
            .or_else(|| {
                c.downcast_ref::<kiln_modules::signing::Error>().and_then(kiln_modules::signing::Error::hint)
            })
    });
    if let Some(hint) = hint {
        let _ = writeln!(text, "hint: {hint}");
    }
    let _ = io::stderr().lock().write_all(shown(&text).as_bytes());
}

/// Result of `kiln build`: `NAME:TAG sha256:<manifest digest>` per image.
pub(crate) fn built(built: &kiln_builder::build::Built, json: bool) -> io::Result<()> {
    if json {
        return emit_json(built);
    }
    let text: String =
        built.images.iter().map(|image| format!("{} {}\n", image.name, image.digest)).collect();
    emit(&text)
}

/// Result of `kiln pack`: `NAME:TAG sha256:<manifest digest>`.
pub(crate) fn packed(packed: &Packed, json: bool) -> io::Result<()> {
    if json {
        return emit_json(&serde_json::json!({
            "layout": packed.layout,
            "image": packed.reference.to_string(),
            "manifest": packed.manifest,
            "config": packed.config,
            "layer": packed.layer.descriptor,
            "diffId": packed.layer.diff_id,
            "uncompressedSize": packed.layer.uncompressed_size,
        }));
    }
    emit(&format!("{} {}\n", packed.reference, packed.manifest.digest))
}

/// Result of `kiln push`: `REGISTRY/REPOSITORY@DIGEST` per image.
pub(crate) fn pushed(registry: &str, pushed: &[kiln_registry::push::Pushed], json: bool) -> io::Result<()> {
    if json {
        let entries: Vec<serde_json::Value> = pushed
            .iter()
            .map(|p| {
                serde_json::json!({
                    "image": p.image,
                    "reference": format!("{registry}/{}@{}", p.repository, p.digest),
                    "tags": p.tags,
                    "uploadedBlobs": p.uploaded_blobs,
                    "uploadedBytes": p.uploaded_bytes,
                    "referrers": p.referrers,
                    "referrersTag": p.referrers_tag,
                })
            })
            .collect();
        return emit_json(&entries);
    }
    emit(&pushed.iter().map(|p| format!("{registry}/{}@{}\n", p.repository, p.digest)).collect::<String>())
}

/// Result of `kiln inspect`.
pub(crate) fn summary(summary: &Summary, json: bool) -> io::Result<()> {
    if json {
        return emit_json(summary);
    }
    let count = summary.images.len();
    let noun = if count == 1 { "entry" } else { "entries" };
    let mut text = format!("{} ({count} {noun})\n", summary.layout.display());
    for image in &summary.images {
        describe(image, 0, &mut text);
    }
    emit(&text)
}

/// One entry and what it lists. The summary is as deep and as large as `layers::inspect` let
/// it be (`layers::oci::limits`): a few levels, a bounded number of entries.
fn describe(image: &Image, depth: usize, text: &mut String) {
    let pad = "  ".repeat(depth);
    let unnamed = if matches!(image.content, Content::Artifact { .. }) { "(artifact)" } else { "(unnamed)" };
    let name = image.name.as_deref().unwrap_or(unnamed);
    let platform = image.platform.as_deref().map(|p| format!("  {p}")).unwrap_or_default();
    let _ = writeln!(text, "{pad}{name}  {}{platform}", image.digest);
    match &image.content {
        Content::Image { config, created, config_platform, layers, layers_size } => {
            let created = created.as_deref().unwrap_or("-");
            let _ = writeln!(text, "{pad}  config   {config}  {config_platform}  created {created}");
            for (i, layer) in layers.iter().enumerate() {
                let kind = layer.media_type.rsplit('.').next().unwrap_or(&layer.media_type);
                let _ = writeln!(text, "{pad}  layer {i}  {}  {kind}  {}", layer.digest, size(layer.size));
                if let Some(diff_id) = &layer.diff_id {
                    let _ = writeln!(text, "{pad}    diff_id {diff_id}");
                }
            }
            let _ = writeln!(text, "{pad}  total    {} in {} layer(s)", size(*layers_size), layers.len());
        }
        Content::Index { manifests } => {
            for child in manifests {
                describe(child, depth + 1, text);
            }
        }
        Content::Artifact { artifact_type, subject, layers_size } => {
            let subject = subject.as_ref().map_or("-".into(), ToString::to_string);
            let _ =
                writeln!(text, "{pad}  artifact {artifact_type}  {}  about {subject}", size(*layers_size));
        }
        Content::Other => {
            let _ = writeln!(text, "{pad}  {} ({})", image.media_type, size(image.size));
        }
    }
}

/// Result of `kiln diff`.
pub(crate) fn diff_report(report: &Report, json: bool) -> io::Result<()> {
    if json {
        return emit_json(report);
    }
    let mut text = String::new();
    let digest = |d: &Option<kiln_layers::digest::Digest>| d.as_ref().map_or("-".into(), ToString::to_string);
    for image in &report.images {
        let status = match image.status {
            Status::Identical => "identical",
            Status::Differs => "differs",
            Status::OnlyInA => "only in A",
            Status::OnlyInB => "only in B",
        };
        let _ = writeln!(text, "image {}: {status}", image.name);
        if image.status != Status::Differs {
            continue;
        }
        let _ = writeln!(text, "  manifest {} → {}", digest(&image.manifests.0), digest(&image.manifests.1));
        for field in &image.manifest_fields {
            let _ = writeln!(text, "    manifest.{}: {} → {}", field.field, field.a, field.b);
        }
        for field in &image.config_fields {
            let _ = writeln!(text, "    config.{}: {} → {}", field.field, field.a, field.b);
        }
        for layer in &image.layers {
            let _ = writeln!(text, "  layer {} {} → {}", layer.index, digest(&layer.a), digest(&layer.b));
            if let Some(note) = &layer.stream_note {
                let _ = writeln!(text, "    {note}");
            }
            for entry in &layer.entries {
                match &entry.change {
                    Change::Added => {
                        let _ = writeln!(text, "    added    {}", entry.path);
                    }
                    Change::Removed => {
                        let _ = writeln!(text, "    removed  {}", entry.path);
                    }
                    Change::Changed(fields) => {
                        let fields: Vec<String> =
                            fields.iter().map(|f| format!("{} {} → {}", f.field, f.a, f.b)).collect();
                        let _ = writeln!(text, "    changed  {}: {}", entry.path, fields.join(", "));
                    }
                }
            }
        }
    }
    emit(&text)
}

/// `1.5 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn control_characters_are_escaped_but_newlines_and_tabs() {
        assert_eq!(shown("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(shown("\u{1b}]0;t\u{7}\r\u{9b}x\u{7f}"), "\\u{1b}]0;t\\u{7}\\u{d}\\u{9b}x\\u{7f}");
        assert!(matches!(shown("é ünïcode"), std::borrow::Cow::Borrowed(_)));
    }
}
