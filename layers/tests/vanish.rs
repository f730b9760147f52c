//! A path that disappears between being listed and being read is reported by name, and the
//! new layout is not created.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test on any unexpected error")]

use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use kiln_layers::Error;
use kiln_layers::oci::spec::Platform;
use kiln_layers::pack::{self, LayerOptions, PackOptions, Reporter};

/// Deletes `victim` once `trigger` has been written: the walk has listed it by then.
struct Saboteur {
    trigger: &'static [u8],
    victim: PathBuf,
}

impl Reporter for Saboteur {
    fn entry_written(&self, relative: &[u8], _bytes: u64) {
        if relative == self.trigger {
            let _ = fs::remove_dir_all(&self.victim).or_else(|_| fs::remove_file(&self.victim));
        }
    }
}

fn options() -> PackOptions {
    PackOptions {
        reference: "vanish:v1".parse().unwrap(),
        layer: LayerOptions {
            policy: kiln_reproducible::Policy::default(),
            compression: "gzip".parse().unwrap(),
            threads: NonZeroUsize::new(2).unwrap(),
        },
        platform: Platform { architecture: "amd64".into(), os: "linux".into(), variant: None },
        base: None,
        entrypoint: None,
    }
}

fn tree(root: &Path) {
    for dir in ["a", "b/inner"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    for file in ["a/1", "a/2", "b/inner/x", "c"] {
        fs::write(root.join(file), file).unwrap();
    }
}

#[test]
fn vanished_file_or_directory_is_named_and_nothing_is_written() {
    for (trigger, victim) in [(&b"a/1"[..], "a/2"), (&b"a/2"[..], "b"), (&b"b/inner/x"[..], "c")] {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("tree");
        tree(&root);
        let out = work.path().join("out");
        let saboteur = Saboteur { trigger, victim: root.join(victim) };
        let error = pack::pack(&root, &out, &options(), &saboteur).unwrap_err();
        match &error {
            Error::Vanished { path } => assert_eq!(path, &root.join(victim)),
            other => panic!("expected Vanished, got {other:?}"),
        }
        assert!(error.to_string().contains(&root.join(victim).display().to_string()));
        assert!(error.hint().is_some());
        let left: Vec<_> = fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("tree")], "a partial layout was left behind");
    }
}
