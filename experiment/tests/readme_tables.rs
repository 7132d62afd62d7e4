//! READMEs embed experiment tables between `<!-- experiment: NAME -->` and
//! `<!-- /experiment -->`; each block must be the table of `results/NAME/table.md` as committed,
//! so a README can never show numbers its results do not hold.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The Markdown table of a `table.md`: the header above its `|---` rule and the rows below it
/// (a wrapped note line may also begin with `|`).
fn table_of(md: &str) -> String {
    let lines: Vec<&str> = md.lines().collect();
    let start = (0..lines.len().saturating_sub(1)).find(|&i| lines[i + 1].starts_with("|---")).unwrap_or(lines.len());
    let rows: Vec<&str> = lines[start..].iter().take_while(|l| l.starts_with('|')).copied().collect();
    rows.join("\n")
}

#[test]
fn a_note_line_beginning_with_a_bar_is_not_part_of_the_table() {
    let md = "notes\n|mean| <= 0.25.\n\n| arm | x |\n|---|---:|\n| a | 1 |\n\nafter\n| not | this |\n";
    assert_eq!(table_of(md), "| arm | x |\n|---|---:|\n| a | 1 |");
}

fn readmes() -> Vec<PathBuf> {
    let root = repo();
    let mut out = vec![root.join("README.md")];
    for dir in std::fs::read_dir(root.join("plugins")).unwrap().flatten() {
        let p = dir.path().join("README.md");
        if p.exists() {
            out.push(p);
        }
    }
    out
}

#[test]
fn embedded_tables_match_the_committed_results() {
    let mut seen = 0;
    for readme in readmes() {
        let text = std::fs::read_to_string(&readme).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<!-- experiment: ") {
            let after = &rest[start + "<!-- experiment: ".len()..];
            let name_end =
                after.find(" -->").unwrap_or_else(|| panic!("{}: unclosed experiment marker", readme.display()));
            let name = after[..name_end].trim();
            let body_start = name_end + " -->".len();
            let end = after
                .find("<!-- /experiment -->")
                .unwrap_or_else(|| panic!("{}: no <!-- /experiment --> after {name}", readme.display()));
            let body = after[body_start..end].trim();
            let table =
                std::fs::read_to_string(repo().join("results").join(name).join("table.md")).unwrap_or_else(|e| {
                    panic!("{}: experiment `{name}` has no results/{name}/table.md: {e}", readme.display())
                });
            assert_eq!(
                table_of(body),
                table_of(&table),
                "{}: the embedded table of `{name}` differs from results/{name}/table.md (run scripts/embed-experiment-tables.py)",
                readme.display()
            );
            seen += 1;
            rest = &after[end..];
        }
    }
    assert!(seen > 0, "no README embeds an experiment table");
}
