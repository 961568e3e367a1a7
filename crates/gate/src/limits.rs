//! Two bounds on what unauthenticated clients can hold: connections per
//! client address ([`ClientSlots`]) and request-body bytes in flight across
//! all requests ([`BodyBudget`]). Both refuse at once rather than wait, so
//! neither can stall a worker. (Ledger reads for clients are bounded in
//! `queries.rs`.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Default for `--max-connections-per-client`: most open connections one
/// client address may hold on the check listener (a billing system with a
/// connection pool needs tens; one client must not take the listener's cap).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;
/// Most open connections one client address may hold on the admin listener.
pub const ADMIN_MAX_CONNECTIONS_PER_CLIENT: usize = 16;
/// Default for `--max-inflight-body-bytes`: request-body bytes all requests
/// together may hold while they are read and parsed, past each body's first
/// [`BODY_FREE_BYTES`].
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: usize = 256 * 1024 * 1024;
/// The part of every body that takes nothing from the budget: a claim line or
/// an event is a few hundred bytes, so a well-behaved check is never refused
/// by bodies others leave stalled. What these parts can hold together is
/// bounded by the connection caps (4,096 × 64 KiB = 256 MiB at the defaults).
pub const BODY_FREE_BYTES: usize = 64 * 1024;
/// The budget's unit (a semaphore permit), in bytes.
const BUDGET_UNIT: usize = 1024;

/// Open connections per client address, for one listener.
pub struct ClientSlots {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in [`ClientSlots`], given back on drop.
pub struct ClientSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ClientSlots {
    pub fn new(cap: usize) -> ClientSlots {
        ClientSlots { cap, open: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// A slot for one more connection from `ip`, if it holds fewer than the cap.
    /// The map holds only addresses with open connections, so it is bounded
    /// by the listener's connection cap.
    pub fn take(&self, ip: IpAddr) -> Option<ClientSlot> {
        let mut open = self.open.lock().expect("not poisoned");
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            if *n == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(ClientSlot { ip, open: self.open.clone() })
    }

    /// Client addresses with open connections.
    pub fn clients(&self) -> usize {
        self.open.lock().expect("not poisoned").len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("not poisoned");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Request-body bytes in flight, past each body's free part.
pub struct BodyBudget {
    units: Arc<tokio::sync::Semaphore>,
}

/// What one body holds of the budget, given back on drop.
#[derive(Default)]
pub struct BodyHold {
    units: u32,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget { units: Arc::new(tokio::sync::Semaphore::new(bytes.div_ceil(BUDGET_UNIT))) }
    }

    /// Grows `hold` to cover a body of `len` bytes so far; `false` (nothing
    /// taken) when the budget cannot cover it now.
    pub fn cover(&self, hold: &mut BodyHold, len: usize) -> bool {
        let needed = len.saturating_sub(BODY_FREE_BYTES).div_ceil(BUDGET_UNIT) as u32;
        if needed <= hold.units {
            return true;
        }
        match self.units.clone().try_acquire_many_owned(needed - hold.units) {
            Ok(more) => {
                match hold.permit.as_mut() {
                    Some(p) => p.merge(more),
                    None => hold.permit = Some(more),
                }
                hold.units = needed;
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes of the budget free now.
    pub fn available(&self) -> usize {
        self.units.available_permits() * BUDGET_UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_cap_and_slots_come_back_on_drop() {
        let slots = ClientSlots::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let (s1, s2) = (slots.take(a).unwrap(), slots.take(a).unwrap());
        assert!(slots.take(a).is_none(), "the third from one address is refused");
        let _other = slots.take(b).expect("another address has its own slots");
        drop(s1);
        let _again = slots.take(a).expect("a slot given back is taken again");
        drop(s2);
        assert_eq!(slots.clients(), 2);
    }

    #[test]
    fn bodies_take_from_the_budget_past_their_free_part_and_give_it_back() {
        let budget = BodyBudget::new(1024 * 1024);
        let mut small = BodyHold::default();
        assert!(budget.cover(&mut small, BODY_FREE_BYTES), "the free part takes nothing");
        assert_eq!(budget.available(), 1024 * 1024);
        let mut big = BodyHold::default();
        assert!(budget.cover(&mut big, BODY_FREE_BYTES + 512 * 1024));
        assert!(budget.cover(&mut big, BODY_FREE_BYTES + 1024 * 1024), "grown to the whole budget");
        let mut more = BodyHold::default();
        assert!(!budget.cover(&mut more, BODY_FREE_BYTES + 1), "past the budget: refused");
        assert!(budget.cover(&mut more, BODY_FREE_BYTES), "a small body still goes");
        drop(big);
        assert!(budget.cover(&mut more, BODY_FREE_BYTES + 1024 * 1024), "given back on drop");
    }
}
