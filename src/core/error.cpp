#include "deforma/core/error.hpp"

namespace deforma {

const char* Error::kind() const noexcept {
  switch (code_) {
    case ExitCode::kOk: return "ok";
    case ExitCode::kUsage: return "usage";
    case ExitCode::kInvalidArgument: return "invalid-argument";
    case ExitCode::kIo: return "io";
    case ExitCode::kFormat: return "format";
    case ExitCode::kNumerical: return "numerical";
    case ExitCode::kCancelled: return "cancelled";
    case ExitCode::kInternal: break;
  }
  return "internal";
}

}  // namespace deforma
