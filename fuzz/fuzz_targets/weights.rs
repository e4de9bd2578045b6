//! Any bytes, as a .pth, a .safetensors and a .bpk file: reading them may fail, never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use thaw::engine::weights::WeightsFile;

const EXTENSIONS: [&str; 3] = ["pth", "safetensors", "bpk"];

/// A folder of this fuzzing process's own, made once.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("thaw-fuzz-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzzer's temp folder");
        dir
    })
}

fuzz_target!(|bytes: &[u8]| {
    for ext in EXTENSIONS {
        let path = dir().join(format!("input.{ext}"));
        std::fs::write(&path, bytes).expect("write the fuzzer's input file");
        let _ = WeightsFile::read(&path);
    }
});
