// ServerConfig: everything sfd.yaml can set (see deploy/sfd.example.yaml), with embedded
// defaults so that `sfd` without a config file runs with all state under ./sfd-state and
// listens only on ./sfd-state/sfd.sock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sfd {

inline constexpr char kDefaultMetricsAddress[] = "127.0.0.1:9464";

struct TlsConfig {
  std::string cert_file;       // PEM server certificate chain
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CA: when set, clients must present a certificate it signed
  bool enabled() const { return !cert_file.empty(); }
};

struct ServerConfig {
  std::string state_dir = "sfd-state";  // SQLite database, worker logs
  std::string socket_path;              // "" = <state_dir>/sfd.sock; "none" = no Unix socket
  std::string tcp_address;              // "" = no TCP; e.g. "127.0.0.1:7070"
  TlsConfig tls;                        // TCP only
  std::string token_file;               // bearer token required on TCP when set
  std::vector<std::string> model_roots;  // default: <state_dir>/models
  std::vector<std::string> data_roots;   // default: <state_dir>/data
  std::string output_root;               // default: <state_dir>/outputs
  int queue_limit = 64;                  // QUEUED jobs accepted at once
  std::string worker_binary;             // default: sfd-worker next to the sfd binary
  // Prometheus /metrics endpoint: "" = kDefaultMetricsAddress, best effort (a warning when it
  // cannot listen, e.g. a second daemon); "none" = off; anything else must work or sfd exits.
  std::string metrics_address;
  int max_attempts = 3;                  // worker launches per job (crash -> resume)
  int cancel_grace_seconds = 30;         // cancel without checkpoint: SIGKILL after this
  int checkpoint_grace_seconds = 900;    // cancel/shutdown with a final checkpoint
  int64_t max_message_bytes = 4 << 20;   // gRPC receive limit
  int max_streams = 1024;                // concurrent StreamJobEvents calls
  std::string log_level = "info";        // spdlog level
};

// Reads `path` (strict: unknown keys rejected). Empty path = embedded defaults. Relative paths
// in the file are relative to the file's folder; defaults are relative to the working directory.
absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path);

// Fills defaults that depend on other fields, makes every path absolute, creates state and
// root folders, and refuses unsafe listeners: TCP on a non-loopback address needs TLS or a
// token.
absl::Status FinalizeServerConfig(ServerConfig* config);

// Reads the token file (whitespace trimmed); errors if it is empty or readable by others.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// True for "127.0.0.1:port", "localhost:port", "[::1]:port".
bool IsLoopbackAddress(const std::string& host_port);

}  // namespace sfd
