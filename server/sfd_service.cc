#include "server/sfd_service.h"

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "server/server_info.h"
#include "server/status_mapping.h"

namespace sfd {

SfdService::SfdService(const ServerConfig& config, JobManager* manager, JobStore* store,
                       const PathPolicy* policy, TokenAuth auth,
                       std::vector<std::string> listen_addresses)
    : config_(config),
      manager_(manager),
      store_(store),
      policy_(policy),
      auth_(std::move(auth)),
      listen_addresses_(std::move(listen_addresses)),
      started_(std::chrono::steady_clock::now()) {}

grpc::Status SfdService::CreateJob(grpc::ServerContext* ctx, const v1::CreateJobRequest* req,
                                   v1::CreateJobResponse* resp) {
  if (absl::Status a = auth_.Check(*ctx); !a.ok()) return ToGrpcStatus(a);
  auto r = manager_->CreateJob(*req);
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status SfdService::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                                v1::Job* resp) {
  if (absl::Status a = auth_.Check(*ctx); !a.ok()) return ToGrpcStatus(a);
  auto r = manager_->GetJob(req->job_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status SfdService::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                                  v1::ListJobsResponse* resp) {
  if (absl::Status a = auth_.Check(*ctx); !a.ok()) return ToGrpcStatus(a);
  auto r = manager_->ListJobs(*req);
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status SfdService::CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req,
                                   v1::Job* resp) {
  if (absl::Status a = auth_.Check(*ctx); !a.ok()) return ToGrpcStatus(a);
  auto r = manager_->CancelJob(*req);
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status SfdService::ListCheckpoints(grpc::ServerContext* ctx,
                                         const v1::ListCheckpointsRequest* req,
                                         v1::ListCheckpointsResponse* resp) {
  if (absl::Status a = auth_.Check(*ctx); !a.ok()) return ToGrpcStatus(a);
  auto r = manager_->ListCheckpoints(req->job_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status SfdService::GetServerInfo(grpc::ServerContext* ctx, const v1::GetServerInfoRequest*,
                                       v1::ServerInfo* resp) {
  if (absl::Status a = auth_.Check(*ctx); !a.ok()) return ToGrpcStatus(a);
  FillMachineInfo(policy_->output_root(), resp);
  for (const auto& r : policy_->model_roots()) resp->add_model_roots(r);
  for (const auto& r : policy_->data_roots()) resp->add_data_roots(r);
  resp->set_output_root(policy_->output_root());
  resp->set_queue_length(manager_->queue_length());
  resp->set_queue_limit(config_.queue_limit);
  resp->set_running_job_id(manager_->running_job_id());
  resp->set_draining(manager_->draining());
  resp->set_uptime_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now() - started_)
                               .count());
  {
    std::lock_guard<std::mutex> lock(addresses_mu_);
    for (const auto& a : listen_addresses_) resp->add_listen_addresses(a);
  }
  return grpc::Status::OK;
}

grpc::Status SfdService::StreamJobEvents(grpc::ServerContext* ctx,
                                         const v1::StreamJobEventsRequest* req,
                                         grpc::ServerWriter<v1::JobEvent>* writer) {
  if (absl::Status a = auth_.Check(*ctx); !a.ok()) return ToGrpcStatus(a);
  if (open_streams_.fetch_add(1) >= config_.max_streams) {
    open_streams_.fetch_sub(1);
    return ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("too many open event streams (limit ", config_.max_streams, ")")));
  }
  absl::Status st = StreamEvents(ctx, *req, writer);
  open_streams_.fetch_sub(1);
  return ToGrpcStatus(st);
}

absl::Status SfdService::StreamEvents(grpc::ServerContext* ctx,
                                      const v1::StreamJobEventsRequest& req,
                                      grpc::ServerWriter<v1::JobEvent>* writer) {
  if (req.after_seq() < 0) return absl::InvalidArgumentError("after_seq: must be >= 0");
  SFD_RETURN_IF_ERROR(manager_->GetJob(req.job_id()).status());
  int64_t after = req.after_seq();
  constexpr int kBatch = 256;
  while (true) {
    SFD_ASSIGN_OR_RETURN(std::vector<v1::JobEvent> events,
                         store_->EventsAfter(req.job_id(), after, kBatch));
    for (const v1::JobEvent& ev : events) {
      if (!writer->Write(ev)) return absl::CancelledError("client went away");
      after = ev.seq();
    }
    if (static_cast<int>(events.size()) == kBatch) continue;
    if (req.no_follow()) return absl::OkStatus();
    // The terminal state event is stored in the same transaction as the terminal state, so a
    // terminal job with nothing after `after` has been sent completely.
    SFD_ASSIGN_OR_RETURN(v1::Job job, manager_->GetJob(req.job_id()));
    if (IsTerminal(job.state()) && store_->LastSeq(req.job_id()) <= after) return absl::OkStatus();
    if (ctx->IsCancelled()) return absl::CancelledError("client cancelled the stream");
    if (shutdown_.load()) return absl::UnavailableError("server is shutting down; reconnect with after_seq");
    store_->WaitForEvents(req.job_id(), after,
                          std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
  }
}

void SfdService::Shutdown() { shutdown_ = true; }

void SfdService::SetListenAddresses(std::vector<std::string> addresses) {
  std::lock_guard<std::mutex> lock(addresses_mu_);
  listen_addresses_ = std::move(addresses);
}

}  // namespace sfd
