//! The detector child's fatal signals: back to the kernel's default action.
//!
//! The Rust runtime installs SIGSEGV and SIGBUS handlers to report stack
//! overflows; for a signal that is not a guard-page fault they restore the
//! default and return, so the first `kill -SEGV` is survived. In the detector
//! child a segfault of the inference library, or the signal, must end the
//! process at once (the supervisor restarts it), so the defaults go back first.
#![allow(
    unsafe_code,
    reason = "signal(2) has no safe wrapper; see the SAFETY comment"
)]

/// Restores the default action of SIGSEGV and SIGBUS. Call once, first thing.
pub(crate) fn default_fatal_signals() -> std::io::Result<()> {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: installing SIG_DFL (no handler code runs in this process for
        // it) for a signal number the platform defines; called at the start of
        // the child before any other thread that could race on the disposition.
        let previous = unsafe { libc::signal(sig, libc::SIG_DFL) };
        if previous == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises SIGSEGV in the calling thread (the `segv` fault command): with the
/// default action restored, the process ends as a segfault would end it.
#[cfg(feature = "fault-injection")]
pub(crate) fn raise_segv() {
    // SAFETY: raise(3) only sends a signal to the calling thread; SIGSEGV is a
    // valid signal number and no handler of ours runs for it.
    let _ = unsafe { libc::raise(libc::SIGSEGV) };
}
