//! Writes every target's seeds into `<folder>/<target>/seed-<n>`: the starting
//! corpus of the cargo-fuzz targets (see `fuzz/README.md`).

use std::path::PathBuf;

use stele_fuzz_harness::TARGETS;

fn main() -> std::io::Result<()> {
    let Some(folder) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz-seeds <corpus folder>");
        std::process::exit(2);
    };
    for target in TARGETS {
        let dir = folder.join(target.name);
        std::fs::create_dir_all(&dir)?;
        for (index, seed) in (target.seeds)().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{index}")), seed)?;
        }
    }
    Ok(())
}
