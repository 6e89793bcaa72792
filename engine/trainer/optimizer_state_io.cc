#include "engine/trainer/optimizer_state_io.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/common/status.h"
#include "engine/io/safetensors.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

std::string UnitFile(const std::string& dir, int u) {
  char name[64];
  std::snprintf(name, sizeof(name), "/optimizer/unit-%05d.safetensors", u);
  return dir + name;
}

}  // namespace

absl::Status WriteOptimizerState(const std::string& dir, const ModelLayout& layout,
                                 const std::vector<HostUnit>& host, int64_t step, NvmeStore* nvme) {
  ::mkdir(dir.c_str(), 0755);
  const std::string odir = dir + "/optimizer";
  if (::mkdir(odir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError("cannot create " + odir + ": " + std::strerror(errno));
  }
  nlohmann::json units = nlohmann::json::array();
  for (int u = 0; u < layout.num_units(); ++u) {
    const HostUnit& h = host[u];
    const std::vector<int64_t> shape{h.numel()};
    const float* m = h.m.defined() ? h.m.data_ptr<float>() : nullptr;
    const float* v = h.v.defined() ? h.v.data_ptr<float>() : nullptr;
    NvmeStore::Lease lease;
    const bool on_nvme = nvme != nullptr && nvme->on_nvme(u);
    if (on_nvme) {  // written straight from the staging buffer
      SFD_ASSIGN_OR_RETURN(lease, nvme->Acquire(u));
      m = lease.m;
      v = lease.v;
    }
    std::vector<TensorToWrite> t{{"master", DType::kF32, shape, h.master.data_ptr<float>()},
                                 {"exp_avg", DType::kF32, shape, m},
                                 {"exp_avg_sq", DType::kF32, shape, v}};
    const absl::Status st = WriteSafetensors(UnitFile(dir, u), t, {{"format", "sfd-optimizer"}});
    if (on_nvme) nvme->Release(lease);
    SFD_RETURN_IF_ERROR(st);
    units.push_back(h.numel());
  }
  nlohmann::json j = {{"format", 1}, {"step", step}, {"unit_numel", units}};
  const std::string path = odir + "/state.json";
  std::ofstream f(path + ".tmp");
  f << j.dump(1);
  f.close();
  if (!f || std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
    return absl::InternalError("cannot write " + path);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ReadOptimizerState(const std::string& dir, const ModelLayout& layout,
                                           std::vector<HostUnit>* host, NvmeStore* nvme) {
  const std::string path = dir + "/optimizer/state.json";
  std::ifstream f(path);
  if (!f) return absl::NotFoundError("no optimizer state: cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer() ||
      !j.contains("unit_numel") || !j["unit_numel"].is_array()) {
    return absl::InvalidArgumentError(path + ": not an sfd optimizer state (need step, unit_numel)");
  }
  const auto& units = j["unit_numel"];
  if (static_cast<int>(units.size()) != layout.num_units()) {
    return absl::InvalidArgumentError(path + ": has " + std::to_string(units.size()) +
                                      " units but the model has " + std::to_string(layout.num_units()));
  }
  for (int u = 0; u < layout.num_units(); ++u) {
    HostUnit& h = (*host)[u];
    if (!units[u].is_number_integer() || units[u].get<int64_t>() != h.numel()) {
      return absl::InvalidArgumentError(path + ": unit " + std::to_string(u) +
                                        " size differs from the model's; was this checkpoint made for another model?");
    }
    const std::string file = UnitFile(dir, u);
    SFD_ASSIGN_OR_RETURN(auto st, SafetensorsFile::Open(file));
    float* m = h.m.defined() ? h.m.data_ptr<float>() : nullptr;
    float* v = h.v.defined() ? h.v.data_ptr<float>() : nullptr;
    NvmeStore::Lease lease;
    const bool on_nvme = nvme != nullptr && nvme->on_nvme(u);
    if (on_nvme) {  // read into a staging buffer, then written to the unit's NVMe file
      SFD_ASSIGN_OR_RETURN(lease, nvme->AcquireForWrite(u));
      m = lease.m;
      v = lease.v;
    }
    absl::Status read = absl::OkStatus();
    for (auto [name, dst] : {std::pair<const char*, float*>{"master", h.master.data_ptr<float>()},
                             {"exp_avg", m}, {"exp_avg_sq", v}}) {
      const TensorInfo* t = st->Find(name);
      if (t == nullptr) {
        read = absl::InvalidArgumentError(file + ": missing tensor '" + name + "'");
        break;
      }
      read = st->ReadFloat(*t, absl::Span<float>(dst, h.numel()));
      if (!read.ok()) break;
    }
    if (on_nvme) {
      if (read.ok()) {
        SFD_RETURN_IF_ERROR(nvme->WriteBack(lease));
      } else {
        nvme->Release(lease);
      }
    }
    SFD_RETURN_IF_ERROR(read);
  }
  if (nvme != nullptr) SFD_RETURN_IF_ERROR(nvme->Flush());
  return j["step"].get<int64_t>();
}

}  // namespace sfd
