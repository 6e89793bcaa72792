// Kineto trace of a stretch of sfd_bench (CUDA builds of sfd_bench_trace only): every CPU op
// and CUDA kernel between StartTrace and StopTrace, saved as a Chrome trace JSON that
// bench/engine/trace_summary.py turns into a per-kernel-class time table.
#pragma once

#include <string>

namespace sfd {

// False (with a message on stderr) when this build cannot trace.
bool StartTrace();
// Writes the trace of everything since StartTrace to `path`.
bool StopTrace(const std::string& path);

}  // namespace sfd
