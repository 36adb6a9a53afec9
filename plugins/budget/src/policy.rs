//! Budget policies: whom they cover, how fast that scope may write WAL, and what
//! happens when it writes faster. Parsing, validation and the choice of the policy
//! that governs a statement; plain Rust.

use serde::Deserialize;

/// What a policy's `scope_value` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ScopeKind {
    /// The tenant a session set with `walker.budget_set_tenant`.
    Tenant = 1,
    /// The role the statement runs as (current user).
    Role = 2,
    /// The current database.
    Database = 3,
    /// `application_name`.
    Application = 4,
    /// Several of the above at once: `tenant=acme,role=app_writer`; all must match.
    Composite = 5,
}

impl ScopeKind {
    /// Every kind with its name.
    pub const ALL: [(ScopeKind, &'static str); 5] = [
        (ScopeKind::Tenant, "tenant"),
        (ScopeKind::Role, "role"),
        (ScopeKind::Database, "database"),
        (ScopeKind::Application, "application"),
        (ScopeKind::Composite, "composite"),
    ];

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<ScopeKind> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("?", |(_, n)| n)
    }

    /// From its stored number.
    pub fn from_u32(v: u32) -> Option<ScopeKind> {
        Self::ALL
            .iter()
            .find(|(k, _)| *k as u32 == v)
            .map(|(k, _)| *k)
    }
}

/// What a policy does to a statement whose scope is over budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Mode {
    /// Nothing: the scope is exempt (a matching `off` policy still wins over
    /// lower-priority ones).
    Off = 1,
    /// Counts the WAL and records over-budget statements; never blocks.
    Observe = 2,
    /// Records what `queue` or `reject` would have done; never blocks.
    Shadow = 3,
    /// Makes the statement wait until the bucket has room (bounded by
    /// `budget.max_queue_wait`), then runs it.
    Queue = 4,
    /// Refuses the statement with SQLSTATE `WB001`.
    Reject = 5,
}

impl Mode {
    /// Every mode with its name.
    pub const ALL: [(Mode, &'static str); 5] = [
        (Mode::Off, "off"),
        (Mode::Observe, "observe"),
        (Mode::Shadow, "shadow"),
        (Mode::Queue, "queue"),
        (Mode::Reject, "reject"),
    ];

    /// The mode called `name`.
    pub fn parse(name: &str) -> Option<Mode> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(m, _)| *m)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("?", |(_, n)| n)
    }

    /// From its stored number.
    pub fn from_u32(v: u32) -> Option<Mode> {
        Self::ALL
            .iter()
            .find(|(m, _)| *m as u32 == v)
            .map(|(m, _)| *m)
    }
}

/// Bytes of a scope value, a tenant name, a role name, a database name or an
/// application name that are kept.
pub const NAME_BYTES: usize = 64;

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The rate is zero or negative.
    #[error("rate_bytes_per_sec must be greater than 0 (got {0})")]
    Rate(i64),
    /// The burst is below the rate.
    #[error("burst_bytes must be at least rate_bytes_per_sec (got burst {burst} < rate {rate}): the bucket must hold one second of WAL")]
    Burst {
        /// Burst given.
        burst: i64,
        /// Rate given.
        rate: i64,
    },
    /// Unknown scope kind.
    #[error("unknown scope_kind \"{0}\"; use tenant, role, database, application or composite")]
    Kind(String),
    /// Unknown mode.
    #[error("unknown mode \"{0}\"; use off, observe, shadow, queue or reject")]
    Mode(String),
    /// Empty or too long scope value.
    #[error("scope_value must be 1 to {NAME_BYTES} bytes (got {0} bytes)")]
    ValueLength(usize),
    /// A composite value that does not parse.
    #[error("composite scope_value \"{0}\" must be key=value pairs separated by commas, keys among tenant, role, database, application, each at most once")]
    Composite(String),
    /// More policies than the policy table holds.
    #[error("walker.budget_policies holds {got} policies but budget's shared memory holds at most {max} (budget.max_policies): drop policies, or raise budget.max_policies and restart the server")]
    TooMany {
        /// Limit.
        max: usize,
        /// Given.
        got: usize,
    },
    /// The JSON does not describe policies.
    #[error("policies must be a JSON array of objects with id, scope_kind, scope_value, rate_bytes_per_sec, burst_bytes, mode, priority, enabled: {0}")]
    Json(String),
}

/// A policy as an operator writes it (JSON from the policies table).
#[derive(Debug, Clone, Deserialize)]
pub struct PolicySpec {
    /// Its id (the table's identity column; 0 for a policy not stored yet).
    #[serde(default)]
    pub id: i64,
    /// Scope kind name.
    pub scope_kind: String,
    /// Scope value.
    pub scope_value: String,
    /// Bytes per second the scope may write.
    pub rate_bytes_per_sec: i64,
    /// Bytes the bucket holds when full.
    pub burst_bytes: i64,
    /// Mode name.
    pub mode: String,
    /// Priority: the highest wins.
    #[serde(default)]
    pub priority: i32,
    /// Disabled policies are kept but ignored.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Who a statement runs for; what policies match on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    /// Tenant (empty when none was set).
    pub tenant: String,
    /// Role name.
    pub role: String,
    /// Database name.
    pub database: String,
    /// `application_name`.
    pub application: String,
}

/// A checked policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Id.
    pub id: i64,
    /// Scope kind.
    pub kind: ScopeKind,
    /// Scope value as written.
    pub value: String,
    /// Conditions: (kind, value) pairs that must all match; one for simple kinds.
    pub conditions: Vec<(ScopeKind, String)>,
    /// Bytes per second.
    pub rate: i64,
    /// Bucket size in bytes.
    pub burst: i64,
    /// Mode.
    pub mode: Mode,
    /// Priority.
    pub priority: i32,
    /// Enabled.
    pub enabled: bool,
}

fn conditions(kind: ScopeKind, value: &str) -> Result<Vec<(ScopeKind, String)>, PolicyError> {
    if value.is_empty() || value.len() > NAME_BYTES {
        return Err(PolicyError::ValueLength(value.len()));
    }
    if kind != ScopeKind::Composite {
        return Ok(vec![(kind, value.to_string())]);
    }
    let bad = || PolicyError::Composite(value.to_string());
    let mut out: Vec<(ScopeKind, String)> = Vec::new();
    for part in value.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(bad)?;
        let k = ScopeKind::parse(k.trim()).filter(|k| *k != ScopeKind::Composite);
        let k = k.ok_or_else(bad)?;
        let v = v.trim();
        if v.is_empty() || out.iter().any(|(o, _)| *o == k) {
            return Err(bad());
        }
        out.push((k, v.to_string()));
    }
    if out.len() < 2 {
        return Err(bad());
    }
    Ok(out)
}

impl Policy {
    /// Checks a spec.
    pub fn from_spec(s: &PolicySpec) -> Result<Policy, PolicyError> {
        let kind = ScopeKind::parse(&s.scope_kind)
            .ok_or_else(|| PolicyError::Kind(s.scope_kind.clone()))?;
        let mode = Mode::parse(&s.mode).ok_or_else(|| PolicyError::Mode(s.mode.clone()))?;
        if s.rate_bytes_per_sec <= 0 {
            return Err(PolicyError::Rate(s.rate_bytes_per_sec));
        }
        if s.burst_bytes < s.rate_bytes_per_sec {
            return Err(PolicyError::Burst {
                burst: s.burst_bytes,
                rate: s.rate_bytes_per_sec,
            });
        }
        Ok(Policy {
            id: s.id,
            kind,
            value: s.scope_value.clone(),
            conditions: conditions(kind, &s.scope_value)?,
            rate: s.rate_bytes_per_sec,
            burst: s.burst_bytes,
            mode,
            priority: s.priority,
            enabled: s.enabled,
        })
    }

    /// True when the policy covers `who`.
    pub fn matches(&self, who: &Who) -> bool {
        self.conditions.iter().all(|(k, v)| {
            let have = match k {
                ScopeKind::Tenant => &who.tenant,
                ScopeKind::Role => &who.role,
                ScopeKind::Database => &who.database,
                ScopeKind::Application => &who.application,
                ScopeKind::Composite => return false,
            };
            have == v
        })
    }
}

/// Parses and checks a JSON array of policies (all or nothing).
/// (How many fit is the policy table's business: [`crate::shm::Shared::load_policies`].)
pub fn parse_all(json: &str) -> Result<Vec<Policy>, PolicyError> {
    let specs: Vec<PolicySpec> =
        serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
    specs.iter().map(Policy::from_spec).collect()
}

/// Index of the policy that governs `who`: among the enabled ones that match, the
/// highest priority; on a tie, the lowest id.
pub fn select(policies: &[Policy], who: &Who) -> Option<usize> {
    policies
        .iter()
        .enumerate()
        .filter(|(_, p)| p.enabled && p.matches(who))
        .min_by_key(|(_, p)| (std::cmp::Reverse(p.priority), p.id))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, value: &str, rate: i64, burst: i64, mode: &str) -> PolicySpec {
        PolicySpec {
            id: 1,
            scope_kind: kind.into(),
            scope_value: value.into(),
            rate_bytes_per_sec: rate,
            burst_bytes: burst,
            mode: mode.into(),
            priority: 0,
            enabled: true,
        }
    }

    #[test]
    fn invalid_policies_say_what_is_wrong() {
        let e = |s: PolicySpec| Policy::from_spec(&s).unwrap_err();
        assert_eq!(e(spec("role", "a", 0, 10, "reject")), PolicyError::Rate(0));
        assert_eq!(
            e(spec("role", "a", -5, 10, "reject")),
            PolicyError::Rate(-5)
        );
        assert_eq!(
            e(spec("role", "a", 100, 99, "reject")),
            PolicyError::Burst {
                burst: 99,
                rate: 100
            }
        );
        assert_eq!(
            e(spec("user", "a", 1, 1, "reject")),
            PolicyError::Kind("user".into())
        );
        assert_eq!(
            e(spec("role", "a", 1, 1, "block")),
            PolicyError::Mode("block".into())
        );
        assert_eq!(
            e(spec("role", "", 1, 1, "queue")),
            PolicyError::ValueLength(0)
        );
        for bad in [
            "tenant=a",
            "tenant=a,tenant=b",
            "tenant=a,user=b",
            "tenant=a,role",
            "tenant=a,composite=x",
        ] {
            assert!(
                matches!(
                    e(spec("composite", bad, 1, 1, "queue")),
                    PolicyError::Composite(_)
                ),
                "{bad}"
            );
        }
        assert!(PolicyError::Burst { burst: 1, rate: 2 }
            .to_string()
            .contains("at least"));
    }

    #[test]
    fn composite_needs_every_part() {
        let p =
            Policy::from_spec(&spec("composite", "tenant=acme, role=w", 1, 1, "observe")).unwrap();
        let mut who = Who {
            tenant: "acme".into(),
            role: "w".into(),
            database: "d".into(),
            application: "x".into(),
        };
        assert!(p.matches(&who));
        who.role = "r".into();
        assert!(!p.matches(&who));
    }

    #[test]
    fn highest_priority_wins_then_lowest_id() {
        let json = r#"[
          {"id": 7, "scope_kind": "role", "scope_value": "w", "rate_bytes_per_sec": 10, "burst_bytes": 10, "mode": "reject", "priority": 1},
          {"id": 3, "scope_kind": "database", "scope_value": "d", "rate_bytes_per_sec": 10, "burst_bytes": 10, "mode": "queue", "priority": 5},
          {"id": 2, "scope_kind": "application", "scope_value": "x", "rate_bytes_per_sec": 10, "burst_bytes": 10, "mode": "observe", "priority": 5},
          {"id": 1, "scope_kind": "tenant", "scope_value": "acme", "rate_bytes_per_sec": 10, "burst_bytes": 10, "mode": "off", "priority": 9, "enabled": false}
        ]"#;
        let ps = parse_all(json).unwrap();
        let who = Who {
            tenant: "acme".into(),
            role: "w".into(),
            database: "d".into(),
            application: "x".into(),
        };
        // Priority 5 twice: id 2 beats id 3; the disabled priority-9 policy is ignored.
        assert_eq!(ps[select(&ps, &who).unwrap()].id, 2);
        let other = Who {
            role: "w".into(),
            ..Who::default()
        };
        assert_eq!(ps[select(&ps, &other).unwrap()].id, 7);
        assert_eq!(select(&ps, &Who::default()), None);
        assert!(matches!(parse_all("{}"), Err(PolicyError::Json(_))));
    }
}
