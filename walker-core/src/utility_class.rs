//! Which utility statements can write WAL, and which reset a session: the plain part
//! of what the host reports in a backend event's `never_writes` and `session_reset`
//! (ABI 1.5). The hooks read the parse node into a [`Utility`]; this module decides.
//!
//! The rule: a statement "never writes" when running it cannot insert WAL in this
//! transaction by itself, so a budget must neither queue nor refuse it. Drivers and
//! connection poolers send these statements to set a session up or tear it down; a
//! refusal there breaks the connection for its next client, not the writer.

use walker_abi::WalkerSessionReset;

/// A utility statement as far as classification needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utility {
    /// `SET`, `RESET`, `SET LOCAL`, `SET TRANSACTION ...`, `SET SESSION AUTHORIZATION`.
    Set {
        /// `RESET ALL`.
        reset_all: bool,
        /// The setting is `session_authorization` (`SET`/`RESET SESSION AUTHORIZATION`).
        session_authorization: bool,
    },
    /// `SHOW`.
    Show,
    /// `DISCARD ALL | PLANS | SEQUENCES | TEMP`.
    Discard {
        /// `DISCARD ALL`.
        all: bool,
    },
    /// `LISTEN`.
    Listen,
    /// `UNLISTEN`.
    Unlisten,
    /// `NOTIFY`.
    Notify,
    /// `PREPARE name AS ...` (not `PREPARE TRANSACTION`, which is transaction control).
    Prepare,
    /// `DEALLOCATE`.
    Deallocate,
    /// `CLOSE` a cursor.
    Close,
    /// `EXPLAIN`.
    Explain {
        /// With `ANALYZE` (on, or not explicitly off): the statement runs.
        analyze: bool,
    },
    /// `DECLARE CURSOR`.
    DeclareCursor {
        /// Its query is a plain `SELECT` (no data-modifying `WITH`, no `FOR UPDATE`).
        plain_select: bool,
    },
    /// `FETCH` or `MOVE` in a cursor.
    Fetch,
    /// `COPY`.
    Copy {
        /// `COPY ... FROM` (writes rows); else `COPY ... TO` (reads them).
        from: bool,
    },
    /// Anything else (DDL, `VACUUM`, `CALL`, `EXECUTE`, ...).
    Other,
}

/// What the host reports for a utility statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtilityClass {
    /// The statement writes no WAL of its own: never governed.
    pub never_writes: bool,
    /// The statement reads like a plain `SELECT` (and may write only through the
    /// functions it calls): `never_writes` ones, a cursor over a plain `SELECT`,
    /// `FETCH`/`MOVE`, `COPY ... TO`. Reported as the event's `read_only`.
    pub read_only: bool,
    /// What it does to the session's state.
    pub session_reset: WalkerSessionReset,
}

/// Classifies a utility statement.
pub fn classify(u: Utility) -> UtilityClass {
    let never_writes = match u {
        // Session state only: settings, prepared statements, cursors already open,
        // listen registrations (kept in backend memory; LISTEN takes no xid).
        Utility::Set { .. }
        | Utility::Show
        | Utility::Listen
        | Utility::Unlisten
        | Utility::Prepare
        | Utility::Deallocate
        | Utility::Close => true,
        // DISCARD TEMP and DISCARD ALL drop the session's temporary tables, which
        // writes catalog WAL; that WAL is the session's own cleanup, still charged to
        // its scope by the walker side, and refusing it would hand the session's
        // temporary objects and settings to the next client of a pooled connection.
        Utility::Discard { .. } => true,
        // A plan only: the executor never runs.
        Utility::Explain { analyze } => !analyze,
        // NOTIFY is governed. The notification itself goes to the pg_notify queue,
        // which is not WAL-logged, but queuing it assigns the transaction an xid at
        // commit, so each NOTIFY transaction writes a commit record: a small write,
        // but a write, and an application's (not a driver's) statement. Its bytes
        // are learned like any statement's and usually predicted far below a
        // bucket's free bytes.
        Utility::Notify => false,
        // They run queries that may call writing functions: governed, as reads.
        Utility::DeclareCursor { .. } | Utility::Fetch | Utility::Copy { .. } => false,
        Utility::Other => false,
    };
    let read_only = never_writes
        || matches!(
            u,
            Utility::DeclareCursor { plain_select: true }
                | Utility::Fetch
                | Utility::Copy { from: false }
        );
    let session_reset = match u {
        Utility::Set {
            reset_all: true, ..
        }
        | Utility::Discard { all: true } => WalkerSessionReset::ALL,
        Utility::Set {
            session_authorization: true,
            ..
        } => WalkerSessionReset::AUTHORIZATION,
        _ => WalkerSessionReset::NONE,
    };
    UtilityClass {
        never_writes,
        read_only,
        session_reset,
    }
}

/// True for the spellings of a false boolean option value the server accepts
/// (`parse_bool`'s: `false`, `off`, `no`, `0`, and their unique prefixes `f`, `of`,
/// `n`), case-insensitively.
pub fn is_false_word(s: &str) -> bool {
    let s = s.trim().to_ascii_lowercase();
    matches!(
        s.as_str(),
        "0" | "f" | "fa" | "fal" | "fals" | "false" | "n" | "no" | "of" | "off"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(reset_all: bool, session_authorization: bool) -> Utility {
        Utility::Set {
            reset_all,
            session_authorization,
        }
    }

    #[test]
    fn session_statements_never_write_and_the_rest_can() {
        for u in [
            set(false, false),
            set(true, false),
            set(false, true),
            Utility::Show,
            Utility::Discard { all: true },
            Utility::Discard { all: false },
            Utility::Listen,
            Utility::Unlisten,
            Utility::Prepare,
            Utility::Deallocate,
            Utility::Close,
            Utility::Explain { analyze: false },
        ] {
            assert!(classify(u).never_writes, "{u:?}");
        }
        for u in [
            Utility::Explain { analyze: true },
            Utility::Notify,
            Utility::Other,
        ] {
            assert!(!classify(u).never_writes, "{u:?}");
        }
    }

    #[test]
    fn cursors_and_copy_to_are_governed_reads() {
        for u in [
            Utility::DeclareCursor { plain_select: true },
            Utility::Fetch,
            Utility::Copy { from: false },
        ] {
            let c = classify(u);
            assert!(!c.never_writes && c.read_only, "{u:?}");
        }
        for u in [
            Utility::DeclareCursor {
                plain_select: false,
            },
            Utility::Copy { from: true },
            Utility::Notify,
            Utility::Explain { analyze: true },
        ] {
            let c = classify(u);
            assert!(!c.never_writes && !c.read_only, "{u:?}");
        }
        assert!(classify(Utility::Show).read_only);
    }

    #[test]
    fn reset_all_discard_all_and_session_authorization_reset_the_session() {
        assert_eq!(
            classify(set(true, false)).session_reset,
            WalkerSessionReset::ALL
        );
        assert_eq!(
            classify(Utility::Discard { all: true }).session_reset,
            WalkerSessionReset::ALL
        );
        assert_eq!(
            classify(set(false, true)).session_reset,
            WalkerSessionReset::AUTHORIZATION
        );
        for u in [
            set(false, false),
            Utility::Discard { all: false },
            Utility::Show,
            Utility::Other,
        ] {
            assert_eq!(classify(u).session_reset, WalkerSessionReset::NONE, "{u:?}");
        }
    }

    #[test]
    fn false_words_are_the_servers() {
        for w in ["false", "OFF", "0", "no", "f", " Of "] {
            assert!(is_false_word(w), "{w}");
        }
        for w in ["true", "on", "1", "yes", "o", "", "analyze"] {
            assert!(!is_false_word(w), "{w}");
        }
    }
}
