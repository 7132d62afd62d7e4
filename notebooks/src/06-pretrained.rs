// ---
// jupyter:
//   jupytext:
//     formats: ipynb,src//rs:percent
//     text_representation:
//       extension: .rs
//       format_name: percent
//       format_version: '1.3'
//       jupytext_version: 1.19.7
//   kernelspec:
//     display_name: Rust (ganfold)
//     language: rust
//     name: ganfold
// ---

// %% [markdown]
// # Pretrained weights through the Hugging Face Hub cache
//
// The repository ships small pretrained models, one per method, under `pretrained/<name>/`, each a Hub model
// repository: `ganfold.json` (manifest: id, method, data, steps and the **sha256 of every file**), `config.toml`,
// `model.safetensors` (weights, optimizer moments and method state), `summary.json`, `metrics.jsonl`, the loss curve,
// samples, the method's figures and a model card. They were trained by `ganfold train` (see the README).
//
// `ganfold-hub` resolves `org/name` + file through `hf-hub` and its cache
// (`~/.cache/huggingface/hub/models--org--name/...`, or `HF_HUB_CACHE`). Here everything is **offline**: the shipped
// folders are installed into the local cache layout and resolved from it with no network access (the command line
// does the same with `ganfold hub install` and `ganfold sample --model org/name --offline`).
//
// The Hub client is the prelude's `hub` feature: its HTTP stack roughly doubles what the first cell compiles, so
// only this notebook asks for it (the first run of this cell compiles that stack once; later kernels reuse it).

// %%
// :dep ganfold-notebook = { path = "../notebook", features = ["hub"] }

// %%
use ganfold_notebook::*;
// Step budget: GANFOLD_NB_STEPS (CI sets it small); otherwise the full run below.
println!("GANFOLD_NB_STEPS = {:?}", std::env::var("GANFOLD_NB_STEPS").ok());

// %%
// Installs pretrained/<folder> into the cache (after checking every sha256), then resolves and loads it offline.
let lgan = pretrained("..", "lgan-ring8")?;
println!("{} at step {} on {}", lgan.config.train.method, lgan.step, lgan.config.train.data);
let card = model_card("ganfold/lgan-ring8")?;
card

// %%
samples_of(&lgan, 1000, 7)?

// %% [markdown]
// Files of the model repository are read through the cache and verified against the manifest, e.g. the charts figure:

// %%
model_png("ganfold/lgan-ring8", "figures/charts.png")?

// %% [markdown]
// ## Every shipped model

// %%
{
    let mut t = Table::default();
    for folder in ["dcgan-ring8", "lgan-ring8", "lccgan-ring8", "lsal-ring8", "mmgan-ring8"] {
        let run = pretrained("..", folder)?;
        t.push(
            folder,
            format!("{} steps of {}, {} tensors", run.step, run.config.train.method, run.method.save()?.tensors.len()),
        );
    }
    t
}

// %%
samples_of(&pretrained("..", "mmgan-ring8")?, 1000, 7)?

// %%
samples_of(&pretrained("..", "lccgan-ring8")?, 1000, 7)?

// %% [markdown]
// ## Tampering is caught
//
// Every file is checked against the manifest's sha256 before use. A copy of the cache with one flipped byte in the
// checkpoint refuses to load:

// %%
{
    let tmp = std::env::temp_dir().join("ganfold-nb-tamper");
    let _ = std::fs::remove_dir_all(&tmp);
    let snap = ganfold_hub::install(std::path::Path::new("../pretrained/dcgan-ring8"), &tmp)?;
    let w = snap.join("model.safetensors");
    let mut bytes = std::fs::read(&w)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&w, &bytes)?;
    let hub =
        ganfold_hub::Hub::new(ganfold_hub::HubOptions { cache_dir: Some(tmp.clone()), offline: true, endpoint: None })?;
    let res = hub.load("ganfold/dcgan-ring8", None);
    assert!(res.is_err(), "a tampered checkpoint loaded");
    println!("refused: {:#}", res.err().unwrap());
};

// %% [markdown]
// ## Publishing your own
//
// ```
// ganfold train lgan --data ring8 --steps 2500 --out runs/my-lgan
// ganfold hub pack runs/my-lgan --id you/my-lgan --out hub/my-lgan
// huggingface-cli upload you/my-lgan hub/my-lgan .
// ganfold sample --model you/my-lgan -n 64
// ```
