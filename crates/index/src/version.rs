//! One immutable index version: a base plus an overlay of entities changed
//! since the base, at one ledger `seq`. Checks read the overlay first (it is
//! usually empty or small and cache-hot), then the base.

use super::base::{Base, BaseBuilder, BaseInstitution, BasePractitioner};
use super::compact::{CompactInstitution, CompactPractitioner};
use claimgate_rules::domain::{CivilDate, Grade, InstitutionCode, PractitionerCode, Seq};
use claimgate_rules::{decide, Claim, Decision, InstitutionOnDate, PractitionerOnDate};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Most claim lines judged against one version in one call (a bill).
pub const MAX_CHECK_BATCH: usize = 10_000;
/// How many lines ahead a batch prefetches the base's slots.
const PREFETCH_DISTANCE: usize = 8;

/// A fast hasher for packed codes (already well-distributed integers).
#[derive(Default)]
pub struct CodeHasher(u64);

impl Hasher for CodeHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        z ^ (z >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(29) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

type Overlay<K, V> =
    imbl::GenericHashMap<K, Arc<V>, BuildHasherDefault<CodeHasher>, imbl::shared_ptr::DefaultSharedPtr>;

/// An immutable view of the eligibility state at one ledger `seq`.
#[derive(Clone)]
pub struct IndexVersion {
    seq: Seq,
    base: Arc<Base>,
    practitioners: Overlay<PractitionerCode, CompactPractitioner>,
    institutions: Overlay<InstitutionCode, CompactInstitution>,
}

impl std::fmt::Debug for IndexVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexVersion")
            .field("seq", &self.seq)
            .field("base", &self.base)
            .field("overlay", &self.overlay_len())
            .finish()
    }
}

/// A practitioner as the check sees it, from either layer.
enum PractitionerRef<'a> {
    Base(BasePractitioner<'a>),
    Overlay(&'a CompactPractitioner),
}

impl PractitionerOnDate for PractitionerRef<'_> {
    #[inline]
    fn registered_at(&self, institution: InstitutionCode, day: CivilDate) -> bool {
        match self {
            PractitionerRef::Base(p) => p.registered_at(institution, day),
            PractitionerRef::Overlay(p) => p.registered_at(institution, day),
        }
    }
    #[inline]
    fn terminated_on(&self, day: CivilDate) -> bool {
        match self {
            PractitionerRef::Base(p) => p.terminated_on(day),
            PractitionerRef::Overlay(p) => p.terminated_on(day),
        }
    }
    #[inline]
    fn suspended_on(&self, day: CivilDate) -> bool {
        match self {
            PractitionerRef::Base(p) => p.suspended_on(day),
            PractitionerRef::Overlay(p) => p.suspended_on(day),
        }
    }
}

/// An institution as the check sees it, from either layer.
enum InstitutionRef<'a> {
    Base(BaseInstitution<'a>),
    Overlay(&'a CompactInstitution),
}

impl InstitutionOnDate for InstitutionRef<'_> {
    #[inline]
    fn designated_on(&self, day: CivilDate) -> bool {
        match self {
            InstitutionRef::Base(i) => i.designated_on(day),
            InstitutionRef::Overlay(i) => i.designated_on(day),
        }
    }
    #[inline]
    fn suspended_on(&self, day: CivilDate) -> bool {
        match self {
            InstitutionRef::Base(i) => i.suspended_on(day),
            InstitutionRef::Overlay(i) => i.suspended_on(day),
        }
    }
    #[inline]
    fn latest_grade(&self) -> Option<Grade> {
        match self {
            InstitutionRef::Base(i) => i.latest_grade(),
            InstitutionRef::Overlay(i) => i.latest_grade(),
        }
    }
}

impl IndexVersion {
    /// A version that is exactly `base`.
    pub fn new(base: Arc<Base>) -> IndexVersion {
        IndexVersion { seq: base.seq(), base, practitioners: Overlay::default(), institutions: Overlay::default() }
    }

    /// The ledger `seq` this version reflects: every event with a `seq` at or
    /// below it, and none above.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The base under the overlay.
    pub fn base(&self) -> &Arc<Base> {
        &self.base
    }

    /// Entities in the overlay.
    pub fn overlay_len(&self) -> usize {
        self.practitioners.len() + self.institutions.len()
    }

    #[inline]
    fn practitioner(&self, code: PractitionerCode) -> Option<PractitionerRef<'_>> {
        if !self.practitioners.is_empty() {
            if let Some(p) = self.practitioners.get(&code) {
                return Some(PractitionerRef::Overlay(p));
            }
        }
        self.base.practitioner(code).map(PractitionerRef::Base)
    }

    #[inline]
    fn institution(&self, code: InstitutionCode) -> Option<InstitutionRef<'_>> {
        if !self.institutions.is_empty() {
            if let Some(i) = self.institutions.get(&code) {
                return Some(InstitutionRef::Overlay(i));
            }
        }
        self.base.institution(code).map(InstitutionRef::Base)
    }

    /// Judges one claim line (R17–R19), exactly as the rules engine would on
    /// the ledger at [`IndexVersion::seq`].
    #[inline]
    pub fn check(&self, claim: &Claim) -> Decision {
        decide(self.institution(claim.institution), self.practitioner(claim.practitioner), claim)
    }

    /// Judges a bill's lines against this one version as a software pipeline:
    /// the slots of line `i + 2W` are prefetched, line `i + W` is looked up
    /// (its slots now cached) and its span array prefetched, and line `i` is
    /// decided from the references resolved `W` lines earlier. Memory loads of
    /// many lines overlap instead of being paid one after another.
    pub fn check_batch(&self, claims: &[Claim], out: &mut Vec<Decision>) {
        assert!(claims.len() <= MAX_CHECK_BATCH, "a batch holds at most {MAX_CHECK_BATCH} lines");
        out.reserve(claims.len());
        const W: usize = PREFETCH_DISTANCE;
        type Resolved<'a> = (Option<InstitutionRef<'a>>, Option<PractitionerRef<'a>>);
        let resolve = |c: &Claim| -> Resolved<'_> {
            let practitioner = self.practitioner(c.practitioner);
            if let Some(PractitionerRef::Base(p)) = &practitioner {
                p.prefetch_spans();
            }
            (self.institution(c.institution), practitioner)
        };
        for c in claims.iter().take(2 * W) {
            self.base.prefetch(c.practitioner, c.institution);
        }
        let mut ring: [Option<Resolved<'_>>; W] = std::array::from_fn(|_| None);
        for (i, c) in claims.iter().enumerate().take(W) {
            ring[i] = Some(resolve(c));
        }
        for (i, claim) in claims.iter().enumerate() {
            if let Some(far) = claims.get(i + 2 * W) {
                self.base.prefetch(far.practitioner, far.institution);
            }
            let (institution, practitioner) = ring[i % W].take().expect("resolved W lines ahead");
            if let Some(near) = claims.get(i + W) {
                ring[i % W] = Some(resolve(near));
            }
            out.push(decide(institution, practitioner, claim));
        }
    }

    /// The next version: this one with the given entities replaced, at `seq`.
    pub fn apply(
        &self,
        seq: Seq,
        practitioners: impl IntoIterator<Item = (PractitionerCode, CompactPractitioner)>,
        institutions: impl IntoIterator<Item = (InstitutionCode, CompactInstitution)>,
    ) -> IndexVersion {
        assert!(seq >= self.seq, "an index version never goes back ({} -> {seq})", self.seq);
        let mut next = self.clone();
        next.seq = seq;
        for (code, p) in practitioners {
            next.practitioners.insert(code, Arc::new(p));
        }
        for (code, i) in institutions {
            next.institutions.insert(code, Arc::new(i));
        }
        next
    }

    /// This version's state on `merged`'s base: `merged` must be `from.merged()`
    /// for an earlier version `from` of this one; entities this version changed
    /// after `from` are carried over as the new overlay. Same `seq` as `self`.
    pub fn rebased_onto(&self, merged: &IndexVersion, from: &IndexVersion) -> IndexVersion {
        assert!(merged.seq == from.seq && merged.overlay_len() == 0 && from.seq <= self.seq);
        let mut next = merged.clone();
        next.seq = self.seq;
        for (code, p) in &self.practitioners {
            if !from.practitioners.get(code).is_some_and(|old| Arc::ptr_eq(old, p)) {
                next.practitioners.insert(*code, p.clone());
            }
        }
        for (code, i) in &self.institutions {
            if !from.institutions.get(code).is_some_and(|old| Arc::ptr_eq(old, i)) {
                next.institutions.insert(*code, i.clone());
            }
        }
        next
    }

    /// A base holding this version's whole state (what a snapshot stores):
    /// its own when the overlay is empty, else a merged one (slow, as
    /// [`IndexVersion::merged`]).
    pub fn whole_base(&self) -> Arc<Base> {
        if self.overlay_len() == 0 {
            self.base.clone()
        } else {
            self.merged().base.clone()
        }
    }

    /// The same state with the overlay folded into a new base (slow: the
    /// whole base is rebuilt; run it off the check path).
    pub fn merged(&self) -> IndexVersion {
        let base = &self.base;
        let mut b = BaseBuilder::with_capacity(
            base.practitioner_count() as usize + self.practitioners.len(),
            base.institution_count() as usize + self.institutions.len(),
        );
        for (code, p) in base.practitioners().filter(|(c, _)| !self.practitioners.contains_key(c)) {
            b.add_practitioner(code, &p);
        }
        for (code, p) in &self.practitioners {
            b.add_practitioner(*code, p);
        }
        for (code, i) in base.institutions().filter(|(c, _)| !self.institutions.contains_key(c)) {
            b.add_institution(code, &i);
        }
        for (code, i) in &self.institutions {
            b.add_institution(*code, i);
        }
        IndexVersion::new(Arc::new(b.finish(self.seq)))
    }
}
