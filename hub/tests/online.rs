//! The online path against a local HTTP server that answers as the Hub's `resolve` endpoint does:
//! a model downloads into an empty cache, loads, and then resolves offline; a missing file, a
//! missing repository and a malformed response are clear errors.

mod common;

use common::{ID, fixture, hub};
use ganfold_hub::{Hub, HubOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// What the fake Hub does with a request for an existing file.
#[derive(Clone, Copy)]
enum Mode {
    Serve,
    /// A redirect without a Location header (hf-hub 0.4 unwraps it).
    BrokenRedirect,
}

/// Serves `model` (a packed model folder) as `{ID}` at `/{ID}/resolve/main/{file}`; returns the
/// endpoint URL. The thread lives as long as the test process.
fn serve(model: PathBuf, mode: Mode) -> anyhow::Result<String> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", l.local_addr()?);
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().expect("clone the socket"));
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().split('-').next().and_then(|a| a.parse::<usize>().ok());
                }
            }
            let _ = s.write_all(&respond(&model, &path, range, mode));
        }
    });
    Ok(url)
}

fn respond(model: &Path, path: &str, range: Option<usize>, mode: Mode) -> Vec<u8> {
    let prefix = format!("/{ID}/resolve/main/");
    let not_found = |code: &str| {
        format!("HTTP/1.1 404 Not Found\r\nx-error-code: {code}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .into_bytes()
    };
    let Some(file) = path.strip_prefix(&prefix) else { return not_found("RepoNotFound") };
    let Ok(body) = std::fs::read(model.join(file)) else { return not_found("EntryNotFound") };
    let etag = ganfold_hub::sha256_hex(&body);
    let commit = "0123456789abcdef0123456789abcdef01234567";
    if let Mode::BrokenRedirect = mode {
        return format!(
            "HTTP/1.1 302 Found\r\netag: \"{etag}\"\r\nx-repo-commit: {commit}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .into_bytes();
    }
    let start = range.unwrap_or(0).min(body.len());
    let part = &body[start..];
    let mut out = format!(
        "HTTP/1.1 206 Partial Content\r\netag: \"{etag}\"\r\nx-repo-commit: {commit}\r\n\
         content-range: bytes {start}-{}/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len().saturating_sub(1),
        body.len(),
        part.len()
    )
    .into_bytes();
    out.extend_from_slice(part);
    out
}

fn online(cache: &Path, endpoint: String) -> anyhow::Result<Hub> {
    Hub::new(HubOptions { cache_dir: Some(cache.to_path_buf()), offline: false, endpoint: Some(endpoint) })
}

#[test]
fn a_model_downloads_into_an_empty_cache_then_resolves_offline() -> anyhow::Result<()> {
    let (tmp, _run, model, _installed) = fixture()?;
    let cache = tmp.path().join("fresh-cache");
    let h = online(&cache, serve(model, Mode::Serve)?)?;
    let loaded = h.load(ID, None)?;
    assert_eq!((loaded.config.train.method.as_str(), loaded.step), ("dcgan", 12));
    assert!(loaded.dir.starts_with(&cache));
    // Everything the model needs is now cached: offline mode loads it without a server.
    let (off, _listener) = hub(&cache, true)?;
    assert_eq!(off.load(ID, None)?.step, 12);
    Ok(())
}

#[test]
fn missing_files_repositories_and_malformed_answers_are_clear_errors() -> anyhow::Result<()> {
    let (tmp, _run, model, _installed) = fixture()?;
    let h = online(&tmp.path().join("c1"), serve(model.clone(), Mode::Serve)?)?;
    let e = format!("{:#}", h.fetch("ganfold-test/nobody").err().expect("no such repository"));
    assert!(e.contains("does not exist on the Hub"), "{e}");
    std::fs::remove_file(model.join("config.toml"))?;
    let e = format!("{:#}", h.fetch(ID).err().expect("a file the manifest lists is missing on the Hub"));
    assert!(e.contains("has no file `config.toml`"), "{e}");

    let h = online(&tmp.path().join("c2"), serve(model, Mode::BrokenRedirect)?)?;
    let e = format!("{:#}", h.fetch(ID).err().expect("a redirect without a Location"));
    assert!(e.contains("cannot read") && e.contains(ID), "{e}");
    // Nothing half-written resolves afterwards.
    let (off, _l) = hub(&tmp.path().join("c2"), true)?;
    assert!(off.fetch(ID).is_err());
    Ok(())
}
