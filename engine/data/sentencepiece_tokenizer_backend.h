// SpmBackend: the interface SentencePieceTokenizer uses to reach libsentencepiece.
//
// Debian's libsentencepiece0 bundles and exports its own protobuf-lite (3.14), while libtorch
// loads libprotobuf 3.21: linked into one process the two collide (a crash before main, or a
// protobuf version error when a model loads). So libsentencepiece is never linked into sfd's
// binaries. Its only user, spm_module/sfd_spm_module.cc, is built as a loadable module
// (libsfd_spm.so) that Load() opens with dlopen(RTLD_LOCAL | RTLD_DEEPBIND): the module and
// libsentencepiece resolve their protobuf symbols against their own copy, and nothing of them
// enters the process-wide symbol scope. Methods are virtual so no symbol crosses the boundary
// but the module's one C entry point. No absl here (sentencepiece's header defines its own
// absl::string_view, which clashes with Debian's Abseil).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sfd {

class SpmBackend {
 public:
  virtual ~SpmBackend() = default;
  // nullptr and *error set when the module or the model cannot be loaded.
  static std::unique_ptr<SpmBackend> Load(const std::string& path, std::string* error);

  virtual bool Encode(std::string_view text, std::vector<int>* ids, std::string* error) const = 0;
  virtual bool Decode(const std::vector<int>& ids, std::string* text, std::string* error) const = 0;
  virtual int PieceSize() const = 0;
  virtual int PieceToId(std::string_view piece) const = 0;
  virtual const std::string& IdToPiece(int id) const = 0;
  virtual bool IsControl(int id) const = 0;
  virtual bool IsUnknown(int id) const = 0;
  virtual bool IsByte(int id) const = 0;
  virtual int bos_id() const = 0;
};

// The module's entry point (extern "C", looked up with dlsym): a new backend for the model at
// `path`, or nullptr with *error set.
using SfdSpmLoadFn = SpmBackend* (*)(const std::string& path, std::string* error);
inline constexpr const char kSfdSpmLoadSymbol[] = "sfd_spm_load";

}  // namespace sfd
