//! Who may claim which tenant: the optional allowlist `budget.tenant_roles`.
//!
//! Empty (the default): any member of `walker_budget_tenant_setter` may set any
//! tenant. Otherwise it lists `tenant:role` pairs separated by commas
//! (`'acme:alice, acme:bob, beta:carol'`): a session may set a tenant only when a pair
//! names that tenant and the role its statement runs as (`current_user`), so a tenant
//! setter cannot claim another role's tenant, an exempt one included, nor one the
//! list does not name.

use crate::policy::NAME_BYTES;

/// The setting's name, for messages.
pub const SETTING: &str = "budget.tenant_roles";

/// The parsed allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRoles {
    pairs: Vec<(String, String)>,
}

/// Reads the setting's value: `None` when it is empty (no allowlist).
pub fn parse(value: &str) -> Result<Option<TenantRoles>, String> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let mut pairs = Vec::new();
    for (i, entry) in value.split(',').enumerate() {
        let entry = entry.trim();
        let bad = |why: &str| {
            format!(
                "{SETTING} is invalid at entry {} (\"{entry}\"): {why}; write it as 'tenant:role, tenant:role' (for example 'acme:alice, beta:bob') and reload the configuration",
                i + 1
            )
        };
        let (tenant, role) = entry
            .split_once(':')
            .ok_or_else(|| bad("it is not tenant:role"))?;
        let (tenant, role) = (tenant.trim(), role.trim());
        for (what, name) in [("tenant", tenant), ("role", role)] {
            if name.is_empty() || name.len() > NAME_BYTES {
                return Err(bad(&format!(
                    "the {what} name must be 1 to {NAME_BYTES} bytes"
                )));
            }
        }
        pairs.push((tenant.to_string(), role.to_string()));
    }
    Ok(Some(TenantRoles { pairs }))
}

impl TenantRoles {
    /// True when `role` may claim `tenant`.
    pub fn allows(&self, tenant: &str, role: &str) -> bool {
        self.pairs.iter().any(|(t, r)| t == tenant && r == role)
    }
}

/// Checks that `role` (the role the session's statement runs as; `None` when
/// unknown) may claim `tenant` under the setting's `value`; the error says why not
/// and how to fix it.
pub fn check_claim(value: &str, tenant: &str, role: Option<&str>) -> Result<(), String> {
    let Some(list) = parse(value)? else {
        return Ok(());
    };
    let Some(role) = role else {
        return Err(format!(
            "cannot tell which role claims tenant \"{tenant}\" while {SETTING} is set; call walker.budget_set_tenant from a statement of the session"
        ));
    };
    if list.allows(tenant, role) {
        return Ok(());
    }
    Err(format!(
        "role \"{role}\" may not claim tenant \"{tenant}\": {SETTING} does not bind that tenant to that role; an administrator adds '{tenant}:{role}' to {SETTING} and reloads the configuration"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_allows_anyone_and_a_list_only_its_pairs() {
        assert_eq!(parse(" "), Ok(None));
        assert!(check_claim("", "acme", Some("bob")).is_ok());
        let v = "acme:alice, acme : bob ,beta:carol";
        assert!(check_claim(v, "acme", Some("alice")).is_ok());
        assert!(check_claim(v, "acme", Some("bob")).is_ok());
        let e = check_claim(v, "beta", Some("bob")).unwrap_err();
        assert!(
            e.contains("role \"bob\" may not claim tenant \"beta\""),
            "{e}"
        );
        assert!(e.contains("'beta:bob'"), "{e}");
        // A tenant the list does not name (an exempt one, say) cannot be claimed.
        assert!(check_claim(v, "vip", Some("alice")).is_err());
        assert!(check_claim(v, "acme", None).is_err());
    }

    #[test]
    fn a_malformed_list_is_refused_with_the_entry() {
        let e = parse("acme:alice, beta").unwrap_err();
        assert!(e.contains("entry 2 (\"beta\")"), "{e}");
        assert!(parse("acme:").unwrap_err().contains("role name"));
        assert!(parse(&format!("{}:x", "t".repeat(65)))
            .unwrap_err()
            .contains("tenant name"));
        // A malformed list refuses every claim rather than allowing all.
        assert!(check_claim("acme", "acme", Some("alice")).is_err());
    }
}
