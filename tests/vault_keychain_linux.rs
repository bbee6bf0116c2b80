//! The real Linux keychain backends, driven through the CLI in separate processes (a
//! process-local mock could not pass these): the Secret Service inside a private
//! `dbus-run-session` with `gnome-keyring-daemon`, and the kernel keyring inside a
//! `keyctl session`. And the machine without either: the default backend says it is
//! unavailable, how to use `--vault file`, and never falls back on its own.
//!
//! Needs `dbus-run-session` (dbus), `gnome-keyring-daemon` (gnome-keyring) and `keyctl`
//! (keyutils) on PATH.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/fake_cloud.rs"]
mod fake_cloud;

use common::*;
use fake_cloud::Api as Flavor;
use std::path::Path;
use std::process::Command;

fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed; these tests need the packages dbus, gnome-keyring and keyutils (apt-get install dbus gnome-keyring keyutils)"
    );
}

fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// The steps both keychain tests run, each `switchyard` call a separate process:
/// add a provider with a key, read the status, test the provider (which decrypts the
/// key with the root read from the keychain), rotate the root, test again, doctor.
const SCRIPT: &str = r#"
set -e
out="$OUT"
printf '%s' "$KEY" | "$BIN" --data-dir "$DATA" provider add cloud --kind openai-compatible --base-url "$BASE" --api-key-stdin > "$out/add.txt"
"$BIN" --data-dir "$DATA" --json keys status > "$out/status1.json"
"$BIN" --data-dir "$DATA" --json provider test cloud > "$out/test1.json"
"$BIN" --data-dir "$DATA" --json keys rotate --root --yes > "$out/rotate.json"
"$BIN" --data-dir "$DATA" --json provider test cloud > "$out/test2.json"
"$BIN" --data-dir "$DATA" --json keys status > "$out/status2.json"
"$BIN" --data-dir "$DATA" --json doctor > "$out/doctor.json" || true
"#;

struct Outcome {
    status1: serde_json::Value,
    status2: serde_json::Value,
    rotate: serde_json::Value,
    doctor: serde_json::Value,
}

fn check_outcome(dir: &Path, backend: &str) -> Outcome {
    let status1 = json_file(&dir.join("status1.json"));
    assert_eq!(status1["backend"], backend);
    assert_eq!(status1["root_state"], "ok", "{status1}");
    assert_eq!(status1["secrets"], 1);
    for t in ["test1.json", "test2.json"] {
        let v = json_file(&dir.join(t));
        assert_eq!(v["ok"], true, "{t}: {v}");
    }
    let rotate = json_file(&dir.join("rotate.json"));
    assert_eq!(rotate["old_root_id"], status1["root_id"]);
    let status2 = json_file(&dir.join("status2.json"));
    assert_eq!(status2["root_id"], rotate["new_root_id"]);
    assert_eq!(status2["fingerprint"], rotate["new_fingerprint"]);
    let doctor = json_file(&dir.join("doctor.json"));
    Outcome {
        status1,
        status2,
        rotate,
        doctor,
    }
}

#[test]
fn the_secret_service_keeps_the_root_across_processes_and_rotation_leaves_one_item() {
    require_tool("dbus-run-session");
    require_tool("gnome-keyring-daemon");
    let key = "sk-secret-service-0123456789abcdef";
    let (cloud, _rt) = fake_cloud::start_in_background(Flavor::OpenAi, key);
    let env = Env::new();
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // A login keyring with an empty password: gnome-keyring stores it unencrypted, so
    // the test can start the daemon unlocked without a prompt, and can read the items.
    let keyrings = home.path().join("data/keyrings");
    std::fs::create_dir_all(&keyrings).unwrap();
    std::fs::write(
        keyrings.join("login.keyring"),
        "[keyring]\ndisplay-name=login\nctime=0\nmtime=0\nlock-on-idle=false\nlock-after=false\n",
    )
    .unwrap();
    std::fs::write(keyrings.join("default"), "login").unwrap();

    let script =
        format!("eval $(gnome-keyring-daemon --start --components=secrets 2>/dev/null)\n{SCRIPT}");
    let status = Command::new("dbus-run-session")
        .args(["--", "sh", "-c", &script])
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_RUNTIME_DIR", home.path())
        .env_remove("SWITCHYARD_VAULT")
        .env_remove("SWITCHYARD_LOG")
        .env("BIN", BIN)
        .env("DATA", env.data_dir())
        .env("OUT", out.path())
        .env("KEY", key)
        .env("BASE", cloud.base("ok"))
        .status()
        .unwrap();
    assert!(status.success(), "the keychain script failed: {status:?}");
    let o = check_outcome(out.path(), "keychain");
    assert!(
        o.status1["store"]
            .as_str()
            .unwrap()
            .contains("Secret Service"),
        "{}",
        o.status1
    );
    let vault = o.doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "vault")
        .unwrap()
        .clone();
    assert_eq!(
        vault["status"], "ok",
        "the OS keychain is no warning: {vault}"
    );
    assert_eq!(vault["data"]["fingerprint"], o.status2["fingerprint"]);

    // In the keyring itself: exactly the new root, the old one deleted.
    let ring = std::fs::read_to_string(keyrings.join("login.keyring")).unwrap();
    let items: Vec<&str> = ring
        .lines()
        .filter(|l| l.starts_with("display-name=root-v1-"))
        .collect();
    assert_eq!(items.len(), 1, "{ring}");
    assert!(
        items[0].contains(o.rotate["new_root_id"].as_str().unwrap()),
        "{ring}"
    );
    // No silent fallback to a file.
    assert!(!env.data_dir().join("vault-file.keys").exists());

    // The same data with the file vault: the root is not there, and the error names
    // the backend it was created with.
    let run = env.run(&["--json", "provider", "test", "cloud"], None);
    assert_eq!(run.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["error"]["code"], "vault_root_missing");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--vault keychain"),
        "{v}"
    );
}

#[test]
fn the_kernel_keyring_backend_works_inside_a_session_keyring() {
    require_tool("keyctl");
    let key = "sk-keyutils-0123456789abcdef";
    let (cloud, _rt) = fake_cloud::start_in_background(Flavor::OpenAi, key);
    let env = Env::new();
    let out = tempfile::tempdir().unwrap();
    // Keys also live in the user's persistent keyring: revoke ours at the end.
    let script = format!(
        "{SCRIPT}\nfor id in $(keyctl rlist @s); do keyctl describe \"$id\" 2>/dev/null | grep -q '@Switchyard$' && keyctl revoke \"$id\"; done; true"
    );
    let status = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &script])
        .env("SWITCHYARD_VAULT", "keyutils")
        .env_remove("SWITCHYARD_LOG")
        .env("BIN", BIN)
        .env("DATA", env.data_dir())
        .env("OUT", out.path())
        .env("KEY", key)
        .env("BASE", cloud.base("ok"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the keyutils script failed: {status:?}");
    let o = check_outcome(out.path(), "keyutils");
    assert!(o.status1["warning"].as_str().unwrap().contains("reboot"));
    let vault = o.doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "vault")
        .unwrap()
        .clone();
    assert_eq!(
        vault["status"], "warn",
        "keyutils loses the root at reboot: {vault}"
    );
    assert!(!env.data_dir().join("vault-file.keys").exists());
}

#[test]
fn without_a_keychain_the_default_backend_says_so_and_how_to_use_the_file_vault() {
    let env = Env::new();
    let no_keychain = |args: &[&str], stdin: Option<&str>| {
        let mut c = env.cmd();
        c.env_remove("SWITCHYARD_VAULT")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DISPLAY")
            .env("XDG_RUNTIME_DIR", env.data_dir().join("no-runtime-dir"))
            .arg("--json")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            });
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let o = child.wait_with_output().unwrap();
        (
            o.status.code(),
            serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        )
    };
    let (code, doctor) = no_keychain(&["doctor"], None);
    assert_eq!(code, Some(0), "no secrets yet: a warning, not a failure");
    let vault = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "vault")
        .unwrap()
        .clone();
    assert_eq!(vault["status"], "warn");
    assert_eq!(vault["code"], "vault_unavailable");
    assert_eq!(vault["data"]["backend"], "keychain");
    let msg = vault["message"].as_str().unwrap();
    assert!(
        msg.contains("Secret Service") && msg.contains("--vault file"),
        "{msg}"
    );

    let (code, v) = no_keychain(
        &[
            "provider",
            "add",
            "oa",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some("sk-nowhere-0123456789abcdef"),
    );
    assert_eq!(code, Some(1));
    assert_eq!(v["error"]["code"], "vault_unavailable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--vault file")
    );
    // Nothing was stored anywhere: no provider, no file vault.
    let (_, list) = no_keychain(&["provider", "list"], None);
    assert_eq!(list, serde_json::json!([]));
    assert!(!env.data_dir().join("vault-file.keys").exists());
}
