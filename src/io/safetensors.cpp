#include "llavacot/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <torch/torch.h>

#include <cerrno>
#include <cstring>

#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"

namespace llavacot::safetensors {

/// A private (copy-on-write) mapping of a whole file: tensors may be modified in place without ever
/// touching the file.
class Mapping {
 public:
  explicit Mapping(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw IoError(str_cat("cannot open '", path, "': ", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw IoError(str_cat("cannot stat '", path, "': ", std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw IoError(str_cat("'", path, "' is not a regular file"));
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) throw IoError(str_cat("cannot map '", path, "': ", std::strerror(errno)));
    data_ = static_cast<unsigned char*>(p);
  }
  ~Mapping() {
    if (data_ != nullptr) ::munmap(data_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  unsigned char* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  unsigned char* data_ = nullptr;
  uint64_t size_ = 0;
};

namespace {

struct TorchRow {
  DType dtype;
  at::ScalarType scalar;
};

const TorchRow kTorchDTypes[] = {
    {DType::kF64, at::kDouble},   {DType::kF32, at::kFloat},  {DType::kF16, at::kHalf},
    {DType::kBF16, at::kBFloat16}, {DType::kI64, at::kLong},  {DType::kI32, at::kInt},
    {DType::kI16, at::kShort},    {DType::kI8, at::kChar},    {DType::kU8, at::kByte},
    {DType::kBool, at::kBool},    {DType::kU16, at::kUInt16}, {DType::kU32, at::kUInt32},
    {DType::kU64, at::kUInt64},   {DType::kF8E4M3, at::kFloat8_e4m3fn}, {DType::kF8E5M2, at::kFloat8_e5m2},
};

void check_bool_bytes(const unsigned char* p, uint64_t n, const std::string& source, const std::string& name) {
  for (uint64_t i = 0; i < n; ++i)
    if (p[i] > 1)
      throw FormatError(str_cat(source, ": BOOL tensor '", name, "' holds byte ", static_cast<int>(p[i]),
                                " at element ", i, " (only 0 and 1 are valid)"));
}

}  // namespace

DType dtype_from_torch(int scalar_type) {
  for (const auto& r : kTorchDTypes)
    if (static_cast<int>(r.scalar) == scalar_type) return r.dtype;
  throw UsageError(str_cat("dtype ", c10::toString(static_cast<at::ScalarType>(scalar_type)),
                           " cannot be stored in safetensors"));
}

int dtype_to_torch(DType dtype) {
  for (const auto& r : kTorchDTypes)
    if (r.dtype == dtype) return static_cast<int>(r.scalar);
  throw UsageError("unmapped safetensors dtype");
}

File File::open(const std::string& path) {
  File f;
  f.path_ = path;
  f.mapping_ = std::make_shared<Mapping>(path);
  static const unsigned char kEmpty[8] = {0};
  const unsigned char* base = f.mapping_->data() != nullptr ? f.mapping_->data() : kEmpty;
  f.header_ = parse_file_image(base, f.mapping_->size(), path);
  return f;
}

std::vector<std::string> File::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& t : header_.tensors) out.push_back(t.name);
  return out;
}

const TensorInfo& File::info(const std::string& name) const {
  int64_t i = header_.find(name);
  if (i < 0) throw UsageError(str_cat(path_, ": no tensor named '", name, "'"));
  return header_.tensors[static_cast<size_t>(i)];
}

bool File::is_zero_copy(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (t.n_bytes() == 0) return false;
  auto addr = reinterpret_cast<uintptr_t>(mapping_->data() + header_.data_start + t.begin);
  return addr % dtype_size(t.dtype) == 0;
}

at::Tensor File::get(const std::string& name) const {
  const TensorInfo& t = info(name);
  auto options = at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype_to_torch(t.dtype)));
  if (t.n_bytes() == 0) return at::empty(t.shape, options);
  unsigned char* p = mapping_->data() + header_.data_start + t.begin;
  if (t.dtype == DType::kBool) check_bool_bytes(p, t.n_bytes(), path_, name);
  if (is_zero_copy(name)) {
    std::shared_ptr<Mapping> keep = mapping_;
    return torch::from_blob(p, t.shape, [keep](void*) mutable { keep.reset(); }, options);
  }
  at::Tensor out = at::empty(t.shape, options);
  std::memcpy(out.data_ptr(), p, t.n_bytes());
  return out;
}

void save(const std::string& path, const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  std::vector<TensorInfo> infos;
  infos.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) throw UsageError(str_cat("tensor '", name, "' is undefined"));
    TensorInfo info;
    info.name = name;
    info.dtype = dtype_from_torch(static_cast<int>(tensor.scalar_type()));
    info.shape = tensor.sizes().vec();
    infos.push_back(std::move(info));
  }
  // Order as the reference writer does (larger dtypes first, then by name), then assign contiguous offsets.
  std::vector<TensorInfo> ordered = infos;
  sort_for_writing(ordered);
  std::map<std::string, size_t> index;  // name -> position in `tensors`
  for (size_t i = 0; i < infos.size(); ++i)
    if (!index.emplace(infos[i].name, i).second)
      throw UsageError(str_cat("tensor name '", infos[i].name, "' given twice"));
  std::vector<size_t> order;
  uint64_t offset = 0;
  for (auto& t : ordered) {
    order.push_back(index.at(t.name));
    t.begin = offset;
    offset += static_cast<uint64_t>(tensors[order.back()].second.numel()) * dtype_size(t.dtype);
    t.end = offset;
  }
  std::string header = serialize_header(ordered, metadata);
  fs::AtomicFile out(path);
  unsigned char prefix[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  out.write(prefix, 8);
  out.write(header);
  for (size_t i : order) {
    at::Tensor c = tensors[i].second.detach().to(at::kCPU).contiguous();
    out.write(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  out.commit();
}

NamedTensors load_all(const std::string& path) {
  File f = File::open(path);
  NamedTensors out;
  for (const auto& t : f.header().tensors) out.emplace_back(t.name, f.get(t.name));
  return out;
}

}  // namespace llavacot::safetensors
