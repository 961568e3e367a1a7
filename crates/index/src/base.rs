//! The large, immutable part of an index version: two open-addressing hash
//! tables (practitioners, institutions) laid out as flat arrays of 32-byte
//! slots inside one rkyv archive, so the same bytes serve from memory or from
//! a memory-mapped snapshot file without a copy.
//!
//! Keys are the full packed codes (lossless): a probe compares the whole code,
//! never a hash alone. A practitioner with one registration and no sanction
//! (most of them) lives entirely in its slot; others point into a span array.

use super::compact::{day, grade_code, grade_of};
use super::compact::{span_contains, CompactInstitution, CompactPractitioner, CompactRegistration, Day};
use claimgate_rules::domain::{CivilDate, Grade, InstitutionCode, PractitionerCode, Seq};
use claimgate_rules::{InstitutionOnDate, PractitionerOnDate};
use rkyv::rancor;
use rkyv::util::AlignedVec;

/// Slots per entry is at least `1 / MAX_LOAD` (load factor ≤ 0.75).
const MAX_LOAD_NUMERATOR: usize = 3;
const MAX_LOAD_DENOMINATOR: usize = 4;
/// Smallest table, so that an empty index still probes a real slot.
const MIN_SLOTS: usize = 8;

/// Practitioner slot, `k1` bit 16: the entry's data is in the span array.
const MODE_SPANS: u64 = 1 << 16;
const CODE_HIGH_MASK: u64 = 0xFFFF;
/// Span counts in `b` of a spans-mode slot: 21 bits each.
const COUNT_BITS: u32 = 21;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Institution slot `k1`: grade in bits 0-7, agreements 8-31, suspensions 32-55.
const I_AGREEMENTS_SHIFT: u32 = 8;
const I_SUSPENSIONS_SHIFT: u32 = 32;
const I_COUNT_MASK: u64 = 0xFF_FFFF;

/// One 32-byte table slot. Practitioners: `k0`,`k1` = code (low 64 bits, high
/// bits + mode); inline `a` = institution, `b` = span; spans mode `a` = offset,
/// `b` = counts. Institutions: `k0` = code, `k1` = grade and counts, `a` =
/// first agreement span, `b` = offset of the rest. An all-zero slot is empty.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Slot {
    pub k0: u64,
    pub k1: u64,
    pub a: u64,
    pub b: u64,
}

/// A registration (`a` = institution, `b` = span) or a sanction (`b` = span).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Pair {
    pub a: u64,
    pub b: u64,
}

/// The archived content of a base.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Default)]
pub struct Tables {
    /// The ledger `seq` these tables reflect.
    pub seq: u64,
    pub practitioner_count: u64,
    pub practitioner_slots: Vec<Slot>,
    pub practitioner_spans: Vec<Pair>,
    pub institution_count: u64,
    pub institution_slots: Vec<Slot>,
    pub institution_spans: Vec<u64>,
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn practitioner_key(code: PractitionerCode) -> (u64, u64) {
    let p = code.packed();
    (p as u64, (p >> 64) as u64)
}

#[inline]
fn practitioner_hash(k0: u64, k1: u64) -> u64 {
    mix(k0 ^ k1.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Maps a hash onto `0..slots` without a modulo (Lemire's reduction).
#[inline]
fn bucket(hash: u64, slots: usize) -> usize {
    ((u128::from(hash) * slots as u128) >> 64) as usize
}

fn slots_for(entries: usize) -> usize {
    (entries * MAX_LOAD_DENOMINATOR / MAX_LOAD_NUMERATOR + 1).max(MIN_SLOTS)
}

/// Where an immutable base's bytes live.
enum Storage {
    Owned(AlignedVec),
    Mapped { map: memmap2::Mmap, offset: usize, len: usize },
}

/// An immutable base: archived tables, in memory or mapped from a snapshot.
/// The map, if any, lives as long as the base, and readers hold the base
/// through an `Arc`, so a mapped file is never unmapped under a reader.
pub struct Base {
    storage: Storage,
}

impl std::fmt::Debug for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.tables();
        f.debug_struct("Base")
            .field("seq", &t.seq.to_native())
            .field("practitioners", &t.practitioner_count.to_native())
            .field("institutions", &t.institution_count.to_native())
            .field("bytes", &self.bytes().len())
            .finish()
    }
}

impl Base {
    /// An empty base at `seq` 0.
    pub fn empty() -> Base {
        BaseBuilder::default().finish(0)
    }

    /// A base over bytes already validated as `ArchivedTables` (see the
    /// snapshot loader). `offset..offset+len` of `map` is the archive.
    ///
    /// # Safety
    /// `map[offset..offset + len]` must have passed
    /// `rkyv::access::<ArchivedTables>` and [`check_tables`]: every lookup
    /// reads it without checking again.
    pub(crate) unsafe fn from_validated_map(map: memmap2::Mmap, offset: usize, len: usize) -> Base {
        // SAFETY: the caller vouches for the bytes, as `over` requires.
        unsafe { Base::over(Storage::Mapped { map, offset, len }) }
    }

    /// # Safety
    /// `storage`'s bytes must be a valid `ArchivedTables`: serialized by
    /// [`BaseBuilder::finish`], or validated as in [`Base::from_validated_map`].
    unsafe fn over(storage: Storage) -> Base {
        let base = Base { storage };
        let t = base.tables();
        assert!(!t.practitioner_slots.is_empty() && !t.institution_slots.is_empty(), "tables always have slots");
        base
    }

    #[inline(always)]
    fn p_slots(&self) -> &[ArchivedSlot] {
        self.tables().practitioner_slots.as_slice()
    }

    #[inline(always)]
    fn p_spans(&self) -> &[ArchivedPair] {
        self.tables().practitioner_spans.as_slice()
    }

    #[inline(always)]
    fn i_slots(&self) -> &[ArchivedSlot] {
        self.tables().institution_slots.as_slice()
    }

    #[inline(always)]
    fn i_spans(&self) -> &[rkyv::Archived<u64>] {
        self.tables().institution_spans.as_slice()
    }

    /// A copy of `archive` in anonymous memory advised for transparent huge
    /// pages: random probes over a large table then miss the TLB far less.
    /// `None` (keep the ordinary allocation) if the map cannot be made.
    ///
    /// # Safety
    /// `archive` must be a valid `ArchivedTables`, as for [`Base::over`].
    unsafe fn in_huge_pages(archive: &[u8]) -> Option<Base> {
        let mut map = memmap2::MmapMut::map_anon(archive.len().max(1)).ok()?;
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        map[..archive.len()].copy_from_slice(archive);
        let map = map.make_read_only().ok()?;
        // SAFETY: an exact copy of `archive`, which the caller vouches for.
        Some(unsafe { Base::over(Storage::Mapped { map, offset: 0, len: archive.len() }) })
    }

    /// The archive's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Owned(v) => v.as_slice(),
            Storage::Mapped { map, offset, len } => &map[*offset..*offset + *len],
        }
    }

    #[inline(always)]
    fn tables(&self) -> &ArchivedTables {
        // SAFETY: a Base is only made by `Base::over`, whose `unsafe`
        // contract (kept by `BaseBuilder::finish`, which serializes the bytes
        // itself, and by `snapshot::load`, which validates them) is that the
        // bytes are a valid archive; they are never mutated while the Base lives.
        unsafe { rkyv::access_unchecked::<ArchivedTables>(self.bytes()) }
    }

    /// The ledger `seq` the base reflects.
    pub fn seq(&self) -> Seq {
        self.tables().seq.to_native()
    }

    /// Practitioners in the base.
    pub fn practitioner_count(&self) -> u64 {
        self.tables().practitioner_count.to_native()
    }

    /// Institutions in the base.
    pub fn institution_count(&self) -> u64 {
        self.tables().institution_count.to_native()
    }

    /// Looks up a practitioner: one hash, a short linear probe.
    #[inline]
    pub fn practitioner(&self, code: PractitionerCode) -> Option<BasePractitioner<'_>> {
        let slots = self.p_slots();
        let (k0, k1) = practitioner_key(code);
        find_practitioner(slots, k0, k1).map(|i| BasePractitioner { slot: &slots[i], spans: self.p_spans() })
    }

    /// Looks up an institution.
    #[inline]
    pub fn institution(&self, code: InstitutionCode) -> Option<BaseInstitution<'_>> {
        let slots = self.i_slots();
        find_institution(slots, code.packed()).map(|i| BaseInstitution { slot: &slots[i], spans: self.i_spans() })
    }

    /// Asks the CPU to start loading the slots a claim will probe.
    #[inline]
    pub fn prefetch(&self, practitioner: PractitionerCode, institution: InstitutionCode) {
        let (k0, k1) = practitioner_key(practitioner);
        let p = self.p_slots();
        prefetch_read(&p[bucket(practitioner_hash(k0, k1), p.len())]);
        let i = self.i_slots();
        prefetch_read(&i[bucket(mix(institution.packed()), i.len())]);
    }

    /// Every practitioner in the base, decoded (for merging an overlay in).
    pub fn practitioners(&self) -> impl Iterator<Item = (PractitionerCode, CompactPractitioner)> + '_ {
        let t = self.tables();
        t.practitioner_slots.as_slice().iter().filter(|s| s.k1.to_native() != 0).map(move |s| {
            let packed = u128::from(s.k0.to_native()) | (u128::from(s.k1.to_native() & CODE_HIGH_MASK) << 64);
            let code = PractitionerCode::from_packed(packed).expect("base holds valid codes");
            (code, BasePractitioner { slot: s, spans: t.practitioner_spans.as_slice() }.decode())
        })
    }

    /// Every institution in the base, decoded.
    pub fn institutions(&self) -> impl Iterator<Item = (InstitutionCode, CompactInstitution)> + '_ {
        let t = self.tables();
        t.institution_slots.as_slice().iter().filter(|s| s.k0.to_native() != 0).map(move |s| {
            let code = InstitutionCode::from_packed(s.k0.to_native()).expect("base holds valid codes");
            (code, BaseInstitution { slot: s, spans: t.institution_spans.as_slice() }.decode())
        })
    }
}

/// The slot of a practitioner's packed code: one hash, a short linear probe
/// to the code or the first empty slot.
#[inline(always)]
fn find_practitioner(slots: &[ArchivedSlot], k0: u64, k1: u64) -> Option<usize> {
    let mut i = bucket(practitioner_hash(k0, k1), slots.len());
    loop {
        let s = &slots[i];
        let s1 = s.k1.to_native();
        if s.k0.to_native() == k0 && s1 & CODE_HIGH_MASK == k1 {
            return Some(i);
        }
        if s1 == 0 {
            return None;
        }
        i += 1;
        if i == slots.len() {
            i = 0;
        }
    }
}

/// The slot of an institution's packed code.
#[inline(always)]
fn find_institution(slots: &[ArchivedSlot], key: u64) -> Option<usize> {
    let mut i = bucket(mix(key), slots.len());
    loop {
        let k = slots[i].k0.to_native();
        if k == key {
            return Some(i);
        }
        if k == 0 {
            return None;
        }
        i += 1;
        if i == slots.len() {
            i = 0;
        }
    }
}

/// Checks what rkyv's validation cannot know: every span reference lies
/// inside its span array, the counts agree, each table has an empty slot
/// (so a probe for a missing code terminates), and every entry holds a valid
/// code in the very slot a lookup of that code reaches (no duplicate, none
/// unreachable), so decoding and merging a loaded base cannot fail. Run once
/// when a snapshot loads; the probes walk the tables almost in order.
pub fn check_tables(t: &ArchivedTables) -> Result<(), String> {
    let p_slots = t.practitioner_slots.as_slice();
    let i_slots = t.institution_slots.as_slice();
    let p_used = p_slots.iter().filter(|s| s.k1.to_native() != 0).count();
    let i_used = i_slots.iter().filter(|s| s.k0.to_native() != 0).count();
    if p_used >= p_slots.len() || i_used >= i_slots.len() {
        return Err("a hash table has no empty slot".into());
    }
    if p_used as u64 != t.practitioner_count.to_native() || i_used as u64 != t.institution_count.to_native() {
        return Err("entry counts disagree with the tables".into());
    }
    for (i, s) in p_slots.iter().enumerate().filter(|(_, s)| s.k1.to_native() != 0) {
        let (k0, k1) = (s.k0.to_native(), s.k1.to_native() & CODE_HIGH_MASK);
        if PractitionerCode::from_packed(u128::from(k0) | u128::from(k1) << 64).is_none() {
            return Err(format!("practitioner slot {i} holds no valid code"));
        }
        if find_practitioner(p_slots, k0, k1) != Some(i) {
            return Err(format!("practitioner slot {i} is a duplicate or out of its probe sequence"));
        }
    }
    for (i, s) in i_slots.iter().enumerate().filter(|(_, s)| s.k0.to_native() != 0) {
        let key = s.k0.to_native();
        if InstitutionCode::from_packed(key).is_none() {
            return Err(format!("institution slot {i} holds no valid code"));
        }
        if find_institution(i_slots, key) != Some(i) {
            return Err(format!("institution slot {i} is a duplicate or out of its probe sequence"));
        }
    }
    let p_spans = t.practitioner_spans.len();
    for s in p_slots.iter().filter(|s| s.k1.to_native() & MODE_SPANS != 0) {
        let (regs, terms, susps, off) = BasePractitioner { slot: s, spans: &[] }.counts();
        if off.checked_add(regs + terms + susps).is_none_or(|end| end > p_spans) {
            return Err("a practitioner points past the span array".into());
        }
    }
    let i_spans = t.institution_spans.len();
    for s in i_slots.iter().filter(|s| s.k0.to_native() != 0) {
        let (agreements, suspensions, off) = BaseInstitution { slot: s, spans: &[] }.counts();
        if off.checked_add(agreements.saturating_sub(1) + suspensions).is_none_or(|end| end > i_spans) {
            return Err("an institution points past the span array".into());
        }
    }
    Ok(())
}

#[inline(always)]
fn prefetch_read<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const T as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A practitioner found in the base.
#[derive(Clone, Copy)]
pub struct BasePractitioner<'a> {
    slot: &'a ArchivedSlot,
    spans: &'a [ArchivedPair],
}

impl<'a> BasePractitioner<'a> {
    /// Asks the CPU to start loading this practitioner's spans, if any.
    #[inline]
    pub fn prefetch_spans(&self) {
        if !self.is_inline() {
            if let Some(first) = self.spans.get(self.slot.a.to_native() as usize) {
                prefetch_read(first);
            }
        }
    }

    fn counts(&self) -> (usize, usize, usize, usize) {
        let b = self.slot.b.to_native();
        let off = self.slot.a.to_native() as usize;
        (
            (b & COUNT_MASK) as usize,
            ((b >> COUNT_BITS) & COUNT_MASK) as usize,
            ((b >> (2 * COUNT_BITS)) & COUNT_MASK) as usize,
            off,
        )
    }

    fn is_inline(&self) -> bool {
        self.slot.k1.to_native() & MODE_SPANS == 0
    }

    fn sanction_spans(&self, which: usize) -> &'a [ArchivedPair] {
        if self.is_inline() {
            return &[];
        }
        let (regs, terms, susps, off) = self.counts();
        match which {
            0 => &self.spans[off + regs..off + regs + terms],
            _ => &self.spans[off + regs + terms..off + regs + terms + susps],
        }
    }

    fn decode(&self) -> CompactPractitioner {
        if self.is_inline() {
            return CompactPractitioner {
                registrations: vec![CompactRegistration {
                    institution: self.slot.a.to_native(),
                    span: self.slot.b.to_native(),
                }],
                ..CompactPractitioner::default()
            };
        }
        let (regs, _, _, off) = self.counts();
        CompactPractitioner {
            registrations: self.spans[off..off + regs]
                .iter()
                .map(|p| CompactRegistration { institution: p.a.to_native(), span: p.b.to_native() })
                .collect(),
            terminations: self.sanction_spans(0).iter().map(|p| p.b.to_native()).collect(),
            suspensions: self.sanction_spans(1).iter().map(|p| p.b.to_native()).collect(),
        }
    }
}

fn any_contains(spans: &[ArchivedPair], d: Day) -> bool {
    spans.iter().any(|p| span_contains(p.b.to_native(), d))
}

impl PractitionerOnDate for BasePractitioner<'_> {
    #[inline]
    fn registered_at(&self, institution: InstitutionCode, date: CivilDate) -> bool {
        let (code, d) = (institution.packed(), day(date));
        if self.is_inline() {
            return self.slot.a.to_native() == code && span_contains(self.slot.b.to_native(), d);
        }
        let (regs, _, _, off) = self.counts();
        self.spans[off..off + regs].iter().any(|p| p.a.to_native() == code && span_contains(p.b.to_native(), d))
    }
    #[inline]
    fn terminated_on(&self, date: CivilDate) -> bool {
        any_contains(self.sanction_spans(0), day(date))
    }
    #[inline]
    fn suspended_on(&self, date: CivilDate) -> bool {
        any_contains(self.sanction_spans(1), day(date))
    }
}

/// An institution found in the base.
#[derive(Clone, Copy)]
pub struct BaseInstitution<'a> {
    slot: &'a ArchivedSlot,
    spans: &'a [rkyv::Archived<u64>],
}

impl<'a> BaseInstitution<'a> {
    fn counts(&self) -> (usize, usize, usize) {
        let k1 = self.slot.k1.to_native();
        (
            ((k1 >> I_AGREEMENTS_SHIFT) & I_COUNT_MASK) as usize,
            ((k1 >> I_SUSPENSIONS_SHIFT) & I_COUNT_MASK) as usize,
            self.slot.b.to_native() as usize,
        )
    }

    /// Agreements after the first, then suspensions.
    fn rest(&self) -> (&'a [rkyv::Archived<u64>], &'a [rkyv::Archived<u64>]) {
        let (agreements, suspensions, off) = self.counts();
        let extra = agreements.saturating_sub(1);
        (&self.spans[off..off + extra], &self.spans[off + extra..off + extra + suspensions])
    }

    fn decode(&self) -> CompactInstitution {
        let (agreements, _, _) = self.counts();
        let (more, suspensions) = self.rest();
        let first = (agreements > 0).then(|| self.slot.a.to_native());
        CompactInstitution {
            agreements: first.into_iter().chain(more.iter().map(|s| s.to_native())).collect(),
            suspensions: suspensions.iter().map(|s| s.to_native()).collect(),
            grade: self.latest_grade(),
        }
    }
}

impl InstitutionOnDate for BaseInstitution<'_> {
    #[inline]
    fn designated_on(&self, date: CivilDate) -> bool {
        let d = day(date);
        let (agreements, _, _) = self.counts();
        if agreements == 0 {
            return false;
        }
        span_contains(self.slot.a.to_native(), d) || self.rest().0.iter().any(|s| span_contains(s.to_native(), d))
    }
    #[inline]
    fn suspended_on(&self, date: CivilDate) -> bool {
        let d = day(date);
        self.rest().1.iter().any(|s| span_contains(s.to_native(), d))
    }
    #[inline]
    fn latest_grade(&self) -> Option<Grade> {
        grade_of(self.slot.k1.to_native() & 0xFF)
    }
}

/// Collects entries, then lays out the tables and archives them.
#[derive(Default)]
pub struct BaseBuilder {
    practitioners: Vec<Slot>,
    practitioner_spans: Vec<Pair>,
    institutions: Vec<Slot>,
    institution_spans: Vec<u64>,
}

impl BaseBuilder {
    /// A builder sized for the expected counts.
    pub fn with_capacity(practitioners: usize, institutions: usize) -> BaseBuilder {
        BaseBuilder {
            practitioners: Vec::with_capacity(practitioners),
            practitioner_spans: Vec::with_capacity(practitioners / 2),
            institutions: Vec::with_capacity(institutions),
            institution_spans: Vec::new(),
        }
    }

    /// Adds a practitioner (each code at most once).
    pub fn add_practitioner(&mut self, code: PractitionerCode, p: &CompactPractitioner) {
        let (k0, k1) = practitioner_key(code);
        assert!(k1 != 0 && k1 <= CODE_HIGH_MASK, "packed practitioner codes use 75 bits");
        let slot = if p.registrations.len() == 1 && p.terminations.is_empty() && p.suspensions.is_empty() {
            Slot { k0, k1, a: p.registrations[0].institution, b: p.registrations[0].span }
        } else {
            let counts = [p.registrations.len(), p.terminations.len(), p.suspensions.len()];
            assert!(counts.iter().all(|&c| (c as u64) <= COUNT_MASK), "too many intervals for one practitioner");
            let offset = self.practitioner_spans.len() as u64;
            self.practitioner_spans.extend(p.registrations.iter().map(|r| Pair { a: r.institution, b: r.span }));
            self.practitioner_spans.extend(p.terminations.iter().chain(&p.suspensions).map(|&s| Pair { a: 0, b: s }));
            let b = counts[0] as u64 | (counts[1] as u64) << COUNT_BITS | (counts[2] as u64) << (2 * COUNT_BITS);
            Slot { k0, k1: k1 | MODE_SPANS, a: offset, b }
        };
        self.practitioners.push(slot);
    }

    /// Adds an institution (each code at most once).
    pub fn add_institution(&mut self, code: InstitutionCode, i: &CompactInstitution) {
        let (agreements, suspensions) = (i.agreements.len() as u64, i.suspensions.len() as u64);
        assert!(agreements <= I_COUNT_MASK && suspensions <= I_COUNT_MASK, "too many intervals for one institution");
        let offset = self.institution_spans.len() as u64;
        self.institution_spans.extend(i.agreements.iter().skip(1).chain(&i.suspensions));
        self.institutions.push(Slot {
            k0: code.packed(),
            k1: grade_code(i.grade) | agreements << I_AGREEMENTS_SHIFT | suspensions << I_SUSPENSIONS_SHIFT,
            a: i.agreements.first().copied().unwrap_or(0),
            b: offset,
        });
    }

    /// Places the entries into hash tables and archives them at `seq`.
    pub fn finish(self, seq: Seq) -> Base {
        let place = |entries: Vec<Slot>, hash: &dyn Fn(&Slot) -> u64, same: &dyn Fn(&Slot, &Slot) -> bool| {
            let mut slots = vec![Slot::default(); slots_for(entries.len())];
            let n = slots.len();
            for e in entries {
                let mut i = bucket(hash(&e), n);
                while slots[i] != Slot::default() {
                    assert!(!same(&slots[i], &e), "a code was added to the index twice");
                    i = if i + 1 == n { 0 } else { i + 1 };
                }
                slots[i] = e;
            }
            slots
        };
        let practitioner_count = self.practitioners.len() as u64;
        let institution_count = self.institutions.len() as u64;
        let tables = Tables {
            seq,
            practitioner_count,
            practitioner_slots: place(
                self.practitioners,
                &|s| practitioner_hash(s.k0, s.k1 & CODE_HIGH_MASK),
                &|x, y| x.k0 == y.k0 && (x.k1 & CODE_HIGH_MASK) == (y.k1 & CODE_HIGH_MASK),
            ),
            practitioner_spans: self.practitioner_spans,
            institution_count,
            institution_slots: place(self.institutions, &|s| mix(s.k0), &|x, y| x.k0 == y.k0),
            institution_spans: self.institution_spans,
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&tables).expect("archiving plain tables cannot fail");
        // SAFETY: `bytes` is what rkyv just serialized from `tables`.
        unsafe { Base::in_huge_pages(&bytes).unwrap_or_else(|| Base::over(Storage::Owned(bytes))) }
    }
}
