// The safetensors container format, without LibTorch: dtypes, header parsing and validation, header
// serialisation. Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON (padded with spaces
// so the data starts 8-byte aligned), then the data buffer. Every tensor entry gives dtype, shape and
// [begin, end) offsets into the buffer. Files are untrusted: every check below fails with a FormatError
// naming the source, never with undefined behaviour. This file is also what the header fuzzer links.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace llavacot::safetensors {

/// Element types of the format. The first ten are the ones the issue tracker requires; the unsigned and
/// float8 types are read and written as well since LibTorch has them.
enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool, kU16, kU32, kU64, kF8E4M3, kF8E5M2 };

/// The format's name for a dtype ("F32", "BF16", "BOOL", ...).
const char* dtype_name(DType dtype);
/// Bytes per element.
size_t dtype_size(DType dtype);
/// Parses a format dtype name; nullopt when unknown.
std::optional<DType> parse_dtype(const std::string& name);

/// One tensor's entry in the header. Offsets are relative to the start of the data buffer.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // first byte
  uint64_t end = 0;    // one past the last byte

  uint64_t n_bytes() const { return end - begin; }
  int64_t numel() const;
};

/// A parsed and validated header.
struct Header {
  std::vector<TensorInfo> tensors;              // sorted by data offset
  std::map<std::string, std::string> metadata;  // the optional "__metadata__" map
  uint64_t data_start = 0;                      // file offset of the data buffer (8 + N)
  uint64_t data_size = 0;                       // bytes in the data buffer

  /// Index into `tensors` of a name, or -1.
  int64_t find(const std::string& name) const;
};

/// Largest header accepted (the reference implementation's limit).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

/// Reads the 8-byte length prefix and checks it against the limit and the file size.
uint64_t parse_header_length(const unsigned char* prefix8, uint64_t file_size, const std::string& source);

/// Parses and validates the JSON header text of a file whose data buffer holds `data_size` bytes.
/// Checks: JSON syntax, nesting depth, a top-level object, duplicate names, known dtypes, non-negative
/// shapes without overflow, offsets in range, byte counts equal to shape x element size, and offsets that
/// tile the buffer exactly (no gaps, no overlaps, nothing past the end).
Header parse_header_json(const char* json, size_t json_size, uint64_t data_size, const std::string& source);

/// Parses a complete file image (prefix, header, data) held in memory.
Header parse_file_image(const unsigned char* bytes, size_t size, const std::string& source);

/// Header bytes as the reference writer makes them: compact JSON, "__metadata__" first, then tensors in
/// the given order, padded with spaces to a multiple of 8 bytes. Offsets must already be assigned.
std::string serialize_header(const std::vector<TensorInfo>& tensors, const std::map<std::string, std::string>& metadata);

/// The reference writer's tensor order: larger dtypes first (so every tensor stays aligned), then by name.
void sort_for_writing(std::vector<TensorInfo>& tensors);

}  // namespace llavacot::safetensors
