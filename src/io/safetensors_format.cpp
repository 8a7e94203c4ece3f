#include "llavacot/io/safetensors_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "llavacot/util/error.h"

namespace llavacot::safetensors {

namespace {

struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
  int write_rank;  // the reference writer's dtype order (larger first when sorting descending)
};

constexpr DTypeRow kDTypes[] = {
    {DType::kBool, "BOOL", 1, 0},    {DType::kU8, "U8", 1, 1},           {DType::kI8, "I8", 1, 2},
    {DType::kF8E5M2, "F8_E5M2", 1, 3}, {DType::kF8E4M3, "F8_E4M3", 1, 4}, {DType::kI16, "I16", 2, 5},
    {DType::kU16, "U16", 2, 6},      {DType::kF16, "F16", 2, 7},         {DType::kBF16, "BF16", 2, 8},
    {DType::kI32, "I32", 4, 9},      {DType::kU32, "U32", 4, 10},        {DType::kF32, "F32", 4, 11},
    {DType::kF64, "F64", 8, 12},     {DType::kI64, "I64", 8, 13},        {DType::kU64, "U64", 8, 14},
};

const DTypeRow& row(DType d) {
  for (const auto& r : kDTypes)
    if (r.dtype == d) return r;
  throw UsageError("invalid safetensors dtype enum value");
}

// Deep nesting could exhaust the stack of a recursive consumer; a valid header nests 3 levels.
constexpr int kMaxDepth = 16;

void check_nesting(const char* json, size_t n, const std::string& source) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    char c = json[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > kMaxDepth)
        throw FormatError(str_cat(source, ": safetensors header nests deeper than ", kMaxDepth, " levels"));
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

uint64_t as_u64(const nlohmann::json& v, const std::string& source, const std::string& what) {
  if (!v.is_number_unsigned())
    throw FormatError(str_cat(source, ": ", what, " must be a non-negative integer, got ", v.dump()));
  return v.get<uint64_t>();
}

}  // namespace

const char* dtype_name(DType dtype) { return row(dtype).name; }
size_t dtype_size(DType dtype) { return row(dtype).size; }

std::optional<DType> parse_dtype(const std::string& name) {
  for (const auto& r : kDTypes)
    if (name == r.name) return r.dtype;
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Header::find(const std::string& name) const {
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

uint64_t parse_header_length(const unsigned char* prefix8, uint64_t file_size, const std::string& source) {
  if (file_size < 8)
    throw FormatError(str_cat(source, ": file is ", file_size, " bytes, too short for a safetensors header"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix8[i];
  if (n > kMaxHeaderBytes)
    throw FormatError(str_cat(source, ": header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes"));
  if (n > file_size - 8)
    throw FormatError(str_cat(source, ": header length ", n, " runs past the end of the file (", file_size,
                              " bytes); the file is truncated or not safetensors"));
  if (n < 2) throw FormatError(str_cat(source, ": header length ", n, " is too small to hold a JSON object"));
  return n;
}

Header parse_header_json(const char* json, size_t json_size, uint64_t data_size, const std::string& source) {
  if (json_size == 0 || json[0] != '{')
    throw FormatError(str_cat(source, ": safetensors header does not start with '{'"));
  check_nesting(json, json_size, source);

  // Duplicate top-level names would silently shadow each other in a JSON object: refuse them.
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t event,
                                             nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json, json + json_size, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat(source, ": safetensors header is not valid JSON: ", e.what()));
  }
  if (!duplicate.empty()) throw FormatError(str_cat(source, ": tensor name '", duplicate, "' appears twice"));
  if (!root.is_object()) throw FormatError(str_cat(source, ": safetensors header must be a JSON object"));

  Header h;
  h.data_size = data_size;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& entry = it.value();
    if (name == "__metadata__") {
      if (entry.is_null()) continue;
      if (!entry.is_object()) throw FormatError(str_cat(source, ": __metadata__ must be an object of strings"));
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          throw FormatError(str_cat(source, ": __metadata__['", m.key(), "'] must be a string"));
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string ctx = str_cat("tensor '", name, "'");
    if (!entry.is_object()) throw FormatError(str_cat(source, ": ", ctx, " must be an object"));
    for (const char* required : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(required)) throw FormatError(str_cat(source, ": ", ctx, " has no '", required, "'"));

    TensorInfo t;
    t.name = name;
    const auto& dt = entry["dtype"];
    if (!dt.is_string()) throw FormatError(str_cat(source, ": ", ctx, ": dtype must be a string"));
    auto parsed = parse_dtype(dt.get<std::string>());
    if (!parsed) throw FormatError(str_cat(source, ": ", ctx, ": unknown dtype '", dt.get<std::string>(), "'"));
    t.dtype = *parsed;

    const auto& shape = entry["shape"];
    if (!shape.is_array()) throw FormatError(str_cat(source, ": ", ctx, ": shape must be an array"));
    // numel * element size must fit in 64 bits; checked as we go.
    uint64_t n_bytes = dtype_size(t.dtype);
    bool overflow = false;
    for (const auto& d : shape) {
      uint64_t dim = as_u64(d, source, ctx + ": shape entry");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw FormatError(str_cat(source, ": ", ctx, ": shape entry ", dim, " is too large"));
      if (dim != 0 && n_bytes > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      n_bytes = overflow ? 0 : n_bytes * dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    if (overflow) throw FormatError(str_cat(source, ": ", ctx, ": shape ", shape.dump(), " overflows"));
    if (std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end()) n_bytes = 0;

    const auto& offs = entry["data_offsets"];
    if (!offs.is_array() || offs.size() != 2)
      throw FormatError(str_cat(source, ": ", ctx, ": data_offsets must be [begin, end]"));
    t.begin = as_u64(offs[0], source, ctx + ": data_offsets[0]");
    t.end = as_u64(offs[1], source, ctx + ": data_offsets[1]");
    if (t.end < t.begin)
      throw FormatError(str_cat(source, ": ", ctx, ": data_offsets [", t.begin, ", ", t.end, "] end before begin"));
    if (t.end > data_size)
      throw FormatError(str_cat(source, ": ", ctx, ": data_offsets [", t.begin, ", ", t.end,
                                "] run past the data buffer (", data_size, " bytes); the file is truncated?"));
    if (t.end - t.begin != n_bytes)
      throw FormatError(str_cat(source, ": ", ctx, ": ", dtype_name(t.dtype), " shape ", shape.dump(), " needs ",
                                n_bytes, " bytes but data_offsets span ", t.end - t.begin));
    h.tensors.push_back(std::move(t));
  }

  // Offsets must tile the buffer: sorted by begin, each starts where the previous ended.
  std::stable_sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expect = 0;
  for (const auto& t : h.tensors) {
    if (t.begin < expect)
      throw FormatError(str_cat(source, ": tensor '", t.name, "' at [", t.begin, ", ", t.end,
                                ") overlaps the previous tensor (which ends at ", expect, ")"));
    if (t.begin > expect)
      throw FormatError(str_cat(source, ": gap in the data buffer before tensor '", t.name, "' (bytes ", expect,
                                " to ", t.begin, " belong to no tensor)"));
    expect = t.end;
  }
  if (expect != data_size)
    throw FormatError(str_cat(source, ": the data buffer has ", data_size, " bytes but the tensors cover ", expect));
  return h;
}

Header parse_file_image(const unsigned char* bytes, size_t size, const std::string& source) {
  uint64_t n = parse_header_length(bytes, size, source);
  Header h = parse_header_json(reinterpret_cast<const char*>(bytes) + 8, n, size - 8 - n, source);
  h.data_start = 8 + n;
  return h;
}

std::string serialize_header(const std::vector<TensorInfo>& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    root["__metadata__"] = m;
  }
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") throw UsageError("a tensor may not be named '__metadata__'");
    if (root.contains(t.name)) throw UsageError(str_cat("tensor name '", t.name, "' given twice"));
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = dtype_name(t.dtype);
    e["shape"] = t.shape;
    e["data_offsets"] = {t.begin, t.end};
    root[t.name] = e;
  }
  std::string s = root.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::strict);
  // Pad so that 8 + N is a multiple of 8: the data then starts aligned for every dtype.
  s.append((8 - s.size() % 8) % 8, ' ');
  return s;
}

void sort_for_writing(std::vector<TensorInfo>& tensors) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    int ra = row(a.dtype).write_rank, rb = row(b.dtype).write_rank;
    return ra != rb ? ra > rb : a.name < b.name;
  });
}

}  // namespace llavacot::safetensors
