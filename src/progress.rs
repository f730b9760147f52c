//! Progress display for long operations; hidden when stderr is not a terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kiln_builder::remote_cache::Event;
use kiln_layers::pack::Reporter;

/// A spinner with bytes read, rate and entry count while a layer is packed.
pub(crate) struct PackProgress {
    bar: ProgressBar,
    entries: AtomicU64,
}

impl PackProgress {
    pub(crate) fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        let style =
            ProgressStyle::with_template("{spinner} packing: {binary_bytes} ({binary_bytes_per_sec}), {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        PackProgress { bar, entries: AtomicU64::new(0) }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Reporter for PackProgress {
    fn entry_written(&self, _relative: &[u8], bytes: u64) {
        let entries = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        self.bar.inc(bytes);
        if entries % 128 == 1 {
            self.bar.set_message(format!("{entries} entries"));
        }
    }
}

/// One bar per blob being sent and an overall bar (bytes, rate, blobs done) while a layout is
/// pushed. Blobs the registry already has, or mounts, leave the byte total.
pub(crate) struct PushProgress {
    bars: indicatif::MultiProgress,
    overall: ProgressBar,
    blobs: std::sync::Mutex<BlobBars>,
}

#[derive(Default)]
struct BlobBars {
    bars: std::collections::HashMap<kiln_layers::digest::Digest, ProgressBar>,
    started: u64,
    finished: u64,
}

impl PushProgress {
    pub(crate) fn new() -> Self {
        let bars = indicatif::MultiProgress::new();
        let overall = bars.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "pushing {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}), {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        PushProgress { bars, overall, blobs: Default::default() }
    }

    pub(crate) fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.bars.clear();
    }

    fn blobs(&self) -> std::sync::MutexGuard<'_, BlobBars> {
        self.blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count(&self, blobs: &BlobBars) {
        self.overall.set_message(format!("{}/{} blobs", blobs.finished, blobs.started));
    }
}

impl kiln_registry::push::Reporter for PushProgress {
    fn blob_started(&self, digest: &kiln_layers::digest::Digest, size: u64) {
        self.overall.inc_length(size);
        let bar = self.bars.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "  {msg} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(digest.short().to_owned());
        let mut blobs = self.blobs();
        blobs.bars.insert(digest.clone(), bar);
        blobs.started += 1;
        self.count(&blobs);
    }

    fn blob_progress(&self, digest: &kiln_layers::digest::Digest, bytes: u64) {
        if let Some(bar) = self.blobs().bars.get(digest) {
            bar.inc(bytes);
            self.overall.inc(bytes);
        }
    }

    fn blob_restarted(&self, digest: &kiln_layers::digest::Digest) {
        if let Some(bar) = self.blobs().bars.get(digest) {
            self.overall.set_position(self.overall.position().saturating_sub(bar.position()));
            bar.set_position(0);
        }
    }

    fn blob_finished(&self, digest: &kiln_layers::digest::Digest, outcome: kiln_registry::push::BlobOutcome) {
        let mut blobs = self.blobs();
        if let Some(bar) = blobs.bars.remove(digest) {
            if outcome != kiln_registry::push::BlobOutcome::Uploaded {
                let length = self.overall.length().unwrap_or(0);
                self.overall.set_length(length.saturating_sub(bar.length().unwrap_or(0)));
            }
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        blobs.finished += 1;
        self.count(&blobs);
    }
}

/// A spinner per running build step showing its last output line; a line per step on stderr.
pub(crate) struct BuildProgress {
    bars: indicatif::MultiProgress,
    running: std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>,
}

impl BuildProgress {
    pub(crate) fn new() -> Self {
        BuildProgress { bars: indicatif::MultiProgress::new(), running: Default::default() }
    }

    pub(crate) fn finish(&self) {
        let _ = self.bars.clear();
    }

    fn say(&self, line: String) {
        if self.bars.is_hidden() {
            crate::output::messages(&[line]);
        } else {
            let _ = self.bars.println(crate::output::shown(&line));
        }
    }
}

impl kiln_builder::build::Reporter for BuildProgress {
    fn step_started(&self, step: &str) {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {elapsed} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(step.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut running) = self.running.lock() {
            running.insert(step.to_owned(), bar);
        }
    }

    fn step_output(&self, step: &str, line: &str) {
        if let Some(bar) = self.running.lock().ok().and_then(|r| r.get(step).cloned()) {
            bar.set_message(crate::output::shown(line).into_owned());
        }
    }

    fn step_progress(&self, step: &str, done: u64, expected: Option<u64>) {
        let Some(bar) = self.running.lock().ok().and_then(|r| r.get(step).cloned()) else { return };
        if bar.length().is_none() {
            // The first object: the spinner becomes a count, against the expected total if known.
            let template = match expected {
                Some(_) => {
                    "{spinner} {prefix} {elapsed} [{bar:24}] {pos}/{len} objects (~{eta} left) {wide_msg}"
                }
                None => "{spinner} {prefix} {elapsed} {pos} objects compiled {wide_msg}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_length(expected.unwrap_or(0));
        }
        // A build can compile more than the last one did; the count still shows.
        if bar.length().is_some_and(|length| length != 0 && done > length) {
            bar.set_length(done);
        }
        bar.set_position(done);
    }

    fn step_finished(&self, result: &kiln_builder::build::StepResult) {
        if let Some(bar) = self.running.lock().ok().and_then(|mut r| r.remove(&result.step)) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        let key = &result.key[..12.min(result.key.len())];
        self.say(if result.pulled.is_some() {
            format!("  pulled {} ({key})", result.step)
        } else if result.cached {
            format!("  cached {} ({key})", result.step)
        } else {
            format!("  built  {} ({key}) in {:.1}s", result.step, result.seconds)
        });
    }

    fn cache_event(&self, step: &str, event: &Event) {
        self.say(match event {
            Event::Pulled { entry, bytes, seconds } => {
                format!("  {step}: pulled {} in {seconds:.1}s from {entry}", crate::output::size(*bytes))
            }
            Event::Pushed { entry, bytes, seconds } => {
                format!("  {step}: pushed {} in {seconds:.1}s to {entry}", crate::output::size(*bytes))
            }
            Event::Rejected { entry, reason } => {
                format!("warning: {step}: the shared cache's entry {entry} is not used: {reason}")
            }
            Event::Differs { entry, theirs, ours } => format!(
                "warning: {step} is not reproducible: the shared cache's entry {entry} has output \
                 {theirs}, this build made {ours}; the entry there stays"
            ),
            Event::NotShared { reason } => format!("warning: {step} is not shared: {reason}"),
            Event::Unavailable { location, access, reason } => format!(
                "warning: the shared cache {location} is not used for {access} for the rest of the build: {reason}"
            ),
        });
    }
}
