//! What a reader of the decision log asks for: filters shared by
//! `GET /v1/audit` and `claimgate audit export`, and the opaque cursor.

use super::record::{claim_keys, AuditRecord};

/// Most records one page returns.
pub const MAX_PAGE: usize = 1_000;
/// Records a page returns unless `limit` says otherwise.
pub const DEFAULT_PAGE: usize = 100;
/// The reasons a record can carry (every reason but `ok`).
pub const REASONS: [&str; 8] = [
    "emergency_exemption",
    "unknown_institution",
    "unknown_practitioner",
    "institution_not_designated",
    "not_registered_at_institution",
    "practitioner_terminated",
    "practitioner_suspended",
    "institution_suspended",
];

/// Filters, each optional; a record matches when it passes every one given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub practitioner: Option<String>,
    pub institution: Option<String>,
    /// Service dates on or after this day (`YYYY-MM-DD`).
    pub from: Option<String>,
    /// Service dates before this day.
    pub until: Option<String>,
    /// The claim line's `claim_id`, as text: matches a string claim id with
    /// that text or a numeric one written the same way.
    pub claim_id: Option<String>,
    pub reason: Option<String>,
    /// Only records older than this id (from a cursor).
    pub before: Option<u64>,
    pub limit: usize,
}

impl AuditQuery {
    /// No filters, a page of [`DEFAULT_PAGE`].
    pub fn all() -> AuditQuery {
        AuditQuery { limit: DEFAULT_PAGE, ..AuditQuery::default() }
    }

    pub fn matches(&self, r: &AuditRecord) -> bool {
        self.matches_fields(&Fields {
            id: r.id,
            practitioner: &r.practitioner_id,
            institution: &r.institution_id,
            service_date: &r.service_date,
            claim_key: r.claim_key().as_deref(),
            reason: r.reason.as_str(),
        })
    }

    /// [`AuditQuery::matches`] on the indexed fields alone.
    pub fn matches_fields(&self, f: &Fields) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.practitioner, f.practitioner)
            && eq(&self.institution, f.institution)
            && eq(&self.reason, f.reason)
            && self.from.as_deref().is_none_or(|from| f.service_date >= from)
            && self.until.as_deref().is_none_or(|until| f.service_date < until)
            && self.before.is_none_or(|b| f.id < b)
            && self.claim_id.as_deref().is_none_or(|c| claim_keys(c).iter().any(|k| f.claim_key == Some(k.as_str())))
    }
}

/// The fields of a record a query filters on.
pub struct Fields<'a> {
    pub id: u64,
    pub practitioner: &'a str,
    pub institution: &'a str,
    pub service_date: &'a str,
    pub claim_key: Option<&'a str>,
    pub reason: &'a str,
}

/// The cursor for "records older than `id`".
pub fn cursor(id: u64) -> String {
    format!("r{id:x}")
}

/// The id a cursor stands for, or `None` if it is not one of ours.
pub fn parse_cursor(text: &str) -> Option<u64> {
    let hex = text.strip_prefix('r')?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, claim: serde_json::Value) -> AuditRecord {
        AuditRecord {
            id,
            at_ms: 0,
            seq: 1,
            claim_id: Some(claim),
            practitioner_id: "D110105000001".into(),
            institution_id: "H11010500001".into(),
            service_date: "2026-03-20".into(),
            emergency: true,
            verdict: claimgate_rules::Verdict::Settle,
            reason: claimgate_rules::Reason::EmergencyExemption,
            waived: vec![claimgate_rules::Reason::PractitionerSuspended],
            refs: Default::default(),
        }
    }

    #[test]
    fn the_reasons_a_filter_takes_are_every_reason_but_ok_by_its_wire_name() {
        let recorded: Vec<&str> = claimgate_rules::Reason::ALL
            .iter()
            .filter(|r| **r != claimgate_rules::Reason::Ok)
            .map(|r| r.as_str())
            .collect();
        assert_eq!(REASONS.to_vec(), recorded);
    }

    #[test]
    fn records_keep_their_reasons_and_verdict_by_wire_name_and_an_ok_record_is_refused() {
        let r = record(1, serde_json::json!("L1"));
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains(r#""verdict":"settle","reason":"emergency_exemption","waived":["practitioner_suspended"]"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<AuditRecord>(&text).unwrap(), r);
        let typo = text.replace("emergency_exemption", "emergency_exemptoin");
        assert!(serde_json::from_str::<AuditRecord>(&typo).is_err(), "an unknown reason is refused");
        let mut frame = Vec::new();
        let ok = AuditRecord { reason: claimgate_rules::Reason::Ok, ..r };
        super::super::segment::encode(&ok, &mut frame);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, &frame).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let refused = super::super::segment::read_at(&file, 0, 1).unwrap_err().to_string();
        assert!(refused.contains("`ok` line"), "{refused}");
    }

    #[test]
    fn a_claim_id_filter_matches_the_text_as_a_string_or_a_number() {
        let q = |c: &str| AuditQuery { claim_id: Some(c.into()), ..AuditQuery::all() };
        assert!(q("L1").matches(&record(1, serde_json::json!("L1"))));
        assert!(!q("L1").matches(&record(1, serde_json::json!("L2"))));
        assert!(q("42").matches(&record(1, serde_json::json!(42))));
        assert!(q("42").matches(&record(1, serde_json::json!("42"))));
        assert!(!q("42").matches(&record(1, serde_json::json!(43))));
    }

    #[test]
    fn service_dates_filter_from_inclusive_until_exclusive() {
        let r = record(1, serde_json::json!("L1"));
        let q = |from: Option<&str>, until: Option<&str>| AuditQuery {
            from: from.map(Into::into),
            until: until.map(Into::into),
            ..AuditQuery::all()
        };
        assert!(q(Some("2026-03-20"), Some("2026-03-21")).matches(&r));
        assert!(!q(Some("2026-03-21"), None).matches(&r));
        assert!(!q(None, Some("2026-03-20")).matches(&r));
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        for id in [1, 2, 255, u64::MAX] {
            assert_eq!(parse_cursor(&cursor(id)), Some(id));
        }
        for bad in ["", "r", "rG", "12", "r0", "rFF", "r12345678901234567", "x1"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
