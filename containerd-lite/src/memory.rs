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

/// Starts the trimmer on the current tokio runtime. Each burst of activity is trimmed after it,
/// and once more `LATE` later: the blocking pool's threads exit after `BLOCKING_KEEP_ALIVE` idle
/// and hand what their caches held back to the arenas only then (after 100 concurrent starts
/// that second trim took berthd from 20 to 15 MB).
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut late: Option<tokio::time::Instant> = None;
        loop {
            let now = tick.tick().await;
            let active = ACTIVE.swap(false, Ordering::Relaxed);
            let late_due = late.is_some_and(|at| at <= now);
            if active {
                late = Some(now + LATE);
            } else if late_due {
                late = None;
            }
            if active || late_due {
                trim();
            }
        }
    });
}

/// How long after a burst the second trim comes.
const LATE: Duration = Duration::from_secs(BLOCKING_KEEP_ALIVE.as_secs() + 2);

/// How long an idle thread of the blocking pool lives (berthd's runtime is built with it).
pub const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(5);

fn trim() {
    // SAFETY: malloc_trim only returns free pages of glibc's arenas to the kernel; it takes each
    // arena's lock like any malloc call.
    unsafe { libc::malloc_trim(0) };
}

/// At most two glibc arenas: with one per thread (up to 8 per core), the threads of a burst of
/// starts each kept their own partly used arena, and berthd held ≈200 kB per container after
/// 100 concurrent starts. Call before any thread is started.
pub fn limit_arenas() {
    // SAFETY: mallopt only tunes the allocator; called before other threads exist.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
}
