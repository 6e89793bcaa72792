// Debian's abseil (20220623) is built with its own absl::string_view, distinct from
// std::string_view, so absl::StrCat does not accept std::string_view arguments and
// Status::message() is not a std::string_view. Sv() bridges the two in engine/io.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace sfd {

inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace sfd
