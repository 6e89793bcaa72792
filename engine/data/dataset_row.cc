#include "engine/data/dataset_row.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"

namespace sfd {
namespace {

using json = nlohmann::ordered_json;

// Captures the parser's error message without exceptions (SAX: only used on the error path).
struct ErrorCapture : nlohmann::json_sax<json> {
  std::string message;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) override {
    std::string what = ex.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..."
    size_t colon = what.find("] ");
    message = colon == std::string::npos ? what : what.substr(colon + 2);
    (void)position;
    (void)last_token;
    return false;
  }
};

std::string TypeName(const json& j) { return j.type_name(); }

// Nesting depth without recursion (rows are untrusted; later stages recurse over values).
bool DeeperThan(const json& root, int limit) {
  std::vector<std::pair<const json*, int>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [j, d] = stack.back();
    stack.pop_back();
    if (d > limit) return true;
    if (j->is_structured())
      for (const auto& c : *j) stack.emplace_back(&c, d + 1);
  }
  return false;
}
constexpr int kMaxNesting = 64;

absl::Status RequireString(const json& row, const char* key, std::string* out,
                           bool optional = false) {
  auto it = row.find(key);
  if (it == row.end() || it->is_null()) {
    if (optional) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("missing \"", key, "\""));
  }
  if (!it->is_string())
    return absl::InvalidArgumentError(
        absl::StrCat("\"", key, "\" must be a string, got ", TypeName(*it)));
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ParseMessages(const json& row, Sample* s) {
  const json& msgs = row["messages"];
  if (!msgs.is_array())
    return absl::InvalidArgumentError(
        absl::StrCat("\"messages\" must be a list, got ", TypeName(msgs)));
  if (msgs.empty()) return absl::InvalidArgumentError("\"messages\" is empty");
  s->messages = json::array();
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object())
      return absl::InvalidArgumentError(
          absl::StrCat(where, " must be an object, got ", TypeName(m)));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || role->get<std::string>().empty())
      return absl::InvalidArgumentError(absl::StrCat(where, " needs a non-empty string \"role\""));
    auto content = m.find("content");
    bool has_tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (content == m.end() || content->is_null()) {
      if (!has_tool_calls)
        return absl::InvalidArgumentError(absl::StrCat(where, " has no \"content\""));
    } else if (!content->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".content must be a string, got ", TypeName(*content)));
    }
    bool weight = true;
    json clean = json::object();
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (it.key() != "weight") {
        clean[it.key()] = it.value();
        continue;
      }
      const json& w = it.value();
      if (w.is_number_integer() || w.is_number_unsigned()) {
        int64_t v = w.is_number_unsigned()
                        ? static_cast<int64_t>(std::min<uint64_t>(w.get<uint64_t>(), 2))
                        : w.get<int64_t>();
        if (v != 0 && v != 1)
          return absl::InvalidArgumentError(
              absl::StrCat(where, ".weight must be 0 or 1, got ", w.dump()));
        weight = v == 1;
      } else if (w.is_number_float() && (w.get<double>() == 0.0 || w.get<double>() == 1.0)) {
        weight = w.get<double>() == 1.0;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".weight must be 0 or 1, got ", w.dump()));
      }
      if (role->get<std::string>() != "assistant")
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".weight is only allowed on assistant messages"));
    }
    s->messages.push_back(std::move(clean));
    s->message_weights.push_back(weight);
  }
  return absl::OkStatus();
}

}  // namespace

const char* DatasetFormatName(DatasetFormat f) {
  switch (f) {
    case DatasetFormat::kAuto:
      return "auto";
    case DatasetFormat::kText:
      return "text";
    case DatasetFormat::kCompletion:
      return "prompt/completion";
    case DatasetFormat::kAlpaca:
      return "alpaca";
    case DatasetFormat::kMessages:
      return "messages";
  }
  return "?";
}

absl::StatusOr<DatasetFormat> DetectFormat(const json& row) {
  if (!row.is_object())
    return absl::InvalidArgumentError(
        absl::StrCat("a row must be a JSON object, got ", TypeName(row)));
  std::vector<std::string> matches;
  std::vector<DatasetFormat> formats;
  auto has = [&](const char* k) { return row.contains(k); };
  if (has("messages")) {
    matches.push_back("\"messages\"");
    formats.push_back(DatasetFormat::kMessages);
  }
  if (has("text")) {
    matches.push_back("\"text\"");
    formats.push_back(DatasetFormat::kText);
  }
  if (has("prompt") || has("completion")) {
    if (!has("prompt") || !has("completion"))
      return absl::InvalidArgumentError(
          absl::StrCat("has \"", has("prompt") ? "prompt" : "completion", "\" but no \"",
                       has("prompt") ? "completion" : "prompt", "\""));
    matches.push_back("\"prompt\"/\"completion\"");
    formats.push_back(DatasetFormat::kCompletion);
  }
  if (has("instruction") || has("output")) {
    if (!has("instruction") || !has("output"))
      return absl::InvalidArgumentError(absl::StrCat(
          "has \"", has("instruction") ? "instruction" : "output", "\" but no \"",
          has("instruction") ? "output" : "instruction", "\" (alpaca format needs both)"));
    matches.push_back("\"instruction\"/\"output\"");
    formats.push_back(DatasetFormat::kAlpaca);
  }
  if (formats.empty())
    return absl::InvalidArgumentError(
        "no known format: expected \"text\", \"prompt\"+\"completion\", \"instruction\"+\"output\" "
        "(alpaca) or "
        "\"messages\"");
  if (formats.size() > 1)
    return absl::InvalidArgumentError(
        absl::StrCat("ambiguous format: keys ", absl::StrJoin(matches, " and "),
                     " match different formats; keep one (or set data.format)"));
  return formats[0];
}

absl::StatusOr<Sample> ParseRow(std::string_view line, DatasetFormat expected) {
  json row = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (row.is_discarded()) {
    ErrorCapture cap;
    json::sax_parse(line.begin(), line.end(), &cap, nlohmann::detail::input_format_t::json,
                    /*strict=*/true);
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON: ", cap.message.empty() ? "parse error" : cap.message));
  }
  if (DeeperThan(row, kMaxNesting))
    return absl::InvalidArgumentError(
        absl::StrCat("JSON nested deeper than ", kMaxNesting, " levels"));
  Sample s;
  if (expected == DatasetFormat::kAuto) {
    SFD_ASSIGN_OR_RETURN(s.format, DetectFormat(row));
  } else {
    if (!row.is_object())
      return absl::InvalidArgumentError(
          absl::StrCat("a row must be a JSON object, got ", TypeName(row)));
    s.format = expected;
    auto detected = DetectFormat(row);
    if (detected.ok() && *detected != expected)
      return absl::InvalidArgumentError(
          absl::StrCat("row is in ", DatasetFormatName(*detected), " format but the dataset is ",
                       DatasetFormatName(expected), " (from data.format or its first row)"));
  }
  switch (s.format) {
    case DatasetFormat::kText:
      SFD_RETURN_IF_ERROR(RequireString(row, "text", &s.text));
      break;
    case DatasetFormat::kCompletion:
      SFD_RETURN_IF_ERROR(RequireString(row, "prompt", &s.prompt));
      SFD_RETURN_IF_ERROR(RequireString(row, "completion", &s.completion));
      break;
    case DatasetFormat::kAlpaca:
      SFD_RETURN_IF_ERROR(RequireString(row, "instruction", &s.instruction));
      SFD_RETURN_IF_ERROR(RequireString(row, "input", &s.input, /*optional=*/true));
      SFD_RETURN_IF_ERROR(RequireString(row, "output", &s.output));
      break;
    case DatasetFormat::kMessages:
      if (!row.contains("messages")) return absl::InvalidArgumentError("missing \"messages\"");
      SFD_RETURN_IF_ERROR(ParseMessages(row, &s));
      break;
    case DatasetFormat::kAuto:
      return absl::InternalError("format not resolved");
  }
  return s;
}

}  // namespace sfd
