//! CPU priority of the calling thread.
//!
//! The box has one job that must never wait: turning a decision into a line
//! change. So the threads that decide and act (capture, analysis, outputs)
//! keep the default priority, inference runs a little lower, and the API and
//! live view (people looking) lower still. Only lowering is done: it needs no
//! privilege, so the unit keeps its empty capability set. Threads a library
//! starts (ONNX Runtime's pool, tract's executor) inherit the value of the
//! thread that creates them, which is why detectors are loaded on their
//! worker thread after it lowered itself.

/// Why the priority could not be changed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set the nice value of thread {tid} to {nice}")]
pub struct PriorityError {
    /// The kernel thread id.
    pub tid: i32,
    /// The value asked for.
    pub nice: i32,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Sets the nice value (0 default, 19 lowest) of the calling thread only.
/// Values are clamped to 0..=19: raising priority is not this function's job.
pub fn set_thread_nice(nice: i32) -> Result<(), PriorityError> {
    let nice = nice.clamp(0, 19);
    let tid = rustix::thread::gettid();
    // On Linux, PRIO_PROCESS with a thread id changes that thread alone.
    rustix::process::setpriority_process(Some(tid), nice).map_err(|e| PriorityError {
        tid: tid.as_raw_nonzero().get(),
        nice,
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread.
    fn thread_nice() -> Result<i32, PriorityError> {
        let tid = rustix::thread::gettid();
        rustix::process::getpriority_process(Some(tid)).map_err(|e| PriorityError {
            tid: tid.as_raw_nonzero().get(),
            nice: 0,
            source: e.into(),
        })
    }

    #[test]
    fn lowering_applies_to_the_calling_thread_only() {
        let before = thread_nice().unwrap();
        let t = std::thread::spawn(move || {
            set_thread_nice(before.max(0) + 3).unwrap();
            thread_nice().unwrap()
        });
        assert_eq!(t.join().unwrap(), before.max(0) + 3);
        assert_eq!(thread_nice().unwrap(), before, "other threads keep theirs");
        // Children inherit: a thread started by a lowered thread starts lowered.
        let t = std::thread::spawn(move || {
            set_thread_nice(before.max(0) + 2).unwrap();
            std::thread::spawn(|| thread_nice().unwrap())
                .join()
                .unwrap()
        });
        assert_eq!(t.join().unwrap(), before.max(0) + 2);
    }
}
