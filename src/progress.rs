//! Progress display for long operations; hidden when stderr is not a terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
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
