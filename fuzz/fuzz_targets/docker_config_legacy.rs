//! The legacy `.dockercfg` format (a bare map of registries): never panic, and whatever parses
//! renders to a config that parses to the same thing.
#![no_main]

use irsa_core::docker_config::DockerConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = DockerConfig::parse_legacy(data) {
        let rendered = config.render();
        let again =
            DockerConfig::parse(rendered.expose().as_bytes()).expect("a rendered config parses");
        assert_eq!(config, again);
    }
});
