//! Recipes made of arbitrary text: `Recipe::parse` must load one (whose step order can then be
//! computed) or fail naming the recipe's file, and never panic.

#![no_main]

use std::path::Path;

use kiln_builder::recipe::Recipe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = Path::new("/nonexistent-kiln-fuzz");
    let path = dir.join("kiln.toml");
    match Recipe::parse(dir, &path, text) {
        Ok(recipe) => {
            let _ = recipe.order();
        }
        Err(error) => assert!(error.to_string().contains("kiln.toml"), "{error}"),
    }
});
