//! moto's server (SSM and DynamoDB stand-in) in a child process that lives as long as the test.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

const SCRIPT: &str = include_str!("moto_server.py");

/// The kill switch's secrets in Parameter Store, from [`Moto::kill_switch_secrets`].
pub struct KillSwitchSecrets {
    /// Sentry's client secret (signs the alerts).
    pub client_secret: String,
    /// The VWO API token.
    pub vwo_token: String,
    /// `SENTRY_CLIENT_SECRET_PARAM` and `VWO_API_TOKEN_PARAM`.
    pub vars: HashMap<String, String>,
}

/// A running moto server on 127.0.0.1. Dropping it closes the child's stdin, which stops it.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    _child: Child,
}

impl Moto {
    /// Starts moto (from [`crate::pytools`], installed on first use). Panics with
    /// [`Moto::try_start`]'s message if it cannot.
    pub fn start() -> Moto {
        Moto::try_start().unwrap_or_else(|message| panic!("{message}"))
    }

    /// Starts moto, or says in one sentence what is missing and how to get it.
    pub fn try_start() -> Result<Moto, String> {
        let tools = crate::pytools::get()?;
        let python = tools.python.display().to_string();
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{python} could not be started ({e})"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("moto's output could not be read")?;
        // moto logs every request on stderr: keep reading it (a closed pipe would stop moto),
        // keeping the start for the error message.
        let errors = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let errors = errors.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut kept = errors.lock().unwrap_or_else(|p| p.into_inner());
                    if kept.len() < 16 * 1024 {
                        kept.push_str(&line);
                        kept.push('\n');
                    }
                }
            });
        }
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("PORT ") => break line[5..].trim().to_owned(),
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.wait();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let stderr = errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let why = stderr
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no message");
                    return Err(format!(
                        "moto (the local SSM, DynamoDB and SQS) did not start with {python}: {why}"
                    ));
                }
            }
        };
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: child,
        })
    }

    /// Environment variables that point the AWS SDK (Rust or boto3) at this server.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Sets [`Moto::aws_env`] in this process, for code that reads the AWS chain in-process.
    ///
    /// Call once per process, before any thread reads the environment.
    pub fn export_env(&self) {
        for (k, v) in self.aws_env() {
            // SAFETY: tests call this once, first thing, before other threads read the environment.
            unsafe { std::env::set_var(k, v) };
        }
    }

    /// Creates or overwrites a SecureString parameter through moto's HTTP API.
    pub async fn put_secure_string(&self, name: &str, value: &str) {
        self.call(
            "AmazonSSM.PutParameter",
            serde_json::json!({"Name": name, "Value": value, "Type": "SecureString", "Overwrite": true}),
        )
        .await;
    }

    /// Puts each `(name, value)` secret at `<prefix>/<name>` and returns the variables a function
    /// finds them by: `vwo-api-token` → `VWO_API_TOKEN_PARAM=<prefix>/vwo-api-token`.
    pub async fn put_secrets(
        &self,
        prefix: &str,
        secrets: &[(&str, &str)],
    ) -> HashMap<String, String> {
        let mut vars = HashMap::new();
        for (name, value) in secrets {
            let path = format!("{prefix}/{name}");
            self.put_secure_string(&path, value).await;
            let var = format!("{}_PARAM", name.to_uppercase().replace('-', "_"));
            vars.insert(var, path);
        }
        vars
    }

    /// The kill switch's two secrets for test `name` (`client-secret-<name>`,
    /// `vwo-token-<name>`), put under `prefix`.
    pub async fn kill_switch_secrets(&self, prefix: &str, name: &str) -> KillSwitchSecrets {
        let client_secret = format!("client-secret-{name}");
        let vwo_token = format!("vwo-token-{name}");
        let secrets = [
            ("sentry-client-secret", client_secret.as_str()),
            ("vwo-api-token", vwo_token.as_str()),
        ];
        let vars = self.put_secrets(prefix, &secrets).await;
        KillSwitchSecrets {
            client_secret,
            vwo_token,
            vars,
        }
    }

    /// Deletes a parameter (ignores "not found").
    pub async fn delete_parameter(&self, name: &str) {
        let _ = self
            .try_call(
                "AmazonSSM.DeleteParameter",
                serde_json::json!({"Name": name}),
            )
            .await;
    }

    /// Creates a state table (`template.yaml`'s `StateTable`: the string partition key
    /// [`bridge_state::keys::PARTITION_KEY`]), on-demand.
    pub async fn create_table(&self, table: &str) {
        let key = bridge_state::keys::PARTITION_KEY;
        self.call(
            "DynamoDB_20120810.CreateTable",
            serde_json::json!({
                "TableName": table,
                "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST"
            }),
        )
        .await;
    }

    /// Creates a standard SQS queue; returns its URL.
    pub async fn create_queue(&self, name: &str) -> String {
        let answer = self
            .call(
                "AmazonSQS.CreateQueue",
                serde_json::json!({"QueueName": name}),
            )
            .await;
        answer["QueueUrl"]
            .as_str()
            .expect("CreateQueue returns a QueueUrl")
            .to_owned()
    }

    /// The messages waiting in a queue (approximate, as SQS reports it).
    pub async fn queue_depth(&self, url: &str) -> u64 {
        let answer = self
            .call(
                "AmazonSQS.GetQueueAttributes",
                serde_json::json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]}),
            )
            .await;
        [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        .iter()
        .filter_map(|k| answer["Attributes"][k].as_str()?.parse::<u64>().ok())
        .sum()
    }

    /// Calls an AWS JSON-protocol action; panics unless it succeeds.
    pub async fn call(&self, target: &str, body: serde_json::Value) -> serde_json::Value {
        match self.try_call(target, body).await {
            Ok(v) => v,
            Err(e) => panic!("{target} failed: {e}"),
        }
    }

    /// Calls an AWS JSON-protocol action with a fake SigV4 header moto accepts.
    pub async fn try_call(
        &self,
        target: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let service = if target.starts_with("DynamoDB") {
            "dynamodb"
        } else if target.starts_with("AmazonSQS") {
            "sqs"
        } else {
            "ssm"
        };
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
        );
        let response = crate::http_client()
            .post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target)
            .header("authorization", auth)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status == 200 {
            Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        } else {
            Err(format!("HTTP {status}: {text}"))
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self._child.kill();
        let _ = self._child.wait();
    }
}

/// [`shared`], with [`Moto::export_env`] done once: for tests whose code reads the AWS chain
/// in-process.
pub fn shared_with_env() -> &'static Moto {
    static EXPORTED: std::sync::Once = std::sync::Once::new();
    let moto = shared();
    EXPORTED.call_once(|| moto.export_env());
    moto
}

/// One moto server shared by all tests of a test binary (each test uses its own names).
/// It stops when the test process exits and its stdin pipe closes.
///
/// A failure to start is remembered: every test that needs moto then fails at once with the same
/// one-sentence message, instead of each one trying again.
pub fn shared() -> &'static Moto {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    match MOTO.get_or_init(Moto::try_start) {
        Ok(moto) => moto,
        Err(message) => panic!("{message}"),
    }
}
