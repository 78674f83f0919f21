//! The `--config` TOML file of the `chanmux-server` binary: precedence
//! (flag > environment > file > default, read through `--print-config`),
//! errors that name the file, line and key, the round trip of
//! `--print-config`, and a server that listens where its file says.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long the server may take to print its address.
const WAIT: Duration = Duration::from_secs(20);

/// A config file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    /// Writes `text` to a file whose name no other test (or test run) uses.
    fn new(text: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "chanmux-config-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).expect("the config file is written");
        Self(path)
    }

    /// Where the file is.
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The binary with none of the developer's `CHANMUX_*` variables (they
/// would take precedence over the files under test) and no backtraces in
/// its error output.
fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chanmux-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHANMUX_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to completion.
fn run(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

/// Runs `command` with `--print-config`, expects success and parses what it
/// printed.
fn print_config(command: &mut Command) -> toml::Table {
    let output = run(command.arg("--print-config"));
    assert!(
        output.status.success(),
        "--print-config failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 on stdout");
    text.parse()
        .unwrap_or_else(|e| panic!("--print-config printed invalid TOML ({e}):\n{text}"))
}

/// Runs `command`, expects it to fail, and returns its stderr.
fn failure(command: &mut Command) -> String {
    let output = run(command);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "expected a failure; stdout: {}; stderr: {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// The integer at `key`, which must be there.
fn integer(table: &toml::Table, key: &str) -> i64 {
    table[key]
        .as_integer()
        .unwrap_or_else(|| panic!("`{key}` is an integer in {table}"))
}

#[test]
fn file_values_are_used_where_no_flag_or_variable_sets_them() {
    let file = TempFile::new(
        r#"
ping_interval = 7
redis = "redis://127.0.0.1:6390/"
allowed_origins = ["https://a.example", "https://*.b.example"]
stats = true
log_format = "json"
"#,
    );
    let config = print_config(server().arg("--config").arg(file.path()));
    assert_eq!(integer(&config, "ping_interval"), 7);
    assert_eq!(config["redis"].as_str(), Some("redis://127.0.0.1:6390/"));
    assert_eq!(
        config["allowed_origins"],
        toml::Value::from(vec!["https://a.example", "https://*.b.example"])
    );
    assert_eq!(config["stats"].as_bool(), Some(true));
    assert_eq!(config["log_format"].as_str(), Some("json"));
    // What the file leaves out keeps its default.
    assert_eq!(integer(&config, "pong_timeout"), 10);
}

#[test]
fn config_file_can_be_named_by_its_environment_variable() {
    let file = TempFile::new("ping_interval = 7\n");
    let config = print_config(server().env("CHANMUX_CONFIG", file.path()));
    assert_eq!(integer(&config, "ping_interval"), 7);
}

#[test]
fn environment_beats_file() {
    let file = TempFile::new("ping_interval = 7\nallowed_origins = [\"https://file.example\"]\n");
    let config = print_config(
        server()
            .arg("--config")
            .arg(file.path())
            .env("CHANMUX_PING_INTERVAL", "8")
            .env("CHANMUX_ALLOWED_ORIGINS", "https://env.example"),
    );
    assert_eq!(integer(&config, "ping_interval"), 8);
    assert_eq!(
        config["allowed_origins"],
        toml::Value::from(vec!["https://env.example"])
    );
}

#[test]
fn flag_beats_environment_and_file() {
    let file = TempFile::new("ping_interval = 7\n");
    let config = print_config(
        server()
            .arg("--config")
            .arg(file.path())
            .env("CHANMUX_PING_INTERVAL", "8")
            .args(["--ping-interval", "9"]),
    );
    assert_eq!(integer(&config, "ping_interval"), 9);
}

#[test]
fn unknown_key_is_an_error_naming_the_key_and_line() {
    let file = TempFile::new("ping_interval = 7\n\nping_intervall = 5\n");
    let stderr = failure(server().arg("--config").arg(file.path()));
    assert!(stderr.contains("`ping_intervall`"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(
        stderr.contains(&file.path().display().to_string()),
        "{stderr}"
    );
}

#[test]
fn wrong_type_is_an_error_naming_the_key_and_line() {
    // The second case's bad value is on a line of its own, so the key is
    // named by the message, not only by a quoted line of the file.
    for (text, key, line) in [
        (
            "addr = \"127.0.0.1:0\"\nping_interval = \"soon\"\n",
            "ping_interval",
            2,
        ),
        (
            "allowed_origins = [\n  \"https://a.example\",\n  7,\n]\n",
            "allowed_origins",
            3,
        ),
    ] {
        let file = TempFile::new(text);
        let stderr = failure(server().arg("--config").arg(file.path()));
        assert!(stderr.contains(&format!("`{key}`")), "{stderr}");
        assert!(stderr.contains(&format!("line {line},")), "{stderr}");
        assert!(stderr.contains("invalid type"), "{stderr}");
    }
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let path = std::env::temp_dir().join(format!(
        "chanmux-config-test-{}-missing.toml",
        std::process::id()
    ));
    let stderr = failure(server().arg("--config").arg(&path));
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

#[test]
fn print_config_output_is_accepted_back_unchanged() {
    // Every optional setting is set, so each kind of value goes round.
    let file = TempFile::new(
        r#"
addr = "127.0.0.1:8123"
redis = "redis://127.0.0.1:6390/"
read_buffer = 4096
allowed_origins = ["https://a.example"]
ping_interval = 7
trusted_proxies = ["10.0.0.0/8"]
stats = true
metrics_addr = "127.0.0.1:9123"
log_format = "json"
drain_secs = 3
tls_cert = "/etc/chanmux/cert.pem"
tls_key = "/etc/chanmux/key.pem"
"#,
    );
    let first = run(server()
        .arg("--config")
        .arg(file.path())
        .arg("--print-config"));
    assert!(first.status.success(), "{first:?}");
    let printed = String::from_utf8(first.stdout).unwrap();
    assert!(
        printed.contains("tls_key = \"/etc/chanmux/key.pem\""),
        "{printed}"
    );

    let again = TempFile::new(&printed);
    let second = run(server()
        .arg("--config")
        .arg(again.path())
        .arg("--print-config"));
    assert!(second.status.success(), "{second:?}");
    assert_eq!(String::from_utf8(second.stdout).unwrap(), printed);
}

#[test]
fn print_config_exits_without_binding() {
    // The address is taken, so binding it would fail.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = print_config(server().args(["--addr", &addr]));
    assert_eq!(config["addr"].as_str(), Some(addr.as_str()));
}

#[test]
fn certificate_and_key_from_different_sources_must_both_be_given() {
    let file = TempFile::new("tls_cert = \"/etc/chanmux/cert.pem\"\n");
    let stderr = failure(
        server()
            .arg("--config")
            .arg(file.path())
            .arg("--print-config"),
    );
    assert!(stderr.contains("--tls-cert needs --tls-key"), "{stderr}");

    let config = print_config(
        server()
            .arg("--config")
            .arg(file.path())
            .env("CHANMUX_TLS_KEY", "/etc/chanmux/key.pem"),
    );
    assert_eq!(config["tls_key"].as_str(), Some("/etc/chanmux/key.pem"));
}

#[test]
fn redis_and_a_redis_cluster_exclude_each_other_and_cluster_seeds_are_a_list() {
    let file = TempFile::new("redis = \"redis://127.0.0.1:6390/\"\n");
    let stderr = failure(
        server()
            .arg("--config")
            .arg(file.path())
            .env("CHANMUX_REDIS_CLUSTER", "redis://127.0.0.1:7000/")
            .arg("--print-config"),
    );
    assert!(
        stderr.contains("--redis and --redis-cluster") && stderr.contains("exclude each other"),
        "{stderr}"
    );

    let config = print_config(
        server().arg("--redis-cluster=redis://127.0.0.1:7000/,redis://127.0.0.1:7001/"),
    );
    let seeds: Vec<&str> = config["redis_cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|seed| seed.as_str().unwrap())
        .collect();
    assert_eq!(
        seeds,
        ["redis://127.0.0.1:7000/", "redis://127.0.0.1:7001/"]
    );
}

/// Kills the server when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn server_listens_on_the_address_from_the_file() {
    let file = TempFile::new("addr = \"127.0.0.1:0\"\n");
    let mut running = Running(
        server()
            .arg("--config")
            .arg(file.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts"),
    );
    let stdout = running.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).expect("the address line in time");
    let addr = line
        .trim_end()
        .strip_prefix("listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    let port: u16 = addr.parse().expect("a port");
    // Port 0 asks for any free port; 8000 (the default) means the file was
    // ignored.
    assert_ne!(port, 8000);
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
}
