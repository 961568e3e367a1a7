//! Where a PostgreSQL ledger lives: the `--store` URL parsed (our own
//! `schema=` parameter split off, libpq's TLS parameters taken by
//! `postgres_tls`, the rest handed to the driver), the sessions it opens
//! (writer, reader, query; durability settings read back on each), and a
//! description for messages that can never hold a password.

use super::*;
use ::postgres::config::Host;

/// Where the ledger lives and how a session is set up.
pub(super) struct Target {
    pub(super) config: Config,
    /// The TLS connector the URL's `sslmode` asks for; `None`: plain TCP.
    pub(super) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pub(super) schema: String,
    pub(super) description: String,
    pub(super) writer_session: String,
    pub(super) reader_session: String,
    /// A reader's session whose statements stop at [`QUERY_STATEMENT_TIMEOUT`].
    pub(super) query_session: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Target, LedgerError> {
        let (rest, schema, tls) = split_url(url).map_err(|detail| LedgerError::Tls { detail })?;
        let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
        let mut config = Config::from_str(&rest).map_err(pg("parsing the database URL"))?;
        if config.get_application_name().is_none() {
            config.application_name("claimgate");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        let description = describe(&config, &schema, &tls);
        let bad = |detail: String| LedgerError::NotALedger { path: PathBuf::from(&description), detail };
        if schema.is_empty() {
            return Err(bad("the `schema=` URL parameter is empty; name a schema or leave it out".into()));
        }
        if schema.len() > MAX_SCHEMA_BYTES || schema.contains('\0') {
            return Err(bad(format!("`{}` cannot be a schema name (at most 63 bytes, no NUL)", schema.escape_debug())));
        }
        let search_path = format!("SET search_path TO {};", quote_ident(&schema));
        // R5: an acknowledged event is flushed before its seq is returned;
        // `connect` reads back what the append session got (see
        // `check_durability`). No append session sits idle inside its
        // transaction, so one that does has lost its node: free the head.
        let writer_session = format!("{search_path} SET idle_in_transaction_session_timeout TO '60s';");
        let reader_session = format!("{search_path} SET default_transaction_read_only TO on;");
        let query_session =
            format!("{reader_session} SET statement_timeout TO '{}ms';", QUERY_STATEMENT_TIMEOUT.as_millis());
        let tls = tls.connector()?;
        Ok(Target { config, tls, schema, description, writer_session, reader_session, query_session })
    }

    pub(super) fn connect(&self, session: &str) -> Result<Client, LedgerError> {
        let connected = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        };
        let mut client = connected.map_err(pg("connecting to PostgreSQL"))?;
        client.batch_execute(session).map_err(pg("setting up a PostgreSQL session"))?;
        if session == self.writer_session {
            // Every session that appends, the first and each reconnect.
            self.check_durability(&mut client)?;
        }
        Ok(client)
    }

    /// Reads back, on the session appends run on, the settings an
    /// acknowledged event's survival rests on, and refuses it (`NotDurable`)
    /// when the server or the session would let a commit return before its
    /// WAL is flushed to disk. See [`durability_refusal`].
    pub(super) fn check_durability(&self, client: &mut Client) -> Result<(), LedgerError> {
        const DOING: &str = "reading back the durability settings";
        let rows = client
            .query("SELECT name, setting, source FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync')", &[])
            .map_err(pg(DOING))?;
        let mut settings = HashMap::new();
        for row in &rows {
            let name: String = row.try_get(0).map_err(pg(DOING))?;
            let setting: String = row.try_get(1).map_err(pg(DOING))?;
            let source: String = row.try_get(2).map_err(pg(DOING))?;
            settings.insert(name, (setting, source));
        }
        let get =
            |name: &str| settings.get(name).map(|(v, s)| (v.as_str(), s.as_str())).unwrap_or(("unknown", "unknown"));
        let user = self.config.get_user().unwrap_or("the ledger's user");
        match durability_refusal(get("synchronous_commit"), get("fsync"), user) {
            None => Ok(()),
            Some((setting, value, fix)) => {
                Err(crate::ledger::NotDurable { store: self.description.clone(), setting, value, fix }.into())
            }
        }
    }

    pub(super) fn refuse(&self, detail: String) -> LedgerError {
        LedgerError::NotALedger { path: PathBuf::from(&self.description), detail }
    }
}

/// Splits our own `schema=NAME` parameter off a URL; the rest is handed to
/// the driver. The last `schema=` wins; its value is percent-decoded.
pub(super) fn split_url(url: &str) -> Result<(String, Option<String>, TlsSettings), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut schema = None;
    let mut others = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.strip_prefix("schema=") {
            Some(value) => schema = Some(percent_decode(value)),
            None => others.push(param),
        }
    }
    let (tls, kept) = TlsSettings::take_from(others, percent_decode)?;
    Ok((format!("{base}?{}", kept.join("&")), schema, tls))
}

pub(super) fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// `postgres://user@host:port/db (schema NAME, tls MODE)`, rebuilt from the parsed
/// configuration so that no password can leak into a message.
pub(super) fn describe(config: &Config, schema: &str, tls: &TlsSettings) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{}/{db} (schema {schema}, tls {})", hosts.join(","), tls.mode)
}

/// `name` as an SQL identifier.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
