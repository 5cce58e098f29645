//! Writes the kustomize tree under `deploy/` (`deploy/base`, `deploy/components/…`) from the
//! same code as `irsa install`: `cargo run -p irsa-k8s --example gen-deploy [DEPLOY_DIR]`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy"),
        PathBuf::from,
    );
    for (path, content) in irsa_k8s::install::kustomize_files() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, content)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
