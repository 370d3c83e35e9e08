//! Fault injection for tests: make the next IO at a named point fail.
//!
//! The injector is compiled only for tests or with the `fault-injection`
//! feature; without it the check points compile to nothing. An injected
//! error fails *before* the engine is called, so it exercises exactly the error
//! mapping and recovery paths a real `ENOSPC` or `EACCES` from sled takes.

#[cfg(any(test, feature = "fault-injection"))]
use std::collections::HashMap;
#[cfg(any(test, feature = "fault-injection"))]
use std::io;
#[cfg(any(test, feature = "fault-injection"))]
use std::sync::{Mutex, PoisonError};

/// Where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultPoint {
    /// Before the write of a `put` (insert, move or eviction).
    Write,
    /// Before the engine's flush/fsync.
    Flush,
    /// Before the read of a `get` (its index lookup).
    Read,
    /// Before a block's bytes are written into the cell file.
    BlockWrite,
    /// Before the cell file is synced (in `flush`, before the index flush).
    BlockSync,
    /// Before a block's bytes are read from the cell file.
    BlockRead,
}

#[cfg(any(test, feature = "fault-injection"))]
/// Armed faults: each point fails with an OS error code a number of times.
#[derive(Debug, Default)]
#[cfg(any(test, feature = "fault-injection"))]
pub struct FaultInjector {
    armed: Mutex<HashMap<FaultPoint, (i32, u32)>>,
}

#[cfg(any(test, feature = "fault-injection"))]
impl FaultInjector {
    /// Makes the next `times` operations at `point` fail with OS error `errno`.
    pub fn fail(&self, point: FaultPoint, errno: i32, times: u32) {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        armed.insert(point, (errno, times));
    }

    /// Disarms every point.
    pub fn clear(&self) {
        self.armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Called at `point`: the injected error if one is armed.
    pub(crate) fn check(&self, point: FaultPoint) -> io::Result<()> {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        match armed.get_mut(&point) {
            Some((errno, times)) if *times > 0 => {
                *times -= 1;
                Err(io::Error::from_raw_os_error(*errno))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_the_armed_number_of_times() {
        let faults = FaultInjector::default();
        faults.fail(FaultPoint::Flush, libc::ENOSPC, 2);
        assert!(faults.check(FaultPoint::Write).is_ok());
        assert_eq!(
            faults.check(FaultPoint::Flush).unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        assert!(faults.check(FaultPoint::Flush).is_err());
        assert!(faults.check(FaultPoint::Flush).is_ok());
    }
}
