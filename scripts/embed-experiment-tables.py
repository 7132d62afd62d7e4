#!/usr/bin/env python3
"""Rewrites every `<!-- experiment: NAME -->` ... `<!-- /experiment -->` block of README.md and
plugins/*/README.md with the table of results/NAME/table.md (the header above its `|---` rule and
the rows below it).

Run it after `ganfold experiment run`/`report`; experiment/tests/readme_tables.rs fails while a
README shows a table its results do not hold. Stdlib only.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- experiment: (?P<name>[A-Za-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- /experiment -->)", re.S)


def table(name, old):
    path = ROOT / "results" / name / "table.md"
    if not path.exists():
        print(f"warning: {path} does not exist (run `ganfold experiment run experiments/{name}.toml`); block left as it is", file=sys.stderr)
        return old
    lines = path.read_text().splitlines()
    # The table starts at the line above its `|---` rule; a wrapped note line may also begin with `|`.
    start = next((i for i in range(len(lines) - 1) if lines[i + 1].startswith("|---")), len(lines))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return "\n".join(rows) + "\n"


def main():
    readmes = [ROOT / "README.md"] + sorted((ROOT / "plugins").glob("*/README.md"))
    for readme in readmes:
        text = readme.read_text()
        new = BLOCK.sub(lambda m: m.group(1) + table(m.group("name"), m.group("body")) + m.group(4), text)
        if new != text:
            readme.write_text(new)
            print(f"updated {readme.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
