//! Requests to the host's services worker (ABI 1.2) and their outcomes.

use super::{Host, PluginError, PluginResult};
use crate::types::*;

/// What became of a service request ([`Host::service_result`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceOutcome {
    /// Carried out; the host's message (e.g. the value the server now shows).
    Succeeded(String),
    /// Refused or failed; the reason.
    Failed(String),
    /// Not done yet.
    Pending,
    /// No such request (never made, or its outcome was already collected).
    Unknown,
    /// The backend's wait was interrupted (cancel or termination): return at once.
    Interrupted,
}

impl Host {
    /// Queues a request for the host's services worker (ABI 1.2); its id.
    pub fn request_service(
        &self,
        kind: WalkerServiceKind,
        name: &str,
        value: &str,
    ) -> PluginResult<u64> {
        let f = self
            .api()
            .request_service
            .filter(|_| self.has_v1_2())
            .ok_or_else(|| {
                PluginError::new("this walker host is older than ABI 1.2 (no services)")
            })?;
        let req = WalkerServiceRequest {
            kind,
            name: name.as_ptr(),
            name_len: name.len(),
            value: value.as_ptr(),
            value_len: value.len(),
        };
        let mut id = 0u64;
        // SAFETY: the request's buffers are valid for the call; the host copies them.
        let st = unsafe { f(self.plugin, &req, &mut id) };
        self.status(st, "request_service", name)?;
        Ok(id)
    }

    /// The outcome of request `id`, waiting up to `wait_ms` (ABI 1.2).
    pub fn service_result(&self, id: u64, wait_ms: u32) -> ServiceOutcome {
        let Some(f) = self.api().service_result.filter(|_| self.has_v1_2()) else {
            return ServiceOutcome::Unknown;
        };
        // The host's messages fit this buffer whole (the ABI's bound).
        let mut buf = vec![0u8; WALKER_SERVICE_MESSAGE_MAX];
        let mut len = 0usize;
        // SAFETY: `buf` is writable for its length.
        let st = unsafe {
            f(
                self.plugin,
                id,
                wait_ms,
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
            )
        };
        let msg = service_message(&buf, len);
        match st {
            WalkerStatus::OK => ServiceOutcome::Succeeded(msg),
            WalkerStatus::ERROR => ServiceOutcome::Failed(msg),
            WalkerStatus::PENDING => ServiceOutcome::Pending,
            WalkerStatus::INTERRUPTED => ServiceOutcome::Interrupted,
            _ => ServiceOutcome::Unknown,
        }
    }
}

/// The message `service_result` left in `buf`, whose full length is `len`. A message
/// longer than the buffer (a host that breaks the ABI's bound) arrives cut, or not at
/// all from hosts that copy nothing when it does not fit: the text says so instead of
/// handing out NUL bytes.
fn service_message(buf: &[u8], len: usize) -> String {
    if len <= buf.len() {
        return String::from_utf8_lossy(&buf[..len]).into_owned();
    }
    let kept = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let note = format!(
        "(the host's message is {len} bytes, more than the {} it may send; {} kept)",
        buf.len(),
        kept
    );
    if kept == 0 {
        note
    } else {
        format!("{} {note}", String::from_utf8_lossy(&buf[..kept]))
    }
}
