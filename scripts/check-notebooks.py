#!/usr/bin/env python3
"""Fails when a committed notebook's cells differ from its text source.

The sources are notebooks/src/*.rs in jupytext's percent format (each notebook is paired with its
source: `formats: ipynb,src//rs:percent`). Edit either side, then `jupytext --sync notebooks/*.ipynb`
(or open the notebook in Jupyter with jupytext installed) brings the other up to date. Run with the
notebook venv, which scripts/run-notebooks.sh creates: `.venv-nb/bin/python scripts/check-notebooks.py`.
"""
import pathlib
import sys

import jupytext
import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
NB = ROOT / "notebooks"


def cells(nb):
    return [(c.cell_type, c.source.strip("\n")) for c in nb.cells]


def main():
    sources = {p.stem: p for p in sorted((NB / "src").glob("*.rs"))}
    notebooks = {p.stem: p for p in sorted(NB.glob("*.ipynb"))}
    bad = []
    for name in sorted(set(sources) ^ set(notebooks)):
        side = "notebooks/src/%s.rs" % name if name not in sources else "notebooks/%s.ipynb" % name
        bad.append("%s: missing (every notebook has a source and every source a notebook)" % side)
    for name in sorted(set(sources) & set(notebooks)):
        src = cells(jupytext.read(sources[name]))
        ipynb = cells(nbformat.read(notebooks[name], as_version=4))
        if src == ipynb:
            continue
        for i, (a, b) in enumerate(zip(src, ipynb)):
            if a != b:
                bad.append("%s: cell %d differs from its source (%s cell)" % (name, i, b[0]))
                break
        else:
            bad.append("%s: %d cells in the source, %d in the notebook" % (name, len(src), len(ipynb)))
    for line in bad:
        print(line, file=sys.stderr)
    if bad:
        print("run `.venv-nb/bin/jupytext --sync notebooks/*.ipynb` after an edit", file=sys.stderr)
        return 1
    print("notebooks match their sources (%d)" % len(sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
