#pragma once
// Internal to the correlation module: a count of the chip matchers made, so that tests can check that a run
// makes them once per thread and options set rather than once per window.

namespace deforma::correlate::detail {

/// Matchers constructed so far in this process (every Matcher, pooled or not).
long long matchers_made();

}  // namespace deforma::correlate::detail
