//! What the tour notebook's experiment cells call: the committed DCGAN table and its plot.

#[test]
fn committed_dcgan_table_and_plot() -> anyhow::Result<()> {
    let t = ganfold_notebook::experiment_table("dcgan-mnist")?;
    assert!(t.0.contains("| DCGAN | `dcgan` |") && t.0.contains("3 of 3"), "{}", t.0);
    let p = ganfold_notebook::experiment_plot("dcgan-mnist")?;
    assert!(p.size().0 > 0 && p.0.starts_with(b"\x89PNG"));
    assert!(ganfold_notebook::experiment_table("no-such-experiment").is_err());
    Ok(())
}
