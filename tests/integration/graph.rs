//! Fetching the report from Microsoft Graph, against real HTTP servers on
//! loopback: one stands in for Microsoft Entra and Graph, a second for the
//! download host. The download host fails the test if it ever sees an
//! Authorization header.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tempfile::TempDir;
use wiremock::matchers::{
    body_string_contains, header, header_exists, method, path, query_param, query_param_is_missing,
};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::util::gw_std;

const SECRET: &str = "s3cr3t-Client-Value~xyz";
const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.access-token-body.sig";
const DOWNLOAD_PATH: &str = "/reports/0f1e2d3c/groups.csv";
const DOWNLOAD_QUERY_TOKEN: &str = "sig=PreAuthenticatedQueryToken123";
const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const REPORT_PATH_D30: &str = "/v1.0/reports/getOffice365GroupsActivityDetail(period='D30')";
const BETA_PATH_D30: &str = "/beta/reports/getOffice365GroupsActivityDetail(period='D30')";

const HEADER: &str = "\u{feff}Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Exchange Received Email Count,SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,Yammer Liked Message Count,Exchange Mailbox Total Item Count,Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,SharePoint Site Storage Used (Byte),Group Id,Report Period\r\n";
const SALES: &str = "2026-11-25,Sales,False,owner@contoso.com,2026-11-20,Private,10,0,,,,,,100,2000,3,4000,11111111-1111-1111-1111-111111111111,30\r\n";
const ORPHANS: &str = "2026-11-25,Orphans,False,,2026-11-20,Public,3,0,,,,,,1,1,1,1,22222222-2222-2222-2222-222222222222,30\r\n";
const CONCEALED: &str = "2026-11-25,7D3654B07E126BBD0D18174368FC243F,False,550802505126139905D733891825A254,,Public,1,0,,,,,,5,203448,0,1455831,00000000-0000-0000-0000-000000000000,30\r\n";

fn report(rows: &[&str]) -> String {
    let mut text = HEADER.to_owned();
    for row in rows {
        text.push_str(row);
    }
    text
}

/// Microsoft Entra + Graph on one server, the download host on another,
/// and a folder with the config.
struct Tenant {
    graph: MockServer,
    download: MockServer,
    dir: TempDir,
}

impl Tenant {
    async fn start() -> Tenant {
        let graph = MockServer::start().await;
        let download = MockServer::start().await;
        // Any request with a token to the download host is answered, but
        // `expect(0)` fails the test when the server is dropped.
        Mock::given(header_exists("authorization"))
            .respond_with(ResponseTemplate::new(500))
            .with_priority(1)
            .expect(0)
            .mount(&download)
            .await;
        let tenant = Tenant {
            graph,
            download,
            dir: tempfile::tempdir().unwrap(),
        };
        tenant.write_config("client_secret_env = \"GW_TEST_SECRET\"\n");
        tenant
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("groupwarden.toml")
    }

    /// The `[source]` section pointing at the loopback servers, with tiny
    /// retry waits, plus `extra` lines.
    fn write_config(&self, extra: &str) {
        let uri = self.graph.uri();
        let text = format!(
            "[source]\ntype = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
             authority_url = \"{uri}\"\ngraph_url = \"{uri}\"\nmax_attempts = 3\nretry_delay = \"10ms\"\n\
             retry_max_delay = \"20ms\"\n{extra}"
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    fn download_url(&self) -> String {
        format!(
            "{}{DOWNLOAD_PATH}?{DOWNLOAD_QUERY_TOKEN}",
            self.download.uri()
        )
    }

    /// The token endpoint, answering a client secret with `ACCESS_TOKEN`.
    async fn token_endpoint(&self, expected_calls: u64) {
        Mock::given(method("POST"))
            .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains(format!("client_id={CLIENT_ID}")))
            .and(body_string_contains(format!(
                "client_secret={}",
                form_encoded(SECRET)
            )))
            .and(body_string_contains(format!(
                "scope={}",
                form_encoded(&format!("{}/.default", self.graph.uri()))
            )))
            .respond_with(token_answer())
            .expect(expected_calls)
            .mount(&self.graph)
            .await;
    }

    /// Graph answering the report request (with the bearer token) with `answer`.
    fn report_request(&self, report_path: &str) -> wiremock::MockBuilder {
        let _ = self;
        Mock::given(method("GET"))
            .and(path(report_path))
            .and(header("authorization", format!("Bearer {ACCESS_TOKEN}")))
    }

    /// Graph redirecting to the download host, which serves `csv`.
    async fn report_via_redirect(&self, csv: &str) {
        self.report_request(REPORT_PATH_D30)
            .respond_with(ResponseTemplate::new(302).insert_header("location", self.download_url()))
            .expect(1)
            .mount(&self.graph)
            .await;
        Mock::given(method("GET"))
            .and(path(DOWNLOAD_PATH))
            .respond_with(csv_answer(csv))
            .expect(1)
            .mount(&self.download)
            .await;
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = gw_std(self.dir.path());
        command
            .args(args)
            .env("GW_TEST_SECRET", SECRET)
            .env("GROUPWARDEN_CONFIG", self.config_path());
        // The servers are on loopback: a proxy of the machine must not
        // stand between.
        for name in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            command.env_remove(name);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn scan(&self, extra: &[&str]) -> Output {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut args = vec![
            "scan",
            "--rules",
            rules.to_str().unwrap(),
            "--format",
            "jsonl",
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

fn token_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": ACCESS_TOKEN,
    }))
}

fn csv_answer(csv: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(csv.as_bytes().to_vec(), "application/octet-stream")
}

fn form_encoded(text: &str) -> String {
    url_encode(text).replace("%20", "+")
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn findings(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

#[tokio::test]
async fn fetch_follows_the_redirect_and_writes_the_csv_as_received() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    let csv = report(&[SALES, ORPHANS]);
    tenant.report_via_redirect(&csv).await;

    let output = tenant.run(&["fetch", "--output", "report.csv"]);

    assert_exit(&output, 0);
    assert_eq!(
        std::fs::read(tenant.dir.path().join("report.csv")).unwrap(),
        csv.as_bytes()
    );
    assert!(!tenant.dir.path().join("report.csv.partial").exists());
}

#[tokio::test]
async fn scan_reads_a_report_graph_sends_directly() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(csv_answer(&report(&[SALES, ORPHANS])))
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 0);
    let found = findings(&output);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["rule"], "ownerless-groups");
    assert_eq!(found[0]["group_name"], "Orphans");
    assert!(
        stderr(&output).contains("scanned Microsoft Graph report (period D30)"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn credentials_can_come_from_the_azure_environment_variables() {
    let tenant = Tenant::start().await;
    let uri = tenant.graph.uri();
    std::fs::write(
        tenant.config_path(),
        format!("[source]\ntype = \"graph\"\nauthority_url = \"{uri}\"\ngraph_url = \"{uri}\"\nperiod = \"D90\"\n"),
    )
    .unwrap();
    tenant.token_endpoint(1).await;
    let report_path = "/v1.0/reports/getOffice365GroupsActivityDetail(period='D7')";
    tenant
        .report_request(report_path)
        .respond_with(csv_answer(&report(&[SALES])))
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = tenant
        .command(&["fetch", "-o", "-", "--period", "D7"])
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", SECRET)
        .output()
        .unwrap();

    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        report(&[SALES]),
        "--period overrides the config's period"
    );
}

#[tokio::test]
async fn throttling_waits_for_retry_after_and_reuses_the_token() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&tenant.graph)
        .await;
    tenant.report_via_redirect(&report(&[SALES])).await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 0);
    let log = stderr(&output);
    assert!(
        log.contains("HTTP 429") && log.contains("trying again"),
        "{log}"
    );
    assert!(log.contains("1 rows read"), "{log}");
}

#[tokio::test]
async fn service_unavailable_is_retried_until_max_attempts_then_exit_2() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&tenant.graph)
        .await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains("error: gave up fetching the report after 3 attempt(s)"),
        "{log}"
    );
    assert!(
        log.contains("max_attempts = 3") && log.contains("HTTP 503"),
        "{log}"
    );
    assert!(stdout(&output).is_empty());
}

#[tokio::test]
async fn unauthorized_names_the_permission_and_admin_consent() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains("error: Microsoft Graph answered HTTP 401"),
        "{log}"
    );
    assert!(
        log.contains("Reports.Read.All") && log.contains("admin consent"),
        "{log}"
    );
}

#[tokio::test]
async fn forbidden_shows_graphs_error_and_the_permission() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    let body = serde_json::json!({"error": {
        "code": "UnknownError",
        "message": "{\"error\":{\"code\":\"S2SUnauthorized\",\"message\":\"Invalid permission.\"}}",
        "innerError": {"date": "2026-11-26T08:00:00", "request-id": "rid-403-abc", "client-request-id": "rid-403-abc"}
    }});
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(403).set_body_json(body))
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = tenant.run(&["fetch", "--output", "r.csv"]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(log.contains("HTTP 403: UnknownError: Invalid permission. (request-id rid-403-abc, 2026-11-26T08:00:00)"), "{log}");
    assert!(
        log.contains("Reports.Read.All") && log.contains("admin consent"),
        "{log}"
    );
    assert!(!tenant.dir.path().join("r.csv").exists());
}

#[tokio::test]
async fn an_old_date_names_the_28_day_window_and_graphs_error() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    let body = serde_json::json!({"error": {
        "code": "InvalidArgument",
        "message": "Only support data for the past 28 days",
        "innerError": {"request-id": "rid-400"}
    }});
    tenant
        .report_request("/v1.0/reports/getOffice365GroupsActivityDetail(date=2026-01-02)")
        .respond_with(ResponseTemplate::new(400).set_body_json(body))
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = tenant.scan(&["--date", "2026-01-02"]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains(
            "HTTP 400: InvalidArgument: Only support data for the past 28 days (request-id rid-400)"
        ),
        "{log}"
    );
    assert!(log.contains("only for the past 28 days"), "{log}");
}

#[tokio::test]
async fn a_refused_secret_shows_the_entra_error_but_never_the_secret() {
    let tenant = Tenant::start().await;
    let body = serde_json::json!({
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2026-11-26 08:00:00Z",
        "error_codes": [7000215],
        "trace_id": "t-1",
        "correlation_id": "c-1"
    });
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(401).set_body_json(body))
        .expect(1)
        .mount(&tenant.graph)
        .await;
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&tenant.graph)
        .await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains("invalid_client: AADSTS7000215: Invalid client secret provided."),
        "{log}"
    );
    assert!(
        log.contains("Correlation ID: c-1") && log.contains("not its Secret ID"),
        "{log}"
    );
    assert!(!log.contains(SECRET) && !stdout(&output).contains(SECRET));
}

/// A token endpoint (or a proxy before it) that echoes the request body in
/// its error, as sent and decoded.
struct EchoesTheForm;

impl wiremock::Respond for EchoesTheForm {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let sent = String::from_utf8_lossy(&request.body).into_owned();
        let decoded: Vec<String> = parse_form(&request.body)
            .into_iter()
            .map(|(key, value)| format!("{key}: {value}"))
            .collect();
        ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": format!("invalid_request ({sent})"),
            "error_description": format!(
                "AADSTS900144: The request body must contain the following parameter: 'x'. Request: {sent}; fields: {}\r\nTrace ID: t-2",
                decoded.join(", ")
            ),
            "correlation_id": sent,
        }))
    }
}

#[tokio::test]
async fn a_token_endpoint_echoing_the_request_never_gets_the_secret_printed() {
    let tenant = Tenant::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(EchoesTheForm)
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = tenant
        .command(&[
            "scan",
            "--rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
        ])
        .env("GROUPWARDEN_LOG", "trace")
        .output()
        .unwrap();

    assert_exit(&output, 2);
    let everything = format!("{}{}", stdout(&output), stderr(&output));
    assert!(everything.contains("AADSTS900144"), "{everything}");
    assert!(
        everything.contains("grant_type=client_credentials"),
        "the rest of the echo stays: {everything}"
    );
    for secret in [SECRET, &form_encoded(SECRET), &url_encode(SECRET), "s3cr3t"] {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked into the output:\n{everything}"
        );
    }
}

/// A download host that announces more bytes than it sends, then hangs up.
fn short_download_host(body: &str) -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}{DOWNLOAD_PATH}?{DOWNLOAD_QUERY_TOKEN}",
        listener.local_addr().unwrap()
    );
    let body = body.to_owned();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
            body.len() + 5000
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        request
    });
    (url, server)
}

fn assert_no_authorization(request: &[u8]) {
    let text = String::from_utf8_lossy(request).to_ascii_lowercase();
    assert!(
        !text.contains("authorization:"),
        "the download host got a token:\n{text}"
    );
}

#[tokio::test]
async fn a_download_cut_short_fails_the_scan_instead_of_scanning_a_short_report() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    let (url, server) = short_download_host(&report(&[SALES, ORPHANS]));
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(302).insert_header("location", url.as_str()))
        .expect(1)
        .mount(&tenant.graph)
        .await;
    let saved = tenant.dir.path().join("saved");

    let output = tenant.scan(&["--save-report", saved.to_str().unwrap()]);

    assert_no_authorization(&server.join().unwrap());
    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(log.contains("the report is incomplete"), "{log}");
    assert!(
        !log.contains("scanned "),
        "no summary for a broken report: {log}"
    );
    assert_eq!(
        std::fs::read_dir(&saved).unwrap().count(),
        0,
        "a broken download is not saved"
    );
    assert!(
        !log.contains(DOWNLOAD_QUERY_TOKEN) && !log.contains(DOWNLOAD_PATH),
        "{log}"
    );
}

#[tokio::test]
async fn a_fetch_cut_short_leaves_no_file() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    let (url, server) = short_download_host(&report(&[SALES]));
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(302).insert_header("location", url.as_str()))
        .mount(&tenant.graph)
        .await;

    let output = tenant.run(&["fetch", "--output", "r.csv"]);

    assert_no_authorization(&server.join().unwrap());
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("incomplete"),
        "{}",
        stderr(&output)
    );
    assert!(
        !tenant.dir.path().join("r.csv").exists()
            && !tenant.dir.path().join("r.csv.partial").exists()
    );
}

#[tokio::test]
async fn a_stalled_answer_times_out() {
    let tenant = Tenant::start().await;
    tenant.write_config("client_secret_env = \"GW_TEST_SECRET\"\nstall_timeout = \"200ms\"\n");
    tenant.token_endpoint(1).await;
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(302).insert_header("location", tenant.download_url()))
        .mount(&tenant.graph)
        .await;
    Mock::given(path(DOWNLOAD_PATH))
        .respond_with(csv_answer(&report(&[SALES])).set_delay(Duration::from_secs(3)))
        .mount(&tenant.download)
        .await;

    let output = tenant.run(&["fetch", "--output", "r.csv"]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains("cannot reach the report download host") && log.contains("timed out"),
        "{log}"
    );
}

#[tokio::test]
async fn an_empty_report_scans_as_zero_rows() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    tenant.report_via_redirect(HEADER).await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 0);
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains(": 0 rows read, 0 row errors, 0 findings"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_concealed_report_is_scanned_with_a_warning() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    tenant.report_via_redirect(&report(&[CONCEALED])).await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 0);
    let log = stderr(&output);
    assert!(log.contains("conceals user, group and site names"), "{log}");
    assert!(
        log.contains("Settings > Org settings > Services > Reports"),
        "{log}"
    );
    assert!(log.contains("1 rows read"), "{log}");
}

#[tokio::test]
async fn save_report_keeps_the_raw_csv_under_its_refresh_date_and_period() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    let csv = report(&[SALES, ORPHANS]);
    tenant.report_via_redirect(&csv).await;

    let output = tenant.scan(&["--save-report", "audit"]);

    assert_exit(&output, 0);
    let saved = tenant
        .dir
        .path()
        .join("audit")
        .join("groups-activity-2026-11-25-D30.csv");
    assert_eq!(std::fs::read(&saved).unwrap(), csv.as_bytes());
    assert_eq!(
        std::fs::read_dir(tenant.dir.path().join("audit"))
            .unwrap()
            .count(),
        1
    );
}

#[tokio::test]
async fn a_file_source_in_the_config_is_scanned_without_input() {
    let tenant = Tenant::start().await;
    std::fs::write(tenant.dir.path().join("exported.csv"), report(&[ORPHANS])).unwrap();
    std::fs::write(
        tenant.config_path(),
        "[source]\ntype = \"file\"\npath = \"exported.csv\"\n",
    )
    .unwrap();

    let output = tenant.scan(&[]);

    assert_exit(&output, 0);
    assert_eq!(findings(&output).len(), 1);
    let refused = tenant.scan(&["--period", "D7"]);
    assert_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("--period and --date choose the report to fetch"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn scan_without_input_or_source_says_what_to_do() {
    let tenant = Tenant::start().await;
    std::fs::write(tenant.config_path(), "").unwrap();

    let output = tenant.scan(&[]);

    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("no report to scan: give --input FILE"),
        "{}",
        stderr(&output)
    );
}

/// Matches a token request that authenticates with a certificate: a JWT
/// assertion for this client and endpoint, signed by the test key.
struct SignedAssertion {
    audience: String,
}

impl Match for SignedAssertion {
    fn matches(&self, request: &Request) -> bool {
        let form = parse_form(&request.body);
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if field("client_assertion_type").as_deref()
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            || field("client_secret").is_some()
        {
            return false;
        }
        let Some(jwt) = field("client_assertion") else {
            return false;
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        let [head, claims, signature] = parts[..] else {
            return false;
        };
        let decode = |part: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        let (head, claims_json) = (decode(head), decode(claims));
        let key = test_public_key();
        let verified = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            key,
        )
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .is_ok();
        verified
            && head["x5t"] == "PxQUNEuj0ORYHFgsVuxtMDbuAKg"
            && claims_json["aud"] == self.audience.as_str()
            && claims_json["iss"] == CLIENT_ID
            && claims_json["sub"] == CLIENT_ID
    }
}

fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let bytes = text.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16)
                        .unwrap(),
                );
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (decode(key), decode(value)))
        .collect()
}

/// The test key's public half (PKCS#1 RSAPublicKey DER).
fn test_public_key() -> Vec<u8> {
    use aws_lc_rs::signature::KeyPair;
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-only-certificate.pem"),
    )
    .unwrap();
    let PrivateKeyDer::Pkcs8(der) = PrivateKeyDer::from_pem_slice(&pem).unwrap() else {
        panic!("pkcs8 expected")
    };
    aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn a_certificate_signs_in_with_a_signed_assertion() {
    let tenant = Tenant::start().await;
    for file in [
        "test-only-certificate.pem",
        "test-only-certificate-pkcs1.pem",
    ] {
        let certificate = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(file);
        tenant.write_config(&format!(
            "certificate_file = \"{}\"\n",
            certificate.display()
        ));
        let token_path = format!("/{TENANT}/oauth2/v2.0/token");
        let audience = format!("{}{token_path}", tenant.graph.uri());
        let token = Mock::given(method("POST"))
            .and(path(token_path))
            .and(SignedAssertion { audience })
            .respond_with(token_answer())
            .expect(1);
        let report_answer = tenant
            .report_request(REPORT_PATH_D30)
            .respond_with(csv_answer(&report(&[SALES])))
            .expect(1);
        let _token = token.mount_as_scoped(&tenant.graph).await;
        let _report = report_answer.mount_as_scoped(&tenant.graph).await;

        let output = tenant.run(&["fetch", "--output", "-"]);

        assert_exit(&output, 0);
        assert_eq!(stdout(&output), report(&[SALES]), "{file}");
    }
}

#[tokio::test]
async fn no_secret_token_or_download_url_reaches_the_logs_even_at_trace_level() {
    let tenant = Tenant::start().await;
    tenant.token_endpoint(1).await;
    tenant.report_via_redirect(&report(&[SALES, ORPHANS])).await;

    let output = tenant
        .command(&[
            "scan",
            "--rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
            "--save-report",
            "audit",
        ])
        .env("GROUPWARDEN_LOG", "trace")
        .output()
        .unwrap();

    assert_exit(&output, 0);
    let everything = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        everything.contains("TRACE") || everything.contains("DEBUG"),
        "tracing really ran at trace level:\n{everything}"
    );
    for secret in [
        SECRET,
        ACCESS_TOKEN,
        &tenant.download_url(),
        DOWNLOAD_PATH,
        DOWNLOAD_QUERY_TOKEN,
        "PreAuthenticatedQueryToken123",
    ] {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked into the output:\n{everything}"
        );
    }
    for encoded in [form_encoded(SECRET), url_encode(DOWNLOAD_QUERY_TOKEN)] {
        assert!(
            !everything.contains(&encoded),
            "`{encoded}` leaked into the output"
        );
    }
}

// ---- The /beta JSON report: pages, @odata.nextLink, national clouds ----

/// More rows, so that every bundled rule finds something across pages.
const STALE: &str = "2026-11-25,Stale,False,stale@contoso.com,2026-01-10,Private,4,0,,,,,,7,700,2,800,33333333-3333-3333-3333-333333333333,30\r\n";
const GONE: &str = "2026-11-25,Gone,True,gone@contoso.com,,Private,0,0,,,,,,9,123456,5,654321,44444444-4444-4444-4444-444444444444,30\r\n";
const GUESTS: &str = "2026-11-25,\"Partners \"\"EU\"\", Ltd\",False,p@contoso.com,2026-11-24,Public,40,25,3,1,,,,50,5000,6,6000,55555555-5555-5555-5555-555555555555,30\r\n";
const QUIET: &str = "2026-11-25,Quiet,False,q@contoso.com,,Public,2,0,,,,,,0,0,0,0,66666666-6666-6666-6666-666666666666,30\r\n";

/// A skip token shaped like Graph's; it must never reach the log.
const SKIP_TOKEN: &str = "X%2744%27SkipTokenSecret";

/// A report row, one cell per [`HEADER`] column (quotes honoured).
fn cells(row: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(row.as_bytes());
    let record = reader.records().next().unwrap().unwrap();
    record.iter().map(str::to_owned).collect()
}

/// The `/beta` JSON name of a v1.0 CSV column: camelCase, `(Byte)` as
/// `InBytes`.
fn beta_name(header: &str) -> String {
    let mut name = String::new();
    for (i, word) in header.split(' ').enumerate() {
        let word = if word == "(Byte)" { "InBytes" } else { word };
        if i == 0 {
            name.extend(word.chars().next().map(|c| c.to_ascii_lowercase()));
            name.push_str(&word[1..]);
        } else {
            name.push_str(word);
        }
    }
    name
}

/// A CSV row as `/beta` writes the same group in JSON: typed values, a
/// blank cell as `null`, the period as a string.
fn beta_item(row: &str) -> serde_json::Value {
    let headers: Vec<&str> = HEADER
        .trim_start_matches('\u{feff}')
        .trim_end()
        .split(',')
        .collect();
    let mut item = serde_json::Map::new();
    for (header, cell) in headers.iter().zip(cells(row)) {
        let value = match (*header, cell.as_str()) {
            (_, "") => serde_json::Value::Null,
            ("Is Deleted", flag) => (flag == "True").into(),
            ("Report Period", days) => days.into(),
            (name, count) if name.ends_with("Count") || name.ends_with("(Byte)") => {
                count.parse::<u64>().unwrap().into()
            }
            (_, text) => text.into(),
        };
        item.insert(beta_name(header), value);
    }
    item.into()
}

/// One `/beta` page of `rows`, linking to `next`.
fn beta_page(rows: &[&str], next: Option<String>) -> ResponseTemplate {
    let mut page = serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#Collection(microsoft.graph.office365GroupsActivityDetail)",
        "value": rows.iter().map(|row| beta_item(row)).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        page["@odata.nextLink"] = next.into();
    }
    ResponseTemplate::new(200).set_body_raw(page.to_string().into_bytes(), "application/json")
}

impl Tenant {
    /// The `@odata.nextLink` Graph would give for page `n`.
    fn next_link(&self, n: u32) -> String {
        format!(
            "{}{BETA_PATH_D30}?$format=application/json&$skiptoken={SKIP_TOKEN}{n}",
            self.graph.uri()
        )
    }

    /// The `/beta` JSON request for page `n` (1: the report request itself).
    fn beta_page_request(&self, n: u32) -> wiremock::MockBuilder {
        let request = self
            .report_request(BETA_PATH_D30)
            .and(query_param("$format", "application/json"));
        if n == 1 {
            request.and(query_param_is_missing("$skiptoken"))
        } else {
            // wiremock decodes the query: `%27` is a quote here.
            let token = format!("{}{n}", SKIP_TOKEN.replace("%27", "'"));
            request.and(query_param("$skiptoken", token))
        }
    }

    /// Graph serving `pages` as `/beta` JSON, each linking to the next.
    async fn beta_pages(&self, pages: &[&[&str]]) {
        for (i, rows) in pages.iter().enumerate() {
            let n = i as u32 + 1;
            let next = (i + 1 < pages.len()).then(|| self.next_link(n + 1));
            self.beta_page_request(n)
                .respond_with(beta_page(rows, next))
                .expect(1)
                .mount(&self.graph)
                .await;
        }
    }
}

/// What a finding says, without what differs from one scan to another.
fn finding_facts(output: &Output) -> Vec<String> {
    let mut facts: Vec<String> = findings(output)
        .iter()
        .map(|f| {
            format!(
                "{} | {} | {} | {}",
                f["rule"], f["group_name"], f["group_id"], f["message"]
            )
        })
        .collect();
    facts.sort();
    facts
}

#[tokio::test]
async fn a_beta_json_fetch_of_several_pages_finds_what_the_csv_fetch_finds() {
    let rows = [SALES, ORPHANS, STALE, GONE, GUESTS, QUIET, CONCEALED];
    let by_csv = Tenant::start().await;
    by_csv.token_endpoint(1).await;
    by_csv.report_via_redirect(&report(&rows)).await;
    let csv_output = by_csv.scan(&[]);
    assert_exit(&csv_output, 0);

    let by_json = Tenant::start().await;
    by_json.write_config("client_secret_env = \"GW_TEST_SECRET\"\napi_version = \"beta\"\n");
    by_json.token_endpoint(1).await;
    // Page 2 is throttled once.
    by_json
        .beta_page_request(2)
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&by_json.graph)
        .await;
    by_json
        .beta_pages(&[&rows[..3], &rows[3..5], &rows[5..]])
        .await;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let json_output = by_json
        .command(&[
            "scan",
            "--rules",
            rules.to_str().unwrap(),
            "--format",
            "jsonl",
            "--save-report",
            "audit",
        ])
        .env("GROUPWARDEN_LOG", "trace")
        .output()
        .unwrap();

    assert_exit(&json_output, 0);
    let facts = finding_facts(&json_output);
    assert_eq!(facts, finding_facts(&csv_output));
    for rule in [
        "ownerless-groups",
        "inactive-groups",
        "deleted-with-storage",
        "high-external-members",
    ] {
        assert!(facts.iter().any(|f| f.contains(rule)), "{rule}: {facts:#?}");
    }
    let log = stderr(&json_output);
    assert!(
        log.contains("HTTP 429") && log.contains("trying again"),
        "{log}"
    );
    assert!(log.contains("7 rows read"), "{log}");
    assert!(
        !log.contains(SKIP_TOKEN) && !log.contains("SkipTokenSecret"),
        "a next link's query reached the log:\n{log}"
    );
    // --save-report keeps the CSV the pages became, named as ever.
    let saved = by_json
        .dir
        .path()
        .join("audit")
        .join("groups-activity-2026-11-25-D30.csv");
    let saved = std::fs::read_to_string(&saved).unwrap();
    assert_eq!(saved.lines().count(), 1 + rows.len(), "{saved}");
    assert!(saved.contains("\"Partners \"\"EU\"\", Ltd\""), "{saved}");
}

#[tokio::test]
async fn a_beta_page_that_fails_for_good_fails_the_scan_and_records_nothing() {
    let tenant = Tenant::start().await;
    tenant.write_config("client_secret_env = \"GW_TEST_SECRET\"\napi_version = \"beta\"\n");
    tenant.token_endpoint(2).await;
    // The first scan reads one page and finds Orphans ownerless.
    tenant
        .beta_page_request(1)
        .respond_with(beta_page(&[SALES, ORPHANS], None))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&tenant.graph)
        .await;
    assert_exit(&tenant.scan(&[]), 0);
    // The second gets a first page without Orphans, and no second page.
    tenant
        .beta_page_request(1)
        .respond_with(beta_page(&[SALES], Some(tenant.next_link(2))))
        .expect(1)
        .mount(&tenant.graph)
        .await;
    tenant
        .beta_page_request(2)
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&tenant.graph)
        .await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains("page 2 of the Graph answer")
            && log.contains("gave up fetching the report after 3 attempt(s)"),
        "{log}"
    );
    assert!(
        !log.contains("scanned "),
        "no summary for a broken report: {log}"
    );
    assert!(stdout(&output).is_empty());
    // Orphans was on the missing page: it must not resolve as gone.
    let listed = tenant.run(&["findings", "-f", "jsonl"]);
    assert_exit(&listed, 0);
    let listed = findings(&listed);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "new", "{listed:?}");
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let tenant = Tenant::start().await;
    tenant.write_config("client_secret_env = \"GW_TEST_SECRET\"\napi_version = \"beta\"\n");
    tenant.token_endpoint(1).await;
    let elsewhere = format!("{}/steal?$skiptoken=x", tenant.download.uri());
    tenant
        .beta_page_request(1)
        .respond_with(beta_page(&[SALES], Some(elsewhere)))
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(log.contains("@odata.nextLink points to"), "{log}");
}

#[tokio::test]
async fn a_national_cloud_fetches_from_beta_unless_v1_is_set() {
    let tenant = Tenant::start().await;
    tenant.write_config("client_secret_env = \"GW_TEST_SECRET\"\ncloud = \"usgov\"\n");
    tenant.token_endpoint(2).await;
    tenant.beta_pages(&[&[SALES, ORPHANS]]).await;

    let output = tenant.scan(&[]);

    assert_exit(&output, 0);
    let log = stderr(&output);
    assert!(
        log.contains(
            "[source] cloud = \"usgov\": the v1.0 report is not available in this cloud; using beta"
        ),
        "{log}"
    );
    let found = findings(&output);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["group_name"], "Orphans");

    // An explicit v1.0 is honoured, with a warning.
    tenant.write_config(
        "client_secret_env = \"GW_TEST_SECRET\"\ncloud = \"usgov\"\napi_version = \"v1.0\"\n",
    );
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(csv_answer(&report(&[SALES])))
        .expect(1)
        .mount(&tenant.graph)
        .await;
    let output = tenant.run(&["fetch", "-o", "-"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), report(&[SALES]));
    assert!(
        stderr(&output).contains("api_version = \"v1.0\" is set"),
        "{}",
        stderr(&output)
    );
}

// --- Managed identity ------------------------------------------------------
//
// `auth = "managed-identity"` against loopback stand-ins for both of
// Azure's identity endpoints: IMDS (its host replaced with
// AZURE_POD_IDENTITY_AUTHORITY_HOST, as the Azure SDKs allow) and App
// Service's IDENTITY_ENDPOINT with its IDENTITY_HEADER.

const IDENTITY_HEADER_VALUE: &str = "f1a2b3c4-identity-header-secret";
const IDENTITY_CLIENT_ID: &str = "99999999-8888-7777-6666-555555555555";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
const APP_SERVICE_PATH: &str = "/msi/token";

/// A managed-identity token answer as Azure sends it: every number a string,
/// `expires_on` seconds since the epoch.
fn identity_answer(expires_in: u64) -> ResponseTemplate {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "access_token": ACCESS_TOKEN,
        "client_id": IDENTITY_CLIENT_ID,
        "expires_in": expires_in.to_string(),
        "expires_on": (now + expires_in).to_string(),
        "ext_expires_in": expires_in.to_string(),
        "not_before": now.to_string(),
        "resource": "https://graph.microsoft.com",
        "token_type": "Bearer",
    }))
}

/// The IMDS token request for the Graph stand-in, for the system-assigned
/// identity unless `client_id` names one.
fn imds_request(tenant: &Tenant, client_id: Option<&str>) -> wiremock::MockBuilder {
    let request = Mock::given(method("GET"))
        .and(path(IMDS_PATH))
        .and(query_param("api-version", "2018-02-01"))
        .and(query_param("resource", tenant.graph.uri()))
        .and(header("metadata", "true"));
    match client_id {
        Some(id) => request.and(query_param("client_id", id)),
        None => request.and(query_param_is_missing("client_id")),
    }
}

/// The config: managed identity, Graph on the stand-in, tiny retry waits.
fn write_identity_config(tenant: &Tenant, extra: &str) {
    let uri = tenant.graph.uri();
    std::fs::write(
        tenant.config_path(),
        format!(
            "[source]\ntype = \"graph\"\nauth = \"managed-identity\"\ngraph_url = \"{uri}\"\n\
             max_attempts = 3\nretry_delay = \"10ms\"\nretry_max_delay = \"20ms\"\n{extra}"
        ),
    )
    .unwrap();
}

/// The command with none of the platform's identity variables but those given.
fn identity_command(
    tenant: &Tenant,
    args: &[&str],
    vars: &[(&str, &str)],
) -> std::process::Command {
    let mut command = tenant.command(args);
    for name in [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "IMDS_ENDPOINT",
        "MSI_ENDPOINT",
        "MSI_SECRET",
    ] {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied());
    command
}

fn scan_args() -> Vec<String> {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    [
        "scan",
        "--rules",
        rules.to_str().unwrap(),
        "--format",
        "jsonl",
        "--no-state",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run_identity_scan(tenant: &Tenant, vars: &[(&str, &str)]) -> Output {
    let args = scan_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    identity_command(tenant, &args, vars).output().unwrap()
}

/// Graph throttles the first report request once, then redirects to the
/// report: two requests, each needing a token.
async fn throttled_then_served(tenant: &Tenant) {
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&tenant.graph)
        .await;
    tenant.report_via_redirect(&report(&[SALES, ORPHANS])).await;
}

/// The `[source]` example of docs/graph.md's managed identity section.
fn documented_identity_config() -> String {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/graph.md"))
            .unwrap();
    let section = guide
        .split("### Azure-hosted: managed identity")
        .nth(1)
        .expect("the managed identity section");
    let block = section.split("```toml\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}

#[tokio::test]
async fn a_managed_identity_signs_in_through_imds_and_reuses_its_token() {
    let tenant = Tenant::start().await;
    // The documented example, with Graph on the stand-in.
    let config = documented_identity_config();
    assert!(config.contains("auth = \"managed-identity\""), "{config}");
    std::fs::write(
        tenant.config_path(),
        format!(
            "{config}graph_url = \"{}\"\nretry_delay = \"10ms\"\n",
            tenant.graph.uri()
        ),
    )
    .unwrap();
    let imds = MockServer::start().await;
    imds_request(&tenant, None)
        .respond_with(identity_answer(86_399))
        .expect(1)
        .mount(&imds)
        .await;
    throttled_then_served(&tenant).await;

    let output = run_identity_scan(
        &tenant,
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds.uri())],
    );

    assert_exit(&output, 0);
    let found = findings(&output);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["group_name"], "Orphans");
    assert!(stderr(&output).contains("HTTP 429"), "{}", stderr(&output));
    // `expect(1)` on IMDS: the second Graph request reused the token.
}

#[tokio::test]
async fn a_managed_identity_token_about_to_expire_is_asked_for_again() {
    let tenant = Tenant::start().await;
    write_identity_config(&tenant, "");
    let imds = MockServer::start().await;
    // Expires now: not worth using for the next request.
    imds_request(&tenant, None)
        .respond_with(identity_answer(0))
        .expect(2)
        .mount(&imds)
        .await;
    throttled_then_served(&tenant).await;

    let output = run_identity_scan(
        &tenant,
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds.uri())],
    );

    assert_exit(&output, 0);
    assert_eq!(findings(&output).len(), 1);
}

#[tokio::test]
async fn app_service_identity_endpoint_wins_and_its_header_is_never_shown() {
    let tenant = Tenant::start().await;
    write_identity_config(
        &tenant,
        &format!("managed_identity_client_id = \"{IDENTITY_CLIENT_ID}\"\n"),
    );
    let identity = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(APP_SERVICE_PATH))
        .and(query_param("api-version", "2019-08-01"))
        .and(query_param("resource", tenant.graph.uri()))
        .and(query_param("client_id", IDENTITY_CLIENT_ID))
        .and(header("x-identity-header", IDENTITY_HEADER_VALUE))
        .respond_with(identity_answer(86_399))
        .expect(1)
        .mount(&identity)
        .await;
    // IMDS is there too, but App Service's variables say where to ask.
    let imds = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(identity_answer(86_399))
        .expect(0)
        .mount(&imds)
        .await;
    throttled_then_served(&tenant).await;
    let endpoint = format!("{}{APP_SERVICE_PATH}", identity.uri());

    let output = run_identity_scan(
        &tenant,
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", IDENTITY_HEADER_VALUE),
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds.uri()),
            ("GROUPWARDEN_LOG", "trace"),
        ],
    );

    assert_exit(&output, 0);
    assert_eq!(findings(&output).len(), 1);
    let everything = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!everything.contains(IDENTITY_HEADER_VALUE), "{everything}");
    assert!(!everything.contains(ACCESS_TOKEN), "{everything}");
}

#[tokio::test]
async fn an_identity_not_assigned_names_it_and_how_to_assign_it_without_retrying() {
    let tenant = Tenant::start().await;
    write_identity_config(
        &tenant,
        &format!("managed_identity_client_id = \"{IDENTITY_CLIENT_ID}\"\n"),
    );
    let imds = MockServer::start().await;
    imds_request(&tenant, Some(IDENTITY_CLIENT_ID))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "Identity not found",
        })))
        .expect(1)
        .mount(&imds)
        .await;

    let output = run_identity_scan(
        &tenant,
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds.uri())],
    );

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains(&format!(
            "the Azure instance metadata service (IMDS) refused a token for the user-assigned managed identity \
             with client id {IDENTITY_CLIENT_ID} (HTTP 400): invalid_request: Identity not found"
        )),
        "{log}"
    );
    assert!(log.contains("az vm identity assign"), "{log}");
}

#[tokio::test]
async fn an_app_without_identity_and_a_failing_endpoint_say_what_to_do() {
    let tenant = Tenant::start().await;
    write_identity_config(&tenant, "");
    let identity = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(APP_SERVICE_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "statusCode": 400,
            "message": "Unable to load the proper Managed Identity.",
            "correlationId": "corr-77",
        })))
        .expect(1)
        .mount(&identity)
        .await;
    let endpoint = format!("{}{APP_SERVICE_PATH}", identity.uri());
    let vars = [
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", IDENTITY_HEADER_VALUE),
    ];

    let output = run_identity_scan(&tenant, &vars);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains("Unable to load the proper Managed Identity. (correlation id corr-77)"),
        "{log}"
    );
    assert!(
        log.contains("az containerapp identity assign --system-assigned"),
        "{log}"
    );
    assert!(!log.contains(IDENTITY_HEADER_VALUE), "{log}");

    // A server fault is retried up to max_attempts.
    identity.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&identity)
        .await;
    let output = run_identity_scan(&tenant, &vars);
    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains("gave up fetching the report after 3 attempt(s)"),
        "{log}"
    );
    assert!(log.contains("(IDENTITY_ENDPOINT) refused a token"), "{log}");
}

#[tokio::test]
async fn imds_out_of_reach_says_where_managed_identity_works() {
    let tenant = Tenant::start().await;
    write_identity_config(&tenant, "");
    let config = std::fs::read_to_string(tenant.config_path()).unwrap();
    std::fs::write(
        tenant.config_path(),
        config.replace("max_attempts = 3", "max_attempts = 1"),
    )
    .unwrap();
    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);

    let output = run_identity_scan(&tenant, &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &host)]);

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(
        log.contains("cannot reach the Azure instance metadata service (IMDS) at 127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains("only on an Azure VM, scale set or AKS node"),
        "{log}"
    );
}

#[tokio::test]
async fn graph_refusing_a_managed_identity_says_how_to_grant_it_the_permission() {
    let tenant = Tenant::start().await;
    write_identity_config(&tenant, "");
    let imds = MockServer::start().await;
    imds_request(&tenant, None)
        .respond_with(identity_answer(86_399))
        .mount(&imds)
        .await;
    tenant
        .report_request(REPORT_PATH_D30)
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}
        })))
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = run_identity_scan(
        &tenant,
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds.uri())],
    );

    assert_exit(&output, 2);
    let log = stderr(&output);
    assert!(log.contains("Authorization_RequestDenied"), "{log}");
    assert!(
        log.contains(
            "The managed identity needs the Microsoft Graph application permission Reports.Read.All"
        ),
        "{log}"
    );
}

#[tokio::test]
async fn managed_identity_config_mistakes_are_named_before_any_request() {
    let tenant = Tenant::start().await;
    for (extra, expected) in [
        (
            "client_secret_env = \"GW_TEST_SECRET\"\n",
            "[source] client_secret_env: belongs to an app registration and does not go with auth = \"managed-identity\"",
        ),
        (
            "client_id = \"x\"\n",
            "for a user-assigned identity set `managed_identity_client_id`",
        ),
        (
            "auth = \"managed-idenity\"\n",
            "did you mean `managed-identity`?",
        ),
    ] {
        let uri = tenant.graph.uri();
        let auth = if extra.starts_with("auth") {
            ""
        } else {
            "auth = \"managed-identity\"\n"
        };
        std::fs::write(
            tenant.config_path(),
            format!("[source]\ntype = \"graph\"\n{auth}graph_url = \"{uri}\"\n{extra}"),
        )
        .unwrap();
        let output = run_identity_scan(&tenant, &[]);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(expected),
            "{extra}: {}",
            stderr(&output)
        );
    }
    // `validate` says which identity and endpoint, and contacts nothing.
    write_identity_config(&tenant, "");
    let output = identity_command(
        &tenant,
        &["validate"],
        &[
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
            ("IDENTITY_HEADER", IDENTITY_HEADER_VALUE),
        ],
    )
    .output()
    .unwrap();
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        text.contains(
            "signing in as the system-assigned managed identity, from the managed identity endpoint \
             (IDENTITY_ENDPOINT) at 127.0.0.1:9"
        ),
        "{text}"
    );
    assert!(!text.contains(IDENTITY_HEADER_VALUE), "{text}");
}

#[tokio::test]
async fn graph_mail_sends_with_the_sources_managed_identity() {
    let tenant = Tenant::start().await;
    let uri = tenant.graph.uri();
    std::fs::write(
        tenant.config_path(),
        format!(
            "[source]\ntype = \"graph\"\nauth = \"managed-identity\"\ngraph_url = \"{uri}\"\n\
             [[notify]]\ntype = \"graph-mail\"\nfrom = \"alerts@contoso.com\"\nto = [\"a@contoso.com\"]\n\
             graph_url = \"{uri}\"\n"
        ),
    )
    .unwrap();
    let imds = MockServer::start().await;
    imds_request(&tenant, None)
        .respond_with(identity_answer(86_399))
        .expect(1)
        .mount(&imds)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/users/alerts@contoso.com/sendMail"))
        .and(header("authorization", format!("Bearer {ACCESS_TOKEN}")))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&tenant.graph)
        .await;

    let output = identity_command(
        &tenant,
        &["notify", "--test", "graph-mail"],
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &imds.uri())],
    )
    .output()
    .unwrap();

    assert_exit(&output, 0);
}
