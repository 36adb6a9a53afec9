//! The capacities of the shared region's tables (scopes, profiles, decisions,
//! policies): the settings `budget.max_scopes`, `budget.max_profiles`,
//! `budget.max_decisions` and `budget.max_policies`, read once at server start, and the region's size from them. The region is the
//! fixed [`Header`] followed by the tables, taken in the order of [`Capacities::size`].

use crate::shm::{Decision, Header, PolicySlot, Profile, RoleSlot, Scope, MAX_SCOPES_PER_ROLE};
use walker_abi::{Host, PluginResult, RegionLayout, WalkerSettingContext, WalkerSettingUnit};

/// How many entries each table of the region holds (stored in the header at
/// `shmem_init`, so every process carves the region alike).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacities {
    /// Scopes (`budget.max_scopes`).
    pub scopes: u32,
    /// Query profiles (`budget.max_profiles`).
    pub profiles: u32,
    /// Decisions kept in the ring (`budget.max_decisions`).
    pub decisions: u32,
    /// Policies that can be loaded, with their token buckets (`budget.max_policies`).
    pub policies: u32,
}

/// One capacity setting: its name, default and range.
struct Setting {
    name: &'static str,
    description: &'static str,
    default: u32,
    min: u32,
    max: u32,
}

/// `budget.max_scopes`, `budget.max_profiles`, `budget.max_decisions`,
/// `budget.max_policies`, in the order of the fields of [`Capacities`].
const SETTINGS: [Setting; 4] = [
    Setting {
        name: "max_scopes",
        description: "Scopes (tenant, role, database, application) kept in shared memory; when full, the least recently used session scope is evicted and its totals folded into its database's evicted scope. Only at server start.",
        default: 1024,
        min: 64,
        max: 262_144,
    },
    Setting {
        name: "max_profiles",
        description: "Query profiles (typical WAL per statement) kept in shared memory; when a probe chain is full, its least recently updated profile is replaced. Only at server start.",
        default: 4096,
        min: 256,
        max: 1_048_576,
    },
    Setting {
        name: "max_decisions",
        description: "Admission decisions kept in the ring that walker.budget_decisions shows (the oldest is overwritten). Only at server start.",
        default: 512,
        min: 16,
        max: 65_536,
    },
    Setting {
        name: "max_policies",
        description: "Policies (rows of walker.budget_policies) that can be in force, each with its token bucket in shared memory; walker.budget_create_policy refuses one more. Only at server start.",
        default: 64,
        min: 1,
        max: 16_384,
    },
];

impl Capacities {
    /// The defaults (the capacities before they were settings).
    pub const DEFAULT: Capacities = Capacities {
        scopes: SETTINGS[0].default,
        profiles: SETTINGS[1].default,
        decisions: SETTINGS[2].default,
        policies: SETTINGS[3].default,
    };

    /// Defines the settings (postmaster context: the region is sized once).
    pub fn define(host: &Host) -> PluginResult {
        for s in &SETTINGS {
            host.define_int(
                s.name,
                s.description,
                s.default as i64,
                s.min as i64,
                s.max as i64,
                WalkerSettingUnit::NONE,
                WalkerSettingContext::POSTMASTER,
            )?;
        }
        Ok(())
    }

    /// The values in force: call it after `init` (the host reads the server's values
    /// of the settings then; in `init` they are still the defaults). The server
    /// refused values out of range, so a value read is in range; one that cannot be
    /// read is the default.
    pub fn from_settings(host: &Host) -> Capacities {
        let get = |s: &Setting| {
            host.get_int(s.name)
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .map_or(s.default, |v| v.clamp(s.min, s.max))
        };
        Capacities {
            scopes: get(&SETTINGS[0]),
            profiles: get(&SETTINGS[1]),
            decisions: get(&SETTINGS[2]),
            policies: get(&SETTINGS[3]),
        }
    }

    /// Slots of the scope table's hash index (twice the scopes, so probe chains stay
    /// short).
    pub fn scope_index(&self) -> usize {
        2 * self.scopes as usize
    }

    /// Slots of the table of roles with session scopes (a role leaves it with its
    /// last scope; as many roles as scopes fit, with room for open addressing).
    pub fn role_slots(&self) -> usize {
        2 * self.scopes as usize
    }

    /// Session scopes one role keeps at most: an eighth of the scopes, at most
    /// [`MAX_SCOPES_PER_ROLE`] (128 at the default 1024 scopes).
    pub fn per_role(scopes: usize) -> usize {
        (scopes / 8).clamp(1, MAX_SCOPES_PER_ROLE)
    }

    /// Bytes of the region: the header, then the scopes, the scope index, the role
    /// slots, the profiles, the decisions and the policies. `None` when it overflows.
    pub fn size(&self) -> Option<usize> {
        RegionLayout::new::<Header>()
            .table::<Scope>(self.scopes as usize)
            .table::<u32>(self.scope_index())
            .table::<RoleSlot>(self.role_slots())
            .table::<Profile>(self.profiles as usize)
            .table::<Decision>(self.decisions as usize)
            .table::<PolicySlot>(self.policies as usize)
            .size()
    }

    /// True when every capacity is within its setting's range (a zeroed header is
    /// not: its region was never initialised).
    pub fn valid(&self) -> bool {
        let v = [self.scopes, self.profiles, self.decisions, self.policies];
        SETTINGS
            .iter()
            .zip(v)
            .all(|(s, v)| (s.min..=s.max).contains(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};

    #[test]
    fn the_default_capacities_are_the_former_constants() {
        assert_eq!(Capacities::DEFAULT.scopes, 1024);
        assert_eq!(Capacities::DEFAULT.profiles, 4096);
        assert_eq!(Capacities::DEFAULT.decisions, 512);
        assert_eq!(Capacities::DEFAULT.policies, 64);
        assert_eq!(Capacities::DEFAULT.scope_index(), 2048);
        assert_eq!(Capacities::DEFAULT.role_slots(), 2048);
        assert_eq!(Capacities::per_role(1024), 128);
        assert_eq!(Capacities::per_role(64), 8);
        assert_eq!(Capacities::per_role(1 << 20), 128);
        assert!(Capacities::DEFAULT.valid());
        assert!(!Capacities::default().valid());
    }

    #[test]
    fn the_region_is_the_header_and_each_table_with_its_alignment_slack() {
        // Element sizes by hand from the #[repr(C)] fields: a Name is 4 + 64 bytes
        // (align 4); a Scope is 3 u32 (12) + 4 Names (272) = 284, padded to 288 for
        // the Totals (3 u64, 24) = 312, transactions 8 = 320, policy 4 + pad 4 = 328,
        // policy_gen 8 = 336, last_micros 8 = 344, hash 8 = 352, then 6 u32 (24) =
        // 376, sampled_bytes 8 = 384; a RoleSlot is 5 u32 = 20; a Profile is 2 u32 (8) + query_id 8 + scope 4
        // + pad 4 + 5 eight-byte fields (40) = 64; a Decision is 8 + 4 + 4 + 8 + 4 + pad
        // 4 + 4 eight-byte fields (32) = 64; a PolicySlot is id 8 + 4 u32/i32 (16) +
        // rate and burst 16 = 40, value Name 68 = 108, n_conditions 4 = 112, 4 condition
        // kinds 16 = 128, 4 condition Names 272 = 400, the Bucket (3 eight-byte fields
        // and a u32, padded: 32) = 432, charged Totals 24 = 456, 10 action counters 80
        // = 536, waited_ms 8 = 544.
        assert_eq!(crate::policy::NAME_BYTES, 64);
        assert_eq!(size_of::<PolicySlot>(), 544);
        assert_eq!(size_of::<Scope>(), 384);
        assert_eq!(size_of::<RoleSlot>(), 20);
        assert_eq!(size_of::<Profile>(), 64);
        assert_eq!(size_of::<Decision>(), 64);
        assert_eq!(align_of::<Scope>(), 8);
        let c = Capacities {
            scopes: 64,
            profiles: 256,
            decisions: 16,
            policies: 4,
        };
        let head = size_of::<Header>();
        let want = head
            + (7 + 64 * 384)
            + (3 + 128 * 4)
            + (3 + 128 * 20)
            + (7 + 256 * 64)
            + (7 + 16 * 64)
            + (7 + 4 * 544);
        assert_eq!(c.size(), Some(want));
        // Each capacity adds exactly its tables' bytes.
        let more = Capacities { scopes: 65, ..c };
        assert_eq!(more.size(), Some(want + 384 + 2 * 4 + 2 * 20));
        let more = Capacities { policies: 5, ..c };
        assert_eq!(more.size(), Some(want + 544));
    }
}
