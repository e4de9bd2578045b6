//! With feature `tch`, the binary finds the libtorch it was built against without
//! LD_LIBRARY_PATH: torch-sys says where that is, and an rpath records it.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
