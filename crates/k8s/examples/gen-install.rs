//! Prints the default install manifests:
//! `cargo run -p irsa-k8s --example gen-install > deploy/install.yaml`.

fn main() {
    let yaml = irsa_k8s::manifests_yaml(&irsa_k8s::InstallOptions::default())
        .expect("the default install options are valid");
    print!("{yaml}");
}
