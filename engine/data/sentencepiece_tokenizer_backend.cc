// SpmBackend::Load: finds libsfd_spm.so and opens it isolated (see the header for why).
#include "engine/data/sentencepiece_tokenizer_backend.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace sfd {
namespace {

// The module path: $SFD_SPM_MODULE, else where the build put it, else the loader's search.
std::string ModulePath() {
  if (const char* env = std::getenv("SFD_SPM_MODULE"); env != nullptr && *env != '\0') return env;
#ifdef SFD_SPM_MODULE_PATH
  return SFD_SPM_MODULE_PATH;
#else
  return "libsfd_spm.so";
#endif
}

}  // namespace

std::unique_ptr<SpmBackend> SpmBackend::Load(const std::string& path, std::string* error) {
#ifndef SFD_HAVE_SENTENCEPIECE
  (void)path;
  *error = "sfd was built without libsentencepiece (install libsentencepiece-dev and rebuild)";
  return nullptr;
#else
  static std::once_flag once;
  static SfdSpmLoadFn load = nullptr;
  static std::string open_error;
  std::call_once(once, [] {
    const std::string module = ModulePath();
    void* handle = dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      const char* e = dlerror();
      open_error = "cannot load the SentencePiece module " + module + ": " + (e ? e : "unknown");
      return;
    }
    load = reinterpret_cast<SfdSpmLoadFn>(dlsym(handle, kSfdSpmLoadSymbol));
    if (load == nullptr) open_error = module + " has no symbol " + kSfdSpmLoadSymbol;
  });
  if (load == nullptr) {
    *error = open_error;
    return nullptr;
  }
  return std::unique_ptr<SpmBackend>(load(path, error));
#endif
}

}  // namespace sfd
