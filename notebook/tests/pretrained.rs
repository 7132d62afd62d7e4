//! The `hub` feature's notebook helpers on a model shipped in `pretrained/`, with a private cache.
#![cfg(feature = "hub")]

#[test]
fn pretrained_model_installs_loads_and_shows_its_card() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    // SAFETY: the only test in this binary, so no other thread reads the environment.
    unsafe { std::env::set_var("HF_HUB_CACHE", cache.path()) };
    let run = ganfold_notebook::pretrained(ganfold_notebook::repo_dir(), "dcgan-ring8")?;
    assert_eq!(run.config.train.method, "dcgan");
    assert!(cache.path().join("models--ganfold--dcgan-ring8").is_dir(), "installed outside the given cache");
    let card = ganfold_notebook::model_card("ganfold/dcgan-ring8")?;
    assert!(card.0.iter().any(|(k, v)| k == "method" && v == "dcgan"), "{:?}", card.0);
    let png = ganfold_notebook::model_png("ganfold/dcgan-ring8", "samples.png")?;
    assert!(png.0.starts_with(b"\x89PNG"));
    assert!(ganfold_notebook::pretrained(ganfold_notebook::repo_dir(), "no-such-model").is_err());
    Ok(())
}
