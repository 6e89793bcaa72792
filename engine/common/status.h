// Error handling for all of sfd: absl::Status / absl::StatusOr everywhere, plus the
// propagation macros absl does not export and a check macro for invariants (programming
// errors, never bad input), which aborts with file:line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define SFD_CONCAT_INNER_(a, b) a##b
#define SFD_CONCAT_(a, b) SFD_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define SFD_RETURN_IF_ERROR(expr)                        \
  do {                                                   \
    ::absl::Status sfd_status_ = (expr);                 \
    if (!sfd_status_.ok()) return sfd_status_;           \
  } while (0)

// `SFD_ASSIGN_OR_RETURN(auto x, F());` declares x from an OK StatusOr or returns its status.
#define SFD_ASSIGN_OR_RETURN(lhs, expr) \
  SFD_ASSIGN_OR_RETURN_IMPL_(SFD_CONCAT_(sfd_statusor_, __LINE__), lhs, expr)
#define SFD_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

namespace sfd {

// Streams a message and aborts when destroyed; used by SFD_CHECK only.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond) {
    stream_ << file << ":" << line << ": check failed: " << cond << " ";
  }
  [[noreturn]] ~CheckFailure() {
    std::fprintf(stderr, "%s\n", stream_.str().c_str());
    std::fflush(stderr);
    std::abort();
  }
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

}  // namespace sfd

// Invariant check: `SFD_CHECK(n > 0) << "n=" << n;`. Aborts with file:line on failure.
#define SFD_CHECK(cond) \
  if (cond) {           \
  } else                \
    ::sfd::CheckFailure(__FILE__, __LINE__, #cond).stream()
