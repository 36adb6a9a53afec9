//! The connection string of `pg_walker follow`: libpq's `key=value` form
//! (`host=... port=... user=... password=...`, values quoted with `'...'` when they
//! hold spaces), with libpq's environment defaults (`PGHOST`, `PGPORT`, `PGUSER`,
//! `PGPASSWORD`).

use std::path::PathBuf;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Host name or address; a value starting with `/` is a Unix-socket directory.
    pub host: String,
    /// TCP port, or the number in the socket file's name.
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Password, when the server asks for one.
    pub password: Option<String>,
    /// `application_name` the server shows in `pg_stat_replication`.
    pub application_name: String,
}

/// Where the connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket file.
    Unix(PathBuf),
    /// A TCP host and port.
    Tcp(String, u16),
}

impl ConnInfo {
    /// Where the connection goes, for messages.
    pub fn address_text(&self) -> String {
        match self.address() {
            Address::Unix(p) => p.display().to_string(),
            Address::Tcp(h, p) => format!("{h}:{p}"),
        }
    }

    /// The socket to connect to.
    pub fn address(&self) -> Address {
        if self.host.starts_with('/') {
            Address::Unix(PathBuf::from(&self.host).join(format!(".s.PGSQL.{}", self.port)))
        } else {
            Address::Tcp(self.host.clone(), self.port)
        }
    }
}

/// Splits `key=value` pairs, unquoting `'...'` values (`\'` and `\\` inside).
fn pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!(
                "conninfo: \"{key}\" has no value: write key=value pairs, e.g. 'host=db1 port=5432 user=walker'"
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "conninfo: the quoted value of \"{key}\" has no closing quote"
                        ))
                    }
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("conninfo: \"{key}\" ends in a backslash")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// Parses `s`, taking what it does not give from `env` (libpq's variables).
pub fn parse_with(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<ConnInfo, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Err(
            "conninfo: URIs are not read here: write key=value pairs, e.g. 'host=db1 port=5432 user=walker'"
                .into(),
        );
    }
    let (mut host, mut port, mut user, mut password, mut app) = (None, None, None, None, None);
    for (k, v) in pairs(s)? {
        match k.as_str() {
            "host" | "hostaddr" => host = Some(v),
            "port" => port = Some(v),
            "user" => user = Some(v),
            "password" => password = Some(v),
            "application_name" => app = Some(v),
            // A physical replication connection opens no database.
            "dbname" | "connect_timeout" => {}
            "sslmode" if matches!(v.as_str(), "disable" | "allow" | "prefer") => {}
            "sslmode" => {
                return Err(format!(
                    "conninfo: sslmode={v}: pg_walker speaks no TLS; use sslmode=disable (or prefer) and a trusted network or a Unix socket"
                ))
            }
            "replication" => {}
            other => {
                return Err(format!(
                    "conninfo: unknown key \"{other}\" (pg_walker reads host, hostaddr, port, user, password, dbname, application_name, sslmode)"
                ))
            }
        }
    }
    let host = host.or_else(|| env("PGHOST")).unwrap_or_else(|| {
        if std::path::Path::new("/var/run/postgresql").is_dir() {
            "/var/run/postgresql".into()
        } else {
            "/tmp".into()
        }
    });
    let port_text = port
        .or_else(|| env("PGPORT"))
        .unwrap_or_else(|| "5432".into());
    let port = port_text
        .parse::<u16>()
        .map_err(|_| format!("conninfo: port={port_text} is not a port number"))?;
    let user = user
        .or_else(|| env("PGUSER"))
        .or_else(|| env("USER"))
        .ok_or("conninfo: no user given: add user=NAME (or set PGUSER)")?;
    Ok(ConnInfo {
        host,
        port,
        user,
        password: password.or_else(|| env("PGPASSWORD")),
        application_name: app.unwrap_or_else(|| "pg_walker".into()),
    })
}

/// Parses `s` with the process environment's defaults.
pub fn parse(s: &str) -> Result<ConnInfo, String> {
    parse_with(s, &|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn pairs_quotes_and_defaults() {
        let c = parse_with(
            "host=/run/pg port = 5433 user='wal ker' password='it\\'s' dbname=x",
            &no_env,
        )
        .unwrap();
        assert_eq!(c.host, "/run/pg");
        assert_eq!(c.port, 5433);
        assert_eq!(c.user, "wal ker");
        assert_eq!(c.password.as_deref(), Some("it's"));
        assert_eq!(
            c.address(),
            Address::Unix(PathBuf::from("/run/pg/.s.PGSQL.5433"))
        );
        let env = |k: &str| match k {
            "PGPORT" => Some("6000".to_string()),
            "PGUSER" => Some("u".to_string()),
            "PGPASSWORD" => Some("p".to_string()),
            _ => None,
        };
        let c = parse_with("host=db1", &env).unwrap();
        assert_eq!(c.address(), Address::Tcp("db1".into(), 6000));
        assert_eq!((c.user.as_str(), c.password.as_deref()), ("u", Some("p")));
    }

    #[test]
    fn mistakes_name_the_fix() {
        let e = |s: &str| parse_with(s, &no_env).unwrap_err();
        assert!(e("host").contains("key=value"));
        assert!(e("user=a port=x").contains("not a port"));
        assert!(e("user=a password='x").contains("closing quote"));
        assert!(e("user=a sslmode=require").contains("sslmode=disable"));
        assert!(e("user=a colour=blue").contains("unknown key"));
        assert!(e("postgresql://a@b/c").contains("key=value"));
        assert!(e("host=x").contains("user=NAME"));
    }
}
