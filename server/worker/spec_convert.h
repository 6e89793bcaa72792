// Conversions between the wire types (sfd.v1 protobuf) and the engine's plain structs, used
// by sfd-worker: the resolved JobSpec in, MemoryPlan / DataStats / StepStats out. Torch-free.
#pragma once

#include "absl/status/statusor.h"
#include "engine/job/job_runner.h"
#include "engine/job/job_spec.h"
#include "engine/trainer/trainer.h"
#include "sfd/v1/sfd.pb.h"

namespace sfd {

// The daemon has validated the spec already; this still rejects unknown enum strings.
absl::StatusOr<JobSpec> ToEngineJobSpec(const v1::JobSpec& spec);

v1::MemoryPlan ToProto(const MemoryPlan& plan);
v1::DataStats ToProto(const DataStats& stats);
v1::StepMetrics ToProto(const StepStats& stats);

}  // namespace sfd
