//! Bounds on what untrusted input (configs, data files, checkpoints, published models) can make
//! ganfold read or allocate: a clear error before the read or the allocation, never an
//! out-of-memory kill, an abort or a panic.

use anyhow::{Context, bail};
use std::io::Read;
use std::path::Path;

/// Largest text file (config, run files) ganfold reads: far above any real one.
pub const TEXT_MAX: u64 = 16 << 20;

/// The memory ganfold may use: `GANFOLD_MAX_MEMORY` (bytes, or with a K, M, G or T suffix) if
/// set, else the memory the system reports available (Linux `MemAvailable`), else unbounded;
/// never more than the address space the process has left under its limit (`ulimit -v`), where
/// an allocation beyond it would abort the process.
pub fn memory_budget() -> anyhow::Result<u64> {
    let budget = match std::env::var("GANFOLD_MAX_MEMORY") {
        Ok(v) => parse_size(&v).with_context(|| format!("GANFOLD_MAX_MEMORY={v:?}"))?,
        Err(_) => mem_available().unwrap_or(u64::MAX),
    };
    Ok(budget.min(address_space_left().unwrap_or(u64::MAX)))
}

/// RLIMIT_AS minus the address space already mapped (Linux `/proc/self/limits` and `VmSize`);
/// `None` when there is no limit or it cannot be read.
fn address_space_left() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max address space"))?;
    let soft: u64 = line.trim_start_matches("Max address space").split_whitespace().next()?.parse().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status.lines().find(|l| l.starts_with("VmSize:"))?.split_whitespace().nth(1)?.parse().ok()?;
    // The allocator maps fresh address space in large segments, beyond what is asked of it.
    const ALLOCATOR_SLACK: u64 = 512 << 20;
    Some(soft.saturating_sub(kib.saturating_mul(1024)).saturating_sub(ALLOCATOR_SLACK))
}

/// `123`, `64K`, `512M`, `8G`, `1T` (powers of 1024; a trailing `B` or `iB` is accepted).
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().trim_end_matches("iB").trim_end_matches('B');
    let (num, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = num.trim().parse().with_context(|| format!("`{s}` is not a size such as 512M or 8G"))?;
    n.checked_mul(1 << shift).with_context(|| format!("size `{s}` does not fit in 64 bits"))
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `bytes` in human units.
pub fn human(bytes: u128) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b / 1_048_576.0),
        _ => format!("{:.1} GiB", b / 1_073_741_824.0),
    }
}

/// Refuses an allocation of `bytes` for `what` beyond [`memory_budget`].
pub fn check_alloc(what: &str, bytes: u128) -> anyhow::Result<()> {
    let budget = memory_budget()?;
    if bytes > budget as u128 {
        bail!(
            "{what} needs {}, more than the {} of memory available (set GANFOLD_MAX_MEMORY to change the limit)",
            human(bytes),
            human(budget as u128)
        );
    }
    Ok(())
}

/// Reads the whole file `path` (`what` names it in errors) if it holds at most `max` bytes;
/// a longer file, a device or a pipe that does not end is an error after at most `max + 1` bytes.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if let Ok(m) = f.metadata()
        && m.is_file()
        && m.len() > max
    {
        bail!(
            "{what} {} is {}, more than the {} ganfold reads",
            path.display(),
            human(m.len().into()),
            human(max.into())
        );
    }
    let mut bytes = vec![];
    f.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{what} {} holds more than the {} ganfold reads", path.display(), human(max.into()));
    }
    Ok(bytes)
}

/// A UTF-8 text file of at most [`TEXT_MAX`] bytes.
pub fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    String::from_utf8(read_bounded(path, TEXT_MAX, what)?)
        .map_err(|_| anyhow::anyhow!("{what} {} is not UTF-8 text", path.display()))
}

/// A binary file (data, checkpoint) of at most the memory budget.
pub fn read_data(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    read_bounded(path, memory_budget()?, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_overflow_is_an_error() -> anyhow::Result<()> {
        assert_eq!(parse_size("123")?, 123);
        assert_eq!(parse_size("64K")?, 64 << 10);
        assert_eq!(parse_size("512MiB")?, 512 << 20);
        assert_eq!(parse_size("8G")?, 8 << 30);
        assert!(parse_size("16777216T").is_err());
        assert!(parse_size("lots").is_err());
        Ok(())
    }

    #[test]
    fn reads_are_bounded() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789")?;
        assert_eq!(read_bounded(&p, 10, "file")?, b"0123456789");
        let e = read_bounded(&p, 9, "config file").unwrap_err().to_string();
        assert!(e.contains("config file") && e.contains("more than"), "{e}");
        // A device that never ends is cut after max + 1 bytes.
        if Path::new("/dev/zero").exists() {
            let e = read_bounded(Path::new("/dev/zero"), 1000, "config file").unwrap_err().to_string();
            assert!(e.contains("more than"), "{e}");
        }
        std::fs::write(&p, [0xff, 0xfe])?;
        assert!(read_text(&p, "config file").unwrap_err().to_string().contains("UTF-8"));
        Ok(())
    }

    #[test]
    fn allocations_beyond_the_budget_are_refused() {
        assert!(check_alloc("a test tensor", 16).is_ok());
        let e = check_alloc("a test tensor", u128::MAX).unwrap_err().to_string();
        assert!(e.contains("a test tensor") && e.contains("GANFOLD_MAX_MEMORY"), "{e}");
    }
}
