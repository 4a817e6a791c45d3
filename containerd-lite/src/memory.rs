//! Gives berthd's freed heap back to the kernel. glibc keeps the freed chunks of its arenas
//! resident, so after a burst of container starts, removals or a pull most of berthd's RSS was
//! memory it no longer used (half of it with 20 containers started). Work that allocates a lot
//! calls [`note_activity`]; a trimmer runs `malloc_trim(0)` at most once per period after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// How often the trimmer looks for activity.
const PERIOD: Duration = Duration::from_secs(2);

/// Something allocated and freed a lot (a task started or ended, a container or image went).
pub fn note_activity() {
    ACTIVE.store(true, Ordering::Relaxed);
}

/// Notes activity now and again when dropped: held across a long operation (a pull, an
/// import) so its garbage is trimmed after it ends.
#[must_use = "activity is noted again when the guard drops"]
pub struct Activity(());

/// See [`Activity`].
pub fn activity() -> Activity {
    note_activity();
    Activity(())
}

impl Drop for Activity {
    fn drop(&mut self) {
        note_activity();
    }
}

/// Starts the trimmer on the current tokio runtime.
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if ACTIVE.swap(false, Ordering::Relaxed) {
                // SAFETY: malloc_trim only returns free pages of glibc's arenas to the kernel; it
                // takes each arena's lock like any malloc call.
                unsafe { libc::malloc_trim(0) };
            }
        }
    });
}
