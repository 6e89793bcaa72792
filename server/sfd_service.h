// SfdService: the sfd.v1.Sfd gRPC service (synchronous API). Each handler authenticates
// (TokenAuth), delegates to JobManager / JobStore and returns ToGrpcStatus(...) of the
// result; StreamJobEvents replays a job's stored events after after_seq, then follows new
// ones until the job is terminal and fully sent, the client goes away or the server stops.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "server/auth.h"
#include "server/config.h"
#include "server/job_manager.h"
#include "server/job_store.h"
#include "sfd/v1/sfd.grpc.pb.h"

namespace sfd {

class SfdService final : public v1::Sfd::Service {
 public:
  SfdService(const ServerConfig& config, JobManager* manager, JobStore* store,
             const PathPolicy* policy, TokenAuth auth, std::vector<std::string> listen_addresses);

  grpc::Status CreateJob(grpc::ServerContext* ctx, const v1::CreateJobRequest* req,
                         v1::CreateJobResponse* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req,
                         v1::Job* resp) override;
  grpc::Status StreamJobEvents(grpc::ServerContext* ctx, const v1::StreamJobEventsRequest* req,
                               grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status ListCheckpoints(grpc::ServerContext* ctx, const v1::ListCheckpointsRequest* req,
                               v1::ListCheckpointsResponse* resp) override;
  grpc::Status GetServerInfo(grpc::ServerContext* ctx, const v1::GetServerInfoRequest* req,
                             v1::ServerInfo* resp) override;

  // Ends every open stream (daemon shutdown).
  void Shutdown();
  // The addresses actually bound (TCP port known only after the server started).
  void SetListenAddresses(std::vector<std::string> addresses);

 private:
  absl::Status StreamEvents(grpc::ServerContext* ctx, const v1::StreamJobEventsRequest& req,
                            grpc::ServerWriter<v1::JobEvent>* writer);

  const ServerConfig config_;
  JobManager* manager_;
  JobStore* store_;
  const PathPolicy* policy_;
  TokenAuth auth_;
  std::mutex addresses_mu_;
  std::vector<std::string> listen_addresses_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<int> open_streams_{0};
  std::atomic<bool> shutdown_{false};
};

}  // namespace sfd
