//! Property tests in the manner of a fuzzer (cargo-fuzz needs a nightly toolchain): random and
//! mutated Kconfig trees and `.config` files never make the parser or the evaluator panic; a
//! tree either loads or fails with a file and line.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test on any unexpected error")]

use std::collections::BTreeMap;
use std::path::Path;

use kiln_kconfig::{DotConfig, Environment, LoadError, Probes, Setting, Tree};
use proptest::prelude::*;

/// Words and punctuation Kconfig files are made of, to build plausible random trees.
const PIECES: &[&str] = &[
    "config A",
    "config B",
    "config C",
    "menuconfig M",
    "choice",
    "endchoice",
    "menu \"m\"",
    "endmenu",
    "if A",
    "if B && !C",
    "endif",
    "comment \"c\"",
    "bool",
    "tristate",
    "int",
    "hex",
    "string",
    "\"prompt\"",
    "prompt \"p\" if B",
    "default y",
    "default m",
    "default A",
    "default 5",
    "default 0x10",
    "default \"s\"",
    "def_bool B || C",
    "def_tristate m if A",
    "depends on A",
    "depends on B=y",
    "depends on C != n",
    "select B",
    "select C if A",
    "imply C",
    "range 1 10",
    "range A B",
    "modules",
    "visible if B",
    "help",
    "  some help text",
    "source \"x\"",
    "mainmenu \"t\"",
    "X := $(Y)",
    "Y = $(X)",
    "Z += z",
    "$(info,hi)",
    "$(warning-if,y,w)",
    "$(Z)",
    "(",
    ")",
    "&&",
    "||",
    "!",
    "=",
    "<",
    ">=",
    "\"",
    "'",
    "\\",
    "#",
    "$(",
    "\t",
    " ",
    "\n",
    "\n",
    "\n",
];

/// A seed tree the mutations start from.
const SEED: &str = "mainmenu \"Seed\"\nconfig MODULES\n\tbool \"modules\"\n\tmodules\n\tdefault y\n\
menu \"Options\"\n\tvisible if !HIDE\nconfig A\n\ttristate \"a\"\n\tselect B if C\n\timply D\n\
config B\n\tbool\nconfig C\n\tdef_bool y\nconfig D\n\ttristate \"d\"\n\tdepends on A\nconfig N\n\tint \"n\"\n\
\trange 1 10\n\tdefault 3\nchoice\n\tprompt \"pick\"\n\tdefault P2\nconfig P1\n\tbool \"p1\"\nconfig P2\n\tbool \"p2\"\n\
\tdepends on A=y\nendchoice\nendmenu\nconfig HIDE\n\tbool\nconfig S\n\tstring \"s\"\n\tdefault \"x\\\"y\"\n\
comment \"done\"\n\tdepends on !A\n";

fn environment() -> Environment {
    Environment::new(BTreeMap::new(), Probes::replay(BTreeMap::new()))
}

/// Loads `text` as a tree's only file; evaluates and explains whatever loads.
fn exercise(text: &str, config: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Kconfig"), text).unwrap();
    match Tree::load(dir.path(), &environment()) {
        Ok(tree) => {
            let (config, _) = DotConfig::parse(config, Path::new("fuzz.config"));
            let evaluated = tree.olddefconfig(&config);
            let _ = evaluated.warnings();
            let written = evaluated.to_config();
            assert!(written.starts_with("#\n# Automatically generated file; DO NOT EDIT.\n"));
            for symbol in ["A", "B", "C", "D", "P2", "N", "S", "nothing"] {
                let _ = evaluated.explain(symbol, Some(&Setting::Value("y".into()))).to_string();
            }
        }
        Err(error) => {
            let message = error.to_string();
            let located = matches!(
                error,
                LoadError::Syntax { .. }
                    | LoadError::Macro { .. }
                    | LoadError::MissingSource { .. }
                    | LoadError::RecursiveSource { .. }
                    | LoadError::NotRecorded { .. }
            );
            assert!(located && message.contains("Kconfig:"), "{message}");
        }
    }
}

fn config_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("CONFIG_A=y".to_owned()),
            Just("CONFIG_A=m".to_owned()),
            Just("# CONFIG_B is not set".to_owned()),
            Just("CONFIG_P1=y".to_owned()),
            Just("CONFIG_P2=y".to_owned()),
            Just("# CONFIG_P2 is not set".to_owned()),
            Just("CONFIG_N=99".to_owned()),
            Just("CONFIG_N=007".to_owned()),
            Just("CONFIG_S=\"q\\\\\"".to_owned()),
            Just("CONFIG_MODULES=n".to_owned()),
            "[ -~]{0,20}",
        ],
        0..12,
    )
    .prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_load_or_fail_with_a_location(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..60),
                                                 config in config_text()) {
        exercise(&pieces.join(" "), &config);
        exercise(&pieces.join("\n"), &config);
    }

    #[test]
    fn mutated_trees_load_or_fail_with_a_location(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(PIECES)), 1..6),
                                                  config in config_text()) {
        let mut text = SEED.to_owned();
        for (index, action, piece) in edits {
            let mut at = index.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match action {
                0 => text.insert_str(at, piece),
                1 => { let end = (at + piece.len()).min(text.len()); if text.is_char_boundary(end) { text.replace_range(at..end, ""); } }
                _ => { let end = (at + 1).min(text.len()); if text.is_char_boundary(end) { text.replace_range(at..end, piece); } }
            }
        }
        exercise(&text, &config);
    }

    #[test]
    fn dot_config_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let (config, warnings) = DotConfig::parse(&text, Path::new("x.config"));
        prop_assert!(warnings.iter().all(|w| w.to_string().starts_with("x.config:")));
        prop_assert!(config.len() <= text.lines().count());
    }
}

#[test]
fn the_seed_tree_loads() {
    exercise(SEED, "CONFIG_A=m\nCONFIG_P2=y\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Kconfig"), SEED).unwrap();
    let tree = Tree::load(dir.path(), &environment()).unwrap();
    let (config, _) = DotConfig::parse("CONFIG_A=y\nCONFIG_P2=y\n", Path::new("x"));
    let text = tree.olddefconfig(&config).to_config();
    assert!(text.contains("\n#\n# Options\n#\nCONFIG_A=y\nCONFIG_B=y\n"), "{text}");
    assert!(text.contains("CONFIG_P2=y\n# end of Options\n"), "{text}");
}
