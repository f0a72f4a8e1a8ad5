#pragma once
// The process-wide request to stop, set by the CLI on SIGINT/SIGTERM. The CLI's Progress displays
// (make_terminal_progress) report it through Progress::cancelled(), which long loops check before throwing
// deforma::Cancelled; code without a Progress may ask cancellation_requested() directly.

namespace deforma {

/// Asks every running operation of the process to stop at its next check. Async-signal-safe.
void request_cancellation() noexcept;
/// True once request_cancellation() was called (and not reset).
bool cancellation_requested() noexcept;
/// Clears the request (tests; a new run in a long-lived process).
void reset_cancellation() noexcept;

}  // namespace deforma
