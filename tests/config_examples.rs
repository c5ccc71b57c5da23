//! Every file in config/ is a commented example that must load, and `ringmux check` agrees;
//! so must the configs deploy/ ships.

use std::process::Command;

#[test]
fn every_example_config_loads() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut checked = 0;
    // config/'s examples, and the configs deploy/ ships beside its unit and manifests.
    let paths = std::fs::read_dir(format!("{root}/config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .chain(["systemd", "kubernetes"].map(|d| format!("{root}/deploy/{d}/config.yaml").into()));
    for path in paths {
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = ringmux_core::config::load(&text, 2)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!cfg.backends.is_empty());
        checked += 1;
        // Its backends are cluster names, resolved only inside a cluster: `check` resolves.
        if path.ends_with("kubernetes/config.yaml") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_ringmux"))
            .arg("check")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(checked >= 5, "only {checked} example configs");
}

/// `ringmux check` on a config file with `text`.
fn check(name: &str, text: &str) -> std::process::Output {
    let path = std::env::temp_dir().join(format!("ringmux-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringmux"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(path);
    out
}

/// `ringmux check` on a config file with `text`: it must fail; its stderr.
fn check_fails(name: &str, text: &str) -> String {
    let out = check(name, text);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_names_the_bad_key() {
    let err = check_fails(
        "bad",
        "listen: 127.0.0.1:0\nbackends:\n  - name: ok\n    url: ftp://x/\n",
    );
    assert!(err.contains("backends[0].url"), "{err}");
}

/// The config library does no I/O; the gateway resolves backend hosts when it starts, and
/// `ringmux check` (which loads the config the same way) names the one it cannot resolve.
#[test]
fn an_unresolvable_backend_host_is_named_at_start() {
    let text = "listen: 127.0.0.1:0\nbackends:\n  - name: ok\n    url: http://no-such-host.invalid:9/mcp\n";
    assert!(ringmux_core::config::load(text, 2).is_ok());
    let err = check_fails("dns", text);
    assert!(
        err.contains("backends[0].url") && err.contains("cannot resolve no-such-host.invalid"),
        "{err}"
    );
}

/// Auth settings: a JWK Set file that is missing is named by `ringmux check` (it is read when
/// the gateway starts), and one holding a symmetric key is refused (no HMAC secret may stand
/// for an issuer's public key).
#[test]
fn auth_keys_are_checked_at_start() {
    let base = "listen: 127.0.0.1:0\nbackends:\n  - name: ok\n    url: http://127.0.0.1:9/mcp\nauth:\n  resource: https://gw.test/mcp\n  jwt:\n    issuer: https://idp.test\n";
    let err = check_fails(
        "jwks-missing",
        &format!("{base}    jwks_file: /nonexistent/jwks.json\n"),
    );
    assert!(err.contains("auth.jwt.jwks_file"), "{err}");
    let err = check_fails(
        "jwks-oct",
        &format!("{base}    jwks: {{keys: [{{kty: oct, kid: s, k: c2VjcmV0}}]}}\n"),
    );
    assert!(err.contains("no public signing key"), "{err}");
    let err = check_fails(
        "jwks-remote",
        &format!("{base}    jwks_url: http://idp.example.com/jwks\n"),
    );
    assert!(
        err.contains("auth.jwt.jwks_url") && err.contains("loopback"),
        "{err}"
    );
    let err = check_fails(
        "header-and-auth",
        &format!("modern:\n  principal_header: x-principal\n{base}    jwks_file: /x\n"),
    );
    assert!(err.contains("modern.principal_header"), "{err}");
    let err = check_fails(
        "auth-empty",
        "listen: 127.0.0.1:0\nbackends:\n  - name: ok\n    url: http://127.0.0.1:9/mcp\nauth:\n  resource: https://gw.test/mcp\n",
    );
    assert!(err.contains("auth: needs a credential to accept"), "{err}");
}

/// A backend credential whose secret is missing is named at start.
#[test]
fn a_missing_backend_secret_is_named_at_start() {
    let err = check_fails(
        "secret",
        "listen: 127.0.0.1:0\nbackends:\n  - name: ok\n    url: http://127.0.0.1:9/mcp\n    credentials: {env: RINGMUX_TEST_NO_SUCH_VARIABLE}\n",
    );
    assert!(
        err.contains("backends[0].credentials")
            && err.contains("RINGMUX_TEST_NO_SUCH_VARIABLE is not set"),
        "{err}"
    );
}

/// A JWK Set that holds keys ringmux does not verify with (an HMAC secret, an encryption
/// key) beside a signing key loads: those are skipped, not fatal (issuers publish both).
#[test]
fn unusable_keys_beside_a_signing_key_are_skipped() {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/auth/jwks.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut signing = fixture["keys"][0].clone();
    let mut enc = signing.clone();
    enc["kid"] = "e1".into();
    enc["use"] = "enc".into();
    enc.as_object_mut().unwrap().remove("alg");
    signing["kid"] = "k1".into();
    let set =
        serde_json::json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}, enc, signing]});
    let out = check(
        "skip",
        &format!(
            "listen: 127.0.0.1:0\nbackends:\n  - name: ok\n    url: http://127.0.0.1:9/mcp\nauth:\n  resource: https://gw.test/mcp\n  jwt:\n    issuer: https://idp.test\n    jwks: '{set}'\n"
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
