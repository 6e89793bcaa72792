// sfd: the fine-tuning daemon. Loads sfd.yaml (or embedded defaults), opens the SQLite state,
// recovers interrupted jobs, serves sfd.v1.Sfd + gRPC health + reflection on a Unix socket
// (mode 0600) and optionally TCP (TLS and/or bearer token), and on SIGTERM/SIGINT drains:
// stops accepting jobs, checkpoints and stops the running job, exits cleanly.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status.h"
#include "server/config.h"
#include "server/job_manager.h"
#include "server/job_store.h"
#include "server/metrics_prometheus.h"
#include "server/sfd_service.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, config, "", "sfd.yaml (see deploy/sfd.example.yaml); empty = defaults");
ABSL_FLAG(std::string, state_dir, "", "overrides state_dir of the config");
ABSL_FLAG(std::string, socket, "", "overrides socket of the config");

namespace sfd {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(what, ": cannot read ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TcpCredentials(const ServerConfig& c) {
  if (!c.tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions opts(
      c.tls.client_ca_file.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                   : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  SFD_ASSIGN_OR_RETURN(std::string cert, ReadFile(c.tls.cert_file, "tls.cert"));
  SFD_ASSIGN_OR_RETURN(std::string key, ReadFile(c.tls.key_file, "tls.key"));
  opts.pem_key_cert_pairs.push_back({key, cert});
  if (!c.tls.client_ca_file.empty()) {
    SFD_ASSIGN_OR_RETURN(opts.pem_root_certs, ReadFile(c.tls.client_ca_file, "tls.client_ca"));
  }
  return grpc::SslServerCredentials(opts);
}

// Exclusive lock on <state_dir>/sfd.lock: one daemon per state dir (released on any exit).
absl::Status LockStateDir(const std::string& state_dir) {
  const std::string path = state_dir + "/sfd.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0)
    return absl::FailedPreconditionError(
        absl::StrCat("another sfd is running with state dir ", state_dir));
  return absl::OkStatus();  // fd intentionally kept open for the process lifetime
}

int Run() {
  auto loaded = LoadServerConfig(absl::GetFlag(FLAGS_config));
  if (!loaded.ok()) {
    std::cerr << "sfd: " << loaded.status().message() << "\n";
    return 2;
  }
  ServerConfig config = *loaded;
  if (!absl::GetFlag(FLAGS_state_dir).empty()) config.state_dir = absl::GetFlag(FLAGS_state_dir);
  if (!absl::GetFlag(FLAGS_socket).empty()) config.socket_path = absl::GetFlag(FLAGS_socket);
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  if (absl::Status st = FinalizeServerConfig(&config); !st.ok()) {
    std::cerr << "sfd: " << st.message() << "\n";
    return 2;
  }
  if (absl::Status st = LockStateDir(config.state_dir); !st.ok()) {
    std::cerr << "sfd: " << st.message() << "\n";
    return 2;
  }
  auto store = JobStore::Open(config.state_dir + "/sfd.db");
  if (!store.ok()) {
    std::cerr << "sfd: " << store.status().message() << "\n";
    return 2;
  }
  auto policy = PathPolicy::Create(config.model_roots, config.data_roots, config.output_root);
  if (!policy.ok()) {
    std::cerr << "sfd: " << policy.status().message() << "\n";
    return 2;
  }
  std::string token;
  if (!config.token_file.empty()) {
    auto t = ReadTokenFile(config.token_file);
    if (!t.ok()) {
      std::cerr << "sfd: " << t.status().message() << "\n";
      return 2;
    }
    token = *t;
  }
  auto tcp_creds = TcpCredentials(config);
  if (!tcp_creds.ok()) {
    std::cerr << "sfd: " << tcp_creds.status().message() << "\n";
    return 2;
  }
  // SIGTERM/SIGINT are handled by sigwait() below: block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // Prometheus exporter (after the signal mask: civetweb's threads must not take SIGTERM).
  std::unique_ptr<PrometheusMetrics> metrics;
  if (config.metrics_address != "none") {
    const bool explicit_address = !config.metrics_address.empty();
    auto served = PrometheusMetrics::CreateServing(
        explicit_address ? config.metrics_address : std::string(kDefaultMetricsAddress));
    if (served.ok()) {
      metrics = std::move(*served);
      spdlog::info("metrics on http://{}/metrics", metrics->address());
      if (!IsLoopbackAddress(metrics->address()))
        spdlog::warn("metrics_address {} is not loopback: /metrics has no authentication",
                     metrics->address());
      std::cout << "sfd metrics: http://" << metrics->address() << "/metrics" << std::endl;
    } else if (explicit_address) {
      std::cerr << "sfd: " << served.status().message() << "\n";
      return 2;
    } else {
      spdlog::warn("{} (set metrics_address in sfd.yaml, or none)",
                   std::string(served.status().message()));
    }
  }
  if (metrics) {
    if (absl::Status st = metrics->LoadJobStates(store->get()); !st.ok())
      spdlog::warn("metrics: cannot count stored jobs: {}", std::string(st.message()));
  }

  JobManager manager(config, store->get(), &*policy,
                     metrics ? static_cast<MetricsSink*>(metrics.get()) : NoopMetricsSink());
  if (absl::Status st = manager.Start(); !st.ok()) {
    std::cerr << "sfd: " << st.message() << "\n";
    return 2;
  }

  std::vector<std::string> addresses;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  if (config.socket_path != "none") {
    ::unlink(config.socket_path.c_str());  // stale socket of an earlier run (we hold the lock)
    addresses.push_back("unix:" + config.socket_path);
    builder.AddListeningPort(addresses.back(), grpc::InsecureServerCredentials());
  }
  int tcp_port = 0;
  if (!config.tcp_address.empty()) {
    addresses.push_back(config.tcp_address);
    builder.AddListeningPort(config.tcp_address, *tcp_creds, &tcp_port);
  }
  SfdService service(config, &manager, store->get(), &*policy, TokenAuth(token), addresses);
  builder.RegisterService(&service);
  const mode_t old_umask = ::umask(0177);  // the socket file is created 0600
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server) {
    std::cerr << "sfd: cannot listen on " << absl::StrJoin(addresses, ", ") << "\n";
    return 2;
  }
  if (config.socket_path != "none") ::chmod(config.socket_path.c_str(), 0600);
  if (!config.tcp_address.empty()) {
    if (tcp_port == 0) {
      std::cerr << "sfd: cannot listen on " << config.tcp_address << "\n";
      return 2;
    }
    // Show the bound port (the config may say :0 = any free port).
    addresses.back() = absl::StrCat(
        config.tcp_address.substr(0, config.tcp_address.rfind(':')), ":", tcp_port);
  }
  service.SetListenAddresses(addresses);
  spdlog::info("sfd {} listening on {}{}; state in {}", SFD_VERSION, absl::StrJoin(addresses, ", "),
               config.tls.enabled() ? " (TCP with TLS)" : "", config.state_dir);
  std::cout << "sfd ready: " << absl::StrJoin(addresses, ", ") << std::endl;

  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("signal {}: draining", sig);
  server->GetHealthCheckService()->SetServingStatus(false);
  manager.Drain();
  service.Shutdown();
  store->get()->Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  spdlog::info("sfd stopped");
  return 0;
}

}  // namespace
}  // namespace sfd

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("sfd [--config=sfd.yaml]: the sfd fine-tuning daemon");
  absl::ParseCommandLine(argc, argv);
  return sfd::Run();
}
