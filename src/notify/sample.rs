//! A small, fixed digest: what `notify --test` sends and what validation
//! renders every template with, so a template that fails on any part of a
//! digest (items of each status, evidence, exemptions, a cap) fails early.

use jiff::civil::Date;

use crate::engine::finding::{Evidence, EvidenceMap, Severity};
use crate::engine::rule::RuleText;

use super::digest::{Capped, Counts, Digest, DigestItem, ExpiringExemption, ItemStatus, ScanInfo};

/// A digest touching every field; `test` marks it as a test message.
pub(crate) fn sample_digest(test: bool) -> Digest {
    let items = vec![
        item(
            ItemStatus::New,
            Severity::High,
            "ownerless-groups",
            "Project Phoenix",
            None,
            "The group has no owner",
            &[
                ("owner_count", Evidence::Int(0)),
                ("member_count", Evidence::Int(14)),
            ],
        ),
        item(
            ItemStatus::Reopened,
            Severity::Medium,
            "inactive-groups",
            "Marketing <EMEA> & Partners",
            Some("adele.vance@contoso.com"),
            "No activity for 212 days",
            &[
                ("days_since_activity", Evidence::Int(212)),
                ("last_activity", Evidence::Text("2026-04-27".into())),
            ],
        ),
        item(
            ItemStatus::Reminder,
            Severity::Medium,
            "inactive-groups",
            "Old Wiki",
            Some("megan.bowen@contoso.com"),
            "No activity for 400 days",
            &[
                ("days_since_activity", Evidence::Int(400)),
                ("last_activity", Evidence::Null),
            ],
        ),
        item(
            ItemStatus::Resolved,
            Severity::Low,
            "external-members",
            "Vendors",
            Some("adele.vance@contoso.com"),
            "3 guests in a private group",
            &[("external_members", Evidence::Int(3))],
        ),
    ];
    Digest {
        scan: ScanInfo {
            tenant: Some("Contoso".into()),
            source: "graph".into(),
            report_refresh_date: Some(Date::constant(2026, 11, 25)),
            report_period: Some(180),
            scanned_at: "2026-11-26T06:00:00Z".parse().expect("a valid timestamp"),
            rows: 1204,
        },
        counts: Counts {
            new: 1,
            reopened: 1,
            reminders: 1,
            resolved: 1,
            exempted: 2,
            expiring_exemptions: 1,
        },
        items,
        expiring_exemptions: vec![ExpiringExemption {
            rule: "inactive-groups".into(),
            group: "Board Archive".into(),
            reason: "Kept for legal hold".into(),
            expires: Date::constant(2026, 12, 1),
            expired: false,
        }],
        capped: (!test).then(|| Capped {
            total: 5,
            shown: 4,
            reason: "a sample cap".into(),
        }),
        test,
        rules: [
            (
                "ownerless-groups",
                "Ownerless groups",
                "Ask your admin to name an owner.",
            ),
            (
                "inactive-groups",
                "Inactive groups",
                "Delete or archive it if nobody needs it.",
            ),
            ("external-members", "Groups with guests", ""),
        ]
        .into_iter()
        .map(|(rule, title, help)| {
            let text = RuleText {
                title: title.into(),
                help: help.into(),
            };
            (rule.to_owned(), text)
        })
        .collect(),
    }
}

fn item(
    status: ItemStatus,
    severity: Severity,
    rule: &str,
    group: &str,
    owner: Option<&str>,
    message: &str,
    evidence: &[(&str, Evidence)],
) -> DigestItem {
    let mut map = EvidenceMap::default();
    for (name, value) in evidence {
        map.set((*name).into(), value.clone());
    }
    let group_id = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        group.len(),
        group.bytes().map(u64::from).sum::<u64>()
    );
    DigestItem {
        status,
        key: format!("{rule}:{group_id}"),
        rule: rule.into(),
        severity,
        group_id: Some(group_id),
        group_name: Some(group.into()),
        owner: owner.map(Into::into),
        owners: None,
        message: message.into(),
        evidence: map,
        first_seen: Some(Date::constant(2026, 10, 1)),
    }
}
