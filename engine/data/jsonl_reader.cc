#include "engine/data/jsonl_reader.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sfd {

absl::StatusOr<std::unique_ptr<JsonlReader>> JsonlReader::Open(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return absl::NotFoundError(
        absl::StrCat("cannot open dataset ", path, ": ", std::strerror(errno)));
  if (!S_ISREG(st.st_mode))
    return absl::InvalidArgumentError(absl::StrCat("dataset ", path, " is not a regular file"));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f)
    return absl::NotFoundError(
        absl::StrCat("cannot open dataset ", path, ": ", std::strerror(errno)));
  auto r = std::unique_ptr<JsonlReader>(new JsonlReader());
  r->path_ = path;
  r->f_ = f;
  r->file_size_ = st.st_size;
  std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  return r;
}

JsonlReader::~JsonlReader() {
  if (f_) std::fclose(f_);
}

absl::StatusOr<bool> JsonlReader::Next(std::string* line, int64_t* line_no) {
  while (true) {
    line->clear();
    bool any = false;
    int c;
    while ((c = getc_unlocked(f_)) != EOF) {
      any = true;
      ++bytes_read_;
      if (c == '\n') break;
      if (line->size() >= kMaxLineBytes)
        return absl::InvalidArgumentError(absl::StrCat(
            path_, ":", line_no_ + 1, ": line longer than ", kMaxLineBytes >> 20, " MiB"));
      line->push_back(static_cast<char>(c));
    }
    if (std::ferror(f_))
      return absl::DataLossError(
          absl::StrCat(path_, ":", line_no_ + 1, ": read error: ", std::strerror(errno)));
    if (!any) return false;
    ++line_no_;
    if (!line->empty() && line->back() == '\r') line->pop_back();
    if (line_no_ == 1 && line->size() >= 3 && std::memcmp(line->data(), "\xEF\xBB\xBF", 3) == 0)
      line->erase(0, 3);
    bool blank = true;
    for (char ch : *line)
      if (ch != ' ' && ch != '\t' && ch != '\r') {
        blank = false;
        break;
      }
    if (blank) continue;
    *line_no = line_no_;
    return true;
  }
}

}  // namespace sfd
