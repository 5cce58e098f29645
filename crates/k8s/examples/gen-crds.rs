//! Prints irsa's CRDs as YAML: `cargo run -p irsa-k8s --example gen-crds > deploy/crds.yaml`.

fn main() {
    print!("{}", irsa_k8s::crds_yaml());
}
