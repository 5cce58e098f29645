//! .dockerconfigjson: never panic, and whatever parses renders back to the same config.
#![no_main]

use irsa_core::docker_config::DockerConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = DockerConfig::parse(data) {
        let rendered = config.render();
        let again =
            DockerConfig::parse(rendered.expose().as_bytes()).expect("a rendered config parses");
        assert_eq!(config, again);
    }
});
