//! Every TOML example in the README and docs/ is what the code accepts:
//! a configuration example parses as a configuration (unknown keys are
//! errors there, so a renamed key fails here), a rule-test example as
//! TOML with the `[[case]]` tables the rule tests read.

use std::path::Path;

/// `(file, line, text)` of every ```toml block in the README and docs/.
fn toml_blocks() -> Vec<(String, usize, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut open: Option<(usize, String)> = None;
        for (number, line) in text.lines().enumerate() {
            match &mut open {
                None if line == "```toml" => open = Some((number + 2, String::new())),
                Some((start, body)) if line == "```" => {
                    let name = file.strip_prefix(root).unwrap().display().to_string();
                    blocks.push((name, *start, std::mem::take(body)));
                    open = None;
                }
                Some((_, body)) => {
                    body.push_str(line);
                    body.push('\n');
                }
                None => {}
            }
        }
        assert!(
            open.is_none(),
            "{}: a ```toml block is never closed",
            file.display()
        );
    }
    blocks
}

#[test]
fn every_toml_example_in_the_docs_is_accepted() {
    let blocks = toml_blocks();
    assert!(blocks.len() >= 10, "found only {} blocks", blocks.len());
    for (file, line, text) in blocks {
        if text.contains("[[case]]") {
            let value: toml::Table = toml::from_str(&text)
                .unwrap_or_else(|e| panic!("{file}:{line}: not TOML: {e}\n{text}"));
            assert!(value["case"].is_array(), "{file}:{line}");
            continue;
        }
        if let Err(error) = groupwarden::config::parse(&text) {
            panic!("{file}:{line}: the example is not a valid configuration: {error}\n{text}");
        }
    }
}
