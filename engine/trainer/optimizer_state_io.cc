#include "engine/trainer/optimizer_state_io.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>

#include "engine/common/status.h"
#include "engine/io/dtype.h"
#include "engine/io/safetensors.h"
#include "engine/optim/adamw_8bit.h"
#include "nlohmann/json.hpp"

namespace sfd {
namespace {

std::string UnitFile(const std::string& dir, int u) {
  char name[64];
  std::snprintf(name, sizeof(name), "/optimizer/unit-%05d.safetensors", u);
  return dir + name;
}

// Tensors of a unit with 8-bit moments (optim/adamw_8bit.h): codes and per-block scales.
constexpr const char* kExpAvgQ8 = "exp_avg.q8";
constexpr const char* kExpAvgScale = "exp_avg.scale";
constexpr const char* kExpAvgSqQ8 = "exp_avg_sq.q8";            // codes of sqrt(exp_avg_sq)
constexpr const char* kExpAvgSqScale = "exp_avg_sq.sqrt_scale";

absl::StatusOr<const TensorInfo*> FindTensor(const SafetensorsFile& f, const char* name, DType dtype,
                                             int64_t numel) {
  const TensorInfo* t = f.Find(name);
  if (t == nullptr) return absl::InvalidArgumentError(f.path() + ": missing tensor '" + name + "'");
  if (t->dtype != dtype || t->numel() != numel) {
    return absl::InvalidArgumentError(f.path() + ": tensor '" + name + "' is " +
                                      std::string(DTypeName(t->dtype)) + " " + ShapeString(t->shape) +
                                      ", expected " + std::string(DTypeName(dtype)) + " [" +
                                      std::to_string(numel) + "]");
  }
  return t;
}

// A unit's 8-bit moments from `f`: its codes when it has them, else its fp32 moments
// re-encoded (stochastic rounding seeded by the checkpoint's step), in block-aligned pieces.
absl::Status ReadQ8Moments(const SafetensorsFile& f, HostUnit* h, int u, int64_t step) {
  const int64_t n = h->numel();
  const Q8Moments q = h->q8();
  if (f.Find(kExpAvgQ8) != nullptr) {
    for (auto [name, dst, numel, dtype] :
         {std::tuple<const char*, void*, int64_t, DType>{kExpAvgQ8, q.m, n, DType::kU8},
          {kExpAvgScale, q.m_scale, Q8Blocks(n), DType::kF32},
          {kExpAvgSqQ8, q.v, n, DType::kU8},
          {kExpAvgSqScale, q.v_scale, Q8Blocks(n), DType::kF32}}) {
      SFD_ASSIGN_OR_RETURN(const TensorInfo* t, FindTensor(f, name, dtype, numel));
      const absl::Span<const uint8_t> bytes = f.Bytes(*t);
      std::memcpy(dst, bytes.data(), bytes.size());
    }
    return absl::OkStatus();
  }
  const TensorInfo* tm = f.Find("exp_avg");
  const TensorInfo* tv = f.Find("exp_avg_sq");
  for (const TensorInfo* t : {tm, tv}) {
    if (t == nullptr || !IsFloatDType(t->dtype) || t->numel() != n) {
      return absl::InvalidArgumentError(f.path() + ": needs exp_avg and exp_avg_sq (float [" +
                                        std::to_string(n) + "]) or their 8-bit codes");
    }
  }
  constexpr int64_t kPiece = kQ8Block * 16384;
  std::vector<float> m(std::min(n, kPiece)), v(std::min(n, kPiece));
  const size_t es = DTypeSize(tm->dtype), vs = DTypeSize(tv->dtype);
  for (int64_t off = 0; off < n; off += kPiece) {
    const int64_t c = std::min(kPiece, n - off);
    ConvertToFloat(tm->dtype, f.Bytes(*tm).data() + off * es, c, m.data());
    ConvertToFloat(tv->dtype, f.Bytes(*tv).data() + off * vs, c, v.data());
    QuantizeQ8(m.data(), v.data(), Q8Seed(step, u), q.At(off), c, off);
  }
  return absl::OkStatus();
}

// Everything ReadOptimizerState will read from unit file `f` for `h`, checked before any unit is
// read: the master, and the moments in a form the unit can take (fp32, or 8-bit codes).
absl::Status CheckUnitFile(const SafetensorsFile& f, const HostUnit& h) {
  const int64_t n = h.numel();
  auto float_tensor = [&](const char* name) -> absl::Status {
    const TensorInfo* t = f.Find(name);
    if (t == nullptr) return absl::InvalidArgumentError(f.path() + ": missing tensor '" + name + "'");
    if (!IsFloatDType(t->dtype) || t->numel() != n) {
      return absl::InvalidArgumentError(f.path() + ": tensor '" + name + "' is " + std::string(DTypeName(t->dtype)) +
                                        " " + ShapeString(t->shape) + ", expected float [" + std::to_string(n) + "]");
    }
    return absl::OkStatus();
  };
  SFD_RETURN_IF_ERROR(float_tensor("master"));
  if (f.Find(kExpAvgQ8) != nullptr) {  // 8-bit codes: read as such, or decoded for fp32 moments
    for (auto [name, dtype, numel] : {std::tuple<const char*, DType, int64_t>{kExpAvgQ8, DType::kU8, n},
                                      {kExpAvgScale, DType::kF32, Q8Blocks(n)},
                                      {kExpAvgSqQ8, DType::kU8, n},
                                      {kExpAvgSqScale, DType::kF32, Q8Blocks(n)}}) {
      SFD_RETURN_IF_ERROR(FindTensor(f, name, dtype, numel).status());
    }
    return absl::OkStatus();
  }
  SFD_RETURN_IF_ERROR(float_tensor("exp_avg"));
  return float_tensor("exp_avg_sq");
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
    const float* m = h.m.defined() && !h.moments_8bit() ? h.m.data_ptr<float>() : nullptr;
    const float* v = h.v.defined() && !h.moments_8bit() ? h.v.data_ptr<float>() : nullptr;
    NvmeStore::Lease lease;
    const bool on_nvme = nvme != nullptr && nvme->on_nvme(u);
    if (on_nvme) {  // written straight from the staging buffer
      SFD_ASSIGN_OR_RETURN(lease, nvme->Acquire(u));
      m = lease.m;
      v = lease.v;
    }
    std::vector<TensorToWrite> t{{"master", DType::kF32, shape, h.master.data_ptr<float>()}};
    if (h.moments_8bit()) {  // the codes as they are: a resume continues bit for bit
      const Q8Moments q = h.q8();
      const std::vector<int64_t> blocks{Q8Blocks(h.numel())};
      t.push_back({kExpAvgQ8, DType::kU8, shape, q.m});
      t.push_back({kExpAvgScale, DType::kF32, blocks, q.m_scale});
      t.push_back({kExpAvgSqQ8, DType::kU8, shape, q.v});
      t.push_back({kExpAvgSqScale, DType::kF32, blocks, q.v_scale});
    } else {
      t.push_back({"exp_avg", DType::kF32, shape, m});
      t.push_back({"exp_avg_sq", DType::kF32, shape, v});
    }
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
                                           std::vector<HostUnit>* host, NvmeStore* nvme, bool* modified) {
  if (modified != nullptr) *modified = false;
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
  // Every unit's file is opened and checked before any is read, so that a bad checkpoint leaves
  // the arenas as they were.
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  for (int u = 0; u < layout.num_units(); ++u) {
    if (!units[u].is_number_integer() || units[u].get<int64_t>() != (*host)[u].numel()) {
      return absl::InvalidArgumentError(path + ": unit " + std::to_string(u) +
                                        " size differs from the model's; was this checkpoint made for another model?");
    }
    SFD_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(UnitFile(dir, u)));
    SFD_RETURN_IF_ERROR(CheckUnitFile(*file, (*host)[u]));
    files.push_back(std::move(file));
  }
  if (modified != nullptr) *modified = true;
  for (int u = 0; u < layout.num_units(); ++u) {
    HostUnit& h = (*host)[u];
    const std::string file = UnitFile(dir, u);
    const SafetensorsFile* st = files[u].get();
    float* m = h.m.defined() && !h.moments_8bit() ? h.m.data_ptr<float>() : nullptr;
    float* v = h.v.defined() && !h.moments_8bit() ? h.v.data_ptr<float>() : nullptr;
    NvmeStore::Lease lease;
    const bool on_nvme = nvme != nullptr && nvme->on_nvme(u);
    if (on_nvme) {  // read into a staging buffer, then written to the unit's NVMe file
      SFD_ASSIGN_OR_RETURN(lease, nvme->AcquireForWrite(u));
      m = lease.m;
      v = lease.v;
    }
    absl::Status read = absl::OkStatus();
    const bool file_q8 = st->Find(kExpAvgQ8) != nullptr;
    std::vector<std::pair<const char*, float*>> floats{{"master", h.master.data_ptr<float>()}};
    if (!h.moments_8bit() && !file_q8) {
      floats.push_back({"exp_avg", m});
      floats.push_back({"exp_avg_sq", v});
    }
    for (auto [name, dst] : floats) {
      const TensorInfo* t = st->Find(name);
      if (t == nullptr) {
        read = absl::InvalidArgumentError(file + ": missing tensor '" + name + "'");
        break;
      }
      read = st->ReadFloat(*t, absl::Span<float>(dst, h.numel()));
      if (!read.ok()) break;
    }
    if (read.ok() && h.moments_8bit()) {
      read = ReadQ8Moments(*st, &h, u, j["step"].get<int64_t>());
    } else if (read.ok() && file_q8) {  // 8-bit checkpoint, fp32 moments: decode
      HostUnit tmp;
      tmp.master = h.master;
      tmp.m = at::empty({h.numel()}, at::kByte);
      tmp.v = at::empty({h.numel()}, at::kByte);
      tmp.m_scale = at::empty({Q8Blocks(h.numel())}, at::kFloat);
      tmp.v_scale = at::empty({Q8Blocks(h.numel())}, at::kFloat);
      read = ReadQ8Moments(*st, &tmp, u, j["step"].get<int64_t>());
      if (read.ok()) DequantizeQ8(tmp.q8(), m, v, h.numel());
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
