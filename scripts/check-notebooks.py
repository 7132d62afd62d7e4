#!/usr/bin/env python3
"""Checks the committed notebooks against their text sources; `--fix` formats the sources.

The sources are notebooks/src/*.rs in jupytext's percent format (each notebook is paired with its
source: `formats: ipynb,src//rs:percent`). Edit either side, then `jupytext --sync notebooks/*.ipynb`
(or save in JupyterLab with jupytext installed) brings the other up to date. Fails when:

- a committed notebook's cells differ from its source (drift);
- a source's code cell is not rustfmt-clean: each cell is formatted as the body of a function (a
  cell is a sequence of statements and items, which is what a function body holds), with the
  workspace's rustfmt.toml and the width of one indent more; evcxr's `:dep` lines are left alone;
- a committed notebook shows no picture, holds an error, or holds the outputs of a short run
  (`GANFOLD_NB_STEPS` set): readers on the web see the committed outputs, which come from
  `scripts/run-notebooks.sh --commit` (full runs).

Run with the notebook venv (scripts/setup-notebooks.sh): `.venv-nb/bin/python scripts/check-notebooks.py`
(`--fix`: format the sources' code cells; `--no-outputs`: skip the output checks; `--executed NB...`:
check only the outputs of executed copies, as scripts/run-notebooks.sh does after a run).
"""
import pathlib
import subprocess
import sys

import jupytext
import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
NB = ROOT / "notebooks"
INDENT = "    "


def cells(nb):
    return [(c.cell_type, c.source.strip("\n")) for c in nb.cells]


def rustfmt_config():
    conf = {}
    for line in (ROOT / "rustfmt.toml").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = (s.strip() for s in line.split("=", 1))
            conf[k] = v.strip('"')
    conf["max_width"] = str(int(conf.get("max_width", "100")) + len(INDENT))
    return ",".join("%s=%s" % kv for kv in conf.items())


def formatted(code, config):
    """The cell formatted by rustfmt, or None when rustfmt cannot parse it (its message is printed)."""
    lines = code.split("\n")
    commands = [l for l in lines if l.startswith(":")]
    body = [l for l in lines if not l.startswith(":")]
    if not any(l.strip() for l in body):
        return code
    wrapped = "fn cell() {\n" + "\n".join(INDENT + l if l else l for l in body) + "\n}\n"
    res = subprocess.run(
        ["rustfmt", "--edition", "2024", "--emit", "stdout", "--config", config],
        input=wrapped, capture_output=True, text=True,
    )
    if res.returncode != 0:
        print(res.stderr, file=sys.stderr)
        return None
    out = res.stdout.rstrip("\n").split("\n")
    assert out[0] == "fn cell() {" and out[-1] == "}", out
    inner = [l[len(INDENT):] if l.startswith(INDENT) else l for l in out[1:-1]]
    return "\n".join(commands + inner)


def outputs_problems(name, nb, committed=True):
    """What is wrong with a notebook's outputs: no picture, an error, and for a committed notebook
    the outputs of a short run."""
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    bad = []
    if not any("image/png" in o.get("data", {}) for o in outs):
        bad.append("%s: the notebook shows no picture%s" % (name, " (run scripts/run-notebooks.sh --commit)" * committed))
    if any(o.get("output_type") == "error" for o in outs):
        bad.append("%s: the notebook holds an error output" % name)
    text = "".join("".join(o.get("text", "")) for o in outs)
    if committed and "GANFOLD_NB_STEPS = Some(" in text:
        bad.append("%s: the committed outputs are of a short run (GANFOLD_NB_STEPS was set)" % name)
    return bad


def check_executed(paths):
    """`--executed NB...`: the outputs of freshly executed notebooks (scripts/run-notebooks.sh)."""
    bad = []
    for path in map(pathlib.Path, paths):
        nb = nbformat.read(path, as_version=4)
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        images = sum("image/png" in o.get("data", {}) for o in outs)
        errors = sum(o.get("output_type") == "error" for o in outs)
        print("%s: %d inline images, %d errors" % (path.name, images, errors))
        bad += outputs_problems(path.stem, nb, committed=False)
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


def main():
    if sys.argv[1:2] == ["--executed"]:
        return check_executed(sys.argv[2:])
    fix = "--fix" in sys.argv[1:]
    # Before a run that will replace the committed outputs (run-notebooks.sh --commit).
    check_outputs = "--no-outputs" not in sys.argv[1:]
    config = rustfmt_config()
    sources = {p.stem: p for p in sorted((NB / "src").glob("*.rs"))}
    notebooks = {p.stem: p for p in sorted(NB.glob("*.ipynb"))}
    bad = []
    for name in sorted(set(sources) ^ set(notebooks)):
        side = "notebooks/src/%s.rs" % name if name not in sources else "notebooks/%s.ipynb" % name
        bad.append("%s: missing (every notebook has a source and every source a notebook)" % side)
    for name, path in sources.items():
        nb = jupytext.read(path)
        changed = False
        for i, c in enumerate(nb.cells):
            if c.cell_type != "code":
                continue
            code = c.source.strip("\n")
            f = formatted(code, config)
            if f is None:
                bad.append("%s: code cell %d does not parse as Rust statements" % (name, i))
            elif f != code:
                if fix:
                    c.source, changed = f, True
                else:
                    bad.append("%s: code cell %d is not rustfmt-clean (scripts/check-notebooks.py --fix)" % (name, i))
        if changed:
            jupytext.write(nb, path, fmt="rs:percent")
            print("formatted %s; now run `.venv-nb/bin/jupytext --sync notebooks/*.ipynb`" % path.relative_to(ROOT))
    for name in sorted(set(sources) & set(notebooks)):
        src = cells(jupytext.read(sources[name]))
        committed = nbformat.read(notebooks[name], as_version=4)
        ipynb = cells(committed)
        if check_outputs:
            bad += outputs_problems(name, committed)
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
        print("after an edit: `.venv-nb/bin/jupytext --sync notebooks/*.ipynb`", file=sys.stderr)
        return 1
    print("notebooks match their sources, are formatted and carry a full run's outputs (%d)" % len(sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
