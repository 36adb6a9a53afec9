//! The README and the Markdown files in docs/ never point at something that is not
//! there: every relative link and image path names a file or directory of the
//! repository, and every `#anchor` names a heading of the same file (GitHub's slugs).

use std::collections::HashSet;
use std::path::Path;

/// Link targets in Markdown text: what follows `](` up to the closing parenthesis.
fn targets(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = md;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].trim().to_string());
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_`
/// dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(md: &str) -> HashSet<String> {
    let mut in_code = false;
    let mut out = HashSet::new();
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug(" PostgreSQL versions"), "postgresql-versions");
    assert_eq!(
        slug(" budget: who writes how much WAL"),
        "budget-who-writes-how-much-wal"
    );
    assert_eq!(
        targets("see [a](#x) and ![b](docs/y.svg) (plain)"),
        ["#x", "docs/y.svg"]
    );
}

/// What the Markdown file `file` (relative to `root`) points at that is not there:
/// relative paths resolve from the file's directory, anchors against its headings.
fn dangling(root: &Path, file: &str) -> Vec<String> {
    let md = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let dir = root
        .join(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let anchors = anchors(&md);
    let mut missing = Vec::new();
    for t in targets(&md) {
        if t.contains("://") || t.starts_with("mailto:") {
            continue;
        }
        if let Some(a) = t.strip_prefix('#') {
            if !anchors.contains(a) {
                missing.push(format!("{file}: anchor {t} (no such heading)"));
            }
            continue;
        }
        let path = t.split('#').next().unwrap_or_default();
        if !dir.join(path).exists() {
            missing.push(format!("{file}: {t} (no such file)"));
        }
    }
    missing
}

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_readme_link_and_image_exists() {
    let missing = dangling(&repo_root(), "README.md");
    assert!(missing.is_empty(), "README.md points at: {missing:#?}");
}

#[test]
fn every_link_of_the_docs_exists() {
    let root = repo_root();
    let mut missing = Vec::new();
    let mut read = 0;
    for e in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let name = e
            .expect("docs/ entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".md") {
            missing.extend(dangling(&root, &format!("docs/{name}")));
            read += 1;
        }
    }
    assert!(read >= 1, "docs/ holds the plugin author's guide");
    assert!(missing.is_empty(), "docs point at: {missing:#?}");
}
