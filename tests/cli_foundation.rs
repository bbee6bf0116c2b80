//! The CLI contract of the foundation: doctor's JSON, usage errors, data-dir errors.

mod common;
use common::*;

#[test]
fn doctor_json_is_one_valid_document_with_every_check() {
    let env = Env::new();
    let v = env.json(&["doctor"]);
    assert_eq!(v["ok"], true, "{v:#}");
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in ["platform", "data_dir", "database", "mlx", "gateway_port"] {
        assert!(names.contains(&want), "missing check {want} in {names:?}");
    }
    let db = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "database")
        .unwrap();
    assert_eq!(db["data"]["journal_mode"], "wal");
    assert_eq!(db["data"]["foreign_keys"], true);
    assert!(db["data"]["schema_version"].as_u64().unwrap() >= 1);
    let mlx = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mlx")
        .unwrap();
    assert_eq!(mlx["status"], "ok");
    assert_eq!(mlx["data"]["matmul"], serde_json::json!([17.0, 39.0]));
}

#[test]
fn an_unknown_flag_is_a_usage_error_with_exit_2() {
    let env = Env::new();
    let out = env.run(&["doctor", "--no-such-flag"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error[usage]: "),
        "{}",
        stderr(&out)
    );
    assert!(
        files_under(env.data_dir()).is_empty(),
        "a usage error wrote files"
    );

    let out = env.run(&["--json", "no-such-command"], None);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "usage");
}

#[test]
fn a_data_dir_that_cannot_be_created_exits_1_with_a_code_and_writes_nothing() {
    let env = Env::new();
    let blocker = env.data_dir().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let before = files_under(env.data_dir());
    let bad = blocker.join("switchyard");
    let out = std::process::Command::new(BIN)
        .args(["--json", "--data-dir"])
        .arg(&bad)
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dd = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "data_dir")
        .unwrap();
    assert_eq!(dd["status"], "fail");
    assert_eq!(dd["code"], "data_dir_unavailable");
    assert_eq!(files_under(env.data_dir()), before);
}

#[test]
fn the_data_dir_comes_from_the_environment_when_no_flag_is_given() {
    let env = Env::new();
    let dir = env.data_dir().join("from-env");
    let out = std::process::Command::new(BIN)
        .env("SWITCHYARD_DATA_DIR", &dir)
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.join("switchyard.db").exists());
}
