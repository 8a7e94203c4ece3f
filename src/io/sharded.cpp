#include "llavacot/io/sharded.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::safetensors {

namespace {

constexpr const char* kIndexName = ".safetensors.index.json";

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name.find('\\') == std::string::npos &&
         name != "." && name != "..";
}

std::string join(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

}  // namespace

std::vector<std::string> ShardIndex::shard_files() const {
  std::set<std::string> files;
  for (const auto& [name, file] : weight_map) files.insert(file);
  return {files.begin(), files.end()};
}

ShardIndex read_index(const std::string& path) {
  std::string text = fs::read_file(path);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat(path, ": not valid JSON: ", e.what()));
  }
  if (!root.is_object()) throw FormatError(str_cat(path, ": must be a JSON object"));
  ShardIndex idx;
  if (root.contains("metadata")) {
    const auto& m = root["metadata"];
    if (!m.is_object()) throw FormatError(str_cat(path, ": 'metadata' must be an object"));
    if (m.contains("total_size")) {
      if (!m["total_size"].is_number_unsigned())
        throw FormatError(str_cat(path, ": metadata.total_size must be a non-negative integer"));
      idx.total_size = m["total_size"].get<uint64_t>();
    }
  }
  if (!root.contains("weight_map") || !root["weight_map"].is_object())
    throw FormatError(str_cat(path, ": 'weight_map' must be an object of tensor name -> shard file"));
  for (auto it = root["weight_map"].begin(); it != root["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw FormatError(str_cat(path, ": weight_map['", it.key(), "'] must be a file name string"));
    std::string file = it.value().get<std::string>();
    if (!is_plain_file_name(file))
      throw FormatError(str_cat(path, ": weight_map['", it.key(), "'] = '", file,
                                "' must be a file name in the same folder"));
    idx.weight_map[it.key()] = file;
  }
  return idx;
}

void write_index(const std::string& path, const ShardIndex& index) {
  nlohmann::json root;
  root["metadata"] = {{"total_size", index.total_size}};
  root["weight_map"] = nlohmann::json::object();
  for (const auto& [name, file] : index.weight_map) root["weight_map"][name] = file;
  fs::write_file_atomic(path, root.dump(2) + "\n");
}

uint64_t parse_byte_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 18) throw UsageError(str_cat("'", text, "' is not a size such as 500MB or 5GB"));
  uint64_t n = std::stoull(text.substr(0, i));
  std::string unit = text.substr(i);
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"", 1},           {"B", 1},           {"KB", 1000ULL},  {"MB", 1000000ULL}, {"GB", 1000000000ULL},
      {"TB", 1000000000000ULL}, {"KiB", 1ULL << 10}, {"MiB", 1ULL << 20}, {"GiB", 1ULL << 30}};
  for (const auto& [u, mult] : kUnits)
    if (unit == u) {
      if (n > UINT64_MAX / mult) break;
      return n * mult;
    }
  throw UsageError(str_cat("'", text, "' is not a size such as 500MB or 5GB"));
}

std::vector<std::string> save_sharded(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
                                      const std::map<std::string, std::string>& metadata, const std::string& prefix) {
  std::vector<std::pair<std::string, uint64_t>> entries;
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& nt : tensors) {
    entries.emplace_back(nt.first, static_cast<uint64_t>(nt.second.numel()) * nt.second.element_size());
    by_name[nt.first] = &nt.second;
  }
  return save_sharded(dir, entries, [&](const std::string& name) { return *by_name.at(name); }, max_shard_bytes, metadata,
                      prefix);
}

std::vector<std::string> save_sharded(const std::string& dir, const std::vector<std::pair<std::string, uint64_t>>& entries,
                                      const std::function<at::Tensor(const std::string&)>& get, uint64_t max_shard_bytes,
                                      const std::map<std::string, std::string>& metadata, const std::string& prefix) {
  if (max_shard_bytes == 0) throw UsageError("max shard size must be positive");
  fs::create_dirs(dir);
  // Greedy split in the caller's order: start a new shard when the next tensor would overflow this one.
  std::vector<std::vector<std::string>> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& [name, bytes] : entries) {
    if (!shards.back().empty() && current + bytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(name);
    current += bytes;
    total += bytes;
  }
  std::map<std::string, uint64_t> declared(entries.begin(), entries.end());
  auto make = [&](const std::vector<std::string>& names) {
    NamedTensors out;
    for (const auto& n : names) {
      out.emplace_back(n, get(n));
      const auto bytes = static_cast<uint64_t>(out.back().second.numel()) * out.back().second.element_size();
      LLAVACOT_CHECK(bytes == declared.at(n), UsageError, "save_sharded: ", n, " has ", bytes, " bytes, ", declared.at(n),
                     " were planned");
    }
    return out;
  };
  std::vector<std::string> written;
  if (shards.size() == 1) {
    std::string path = join(dir, prefix + ".safetensors");
    save(path, make(shards[0]), metadata);
    written.push_back(path);
    return written;
  }
  ShardIndex index;
  index.total_size = total;
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    std::string file = prefix + name;
    save(join(dir, file), make(shards[i]), metadata);  // this shard's tensors are released before the next
    written.push_back(join(dir, file));
    for (const auto& n : shards[i]) index.weight_map[n] = file;
  }
  // The index goes last: a reader that finds it finds every shard it names.
  std::string index_path = join(dir, prefix + kIndexName);
  write_index(index_path, index);
  written.push_back(index_path);
  return written;
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    if (!std::filesystem::exists(path, ec)) throw IoError(str_cat("'", path, "' does not exist"));
    File f = File::open(path);
    for (const auto& t : f.header().tensors) c.where_[t.name] = path;
    c.shards_.emplace(path, std::move(f));
    return c;
  }
  std::string index_path = join(path, std::string("model") + kIndexName);
  std::string single = join(path, "model.safetensors");
  if (std::filesystem::exists(index_path, ec)) {
    ShardIndex idx = read_index(index_path);
    uint64_t total = 0;
    for (const auto& file : idx.shard_files()) {
      std::string shard_path = join(path, file);
      File f;
      try {
        f = File::open(shard_path);
      } catch (const Error&) {
        rethrow_with_context(str_cat("shard listed in ", index_path));
      }
      for (const auto& t : f.header().tensors) {
        auto it = idx.weight_map.find(t.name);
        if (it == idx.weight_map.end())
          throw FormatError(str_cat(shard_path, ": tensor '", t.name, "' is not in ", index_path));
        if (it->second != file)
          throw FormatError(str_cat(shard_path, ": tensor '", t.name, "' is also in this shard, but ", index_path,
                                    " places it in ", it->second));
        c.where_[t.name] = shard_path;
        total += t.n_bytes();
      }
      c.shards_.emplace(shard_path, std::move(f));
    }
    for (const auto& [name, file] : idx.weight_map)
      if (!c.where_.count(name))
        throw FormatError(str_cat(index_path, ": tensor '", name, "' is missing from shard ", file));
    if (idx.total_size != 0 && idx.total_size != total)
      LOG_WARN("io", index_path, ": metadata.total_size is ", idx.total_size, " but the shards hold ", total,
               " bytes of tensors");
    return c;
  }
  if (std::filesystem::exists(single, ec)) return open(single);
  throw IoError(str_cat("'", path, "' holds neither model.safetensors nor model.safetensors.index.json"));
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw UsageError(str_cat("checkpoint has no tensor named '", name, "'"));
  return shards_.at(it->second).info(name);
}

at::Tensor Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw UsageError(str_cat("checkpoint has no tensor named '", name, "'"));
  return shards_.at(it->second).get(name);
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> out;
  for (const auto& [path, f] : shards_) out.push_back(path);
  return out;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [path, f] : shards_)
    for (const auto& t : f.header().tensors) total += t.n_bytes();
  return total;
}

}  // namespace llavacot::safetensors
