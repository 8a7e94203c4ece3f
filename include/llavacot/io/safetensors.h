// Reading and writing safetensors files as LibTorch tensors.
// Reading memory-maps the file (private, copy-on-write) and hands out tensors that point into the
// mapping whenever their bytes are aligned for their dtype (the normal case); the mapping lives as long
// as any tensor from it. Writing goes through a temporary file renamed into place.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "llavacot/io/safetensors_format.h"

namespace at {
class Tensor;
}

namespace llavacot::safetensors {

class Mapping;

/// An open safetensors file. Cheap to copy (shares the mapping).
class File {
 public:
  /// Maps and validates `path`; throws IoError (cannot open/map) or FormatError (malformed).
  static File open(const std::string& path);

  const std::string& path() const { return path_; }
  const Header& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  /// Names in data-offset order.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return header_.find(name) >= 0; }
  /// Entry for `name`; throws UsageError naming the file when absent.
  const TensorInfo& info(const std::string& name) const;
  /// The tensor (CPU). Zero-copy when aligned, else copied. BOOL bytes other than 0/1 are a FormatError.
  at::Tensor get(const std::string& name) const;
  /// True when get(name) would not copy.
  bool is_zero_copy(const std::string& name) const;

 private:
  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  Header header_;
};

/// Named tensors in the order the caller wants to refer to them.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// Writes `tensors` (any device, any layout; copied to contiguous CPU) to `path` atomically, in the
/// reference writer's order and header layout. Throws UsageError for unsupported dtypes or duplicate names.
void save(const std::string& path, const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});

/// Reads every tensor of a file (zero-copy where aligned).
NamedTensors load_all(const std::string& path);

/// Format dtype of a LibTorch dtype (passed as at::ScalarType's integer value); throws UsageError if none.
DType dtype_from_torch(int scalar_type);
/// LibTorch dtype (as at::ScalarType's integer value) of a format dtype.
int dtype_to_torch(DType dtype);

}  // namespace llavacot::safetensors
