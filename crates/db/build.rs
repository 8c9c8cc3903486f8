//! Embeds the tool manifests (`tools/*.json`) for the tool migrations that name them, and makes
//! sure every such migration has its manifest.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    // Read when the script runs, not when it was compiled: a build script compiled for a copy of
    // this tree elsewhere (a shared target directory) must still read this tree.
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("../..");
    let (tools, migrations) = (root.join("tools"), root.join("migrations"));
    println!("cargo:rerun-if-changed={}", tools.display());
    println!("cargo:rerun-if-changed={}", migrations.display());

    let mut manifests: Vec<(String, std::path::PathBuf)> = fs::read_dir(&tools)
        .expect("the tools/ directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p.canonicalize().ok()?)))
        .collect();
    manifests.sort();
    for (name, path) in &manifests {
        let text = fs::read_to_string(path).expect("a readable manifest");
        assert!(
            !text.contains("$manifest$"),
            "tools/{name}.json must not contain $manifest$"
        );
    }
    for entry in fs::read_dir(&migrations)
        .expect("the migrations/ directory")
        .flatten()
    {
        let file = entry.file_name().to_string_lossy().to_string();
        let sql = fs::read_to_string(entry.path()).unwrap_or_default();
        if sql.contains("{{tool_manifest}}") {
            // 0007_sprint_00_woop.up.sql needs tools/sprint_00_woop.json
            let name = file
                .split_once('_')
                .map(|(_, rest)| rest)
                .unwrap_or_default();
            let name = name.split('.').next().unwrap_or_default();
            assert!(
                manifests.iter().any(|(m, _)| m == name),
                "migrations/{file} needs tools/{name}.json"
            );
        }
    }

    let mut out = String::from("pub static TOOL_MANIFESTS: &[(&str, &str)] = &[\n");
    for (name, path) in &manifests {
        let _ = writeln!(out, "    ({name:?}, include_str!({:?})),", path.display());
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("tool_manifests.rs");
    fs::write(dest, out).expect("write tool_manifests.rs");
}
