#include "llavacot/data/llava_cot.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace llavacot::data {

const char* reason_name(BadReason reason) {
  switch (reason) {
    case BadReason::kMalformedJson: return "malformed_json";
    case BadReason::kMissingField: return "missing_field";
    case BadReason::kBadTurns: return "bad_turns";
    case BadReason::kEmptyTurn: return "empty_turn";
    case BadReason::kStages: return "stages";
    case BadReason::kTextOnly: return "text_only";
    case BadReason::kImagePath: return "image_path";
    case BadReason::kImageMissing: return "image_missing";
    case BadReason::kImageCorrupt: return "image_corrupt";
    case BadReason::kTooLong: return "too_long";
  }
  return "unknown";
}

BadRecord::BadRecord(BadReason reason, int64_t line, std::string id, const std::string& detail,
                     const std::string& file)
    : FormatError(str_cat(file.empty() ? "line " : file + ":", line, id.empty() ? "" : str_cat(" (id ", id, ")"), ": ", reason_name(reason), ": ",
                          detail)),
      reason_(reason),
      line_(line),
      id_(std::move(id)),
      detail_(detail) {}

namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string check_stages(std::string_view answer) {
  static const std::array<const char*, 4> kStages = {"SUMMARY", "CAPTION", "REASONING", "CONCLUSION"};
  size_t pos = 0;
  for (const char* stage : kStages) {
    const std::string open = str_cat("<", stage, ">"), close = str_cat("</", stage, ">");
    const size_t at = answer.find(open, pos);
    if (at == std::string_view::npos) return str_cat(open, " is missing or out of order");
    if (!trim(answer.substr(pos, at - pos)).empty()) return str_cat("text before ", open);
    const size_t end = answer.find(close, at + open.size());
    if (end == std::string_view::npos) return str_cat(open, " is not closed");
    const auto body = answer.substr(at + open.size(), end - at - open.size());
    if (trim(body).empty()) return str_cat(open, " is empty");
    for (const char* other : kStages)
      if (body.find(str_cat("<", other, ">")) != std::string_view::npos)
        return str_cat("<", other, "> inside ", open);
    pos = end + close.size();
  }
  if (!trim(answer.substr(pos)).empty()) return "text after </CONCLUSION>";
  return "";
}

std::string strip_image_placeholders(std::string_view text) {
  static constexpr std::string_view kTag = "<image>";
  auto s = trim(text);
  while (s.substr(0, kTag.size()) == kTag) s = trim(s.substr(kTag.size()));
  while (s.size() >= kTag.size() && s.substr(s.size() - kTag.size()) == kTag) s = trim(s.substr(0, s.size() - kTag.size()));
  return std::string(s);
}

std::string resolve_image_path(const std::string& root, const std::string& image, int64_t line, const std::string& id) {
  std::filesystem::path rel(image);
  if (rel.is_absolute() || image.empty() || image[0] == '/' || image[0] == '~')
    throw BadRecord(BadReason::kImagePath, line, id, str_cat("image path '", image, "' is not relative to the image root"));
  for (const auto& part : rel)
    if (part == "..") throw BadRecord(BadReason::kImagePath, line, id, str_cat("image path '", image, "' leaves the image root"));
  return (std::filesystem::path(root) / rel).lexically_normal().string();
}

struct JsonlIndex::Map {
  const char* data = nullptr;
  size_t size = 0;
  ~Map() {
    if (data && size) ::munmap(const_cast<char*>(data), size);
  }
};

JsonlIndex JsonlIndex::build(const std::string& path) {
  JsonlIndex idx;
  idx.path_ = path;
  idx.map_ = std::make_shared<Map>();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(str_cat("cannot open '", path, "': ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(str_cat("'", path, "' is not a regular file"));
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw IoError(str_cat("cannot map '", path, "': ", std::strerror(errno)));
    }
    ::madvise(p, size, MADV_SEQUENTIAL);
    idx.map_->data = static_cast<const char*>(p);
    idx.map_->size = size;
  }
  ::close(fd);
  const char* data = idx.map_->data;
  size_t start = 0;
  int64_t line = 1;
  while (start < size) {
    const void* nl = std::memchr(data + start, '\n', size - start);
    const size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - data) : size;
    size_t len = end - start;
    if (len > 0 && data[start + len - 1] == '\r') --len;
    if (!trim(std::string_view(data + start, len)).empty()) {
      if (len > UINT32_MAX) throw FormatError(str_cat(path, ":", line, ": line longer than 4 GB"));
      idx.starts_.push_back(start);
      idx.lengths_.push_back(static_cast<uint32_t>(len));
      idx.line_numbers_.push_back(line);
    }
    start = end + 1;
    ++line;
  }
  return idx;
}

std::string_view JsonlIndex::text(size_t i) const {
  LLAVACOT_CHECK(i < starts_.size(), UsageError, "record ", i, " out of range (", starts_.size(), " records)");
  return {map_->data + starts_[i], lengths_[i]};
}

LlavaCotReader::LlavaCotReader(const std::string& jsonl_path, ReaderOptions options)
    : index_(JsonlIndex::build(jsonl_path)), options_(std::move(options)) {}

Record LlavaCotReader::get(size_t i) const {
  try {
    return parse(i);
  } catch (const BadRecord& bad) {
    throw BadRecord(bad.reason(), bad.line(), bad.id(), bad.detail(), index_.path());  // name the file too
  }
}

Record LlavaCotReader::parse(size_t i) const {
  Record r;
  r.line = index_.line_number(i);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(index_.text(i));
  } catch (const nlohmann::json::exception& e) {
    throw BadRecord(BadReason::kMalformedJson, r.line, "", e.what());
  }
  if (!j.is_object()) throw BadRecord(BadReason::kMalformedJson, r.line, "", "not a JSON object");
  if (auto it = j.find("id"); it != j.end() && it->is_string())
    r.id = it->get<std::string>();
  else if (it != j.end() && it->is_number())
    r.id = it->dump();
  else
    throw BadRecord(BadReason::kMissingField, r.line, "", "no string or number \"id\"");
  auto conv = j.find("conversations");
  if (conv == j.end() || !conv->is_array())
    throw BadRecord(BadReason::kMissingField, r.line, r.id, "no \"conversations\" array");
  for (size_t t = 0; t < conv->size(); ++t) {
    const auto& turn = (*conv)[t];
    const auto from = turn.is_object() ? turn.find("from") : turn.end();
    const auto value = turn.is_object() ? turn.find("value") : turn.end();
    if (!turn.is_object() || from == turn.end() || !from->is_string() || value == turn.end() || !value->is_string())
      throw BadRecord(BadReason::kBadTurns, r.line, r.id, str_cat("turn ", t, " needs string \"from\" and \"value\""));
    const auto who = from->get<std::string>();
    const char* expected = t % 2 == 0 ? "human" : "gpt";
    if (who != expected)
      throw BadRecord(BadReason::kBadTurns, r.line, r.id, str_cat("turn ", t, " is from '", who, "', expected ", expected));
    Turn out{who, who == "human" ? strip_image_placeholders(value->get<std::string>()) : value->get<std::string>()};
    if (trim(out.value).empty()) throw BadRecord(BadReason::kEmptyTurn, r.line, r.id, str_cat("turn ", t, " is empty"));
    if (who == "gpt")
      if (auto problem = check_stages(out.value); !problem.empty())
        throw BadRecord(BadReason::kStages, r.line, r.id, str_cat("turn ", t, ": ", problem));
    r.turns.push_back(std::move(out));
  }
  if (r.turns.size() < 2 || r.turns.back().from != "gpt")
    throw BadRecord(BadReason::kBadTurns, r.line, r.id, "a record needs human/gpt pairs ending with a gpt turn");
  auto image = j.find("image");
  if (image == j.end() || image->is_null()) {
    if (!options_.allow_text_only) throw BadRecord(BadReason::kTextOnly, r.line, r.id, "no image (text-only records are off)");
    return r;
  }
  if (!image->is_string()) throw BadRecord(BadReason::kMissingField, r.line, r.id, "\"image\" is not a string");
  r.image = image->get<std::string>();
  r.image_path = resolve_image_path(options_.image_root, r.image, r.line, r.id);
  if (options_.check_image_exists && !std::filesystem::is_regular_file(r.image_path))
    throw BadRecord(BadReason::kImageMissing, r.line, r.id, str_cat("no image file '", r.image_path, "'"));
  return r;
}

struct BadRecordLog::Sink {
  std::FILE* file = nullptr;
  ~Sink() {
    if (file) std::fclose(file);
  }
};

BadRecordLog::BadRecordLog(const std::string& path) : sink_(std::make_unique<Sink>()) {
  if (path.empty()) return;
  sink_->file = std::fopen(path.c_str(), "a");
  if (!sink_->file) throw IoError(str_cat("cannot open '", path, "' for appending: ", std::strerror(errno)));
}

BadRecordLog::~BadRecordLog() = default;

void BadRecordLog::add(const BadRecord& bad) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_[reason_name(bad.reason())];
  if (sink_->file) {
    nlohmann::json j = {{"line", bad.line()}, {"id", bad.id()}, {"reason", reason_name(bad.reason())},
                        {"detail", bad.detail()}};
    const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(text.data(), 1, text.size(), sink_->file);
    std::fflush(sink_->file);
  }
}

std::map<std::string, int64_t> BadRecordLog::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

int64_t BadRecordLog::total() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t n = 0;
  for (const auto& [reason, count] : counts_) n += count;
  return n;
}

std::string BadRecordLog::summary() const {
  const auto counts = this->counts();
  int64_t n = 0;
  for (const auto& [reason, count] : counts) n += count;
  if (n == 0) return "no record skipped";
  std::string out = str_cat(n, " skipped:");
  bool first = true;
  for (const auto& [reason, count] : counts) {
    out += str_cat(first ? " " : ", ", count, " ", reason);
    first = false;
  }
  return out;
}

}  // namespace llavacot::data
