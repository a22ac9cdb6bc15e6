//! Tells the crate whether it is compiled without optimisations (`opt-level = 0`, the
//! default of a debug build of a program that depends on kiln), so that the CPU
//! backend can say once that its kernels will be slow.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kiln_unoptimised)");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("OPT_LEVEL").is_ok_and(|level| level == "0") {
        println!("cargo::rustc-cfg=kiln_unoptimised");
    }
}
