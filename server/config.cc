#include "server/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "server/yaml_fields.h"

namespace sfd {
namespace {

std::string Absolute(const std::string& base, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}

std::string SelfDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace

absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  ServerConfig c;
  const std::string cwd = std::filesystem::current_path().string();
  c.state_dir = Absolute(cwd, c.state_dir);
  if (path.empty()) return c;
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open config file"));
  std::stringstream ss;
  ss << f.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(ss.str());
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": YAML error at line ", e.mark.line + 1, ": ", e.msg));
  }
  SFD_RETURN_IF_ERROR(YamlMap::Check(root, ""));
  const std::string base =
      std::filesystem::absolute(std::filesystem::path(path)).parent_path().string();
  absl::Status st = [&]() -> absl::Status {
    YamlMap m(root, "");
    std::string state;
    SFD_RETURN_IF_ERROR(m.GetString("state_dir", &state));
    if (!state.empty()) c.state_dir = Absolute(base, state);
    SFD_RETURN_IF_ERROR(m.GetString("socket", &c.socket_path));
    if (c.socket_path != "none") c.socket_path = Absolute(base, c.socket_path);
    SFD_RETURN_IF_ERROR(m.GetString("tcp_address", &c.tcp_address));
    YamlMap tls(YAML::Node(), "");
    SFD_RETURN_IF_ERROR(m.GetMap("tls", &tls));
    SFD_RETURN_IF_ERROR(tls.GetString("cert", &c.tls.cert_file));
    SFD_RETURN_IF_ERROR(tls.GetString("key", &c.tls.key_file));
    SFD_RETURN_IF_ERROR(tls.GetString("client_ca", &c.tls.client_ca_file));
    SFD_RETURN_IF_ERROR(tls.RejectUnknownKeys());
    c.tls.cert_file = Absolute(base, c.tls.cert_file);
    c.tls.key_file = Absolute(base, c.tls.key_file);
    c.tls.client_ca_file = Absolute(base, c.tls.client_ca_file);
    SFD_RETURN_IF_ERROR(m.GetString("token_file", &c.token_file));
    c.token_file = Absolute(base, c.token_file);
    YamlMap roots(YAML::Node(), "");
    SFD_RETURN_IF_ERROR(m.GetMap("roots", &roots));
    SFD_RETURN_IF_ERROR(roots.GetStringList("models", &c.model_roots));
    SFD_RETURN_IF_ERROR(roots.GetStringList("data", &c.data_roots));
    SFD_RETURN_IF_ERROR(roots.GetString("output", &c.output_root));
    SFD_RETURN_IF_ERROR(roots.RejectUnknownKeys());
    for (auto& r : c.model_roots) r = Absolute(base, r);
    for (auto& r : c.data_roots) r = Absolute(base, r);
    c.output_root = Absolute(base, c.output_root);
    SFD_RETURN_IF_ERROR(m.GetInt("queue_limit", &c.queue_limit));
    SFD_RETURN_IF_ERROR(m.GetString("worker_binary", &c.worker_binary));
    c.worker_binary = Absolute(base, c.worker_binary);
    SFD_RETURN_IF_ERROR(m.GetString("metrics_address", &c.metrics_address));
    SFD_RETURN_IF_ERROR(m.GetInt("max_attempts", &c.max_attempts));
    SFD_RETURN_IF_ERROR(m.GetInt("cancel_grace_seconds", &c.cancel_grace_seconds));
    SFD_RETURN_IF_ERROR(m.GetInt("checkpoint_grace_seconds", &c.checkpoint_grace_seconds));
    SFD_RETURN_IF_ERROR(m.GetBytes("max_message_bytes", &c.max_message_bytes));
    SFD_RETURN_IF_ERROR(m.GetInt("max_streams", &c.max_streams));
    SFD_RETURN_IF_ERROR(m.GetString("log_level", &c.log_level));
    SFD_RETURN_IF_ERROR(m.RejectUnknownKeys());
    if (c.queue_limit < 1) return m.Error("queue_limit", "must be >= 1");
    if (c.max_attempts < 1) return m.Error("max_attempts", "must be >= 1");
    if (c.cancel_grace_seconds < 1) return m.Error("cancel_grace_seconds", "must be >= 1");
    if (c.checkpoint_grace_seconds < 1) return m.Error("checkpoint_grace_seconds", "must be >= 1");
    if (c.max_message_bytes < 4096) return m.Error("max_message_bytes", "must be >= 4096");
    if (c.max_streams < 1) return m.Error("max_streams", "must be >= 1");
    return absl::OkStatus();
  }();
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
  return c;
}

bool IsLoopbackAddress(const std::string& host_port) {
  std::string host = host_port;
  const size_t colon = host.rfind(':');
  if (colon != std::string::npos) host = host.substr(0, colon);
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::Status FinalizeServerConfig(ServerConfig* c) {
  std::error_code ec;
  std::filesystem::create_directories(c->state_dir, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("state_dir ", c->state_dir, ": ", ec.message()));
  ::chmod(c->state_dir.c_str(), 0700);
  std::filesystem::create_directories(c->state_dir + "/logs", ec);
  if (c->socket_path.empty()) c->socket_path = c->state_dir + "/sfd.sock";
  if (c->model_roots.empty()) c->model_roots = {c->state_dir + "/models"};
  if (c->data_roots.empty()) c->data_roots = {c->state_dir + "/data"};
  if (c->output_root.empty()) c->output_root = c->state_dir + "/outputs";
  for (const auto* list : {&c->model_roots, &c->data_roots})
    for (const std::string& r : *list) std::filesystem::create_directories(r, ec);
  if (c->worker_binary.empty()) c->worker_binary = SelfDir() + "/sfd-worker";
  if (c->socket_path == "none" && c->tcp_address.empty())
    return absl::InvalidArgumentError("no listener: socket is 'none' and tcp_address is empty");
  if (!c->tcp_address.empty() && !IsLoopbackAddress(c->tcp_address) && !c->tls.enabled() &&
      c->token_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tcp_address ", c->tcp_address,
        " is not loopback: configure tls (cert/key) and/or token_file, or listen on 127.0.0.1"));
  }
  if (c->tls.enabled() && c->tls.key_file.empty())
    return absl::InvalidArgumentError("tls.key: must be set with tls.cert");
  if (!c->tls.enabled() && (!c->tls.key_file.empty() || !c->tls.client_ca_file.empty()))
    return absl::InvalidArgumentError("tls.cert: must be set with tls.key / tls.client_ca");
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return absl::NotFoundError(absl::StrCat("token_file ", path, ": ", std::strerror(errno)));
  if (st.st_mode & 0077)
    return absl::PermissionDeniedError(
        absl::StrCat("token_file ", path, ": readable by group/others; chmod 600 it"));
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string token(absl::StripAsciiWhitespace(ss.str()));
  if (token.size() < 16)
    return absl::InvalidArgumentError(absl::StrCat("token_file ", path, ": token shorter than 16 characters"));
  return token;
}

}  // namespace sfd
