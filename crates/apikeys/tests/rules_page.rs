//! Keeps `docs/rules.md` honest: every test it names (a backticked
//! `crates/<crate>/<path>.rs::<function>`) must be a file of the repository
//! that defines that function, every relative link must point at a file or
//! directory that exists, every rule of a `| rule | module | proved by |`
//! table must name at least one test, and the page must name at least
//! [`MIN_REFERENCES`] tests in all. A failure lists every broken reference
//! at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The fewest test references the page may hold.
const MIN_REFERENCES: usize = 80;

/// The header of a table whose rows must each name a test.
const RULES_HEADER: &str = "| rule | module | proved by |";

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The contents of every code span of `line`: text between two runs of the
/// same number of backticks, trimmed of the one space Markdown allows.
fn code_spans(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let run_at = |from: usize| bytes[from..].iter().take_while(|&&b| b == b'`').count();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let open = run_at(i);
        let start = i + open;
        // The closing run: the next run of exactly `open` backticks.
        let mut j = start;
        let mut close = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let run = run_at(j);
                if run == open {
                    close = Some(j);
                    break;
                }
                j += run;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                let content = &line[start..end];
                let content = match content.strip_prefix(' ').and_then(|c| c.strip_suffix(' ')) {
                    Some(inner) if !inner.trim().is_empty() => inner,
                    _ => content,
                };
                spans.push(content);
                i = end + open;
            }
            // An unmatched run is literal text.
            None => i = start,
        }
    }
    spans
}

/// A test named on the page: its file, from the root, and its function.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TestRef {
    file: String,
    function: String,
}

/// The test a code span names, if it names one: `crates/….rs::name`.
/// A span that starts like one but is malformed is an error.
fn test_ref(span: &str) -> Option<Result<TestRef, String>> {
    if !span.starts_with("crates/") || !span.contains(".rs::") {
        return None;
    }
    let (file, function) = span.split_once(".rs::")?;
    let file = format!("{file}.rs");
    let valid_name = !function.is_empty()
        && function
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !function.starts_with(|c: char| c.is_ascii_digit());
    Some(if valid_name {
        Ok(TestRef {
            file,
            function: function.to_owned(),
        })
    } else {
        Err(format!("`{span}`: `{function}` is not a function name"))
    })
}

/// The target of every inline link `](target)` of `line`.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                targets.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    targets
}

/// Whether `source` defines a function named `name` (any visibility,
/// `async`, generics).
fn defines(source: &str, name: &str) -> bool {
    source.contains(&format!("fn {name}(")) || source.contains(&format!("fn {name}<"))
}

#[test]
fn every_reference_on_the_rules_page_exists() {
    let root = root();
    let docs = root.join("docs");
    let page_path = docs.join("rules.md");
    let page = std::fs::read_to_string(&page_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", page_path.display()));

    let mut broken: Vec<String> = Vec::new();
    let mut references = 0usize;
    let mut sources: HashMap<String, Option<String>> = HashMap::new();
    let mut in_rules_table = false;

    for (n, line) in page.lines().enumerate() {
        let at = format!("docs/rules.md:{}", n + 1);

        // Which table this line belongs to.
        let trimmed = line.trim();
        if trimmed == RULES_HEADER {
            in_rules_table = true;
            continue;
        }
        if !trimmed.starts_with('|') {
            in_rules_table = false;
        }
        let is_separator = trimmed.starts_with("|---") || trimmed.starts_with("| ---");

        // Tests named in code spans.
        let mut row_references = 0usize;
        for span in code_spans(line) {
            match test_ref(span) {
                None => {}
                Some(Err(e)) => broken.push(format!("{at}: {e}")),
                Some(Ok(r)) => {
                    references += 1;
                    row_references += 1;
                    let source = sources
                        .entry(r.file.clone())
                        .or_insert_with(|| std::fs::read_to_string(root.join(&r.file)).ok());
                    match source {
                        None => broken.push(format!("{at}: `{}`: no such file", r.file)),
                        Some(text) if !defines(text, &r.function) => broken.push(format!(
                            "{at}: `{}::{}`: the file defines no `fn {}`",
                            r.file, r.function, r.function
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        if in_rules_table && !is_separator && trimmed.starts_with('|') && row_references == 0 {
            broken.push(format!("{at}: a rule that names no test: {trimmed}"));
        }

        // Relative links.
        for target in link_targets(line) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap_or(target);
            if file.is_empty() {
                continue;
            }
            if !docs.join(file).exists() {
                broken.push(format!("{at}: link to `{target}`: no such file"));
            }
        }
    }

    if references < MIN_REFERENCES {
        broken.push(format!(
            "the page names {references} tests: at least {MIN_REFERENCES} are expected"
        ));
    }
    assert!(
        broken.is_empty(),
        "docs/rules.md has {} broken references:\n{}",
        broken.len(),
        broken.join("\n")
    );
    eprintln!("docs/rules.md: {references} test references, all found");
}

#[test]
fn the_parser_reads_what_the_page_writes() {
    assert_eq!(
        code_spans("a `x` b ``y ` z`` c `crates/a.rs::f`"),
        ["x", "y ` z", "crates/a.rs::f"]
    );
    assert_eq!(code_spans("an unmatched ` stays text"), Vec::<&str>::new());
    assert_eq!(
        test_ref("crates/apikeys/src/id.rs::ids_are_not_sequential"),
        Some(Ok(TestRef {
            file: "crates/apikeys/src/id.rs".into(),
            function: "ids_are_not_sequential".into(),
        }))
    );
    assert_eq!(test_ref("crates/apikeys/src/id.rs"), None);
    assert_eq!(test_ref("Policy::default"), None);
    assert!(matches!(test_ref("crates/a.rs::not a name"), Some(Err(_))));
    assert_eq!(
        link_targets("[`a.rs`](../a.rs) and [b](../b.rs#L3), [c](https://x.invalid)"),
        ["../a.rs", "../b.rs#L3", "https://x.invalid"]
    );
    assert!(defines("pub async fn name<T>(", "name"));
    assert!(defines("fn name(store: S)", "name"));
    assert!(!defines("fn name_longer(", "name"));
}
